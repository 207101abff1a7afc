"""Every algorithm of the default spaces on ONNX Runtime and OpenVINO, through the backends' lowering.

Parametrised over the algorithms of ``classification`` (breast_cancer, and
digits for the estimators) and ``regression`` (diabetes): each pipeline is compiled by the
backends exactly as a deployment compiles it (``tree_lowering`` knob), and
must agree with scikit-learn on every row when its graph has ai.onnx.ml
operators (the lowering is under test): labels 100 %, probabilities within
1e-4 (regression values within 1e-4 of the target's sd); a graph of
standard operators reaches OpenVINO unchanged and must agree with ONNX
Runtime's run of it (its agreement with scikit-learn is test_export's).  Tree
ensembles are checked with each strategy and on rows lying exactly on their
split thresholds (and one float32 step either side).  Scalers and
transformers are checked in front of a linear SVC / an SVR, pipelines whose
export keeps ai.onnx.ml operators (in front of trees, see the folding test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.export import export, feeds, restore
from admm_tune.evaluate.graph import STRATEGIES, ml_operators, prepared, tensorrt_unsupported
from admm_tune.evaluate.graph.tensorrt import for_tensorrt
from admm_tune.evaluate.pipeline import build_pipeline
from admm_tune.space import SearchSpace

CASES = {"classification": ["breast_cancer", "digits"], "regression": ["diabetes"]}
BASE = {"classification": {"scaler": "none", "transformer": "none", "estimator": "linear_svc"},
        "regression": {"scaler": "none", "transformer": "none", "estimator": "svr"}}
"""Scalers and transformers are checked in front of estimators whose export keeps ai.onnx.ml operators."""
SMALL = {"n_estimators": 4}
"""Few trees keep the test fast; the lowering does not depend on their number."""
TOL = 1e-4
ROWS = 160
RAN_ON_OPENVINO: set[str] = set()


def cases():
    for space_name, datasets in CASES.items():
        for module in SearchSpace.load(space_name).modules:
            for algo in module.algorithms:
                for data_name in datasets if module.name == "estimator" else datasets[:1]:
                    yield pytest.param(space_name, data_name, module.name, algo.name,
                                       id=f"{data_name}-{module.name}-{algo.name}")


_DATA: dict = {}


def fitted(space_name: str, data_name: str, module: str, algo: str):
    if data_name not in _DATA:
        _DATA[data_name] = load_dataset(f"sklearn:{data_name}", seed=0)
    data = _DATA[data_name]
    space = SearchSpace.load(space_name)
    spec = next(a for a in space.module(module).algorithms if a.name == algo)
    pipeline = build_pipeline(space.complete({**BASE[space_name], module: algo}), space, data, 0)
    step = final_model(pipeline, fitted=False)
    step.set_params(**{k: v for k, v in SMALL.items() if k in step.get_params()})
    if algo == "hist_gradient_boosting":
        step.set_params(max_iter=4)
    with threadpool_limits(1), np.errstate(all="ignore"):
        pipeline.fit(data.X.iloc[ROWS:], data.y[ROWS:])
    return spec, data, pipeline


def final_model(pipeline, fitted: bool = True):
    """The pipeline's estimator (a regressor's, inside its target scaling)."""
    step = pipeline.steps[-1][1]
    return getattr(step, "regressor_" if fitted else "regressor", step)


def on_thresholds(pipeline, X: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``X`` with one feature moved exactly onto a split threshold of the final tree model
    (as the float32 the graph holds), or one float32 step below or above it."""
    final = final_model(pipeline)
    trees = [e for e in np.ravel(getattr(final, "estimators_", [final])) if hasattr(e, "tree_")][:3]
    rows = []
    rng = np.random.default_rng(0)
    for tree in trees:
        inner = np.flatnonzero(tree.tree_.children_left >= 0)[:6]
        for node in inner:
            t = np.float32(tree.tree_.threshold[node])
            for value in (t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))):
                row = X.iloc[int(rng.integers(len(X)))].copy()
                row.iloc[tree.tree_.feature[node]] = value
                rows.append(row)
    return pd.DataFrame(rows, columns=X.columns).astype(np.float32) if rows else X.iloc[:0]


def agree(task: str, pipeline, X, outputs, sd: float, what: str, reference=None) -> None:
    """Labels all equal and probabilities within 1e-4 (regression: values within 1e-4 sd) of scikit-learn's,
    or of the ``reference`` outputs."""
    with threadpool_limits(1):
        expected = pipeline.predict(X) if reference is None else np.asarray(reference[0]).ravel()
        if task == "regression":
            gap = np.abs(np.asarray(outputs[0]).ravel() - expected).max() / sd
            assert gap <= TOL, f"{what}: values differ by {gap:.3g} sd"
            return
        labels = np.asarray(outputs[0]).ravel()
        assert (labels == expected).all(), f"{what}: {(labels != expected).sum()}/{len(labels)} labels differ"
        if hasattr(pipeline, "predict_proba"):
            proba = pipeline.predict_proba(X) if reference is None else np.asarray(reference[1])
            gap = np.abs(np.asarray(outputs[1]).reshape(proba.shape) - proba).max()
            assert gap <= TOL, f"{what}: probabilities differ by {gap:.3g}"


def run(session, model, rows) -> list:
    """The session's outputs for ``rows``, a regressor's value as the target (its graph predicts it standardised)."""
    outputs = session.run(feeds(model, rows))
    return [restore(model, outputs[0]), *outputs[1:]]


def agrees(task: str, pipeline, X, outputs, sd: float) -> bool:
    """Whether ``outputs`` pass :func:`agree` against scikit-learn."""
    try:
        agree(task, pipeline, X, outputs, sd, "")
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("space_name, data_name, module, algo", list(cases()))
def test_every_algorithm_runs_on_both_backends_and_agrees_with_scikit_learn(space_name, data_name, module, algo):
    spec, data, pipeline = fitted(space_name, data_name, module, algo)
    if not spec.exportable:
        pytest.skip("not exportable (no ONNX converter)")
    model = export(pipeline, data.X.iloc[:5])
    X = data.X.iloc[:ROWS]
    if hasattr(final_model(pipeline), "tree_") or hasattr(final_model(pipeline), "estimators_"):
        X = pd.concat([X, on_thresholds(pipeline, X)]) if module == "estimator" else X
    strategies = STRATEGIES if ml_operators(model) and module == "estimator" else ("gemm",)
    if not ml_operators(model):  # nothing to lower: one compile per backend
        strategies = ("gemm",)
    sd = float(np.std(data.y)) or 1.0
    lowered = bool(ml_operators(model))
    ort = ("native", *strategies) if lowered else ("native",)
    native = get_backend("onnxruntime").compile(model, {})
    for backend, choices in (("onnxruntime", ort), ("openvino", strategies)):
        for strategy in choices:
            session = get_backend(backend).compile(model, {"tree_lowering": strategy})
            for rows in (X, X.iloc[[0]]):
                # a graph with ai.onnx.ml operators must agree with scikit-learn: the lowering is under test;
                # a standard graph reaches OpenVINO unchanged and must agree with ONNX Runtime's run of it, and so
                # must one whose native run already differs from scikit-learn (the converter's difference, which
                # test_export bounds: SGD's float32 sigmoids underflow on unscaled digits), every graph having the
                # front's ai.onnx.ml Imputer
                natively = run(native, model, rows)
                reference = None if lowered and agrees(space_name, pipeline, rows, natively, sd) else natively
                agree(space_name, pipeline, rows, run(session, model, rows), sd,
                      f"{backend}/{strategy}/batch {len(rows)}", reference)
    for strategy in strategies:  # what the TensorRT backend would build an engine from
        assert tensorrt_unsupported(for_tensorrt(prepared(model, strategy))) == [], strategy
    RAN_ON_OPENVINO.add(f"{space_name}.{module}.{algo}")


def test_zz_every_exportable_default_algorithm_ran_on_openvino():
    """Runs after the parametrised test (alphabetical order within the file): the list, printed, is complete."""
    expected = {f"{s}.{m.name}.{a.name}" for s in CASES for m in SearchSpace.load(s).modules for a in m.algorithms
                if a.exportable and a.estimator is not None}
    if not RAN_ON_OPENVINO:
        pytest.skip("run together with the parametrised test")
    print("\nran on OpenVINO with agreement:", ", ".join(sorted(RAN_ON_OPENVINO)))
    assert expected <= RAN_ON_OPENVINO, sorted(expected - RAN_ON_OPENVINO)


SCALED_TREES = [("digits", "standard", "random_forest"), ("digits", "standard", "decision_tree"),
                ("digits", "robust", "decision_tree"),
                ("breast_cancer", "minmax", "extra_trees"), ("breast_cancer", "maxabs", "gradient_boosting"),
                ("breast_cancer", "standard", "random_forest")]


def test_scalers_folded_into_tree_thresholds_agree_where_float32_scaling_did_not():
    """Each scaler in front of trees, on every row; the unfolded graph (the scaler in float32) disagreed on
    some of these rows, the folded one agrees with scikit-learn on all of them, with every strategy."""
    import onnxruntime

    from admm_tune.evaluate.graph import fold_scalers_into_trees

    space = SearchSpace.load("classification")
    disagreed = 0
    for data_name, scaler, estimator in SCALED_TREES:
        if data_name not in _DATA:
            _DATA[data_name] = load_dataset(f"sklearn:{data_name}", seed=0)
        data = _DATA[data_name]
        pipeline = build_pipeline(space.complete({"scaler": scaler, "transformer": "none", "estimator": estimator}),
                                  space, data, 0)
        final = pipeline.steps[-1][1]
        final.set_params(max_depth=8, **({"n_estimators": 10} if estimator != "decision_tree" else {}))
        with threadpool_limits(1):
            pipeline.fit(data.X, data.y)
        model = export(pipeline, data.X.iloc[:5])
        folded = fold_scalers_into_trees(model)
        assert not {"Sub", "Div", "Mul", "Add", "Cast"} & {n.op_type for n in folded.graph.node}  # scaler gone
        X = data.X
        with threadpool_limits(1):
            expected = pipeline.predict(X)
        raw = onnxruntime.InferenceSession(model.SerializeToString())  # the unfolded graph (the backends fold)
        raw_labels = raw.run(None, feeds(model, X))[0]
        disagreed += int((raw_labels != expected).sum())
        for backend, choices in (("onnxruntime", ("native", *STRATEGIES)), ("openvino", STRATEGIES)):
            for strategy in choices:
                out = get_backend(backend).compile(model, {"tree_lowering": strategy}).run(feeds(model, X))
                agree("classification", pipeline, X, out, 1.0, f"{data_name}/{scaler}/{estimator}/{backend}/{strategy}")
    assert disagreed > 0, "these pipelines no longer disagree unfolded: pick others that show the fix"


@pytest.mark.parametrize("scaler", ["standard", "robust", "minmax"])
def test_scalers_fold_into_histgradientboosting_as_it_splits_in_float64(scaler):
    """HistGradientBoosting compares the scaled float64 value with thresholds placed at data values: folded as
    trees that cast to float32 (the bisection), 1-11 breast-cancer rows moved across a threshold (probabilities
    off by up to 0.07, the deployment refused); folded as it splits (nearest float32 boundary), every row agrees."""
    from admm_tune.evaluate.graph import fold_scalers_into_trees
    from admm_tune.evaluate.graph.passes import FLOAT64_SPLITS

    space = SearchSpace.load("classification")
    if "breast_cancer" not in _DATA:
        _DATA["breast_cancer"] = load_dataset("sklearn:breast_cancer", seed=0)
    data = _DATA["breast_cancer"]
    pipeline = build_pipeline(space.complete({"scaler": scaler, "transformer": "none",
                                              "estimator": "hist_gradient_boosting"}), space, data, 0)
    with threadpool_limits(1):
        pipeline.fit(data.X, data.y)
    model = export(pipeline, data.X.iloc[:5])
    trees = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert trees and all(n.doc_string == FLOAT64_SPLITS for n in trees)
    for backend, strategy in (("onnxruntime", "native"), ("onnxruntime", "gemm"), ("openvino", "traversal")):
        out = get_backend(backend).compile(model, {"tree_lowering": strategy}).run(feeds(model, data.X))
        agree("classification", pipeline, data.X, out, 1.0, f"{scaler}/{backend}/{strategy}")
    for node in trees:  # without the mark: folded as a float32 tree
        node.doc_string = ""
    folded = fold_scalers_into_trees(model)
    import onnxruntime

    out = onnxruntime.InferenceSession(folded.SerializeToString()).run(None, feeds(folded, data.X))
    assert not agrees("classification", pipeline, data.X, out, 1.0), "the float32 rule no longer shows the fix"


def test_categorical_front_and_string_labels_run_on_openvino():
    """String inputs reach OpenVINO as integer codes, string labels come back as strings."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "colour": rng.choice(["red", "green", "blue", None], 200),
                          "size": rng.choice(["s", "m", "l"], 200)})
    y = np.where((frame["x"] > 0) ^ (frame["colour"] == "red"), "yes", "no")
    data = load_dataset({"X": frame, "y": y})
    space = SearchSpace.load("classification")
    for estimator in ("decision_tree", "logistic_regression", "svc"):
        pipeline = build_pipeline(space.complete({"scaler": "none", "transformer": "none", "estimator": estimator}),
                                  space, data, 0)
        with threadpool_limits(1):
            pipeline.fit(data.X, data.y)
        model = export(pipeline, data.X.iloc[:5])
        assert "OneHotEncoder" in ml_operators(model)
        for strategy in STRATEGIES:
            session = get_backend("openvino").compile(model, {"tree_lowering": strategy})
            agree("classification", pipeline, data.X, session.run(feeds(model, data.X)), 1.0,
                  f"{estimator}/{strategy}")


@pytest.mark.parametrize("scaler, transformer, estimator", [
    ("standard", "pca", "logistic_regression"), ("minmax", "truncated_svd", "logistic_regression"),
    ("robust", "none", "sgd"), ("maxabs", "none", "lda")])
def test_chains_of_affine_steps_merge_into_one_matmul_and_stay_within_1e5(scaler, transformer, estimator):
    from admm_tune.evaluate.graph import merge_linear_chains

    space = SearchSpace.load("classification")
    data = _DATA.setdefault("breast_cancer", load_dataset("sklearn:breast_cancer", seed=0))
    pipeline = build_pipeline(space.complete({"scaler": scaler, "transformer": transformer,
                                              "estimator": estimator}), space, data, 0)
    with threadpool_limits(1), np.errstate(all="ignore"):
        pipeline.fit(data.X, data.y)
    model = export(pipeline, data.X.iloc[:5])
    merged = merge_linear_chains(model)
    kinds = [n.op_type for n in merged.graph.node]
    assert kinds.count("MatMul") < [n.op_type for n in model.graph.node].count("MatMul") or \
        len(kinds) < len(model.graph.node)
    import onnxruntime

    before = onnxruntime.InferenceSession(model.SerializeToString()).run(None, feeds(model, data.X))
    after = onnxruntime.InferenceSession(merged.SerializeToString()).run(None, feeds(model, data.X))
    assert (before[0] == after[0]).all()
    np.testing.assert_allclose(after[1], before[1], atol=1e-5)


def test_openvino_reduced_precisions_run_lowered_trees_and_verification_decides():
    """bf16 / fp16 (where this CPU has them) compile lowered forests; at bf16 traversal keeps the decisions
    exact (gemm's products move probabilities by up to 0.1 here: the verification step decides per candidate)."""
    reduced = [p for p in get_backend("openvino").capabilities().precisions if p != "fp32"]
    if not reduced:
        pytest.skip("this CPU offers OpenVINO no reduced precision")
    space = SearchSpace.load("classification")
    data = _DATA.setdefault("breast_cancer", load_dataset("sklearn:breast_cancer", seed=0))
    pipeline = build_pipeline(space.complete({"scaler": "none", "transformer": "none",
                                              "estimator": "random_forest"}), space, data, 0)
    pipeline.steps[-1][1].set_params(n_estimators=10, max_depth=6)
    with threadpool_limits(1):
        pipeline.fit(data.X, data.y)
    model = export(pipeline, data.X.iloc[:5])
    for precision in reduced:
        for strategy in STRATEGIES:
            out = get_backend("openvino").compile(model, {"tree_lowering": strategy}, precision).run(
                feeds(model, data.X))
            assert np.asarray(out[1]).shape == (len(data.X), 2)
        if precision == "bf16":  # the CPU plugin runs matrix products in bf16, comparisons and gathers in f32
            exact = get_backend("openvino").compile(model, {"tree_lowering": "traversal"}, precision)
            agree("classification", pipeline, data.X, exact.run(feeds(model, data.X)), 1.0, "bf16/traversal")


def test_a_strategy_that_cannot_hold_the_fitted_forest_falls_back_inside_the_same_compile():
    """100 trees of unbounded depth on 1,000 rows: perfect trees would need 100 x 2^depth slots and gemm a path
    matrix beyond their limits; both compile (as traversal, which the graph records) and agree."""
    from sklearn.ensemble import ExtraTreesClassifier

    from admm_tune.evaluate.graph import trees
    from admm_tune.evaluate.graph.lowering import APPLIED_KEY, FALLBACK

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1000, 20)), columns=[f"c{i}" for i in range(20)])
    y = (X["c0"] + rng.normal(size=1000) > 0).astype(int) + (X["c1"] > 0.5)
    with threadpool_limits(1):
        forest = ExtraTreesClassifier(100, random_state=0).fit(X, y)
    depth = max(e.tree_.max_depth for e in forest.estimators_)
    assert 100 << depth > trees.PERFECT_LIMIT  # perfect cannot hold it
    model = export(forest, X.iloc[:5])
    for backend, strategy in (("openvino", "perfect"), ("openvino", "gemm"), ("onnxruntime", "perfect")):
        graph = get_backend(backend).prepare(model, {"tree_lowering": strategy})
        applied = next((p.value for p in graph.metadata_props if p.key == APPLIED_KEY), strategy)
        assert strategy == "gemm" or applied.startswith(FALLBACK), applied
        out = get_backend(backend).compile(model, {"tree_lowering": strategy}).run(feeds(model, X.iloc[:300]))
        agree("classification", forest, X.iloc[:300], out, 1.0, f"{backend}/{strategy}")
