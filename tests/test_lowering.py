"""Lowering of ai.onnx.ml operators: each rewrite on one hand-built operator, against ONNX Runtime's own kernel.

Every lowered graph passes ``onnx.checker`` with full shape inference, has
no ai.onnx.ml node left, and gives ONNX Runtime's outputs for the native
operator on ONNX Runtime and on OpenVINO: labels equal, floats within 1e-5
(relative to 1).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.graph import STRATEGIES, LoweringError, lower, ml_operators

ML = "ai.onnx.ml"
BACKENDS = ("onnxruntime", "openvino")
RNG = np.random.default_rng(0)


def single(op: str, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int, list | None]],
           **attrs) -> onnx.ModelProto:
    """A graph of one ai.onnx.ml node."""
    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs], domain=ML, **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(ML, 3)])


def native(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return get_backend("onnxruntime").compile(model, {}).run(feeds)


def check(model: onnx.ModelProto, feeds: dict, strategies=("traversal",), backends=BACKENDS, tol=1e-5,
          expected=None) -> None:
    """The lowered graph (each tree strategy) is valid, standard, and agrees with the native operator."""
    expected = native(model, feeds) if expected is None else expected
    for strategy in strategies:
        low = lower(model, strategy)
        onnx.checker.check_model(low, full_check=True)
        assert not ml_operators(low)
        assert [i.name for i in low.graph.input] == [i.name for i in model.graph.input]
        assert [o.name for o in low.graph.output] == [o.name for o in model.graph.output]
        for backend in backends:
            got = get_backend(backend).compile(low, {}).run(feeds)
            for e, g in zip(expected, got, strict=True):
                e, g = np.asarray(e), np.asarray(g).reshape(np.shape(e))
                if e.dtype.kind in "OUSi":
                    assert (e == g).all(), (strategy, backend, e, g)
                else:
                    np.testing.assert_allclose(g, e, rtol=tol, atol=tol, err_msg=f"{strategy} {backend}")


X4 = RNG.normal(size=(9, 4)).astype(np.float32) * 3
X4[2] = 0.0


def test_scaler_vector_and_scalar_attributes():
    for offset, scale in (([0.5, -1.0, 2.0, 0.0], [2.0, 0.5, 1.0, -3.0]), ([1.5], [0.25])):
        model = single("Scaler", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])],
                       offset=offset, scale=scale)
        check(model, {"X": X4})


@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
def test_normalizer_with_negative_values_and_a_zero_row(norm):
    model = single("Normalizer", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])],
                   norm=norm)
    check(model, {"X": X4})


def test_binarizer():
    model = single("Binarizer", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])],
                   threshold=0.5)
    check(model, {"X": np.vstack([X4, np.full((1, 4), 0.5, np.float32)])})


def test_imputer_of_nan_and_of_a_value():
    x = X4.copy()
    x[1, 2] = x[4, 0] = np.nan
    model = single("Imputer", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])],
                   imputed_value_floats=[1.0, 2.0, 3.0, 4.0], replaced_value_float=float("nan"))
    check(model, {"X": x})
    model = single("Imputer", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])],
                   imputed_value_floats=[-7.0], replaced_value_float=0.0)
    check(model, {"X": X4})


def test_one_hot_encoder_of_integers_and_of_strings():
    model = single("OneHotEncoder", [("X", TensorProto.INT64, [None, 1])], [("Y", TensorProto.FLOAT, [None, 1, 3])],
                   cats_int64s=[3, 1, 7], zeros=1)
    check(model, {"X": np.array([[1], [7], [3], [5]], dtype=np.int64)})
    model = single("OneHotEncoder", [("X", TensorProto.STRING, [None, 1])],
                   [("Y", TensorProto.FLOAT, [None, 1, 3])], cats_strings=["red", "green", "blue"], zeros=1)
    check(model, {"X": np.array([["green"], ["blue"], ["other"], ["red"]], dtype=object)}, backends=("onnxruntime",))


def test_label_encoder_integers_to_integers_with_a_default():
    model = single("LabelEncoder", [("X", TensorProto.INT64, [None])], [("Y", TensorProto.INT64, [None])],
                   keys_int64s=[5, 2, 9], values_int64s=[0, 1, 2], default_int64=-1)
    check(model, {"X": np.array([2, 9, 4, 5], dtype=np.int64)})


def test_array_feature_extractor():
    model = single("ArrayFeatureExtractor", [("X", TensorProto.FLOAT, [None, 4]), ("I", TensorProto.INT64, [2])],
                   [("Y", TensorProto.FLOAT, [None, 2])])
    check(model, {"X": X4, "I": np.array([3, 1], dtype=np.int64)})


def test_zipmap_becomes_the_probability_tensor():
    model = single("ZipMap", [("X", TensorProto.FLOAT, [None, 3])], [("Z", TensorProto.FLOAT, None)],
                   classlabels_int64s=[0, 1, 2])
    node = model.graph.node[0]
    model.graph.output[0].CopyFrom(helper.make_value_info(
        "Z", helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64,
                                                                        helper.make_tensor_type_proto(1, [])))))
    low = lower(model)
    onnx.checker.check_model(low, full_check=True)
    x = RNG.random((5, 3)).astype(np.float32)
    assert node.op_type == "ZipMap" and low.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    np.testing.assert_array_equal(get_backend("openvino").compile(low, {}).run({"X": x})[0], x)


def classifier_outputs(labels: list) -> list[tuple[str, int, list]]:
    kind = TensorProto.STRING if isinstance(labels[0], str) else TensorProto.INT64
    return [("label", kind, [None]), ("scores", TensorProto.FLOAT, [None, None])]


def labels_attr(labels: list) -> dict:
    return {"classlabels_strings": labels} if isinstance(labels[0], str) else {"classlabels_ints": labels}


POSTS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("labels", [[0, 1], [3, 5, 8], ["no", "yes"], ["a", "b", "c"]], ids=str)
def test_linear_classifier(post, labels):
    rows = 1 if len(labels) == 2 else len(labels)
    coef = RNG.normal(size=rows * 4).tolist()
    model = single("LinearClassifier", [("X", TensorProto.FLOAT, [None, 4])], classifier_outputs(labels),
                   coefficients=coef, intercepts=RNG.normal(size=rows).tolist(), post_transform=post,
                   **labels_attr(labels))
    check(model, {"X": X4})


def test_linear_regressor_with_two_targets():
    model = single("LinearRegressor", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 2])],
                   coefficients=RNG.normal(size=8).tolist(), intercepts=[0.5, -1.0], targets=2)
    check(model, {"X": X4})


KERNELS = {"LINEAR": [0.0, 0.0, 0.0], "POLY": [0.3, 1.0, 3.0], "RBF": [0.2, 0.0, 0.0], "SIGMOID": [0.1, 0.5, 0.0]}


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("labels", [[0, 1], [2, 4, 6], ["x", "y", "z"]], ids=str)
def test_svm_classifier_one_vs_one(kernel, labels):
    per_class = [2, 3, 2][:len(labels)]
    n_sv = sum(per_class)
    n_pairs = len(labels) * (len(labels) - 1) // 2
    model = single("SVMClassifier", [("X", TensorProto.FLOAT, [None, 4])], classifier_outputs(labels),
                   kernel_type=kernel, kernel_params=KERNELS[kernel], vectors_per_class=per_class,
                   support_vectors=RNG.normal(size=n_sv * 4).tolist(),
                   coefficients=RNG.normal(size=(len(labels) - 1) * n_sv).tolist(),
                   rho=RNG.normal(size=n_pairs).tolist(), post_transform="NONE", **labels_attr(labels))
    check(model, {"X": X4}, tol=1e-4)


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_svm_regressor(kernel):
    model = single("SVMRegressor", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 1])],
                   kernel_type=kernel, kernel_params=KERNELS[kernel], n_supports=5,
                   support_vectors=RNG.normal(size=20).tolist(), coefficients=RNG.normal(size=5).tolist(),
                   rho=[0.25], post_transform="NONE")
    check(model, {"X": X4}, tol=1e-4)


def test_one_class_svm_regressor_gives_plus_or_minus_one():
    model = single("SVMRegressor", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 1])],
                   kernel_type="RBF", kernel_params=[0.2, 0.0, 0.0], n_supports=3, one_class=1,
                   support_vectors=RNG.normal(size=12).tolist(), coefficients=[0.5, 0.3, 0.2], rho=[-0.3])
    check(model, {"X": X4})


def test_svm_with_probability_estimates_is_refused():
    model = single("SVMClassifier", [("X", TensorProto.FLOAT, [None, 4])], classifier_outputs([0, 1]),
                   kernel_type="RBF", kernel_params=[0.2, 0.0, 0.0], vectors_per_class=[1, 1],
                   support_vectors=RNG.normal(size=8).tolist(), coefficients=[1.0, -1.0], rho=[0.1],
                   prob_a=[-1.0], prob_b=[0.1], classlabels_ints=[0, 1])
    with pytest.raises(LoweringError, match="probability estimates"):
        lower(model)


# Two trees on 2 features, one of each split mode, thresholds hit exactly by rows below.
#   tree 0: n0 (x0 MODE0 0.5) -> n1 (x1 MODE1 -1.0) -> leaves n3/n4 ; n2 leaf
#   tree 1: n0 (x1 MODE2 0.25) -> leaves n1/n2
THRESHOLDS = [0.5, -1.0, 0.25]


def tree_attrs(modes: list[str], missing: list[int]) -> dict:
    return dict(nodes_treeids=[0, 0, 0, 0, 0, 1, 1, 1], nodes_nodeids=[0, 1, 2, 3, 4, 0, 1, 2],
                nodes_featureids=[0, 1, 0, 0, 0, 1, 0, 0],
                nodes_values=[THRESHOLDS[0], THRESHOLDS[1], 0, 0, 0, THRESHOLDS[2], 0, 0],
                nodes_modes=[modes[0], modes[1], "LEAF", "LEAF", "LEAF", modes[2], "LEAF", "LEAF"],
                nodes_truenodeids=[1, 3, 0, 0, 0, 1, 0, 0], nodes_falsenodeids=[2, 4, 0, 0, 0, 2, 0, 0],
                nodes_missing_value_tracks_true=missing)


LEAVES = [(0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]


def on_thresholds() -> np.ndarray:
    """Rows on each threshold, one float32 step either side, and NaNs."""
    values = []
    for t in THRESHOLDS:
        t = np.float32(t)
        values += [t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))]
    values += [np.nan, -5.0, 5.0]
    grid = np.array(np.meshgrid(values, values)).reshape(2, -1).T
    return np.ascontiguousarray(grid, dtype=np.float32)


MODES = [["BRANCH_LEQ"] * 3, ["BRANCH_LT"] * 3, ["BRANCH_GTE", "BRANCH_GT", "BRANCH_LT"],
         ["BRANCH_GT", "BRANCH_LEQ", "BRANCH_GTE"]]


@pytest.mark.parametrize("modes", MODES, ids="-".join)
@pytest.mark.parametrize("missing", [[0] * 8, [1, 0, 0, 0, 0, 1, 0, 0]], ids=["nan-false", "nan-true"])
@pytest.mark.parametrize("aggregate", ["SUM", "AVERAGE", "MIN", "MAX"])
def test_tree_regressor_split_modes_on_thresholds(modes, missing, aggregate):
    model = single("TreeEnsembleRegressor", [("X", TensorProto.FLOAT, [None, 2])],
                   [("Y", TensorProto.FLOAT, [None, 2])], n_targets=2, aggregate_function=aggregate,
                   target_treeids=[t for t, _ in LEAVES] * 2, target_nodeids=[n for _, n in LEAVES] * 2,
                   target_ids=[0] * 5 + [1] * 5, target_weights=RNG.normal(size=10).tolist(),
                   base_values=[0.5, -0.5], **tree_attrs(modes, missing))
    check(model, {"X": on_thresholds()}, strategies=STRATEGIES)


@pytest.mark.parametrize("post", POSTS)
@pytest.mark.parametrize("labels", [[0, 1, 2], ["a", "b", "c"]], ids=str)
def test_tree_classifier_multiclass(post, labels):
    weights = RNG.random(15)
    model = single("TreeEnsembleClassifier", [("X", TensorProto.FLOAT, [None, 2])], classifier_outputs(labels),
                   class_treeids=[t for t, _ in LEAVES] * 3, class_nodeids=[n for _, n in LEAVES] * 3,
                   class_ids=[0] * 5 + [1] * 5 + [2] * 5, class_weights=weights.tolist(),
                   base_values=[0.1, 0.0, -0.1], post_transform=post,
                   **tree_attrs(MODES[2], [1, 0, 0, 0, 0, 0, 0, 0]), **{
                       ("classlabels_strings" if isinstance(labels[0], str) else "classlabels_int64s"): labels})
    check(model, {"X": on_thresholds()}, strategies=STRATEGIES)


@pytest.mark.parametrize("weights, post, base", [
    ([0.9, 0.2, 0.6, 0.3, 0.1], "NONE", []),          # forests: probabilities of class 1, label when > 0.5
    ([0.9, -0.2, 0.6, -0.3, 0.1], "LOGISTIC", [0.3]),  # boosting: log-odds, label when > 0
    ([0.9, -0.2, 0.6, -0.3, 0.1], "NONE", []),
], ids=["positive", "logistic", "mixed"])
@pytest.mark.parametrize("labels", [[0, 1], [4, 7]], ids=str)
def test_tree_classifier_binary(weights, post, base, labels):
    model = single("TreeEnsembleClassifier", [("X", TensorProto.FLOAT, [None, 2])], classifier_outputs(labels),
                   class_treeids=[t for t, _ in LEAVES], class_nodeids=[n for _, n in LEAVES], class_ids=[0] * 5,
                   class_weights=weights, post_transform=post, classlabels_int64s=labels,
                   **({"base_values": base} if base else {}), **tree_attrs(MODES[0], [0] * 8))
    check(model, {"X": on_thresholds()}, strategies=STRATEGIES)


def test_float64_thresholds_round_down_to_the_same_decisions():
    """ONNX Runtime refuses float64 thresholds on a float32 input: the exact decisions are written out here."""
    attrs = tree_attrs(["BRANCH_LEQ", "BRANCH_LT", "BRANCH_LEQ"], [0] * 8)
    values = attrs.pop("nodes_values")
    values[0] = 0.1  # not a float32: x <= 0.1 is x <= the float32 just below 0.1
    model = single("TreeEnsembleRegressor", [("X", TensorProto.FLOAT, [None, 2])],
                   [("Y", TensorProto.FLOAT, [None, 1])], n_targets=1,
                   target_treeids=[t for t, _ in LEAVES], target_nodeids=[n for _, n in LEAVES],
                   target_ids=[0] * 5, target_weights=[1.0, 2.0, 4.0, 8.0, 16.0],
                   nodes_values_as_tensor=helper.make_tensor("v", TensorProto.DOUBLE, [8], values), **attrs)
    x = on_thresholds()
    t = np.float32(0.1)
    x[:3, 0] = [t, np.nextafter(t, np.float32(-1)), np.nextafter(t, np.float32(1))]
    x = x[~np.isnan(x).any(axis=1)]
    x0, x1 = x[:, 0].astype(np.float64), x[:, 1].astype(np.float64)
    first = np.where(x0 <= 0.1, np.where(x1 < -1.0, 2.0, 4.0), 1.0)
    expected = [(first + np.where(x1 <= 0.25, 8.0, 16.0)).reshape(-1, 1).astype(np.float32)]
    check(model, {"X": x}, strategies=STRATEGIES, expected=expected)


def test_perfect_and_gemm_trees_are_refused_beyond_their_limits():
    from admm_tune.evaluate.graph import trees

    model = single("TreeEnsembleRegressor", [("X", TensorProto.FLOAT, [None, 2])],
                   [("Y", TensorProto.FLOAT, [None, 1])], n_targets=1,
                   target_treeids=[t for t, _ in LEAVES], target_nodeids=[n for _, n in LEAVES],
                   target_ids=[0] * 5, target_weights=[1.0] * 5, **tree_attrs(MODES[0], [0] * 8))
    limits = trees.PERFECT_LIMIT, trees.GEMM_LIMIT
    trees.PERFECT_LIMIT, trees.GEMM_LIMIT = 4, 8
    try:
        with pytest.raises(LoweringError, match="exceed"):
            lower(model, "perfect")
        with pytest.raises(LoweringError, match="exceeds"):
            lower(model, "gemm")
    finally:
        trees.PERFECT_LIMIT, trees.GEMM_LIMIT = limits


def test_probit_and_equality_splits_are_refused():
    model = single("LinearClassifier", [("X", TensorProto.FLOAT, [None, 4])], classifier_outputs([0, 1, 2]),
                   coefficients=[0.0] * 12, intercepts=[0.0] * 3, post_transform="PROBIT", classlabels_ints=[0, 1, 2])
    with pytest.raises(LoweringError, match="PROBIT"):
        lower(model)
    model = single("TreeEnsembleRegressor", [("X", TensorProto.FLOAT, [None, 2])],
                   [("Y", TensorProto.FLOAT, [None, 1])], n_targets=1,
                   target_treeids=[t for t, _ in LEAVES], target_nodeids=[n for _, n in LEAVES],
                   target_ids=[0] * 5, target_weights=[1.0] * 5, **tree_attrs(["BRANCH_EQ"] * 3, [0] * 8))
    with pytest.raises(LoweringError, match="BRANCH_EQ"):
        lower(model, "gemm")


def test_openvino_gets_string_inputs_as_codes_it_computes_itself():
    model = single("OneHotEncoder", [("X", TensorProto.STRING, [None, 1])],
                   [("Y", TensorProto.FLOAT, [None, 1, 3])], cats_strings=["red", "green", "blue"], zeros=1)
    x = np.array([["green"], ["blue"], ["other"], ["red"]], dtype=object)
    session = get_backend("openvino").compile(model, {"tree_lowering": "gemm"})
    assert session.codes == {"X": {"blue": 0, "green": 1, "red": 2}}
    np.testing.assert_array_equal(session.run({"X": x})[0], native(model, {"X": x})[0])


def test_folded_thresholds_decide_exactly_as_the_float64_scaler_then_float32():
    from admm_tune.evaluate.graph.passes import folded_thresholds

    steps = [["sub", [8.802687843616372, -3.0]], ["div", [6.038831185354463, 0.1]]]
    features = np.array([0, 0, 1, 1, 0])
    t = np.array([-0.7953009, 0.46734097, 12.5, -7.0, 0.0], dtype=np.float32)
    strict = np.array([False, True, False, True, False])
    v = folded_thresholds(t, strict, steps, features)
    for i, f in enumerate(features):  # every float32 around the folded threshold decides the same both ways
        x = np.float32(v[i])
        for _ in range(40):
            x = np.nextafter(x, np.float32(-np.inf))
        for _ in range(80):
            z = np.float32((np.float64(x) - steps[0][1][f]) / steps[1][1][f])
            assert (z < t[i] if strict[i] else z <= t[i]) == (x <= v[i])
            x = np.nextafter(x, np.float32(np.inf))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sessions_bind_inputs_in_place_and_see_what_the_caller_writes(backend):
    node = helper.make_node("Neg", ["X"], ["Y"])
    graph = helper.make_graph([node], "neg", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])])
    session = get_backend(backend).compile(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), {})
    x = np.ones((3, 2), np.float32)
    first = session.run({"X": x})[0]
    x[:] = 5.0  # the same array, rewritten: a bound tensor shares its memory
    assert (first == -1).all() and (session.run({"X": x})[0] == -5).all()
    strided = np.ones((3, 4), np.float32)[:, ::2]  # not contiguous: copied, and rebound at every call
    assert (session.run({"X": strided})[0] == -1).all()
    strided[:] = 2.0
    assert (session.run({"X": strided})[0] == -2).all()
    frozen = np.full((1, 2), 3.0, np.float32)
    frozen.flags.writeable = False
    assert (session.run({"X": frozen})[0] == -3).all()


def test_tensorrt_parser_check_flags_ml_operators_unknown_operators_and_strings():
    from admm_tune.evaluate.graph import tensorrt_unsupported

    model = single("OneHotEncoder", [("X", TensorProto.STRING, [None, 1])],
                   [("Y", TensorProto.FLOAT, [None, 1, 3])], cats_strings=["a", "b", "c"], zeros=1)
    assert tensorrt_unsupported(model) == ["ai.onnx.ml:OneHotEncoder", "string tensor X"]
    assert tensorrt_unsupported(lower(model, string_codes=True)) == []
    graph = helper.make_graph([helper.make_node("Mod", ["A", "B"], ["C"])], "mod",
                              [helper.make_tensor_value_info(n, TensorProto.INT64, [None]) for n in "AB"],
                              [helper.make_tensor_value_info("C", TensorProto.INT64, [None])])
    assert tensorrt_unsupported(helper.make_model(graph)) == ["Mod"]
    from admm_tune.evaluate.graph.tensorrt import for_tensorrt

    inverse = helper.make_model(helper.make_graph(
        [helper.make_node("Reciprocal", ["X"], ["Y"])], "r",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3])]), opset_imports=[helper.make_opsetid("", 18)])
    assert tensorrt_unsupported(inverse) == ["Reciprocal"] and tensorrt_unsupported(for_tensorrt(inverse)) == []
    x = np.array([3.0, -7.0, 0.1], np.float32)
    assert (native(for_tensorrt(inverse), {"X": x})[0] == native(inverse, {"X": x})[0]).all()
    trees = single("TreeEnsembleRegressor", [("X", TensorProto.FLOAT, [None, 2])],
                   [("Y", TensorProto.FLOAT, [None, 1])], n_targets=1,
                   target_treeids=[t for t, _ in LEAVES], target_nodeids=[n for _, n in LEAVES],
                   target_ids=[0] * 5, target_weights=[1.0] * 5, **tree_attrs(MODES[2], [1, 0, 0, 0, 0, 1, 0, 0]))
    assert all(tensorrt_unsupported(lower(trees, s)) == [] for s in STRATEGIES)


def test_prepared_graphs_are_cached_by_content_and_never_alias_the_callers_model():
    from admm_tune.evaluate.graph import prepared

    plain = single("Binarizer", [("X", TensorProto.FLOAT, [None, 4])], [("Y", TensorProto.FLOAT, [None, 4])])
    assert prepared(plain, "native") is plain  # nothing to do: the caller's own graph, not a cached one
    twin = onnx.ModelProto()
    twin.CopyFrom(plain)
    assert prepared(twin, "native") is twin
    first = prepared(plain, "gemm")
    assert first is not plain and not ml_operators(first) and prepared(twin, "gemm") is first
