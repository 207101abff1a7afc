"""The serving contract: raw rows (records or DataFrames) in, the training preparation's answer out, on both backends.

A corpus of drifted, missing and unseen values for every column kind is served by the exported ``load_model.py``
in a fresh process where admm_tune, scikit-learn and pandas cannot be imported, and by the fitted pipeline through
:meth:`admm_tune.data.Dataset.prepare` (the estimator's ``predict``); both must give the answer of the same row
written the way the training table held it.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import admm_tune
from admm_tune.data import MISSING, load_dataset, records
from admm_tune.errors import ProblemError
from admm_tune.serving import RowError, prepare


def table(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Every column kind: numbers without and with missing values, strings with missing ones, a boolean, integer
    codes held as a category dtype, and a time-zone aware datetime."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "amount": rng.normal(50, 20, n),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "city": rng.choice(np.array(["paris", "lima", "oslo", None], dtype=object), n),
        "member": rng.choice([True, False], n),
        "plan": pd.Categorical(rng.choice([1, 2, 3], n)),
        "signup": pd.Timestamp("2021-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 900 * 86400, n), unit="s"),
    })
    signal = (X["amount"] > 50).astype(int) + (X["city"] == "paris") + X["member"].astype(int) + (X["plan"] == 3)
    return X, (signal.to_numpy() >= 2).astype(int)


def drifted(record: dict) -> list[tuple[str, dict, dict]]:
    """``(what, drifted record, the row as training held it)`` for every kind of drift, missing and unseen value."""
    when = datetime.datetime.fromisoformat(record["signup"])
    member, plan = record["member"], int(record["plan"])
    cases = [
        ("number as string", {"amount": str(record["amount"])}, {}),
        ("number as int", {"amount": int(record["amount"])}, {"amount": float(int(record["amount"]))}),
        ("number missing (None)", {"amount": None}, {"amount": float("nan")}),
        ("number missing (pd.NA)", {"amount": pd.NA}, {"amount": float("nan")}),
        ("number missing (key)", {"amount": ...}, {"amount": float("nan")}),
        ("number missing, empty string", {"score": ""}, {"score": float("nan")}),
        ("category missing (NaN)", {"city": float("nan")}, {"city": None}),
        ("category missing (pd.NA)", {"city": pd.NA}, {"city": None}),
        ("category missing (key)", {"city": ...}, {"city": None}),
        ("category unseen", {"city": "atlantis"}, {"city": "atlantis"}),
        ("boolean as 0/1", {"member": int(member)}, {}),
        ("boolean as float", {"member": float(member)}, {}),
        ("boolean as word", {"member": "TRUE" if member else "false"}, {}),
        ("boolean as numpy", {"member": np.bool_(member)}, {}),
        ("boolean missing", {"member": None}, {"member": None}),
        ("code as float", {"plan": float(plan)}, {}),
        ("code as string", {"plan": str(plan)}, {}),
        ("code as numpy int", {"plan": np.int64(plan)}, {}),
        ("date as datetime", {"signup": when}, {}),
        ("date as naive UTC string", {"signup": when.replace(tzinfo=None).isoformat()}, {}),
        ("date with Z", {"signup": when.replace(tzinfo=None).isoformat() + "Z"}, {}),
        ("date with offset", {"signup": when.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat()},
         {}),
        ("date as Timestamp", {"signup": pd.Timestamp(when)}, {}),
        ("date as datetime64", {"signup": np.datetime64(when.replace(tzinfo=None), "us")}, {}),
        ("date missing", {"signup": None}, {"signup": None}),
        ("extra key", {"unrelated": "x"}, {}),
    ]
    out = []
    for what, change, truth in cases:
        row = {**record, **change}
        row = {k: v for k, v in row.items() if v is not ...}
        out.append((what, row, {**record, **truth}))
    return out


@pytest.fixture(scope="module")
def data():
    X, y = table()
    return X, y, load_dataset({"X": X, "y": y})


def test_serving_preparation_is_the_training_preparation(data):
    """Prepared from raw rows (a DataFrame, or its JSON records) by the serving code, the training rows are what
    loading the data made of them, value for value."""
    X, _, dataset = data
    assert [c["kind"] for c in dataset.schema["columns"]] == ["number", "number", "category", "boolean", "category",
                                                            "datetime"]
    for rows in (X, records(X)):
        prepared = dataset.prepare(rows)
        assert list(prepared.columns) == list(dataset.X.columns)
        for column in dataset.X.columns:
            if column in dataset.categorical:
                assert (prepared[column].to_numpy() == dataset.X[column].to_numpy()).all(), column
            else:
                np.testing.assert_array_equal(prepared[column].to_numpy(float),
                                              dataset.X[column].to_numpy(float), err_msg=column)


def test_every_drifted_missing_or_unseen_value_is_prepared_as_its_training_form(data):
    _, _, dataset = data
    for record in dataset.examples[:4]:
        for what, row, truth in drifted(record):
            got, want = dataset.prepare([row]), dataset.prepare([truth])
            pd.testing.assert_frame_equal(got, want, obj=what)
    missing = dataset.prepare([{}])  # every value missing: numbers NaN (imputed), categories "<missing>"
    assert missing["city"].iloc[0] == MISSING and missing["member"].iloc[0] == MISSING
    assert missing[["amount", "score", "signup_days", "signup_year"]].isna().all(axis=None)


@pytest.mark.parametrize("column, value, words", [
    ("amount", "fifty", ["'amount'", "'fifty'", "not a number"]),
    ("amount", float("inf"), ["'amount'", "infinite"]),
    ("member", "maybe", ["'member'", "'maybe'", "not a boolean"]),
    ("signup", "next tuesday", ["'signup'", "'next tuesday'", "ISO 8601"]),
    ("signup", 17, ["'signup'", "17", "not a date"]),
])
def test_a_value_that_cannot_be_converted_is_refused_naming_column_and_value(data, column, value, words):
    _, _, dataset = data
    with pytest.raises(RowError) as raised:
        prepare([{**dataset.examples[0], column: value}], dataset.schema)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    with pytest.raises(ProblemError, match=f"X: column '{column}'"):  # the estimator's predict: the same rule
        dataset.prepare([{**dataset.examples[0], column: value}])


def test_a_table_missing_a_training_column_is_refused_naming_it(data):
    X, _, dataset = data
    with pytest.raises(RowError, match="column 'city' of the training data is missing"):
        prepare(X.drop(columns="city"), dataset.schema)
    shuffled = X[list(reversed(X.columns))].assign(extra=1)  # any order, extra columns ignored
    pd.testing.assert_frame_equal(dataset.prepare(shuffled), dataset.prepare(X))


SERVE = """
import importlib.abc, json, runpy, sys
import numpy as np
BLOCKED = {"admm_tune", "sklearn", "skl2onnx", "onnx", "scipy", "optuna", "pandas"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocker())
model = runpy.run_path("load_model.py", run_name="loader")["load"](".")
out = {}
for what, row in json.load(open("corpus.json")):
    out[what] = [model.predict([row]).tolist(), model.predict_proba([row]).tolist()]
json.dump(out, open("served.json", "w"))
"""


def json_safe(row: dict) -> dict:
    """A record as JSON carries it (a service's input): numpy and pandas values as plain ones, missing as null."""
    out = {}
    for k, v in row.items():
        if v is pd.NA or (isinstance(v, float) and v != v):
            v = None
        elif isinstance(v, (pd.Timestamp, datetime.datetime, np.datetime64)):
            v = pd.Timestamp(v).isoformat()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_exported_model_and_the_estimator_agree_on_drifted_rows(tmp_path, data, backend):
    """Served from JSON records in a fresh process without admm_tune, scikit-learn or pandas, and predicted by the
    fitted pipeline from the same rows: both give the answer of the row as training held it, never NaN."""
    X, y, _ = data
    result = admm_tune.fit({"name": "serving", "data": {"X": X, "y": y}, "objective": {"cv": 3},
                            "restrict": {"estimator": ["logistic_regression"], "scaler": ["standard"],
                                         "transformer": ["none"], "backend": [backend], "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.02, "min_runs": 5}}, "budget": {"evaluations": 2},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    assert result.feasible, result.final["verification"]
    dataset = result.problem.data
    corpus = [(f"{i}: {what}", json_safe(row), json_safe(truth)) for i, record in enumerate(dataset.examples[:3])
              for what, row, truth in drifted(record)]
    corpus.append(("no value at all", {}, {}))
    (tmp_path / "corpus.json").write_text(json.dumps([(what, row) for what, row, _ in corpus]))
    out = subprocess.run([sys.executable, "-I", "-c", SERVE], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads((tmp_path / "served.json").read_text())
    for what, row, truth in corpus:
        want = result.pipeline.predict_proba(dataset.prepare([truth]))[0]
        python = result.pipeline.predict_proba(dataset.prepare([row]))[0]
        label, proba = served[what]
        assert np.isfinite(proba).all(), what
        np.testing.assert_allclose(proba[0], want, atol=1e-4, err_msg=what)
        np.testing.assert_allclose(python, want, atol=1e-12, err_msg=what)
        assert label[0] == result.pipeline.classes_[int(np.argmax(want))], what


SCORES = """
import json, runpy
model = runpy.run_path("load_model.py", run_name="loader")["load"](".")
rows = model.spec["example_rows"]
try:
    model.predict_proba(rows)
    refused = ""
except AttributeError as exc:
    refused = str(exc)
print(json.dumps({"refused": refused, "scores": model.decision_function(rows).tolist(),
                  "labels": model.predict(rows).tolist()}))
"""


@pytest.mark.parametrize("estimator", ["linear_svc", "svc"])
def test_a_classifier_without_probabilities_serves_decision_scores_and_no_predict_proba(tmp_path, data, estimator):
    """Without ``objective.probabilities``, an SVC's graph outputs decision scores: the shipped model refuses
    ``predict_proba`` (as scikit-learn's SVC does) and gives ``decision_function`` as scikit-learn's does."""
    X, y, _ = data
    result = admm_tune.fit({"name": "scores", "data": {"X": X, "y": y}, "objective": {"cv": 3},
                            "restrict": {"estimator": [estimator], "scaler": ["standard"], "transformer": ["none"],
                                         "backend": ["onnxruntime"], "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.02, "min_runs": 5}}, "budget": {"evaluations": 1},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    assert json.loads((tmp_path / "deployment.json").read_text())["scores"] == "decision_function"
    out = subprocess.run([sys.executable, "-c", SCORES], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    served = json.loads(out.stdout)
    assert "decision scores" in served["refused"]
    dataset = result.problem.data
    want = result.pipeline.decision_function(dataset.prepare(dataset.examples[:5]))
    np.testing.assert_allclose(served["scores"], want, rtol=1e-3, atol=1e-3)
    assert served["labels"] == result.pipeline.predict(dataset.prepare(dataset.examples[:5])).tolist()
    assert "model.decision_function(rows)" in (tmp_path / "load_model.py").read_text()


def test_the_estimator_imputes_a_missing_number_the_training_rows_never_had():
    X, y = table(200)
    X = X[["amount", "member"]]  # no missing value anywhere
    model = admm_tune.AutoPipelineClassifier(max_evals=2, cv=3, random_state=0).fit(X, y)
    rows = X.iloc[:3].copy()
    rows.loc[rows.index[0], "amount"] = np.nan
    proba = model.predict_proba(rows)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)
    assert model.best_pipeline_.steps[0][0] == "front"


RETIME = """
import json, runpy, sys
from admm_tune.evaluate.timing import TimingSettings, measure_call
model = runpy.run_path("load_model.py", run_name="loader")["load"](".")
record = model.spec["example_rows"][:1]
print(json.dumps(measure_call(lambda: model.predict(record), 1, TimingSettings(**json.loads(sys.argv[1]))).metrics()))
"""


@pytest.mark.serial
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_reported_latency_is_what_a_fresh_process_serving_raw_records_measures(tmp_path, backend):
    """The run's ``latency_*`` time the service's call (``load_model.py``'s ``predict`` on one raw record), not the
    graph alone: re-timed by the same harness in five fresh processes, the run's p50 lies within the re-timings'
    range widened by 25 % and its p95 by 60 % (one run and one re-timing each see whatever load the machine has at
    that moment, so the test compares the run with the spread of re-timings, not with one of them;
    benchmarks/results/serving.md measures the ratios on a quiet machine), while the graph alone is faster than the
    fastest re-timing: a run that timed the graph alone would fall below the range."""
    X, y = table()
    timing = {"seconds": 0.5, "min_runs": 50, "max_runs": 2000}
    result = admm_tune.fit({"name": "retime", "data": {"X": X, "y": y}, "objective": {"cv": 3},
                            "restrict": {"estimator": ["logistic_regression"], "backend": [backend],
                                         "precision": ["fp32"]},
                            "deployment": {"timing": timing}, "budget": {"evaluations": 2}, "seed": 0},
                           run_dir=tmp_path, progress=False)
    reported = result.final["measured"]
    fresh = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", RETIME, json.dumps(timing)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        fresh.append(json.loads(out.stdout))
    for figure, tolerance in (("latency_p50_ms", 0.25), ("latency_p95_ms", 0.6)):
        low, high = min(f[figure] for f in fresh), max(f[figure] for f in fresh)
        assert low / (1 + tolerance) <= reported[figure] <= high * (1 + tolerance), (figure, reported[figure], fresh)
    assert reported["graph_latency_p50_ms"] < min(f["latency_p50_ms"] for f in fresh)
