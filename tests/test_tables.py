"""The tables scikit-learn users have: each completes with a verified deployment, or is refused before the
search naming the column (``tests/corpus/tables/tables.py``), with and without a deployment and a categorical
column; the prepared rows, the column → graph-input map and the inferred task are checked on their own too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import admm_tune
from admm_tune.data import infer_task
from admm_tune.errors import ProblemError

sys.path.insert(0, str(Path(__file__).parent / "corpus" / "tables"))
from tables import TABLES, with_categorical  # noqa: E402

FAST = {"transformer": ["none"], "scaler": ["none", "standard"]}
FP32 = {"space": {"modules": [{"name": "backend", "algorithms": [{"name": "onnxruntime"}, {"name": "openvino"}]},
                              {"name": "precision", "algorithms": [{"name": "fp32"}]}]}}


def _problem(X, y, deployment: str | None) -> dict:
    problem = {"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": {"evaluations": 3}, "seed": 0,
               "restrict": FAST}
    if deployment:  # both backends at fp32: the table is tested here, not a reduced precision's tolerance
        problem["deployment"] = FP32
    return problem


@pytest.mark.parametrize(("deployment", "categorical"), [(None, False), ("cpu", False), ("cpu", True)],
                         ids=["no-deployment", "deployment", "deployment-with-categorical"])
@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_kind_of_table_completes_verified_or_is_refused_naming_the_column(name, deployment, categorical,
                                                                                tmp_path):
    X, y, expected = TABLES[name]()
    if categorical:
        X = with_categorical(X)
    if expected != "ok" and (deployment or name != "beyond_float32"):  # float32 only matters to the graph
        with pytest.raises(ProblemError, match=repr(expected[1])):
            admm_tune.fit(_problem(X, y, deployment), progress=False, run_dir=tmp_path)
        return
    result = admm_tune.fit(_problem(X, y, deployment), progress=False, run_dir=tmp_path)
    assert result.n_failed == 0, result.trials["reason"].tolist()
    assert result.pipeline is not None and result.refit.startswith("refit on all")
    if deployment:
        assert result.final["verification"].startswith("agrees"), result.final
        spec = json.loads((tmp_path / "deployment.json").read_text())
        mapped = [c for entry in spec["graph_inputs"] for c in entry["columns"]]
        assert mapped == list(result.problem.data.X.columns)  # every prepared column feeds the graph, by name


def test_dates_become_numeric_parts_that_carry_the_season(tmp_path):
    X, y, _ = TABLES["aware_dates"]()
    result = admm_tune.fit({"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": {"evaluations": 4},
                            "seed": 0, "restrict": {"estimator": ["decision_tree"], **FAST}},
                           progress=False, run_dir=tmp_path)
    data = result.problem.data
    assert "when" not in data.X.columns and {"when_days", "when_day_of_year", "when_month"} <= set(data.X.columns)
    assert "when_hour" not in data.X.columns  # constant in the rows: left out
    assert data.categorical == []  # not hundreds of timestamp categories
    assert result.best.metrics["cv_score"] > 0.8  # R² of a tree on the day of year: the season is learnable
    rows = data.prepare(X.iloc[:5])  # new raw rows are prepared the same way
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), data.X.iloc[:5].reset_index(drop=True))


def test_feeds_takes_raw_frames_arrays_and_string_codes(tmp_path):
    """feeds() fills a graph's inputs from integer-named frames, arrays in the recorded order, and maps strings
    to the int64 codes of a graph lowered for a backend without strings; dates it refuses, naming the column."""
    import onnx
    import onnxruntime as ort

    from admm_tune.evaluate.export import export, feeds, quantize_int8
    from admm_tune.evaluate.graph import prepared

    X, y, _ = TABLES["integer_names"]()
    result = admm_tune.fit({**_problem(X, y, None), "restrict": {"estimator": ["logistic_regression"], **FAST}},
                           progress=False, run_dir=tmp_path)
    model = export(result.pipeline, result.problem.data.X.iloc[:5])
    as_frame, as_array = feeds(model, X.iloc[:4]), feeds(model, X.to_numpy()[:4])
    assert np.array_equal(next(iter(as_frame.values())), next(iter(as_array.values())))
    int8 = quantize_int8(model)
    onnx.checker.check_model(int8)  # one columns entry, not two (the quantiser keeps metadata)
    categorical = with_categorical(TABLES["odd_names"]()[0])
    fitted = admm_tune.fit({**_problem(categorical, y, None), "restrict": {"estimator": ["logistic_regression"],
                                                                          **FAST}}, progress=False, run_dir=tmp_path / "c")
    rows = fitted.problem.data.X.iloc[:8]
    lowered = prepared(export(fitted.pipeline, rows), "traversal", string_codes=True)  # as OpenVINO gets it
    assert any(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in lowered.graph.input)
    session = ort.InferenceSession(lowered.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, feeds(lowered, rows))[0].ravel(), fitted.pipeline.predict(rows))
    raw = X.iloc[:4].copy()
    raw[0] = pd.date_range("2024-01-01", periods=4)  # a raw date where the graph takes a number: refused, named
    with pytest.raises(TypeError, match="column '0' holds datetime64"):
        feeds(model, raw)


def test_the_graph_takes_columns_by_name_whatever_their_order(tmp_path):
    X, y, _ = TABLES["odd_names"]()
    result = admm_tune.fit({**_problem(with_categorical(X), y, "cpu"), "restrict": {
        "estimator": ["logistic_regression"], **FAST}}, progress=False, run_dir=tmp_path)
    import onnxruntime as ort

    from admm_tune.evaluate.export import feeds

    path = result.export(tmp_path / "again")
    model = __import__("onnx").load(path)
    rows = result.problem.data.X.iloc[:10]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shuffled = rows[rows.columns[::-1]]
    labels = session.run(None, feeds(model, shuffled))[0].ravel()
    assert np.array_equal(labels, result.pipeline.predict(rows))


@pytest.mark.parametrize(("y", "task"), [
    (np.linspace(0, 1, 50), "regression"),  # a float target
    (np.r_[np.arange(19), 0], "regression"),  # 20 rows, 19 distinct integers
    (np.arange(60) % 3, "classification"),
    (np.arange(60) % 3 * 1.0, "classification"),  # whole floats, as scikit-learn's type_of_target reads them
    (np.array(["a", "b"] * 10), "classification"),
])
def test_the_inferred_task_and_its_reason(y, task):
    inferred, reason = infer_task(y)
    assert inferred == task and f"task inferred: {task}" in reason and "task:" in reason


def test_a_float_target_without_task_is_searched_with_the_regression_space(tmp_path):
    X, y, _ = TABLES["float_target"]()
    problem = admm_tune.load_problem({"data": {"X": X, "y": y}, "budget": {"evaluations": 3}})
    assert problem.task == "regression" and "ridge" in problem.space.module("estimator").names
    assert any(n.startswith("task inferred: regression") for n in problem.notes)


def test_a_space_of_the_other_task_is_refused_naming_the_estimator():
    X, y, _ = TABLES["float_target"]()
    with pytest.raises(ProblemError, match=r"search_space\.estimator\.\w+: \w+ is a classifier but the task is "
                                           r"regression \(task inferred: regression"):
        admm_tune.load_problem({"data": {"X": X, "y": y}, "search_space": "classification"})


def test_wide_tables_leave_polynomial_features_out_by_construction():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"id": [f"user{i}" for i in rng.integers(0, 143, 240)], "a": rng.normal(size=240)})
    y = rng.integers(0, 2, 240)
    problem = admm_tune.load_problem({"data": {"X": X, "y": y}, "budget": {"evaluations": 3}, "deployment": "cpu"})
    assert "polynomial" not in problem.space.module("transformer").names
    assert any("polynomial" in n and "input columns after one-hot" in n for n in problem.notes)
    narrow = admm_tune.load_problem({"data": {"X": X[["a"]], "y": y}, "budget": {"evaluations": 3}})
    assert "polynomial" in narrow.space.module("transformer").names


def test_a_sparse_matrix_too_large_to_densify_is_refused():
    import scipy.sparse

    X = scipy.sparse.csr_matrix((100_000, 1_000))
    with pytest.raises(ProblemError, match=r"data\.X: a sparse matrix of 100000 x 1000 .* too large"):
        admm_tune.load_problem({"data": {"X": X, "y": np.arange(100_000) % 2}})


@pytest.mark.parametrize("name", sorted(n for n in TABLES if TABLES[n]()[2] == "ok"))
def test_the_estimators_take_every_kind_of_table_and_predict_its_raw_rows(name):
    from admm_tune import AutoPipelineClassifier, AutoPipelineRegressor

    X, y, _ = TABLES[name]()
    X = with_categorical(X) if name != "sparse_matrix" else X
    task, _ = infer_task(np.asarray(pd.Series(y).astype("float64")))
    estimator = AutoPipelineRegressor if task == "regression" else AutoPipelineClassifier
    model = estimator(max_evals=2, random_state=0, cv=3,
                      deployment=FP32 if name == "everything" else None).fit(X, y)
    rows = X[:7] if not hasattr(X, "iloc") else X.iloc[:7]
    assert model.predict(rows).shape == (7,)  # the raw rows, prepared as the training rows were
    assert model.n_features_in_ == X.shape[1]
