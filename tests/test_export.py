"""Every algorithm of the bundled spaces: exported, run on ONNX Runtime and OpenVINO, agreeing with scikit-learn.

Parametrised over the space files, so a new algorithm is covered
automatically; the space's ``exportable`` and ``onnx_ops`` marks are
checked against what the export really gives.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from threadpoolctl import threadpool_limits

from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.deploy import TOLERANCES
from admm_tune.evaluate.export import ExportError, export, feeds, for_precision, is_standard, lower, operators, restore
from admm_tune.evaluate.pipeline import build_pipeline
from admm_tune.space import SearchSpace

CASES = {"classification": ["breast_cancer", "wine"], "regression": ["diabetes"]}
BASE = {"classification": {"scaler": "standard", "transformer": "none", "estimator": "logistic_regression"},
        "regression": {"scaler": "standard", "transformer": "none", "estimator": "ridge"}}
TREES = {"decision_tree", "random_forest", "extra_trees", "gradient_boosting", "hist_gradient_boosting", "adaboost"}
"""Tested without a scaler: float32 scaling in front of trees moves rows across split thresholds
(verification rejects those deployments; see admm_tune.evaluate.deploy)."""
PROBA_TOL = VALUE_TOL = 1e-3
"""Written here, not taken from the product's TOLERANCES: float32 inference of float64-fitted models stays
within 1e-3 of scikit-learn's probabilities (regression: of the target's standard deviation)."""
ROW_SHARE = 0.01
"""At most 1 % of the rows (at least one) may disagree: float32 rounding flips a row sitting on a boundary."""


def test_the_deployment_verification_is_no_looser_than_this_rule():
    assert TOLERANCES["fp32"].outputs <= PROBA_TOL and TOLERANCES["fp32"].labels <= ROW_SHARE


def algorithms():
    for space_name, datasets in CASES.items():
        space = SearchSpace.load(space_name)
        for module in space.modules:
            for algo in module.algorithms:
                for data_name in datasets:
                    yield pytest.param(space_name, data_name, module.name, algo.name,
                                       id=f"{data_name}-{module.name}-{algo.name}")


_DATA: dict = {}


def fitted(space_name: str, data_name: str, module: str, algo: str):
    space = SearchSpace.load(space_name)
    if data_name not in _DATA:
        _DATA[data_name] = load_dataset(f"sklearn:{data_name}", seed=0)
    data = _DATA[data_name]
    choice = {**BASE[space_name], module: algo}
    if algo in TREES:
        choice["scaler"] = "none"
    pipeline = build_pipeline(space.complete(choice), space, data, seed=0)
    train = np.arange(len(data.y)) % 3 != 0
    with threadpool_limits(1):  # OpenMP pools fighting over a busy core slow HistGradientBoosting 10x
        pipeline.fit(data.X[train], data.y[train])
    return space.module(module).algorithm(algo), data, pipeline, data.X[~train]


def agree(task: str, pipeline, X, y_sd: float, outputs: list[np.ndarray], reference=None) -> None:
    """All but max(1, 1 %) of the rows agree: same label and probabilities (values) within tolerance.

    The rule of the deployment verification (admm_tune.evaluate.deploy), written out independently.
    """
    expected = pipeline.predict(X) if reference is None else reference[0].ravel()
    if task == "regression":
        off = np.abs(outputs[0].ravel() - expected) > VALUE_TOL * y_sd
    else:
        off = outputs[0].ravel() != expected
        if hasattr(pipeline, "predict_proba"):
            proba = pipeline.predict_proba(X) if reference is None else reference[1]
            off |= np.abs(np.asarray(outputs[1]).reshape(proba.shape) - proba).max(axis=1) > PROBA_TOL
    assert off.sum() <= max(1, int(ROW_SHARE * len(X))), f"{off.sum()}/{len(X)} rows disagree"


def run(session, model, rows) -> list[np.ndarray]:
    """The session's outputs for ``rows``, a regressor's value as the target (its graph predicts it standardised:
    :func:`~admm_tune.evaluate.export.restore`)."""
    outputs = session.run(feeds(model, rows))
    return [restore(model, outputs[0]), *outputs[1:]]


@pytest.mark.parametrize("space_name, data_name, module, algo", list(algorithms()))
def test_algorithm_exports_runs_and_agrees(space_name, data_name, module, algo):
    spec, data, pipeline, X = fitted(space_name, data_name, module, algo)
    if not spec.exportable:
        with pytest.raises(ExportError):
            export(pipeline, data.X.iloc[:5])
        return
    model = export(pipeline, data.X.iloc[:5])
    onnx.checker.check_model(model)
    assert is_standard(model) == (spec.onnx_ops == "standard"), operators(model)
    ort = get_backend("onnxruntime").compile(model, {}, "fp32")
    reference = run(ort, model, X)
    sd = float(np.std(data.y))
    agree(space_name, pipeline, X, sd, reference)
    if is_standard(model):  # the graphs a deployment space sends to OpenVINO: batch 1 and a batch of 7
        ov = get_backend("openvino").compile(model, {}, "fp32")
        for rows in (slice(0, 1), slice(0, 7)):
            agree(space_name, pipeline, X.iloc[rows], sd, run(ov, model, X.iloc[rows]),
                  [np.asarray(r)[rows] for r in reference])


def test_int8_quantises_matmul_graphs_and_refuses_the_rest():
    _, data, pipeline, X = fitted("classification", "breast_cancer", "estimator", "mlp")
    model = export(pipeline, data.X.iloc[:5])
    small = for_precision(model, "int8")
    assert any(n.op_type.startswith(("MatMulInteger", "DynamicQuantize")) for n in small.graph.node)
    session = get_backend("onnxruntime").compile(small, {}, "int8")
    assert session.size_bytes < len(model.SerializeToString())
    labels = session.run(feeds(small, X))[0]
    assert (labels == pipeline.predict(X)).mean() > 0.9
    _, data, trees, _ = fitted("classification", "breast_cancer", "estimator", "random_forest")
    with pytest.raises(ExportError, match="no MatMul/Gemm"):
        for_precision(export(trees, data.X.iloc[:5]), "int8")


def test_lowering_turns_keepdims_reductions_into_squeeze():
    _, data, pipeline, _ = fitted("classification", "breast_cancer", "estimator", "gaussian_nb")
    model = export(pipeline, data.X.iloc[:5])
    reductions = [n for n in model.graph.node if n.op_type.startswith("Reduce")]
    assert reductions and all(a.i == 1 for n in reductions for a in n.attribute if a.name == "keepdims")
    assert sum(n.op_type == "Squeeze" for n in model.graph.node) == len(reductions)
    assert lower(model) is model and is_standard(model)


def test_categorical_front_exports_one_input_per_column():
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=120), "colour": rng.choice(["red", "green", "blue"], 120)})
    y = ((frame["x"] > 0) ^ (frame["colour"] == "red")).astype(int).to_numpy()
    data = load_dataset({"X": frame, "y": y})
    space = SearchSpace.load("classification")
    pipeline = build_pipeline(space.complete(BASE["classification"]), space, data, 0).fit(frame, y)
    model = export(pipeline, frame.iloc[:5])
    assert [i.name for i in model.graph.input] == ["x", "colour"] and not is_standard(model)
    out = get_backend("onnxruntime").compile(model, {}).run(feeds(model, frame))
    assert (out[0] == pipeline.predict(frame)).all()


def test_the_dependency_check_visits_each_operator_once_and_still_finds_a_missing_one():
    """skl2onnx's check that a node's inputs were added, replaced by one that visits each node once: a chain
    where each step uses the previous one twice (as the QuantileTransformer converter's binary search does)
    has 2**40 paths, which skl2onnx's own walk would follow one by one."""
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxIdentity

    from admm_tune.evaluate.converters import verify_added

    first = OnnxIdentity("X", op_version=15)
    chain = [first]
    for _ in range(40):
        chain.append(OnnxAdd(chain[-1], chain[-1], op_version=15))
    with pytest.raises(RuntimeError, match="Graph was not produced for operator 'OnnxAdd'"):
        verify_added(chain[-1])
    for op in chain[1:]:  # added to a graph, as add_to marks them, all but the first
        op.state = "added"
    with pytest.raises(RuntimeError, match="'OnnxIdentity'"):
        verify_added(chain[-1])
    first.state = "added"
    verify_added(chain[-1])


def extremes(space: SearchSpace, module: str):
    """``(algorithm, {param: value})`` for each exportable algorithm of ``module`` at each end of each parameter
    (each choice of a categorical), the others at their defaults."""
    for algo in space.module(module).algorithms:
        if not algo.exportable:
            continue
        yield algo.name, {}
        for p in algo.params:
            values = getattr(p, "choices", None) or (p.low, p.high)
            for value in values:
                yield algo.name, {p.name: value}


@pytest.mark.parametrize("space_name", sorted(CASES))
def test_every_transformer_at_its_extreme_values_gives_a_valid_graph_that_agrees(space_name):
    """k = 1 keeping column 0 (skl2onnx 1.20 wrote an invalid lone ConstantOfShape for it), one component, the
    other end of each range: the graph passes onnx.checker and agrees with scikit-learn on both backends."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10))
    y = (X[:, 0] > 0).astype(int) if space_name == "classification" else 3 * X[:, 0] + 0.1 * rng.normal(size=120)
    X[:, 0] *= 5  # column 0 decides the target and has the largest variance: it is what a one-column step keeps
    data = load_dataset({"X": X, "y": y}, task=space_name)
    space = SearchSpace.load(space_name)
    checked = 0
    for name, values in extremes(space, "transformer"):
        choice = {**BASE[space_name], "transformer": name}
        config = space.complete(choice, {f"transformer.{name}.{k}": v for k, v in values.items()})
        with threadpool_limits(1):
            pipeline = build_pipeline(config, space, data, seed=0).fit(data.X, data.y)
        if name == "select_k_best" and values.get("k", 1.0) < 0.1:  # k = 1 of 10 columns: the case skl2onnx broke
            assert list(pipeline.named_steps["transformer"].get_support(indices=True)) == [0]
        model = export(pipeline, data.X.iloc[:5])
        onnx.checker.check_model(model, full_check=True)
        expected = pipeline.predict(data.X)
        for backend in ("onnxruntime", "openvino"):
            got = np.asarray(run(get_backend(backend).compile(model, {}, "fp32"), model, data.X)[0]).reshape(-1)
            if space_name == "classification":
                assert (got != expected).mean() <= ROW_SHARE, (name, values, backend)
            else:
                assert np.abs(got - expected).max() <= VALUE_TOL * np.std(y), (name, values, backend)
        checked += 1
    assert checked >= 10
