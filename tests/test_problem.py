"""Problem loading and validation: every malformed field is named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import admm_tune
from admm_tune import ProblemError, load_problem
from admm_tune.problem import parse_budget

VALID = {"name": "ok", "data": "sklearn:breast_cancer", "objective": {"scoring": "balanced_accuracy", "cv": 3},
         "constraints": [{"metric": "fit_time_s", "max": 1.0}], "budget": {"evaluations": 10}}


def mutate(**changes):
    raw = {**VALID, **changes}
    return {k: v for k, v in raw.items() if v is not None}


@pytest.fixture
def csv_file(tmp_path):
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3, "label": [0, 1] * 10})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


MALFORMED = [
    (mutate(constraints=[{"metric": "fit_time_s", "max": 1.0}, {"metric": "fit_time_s", "max": "fast"}]),
     "constraints[1].max", "expected a number, got 'fast'"),
    (mutate(constraints=[{"metric": "latency", "max": 1.0}]), "constraints[0].metric", "unknown metric"),
    (mutate(constraints=[{"metric": "fit_time_s"}]), "constraints[0]", "exactly one of max or min"),
    (mutate(constraints=[{"metric": "fit_time_s", "max": 1.0}, {"metric": "fit_time_s", "min": 2.0}]),
     "constraints[1]", "contradicts"),
    (mutate(objective={"scoring": "balanced_acuracy"}), "objective.scoring", "unknown scikit-learn scorer"),
    (mutate(objective={"cv": 1}), "objective.cv", "must be >= 2"),
    (mutate(objective={"cv": "five"}), "objective.cv", "expected a number of folds, a splitter"),
    (mutate(budget={"evaluatons": 10}), "budget.evaluatons", "unknown field"),
    (mutate(budget={"evaluations": 0}), "budget.evaluations", "must be >= 1"),
    (mutate(budget={"seconds": -5}), "budget.seconds", "must be > 0"),
    (mutate(budget={}), "budget", "needs evaluations or seconds"),
    (mutate(data="sklearn:nope"), "data.source", "unknown scikit-learn data set"),
    (mutate(data={"source": "missing.csv"}), "data.source", "does not exist"),
    (mutate(restrict={"estimator": ["random_forrest"]}), "restrict.estimator[0]", "unknown algorithm"),
    (mutate(restrict={"estimators": ["svc"]}), "restrict.estimators", "unknown module"),
    (mutate(search_space="nonexistent"), "search_space", "unknown search space"),
    (mutate(search_space={"modules": [{"name": "m", "algorithms": [
        {"name": "a", "params": {"p": {"type": "float", "low": 5, "high": 1}}}]}]}),
     "search_space.modules[0].algorithms[0].params.p.low", "greater than high"),
    (mutate(search_space={"modules": [{"name": "m", "algorithms": [
        {"name": "a", "class": "sklearn.ensemble.RandomForrestClassifier"}]}]}),
     "search_space.modules[0].algorithms[0].class", "cannot import"),
    (mutate(search_space={"modules": [{"name": "m", "algorithms": [{"name": "a", "class": "os.system"}]}]}),
     "search_space.modules[0].algorithms[0].class", "outside the allowed modules"),
    (mutate(optimizer={"theta_solver": "cmaes"}), "optimizer.theta_solver", "unknown value"),
    (mutate(optimizer={"rho": 0}), "optimizer.rho", "must be > 0"),
    (mutate(optimizer={"initial_share": 1.5}), "optimizer.initial_share", "must be <= 1"),
    (mutate(optimizer={"initial_share": 0}), "optimizer.initial_share", "must be > 0"),
    (mutate(seed=-1), "seed", "must be >= 0"),
    (mutate(task="clustering"), "task", "unknown value"),
    (mutate(colour="red"), "colour", "unknown field"),
    (mutate(data=None), "data", "missing"),
]


@pytest.mark.parametrize("raw, field, reason", MALFORMED, ids=[m[1] + ":" + m[2][:20] for m in MALFORMED])
def test_malformed_problem_names_the_field(raw, field, reason):
    with pytest.raises(ProblemError) as err:
        load_problem(raw)
    assert err.value.field == field
    assert reason in str(err.value)
    assert str(err.value).startswith(f"{field}: ") or not field


def test_missing_target_column(csv_file):
    with pytest.raises(ProblemError, match=r"data.target: column 'target' is not in data.csv"):
        load_problem(mutate(data={"source": str(csv_file)}))


def test_empty_data(tmp_path):
    path = tmp_path / "empty.csv"
    pd.DataFrame({"a": [], "target": []}).to_csv(path, index=False)
    with pytest.raises(ProblemError, match="data: data is empty"):
        load_problem(mutate(data={"source": str(path)}))


def test_single_class_and_nan_target():
    with pytest.raises(ProblemError, match="single class"):
        load_problem(mutate(data={"X": np.zeros((10, 2)), "y": np.ones(10, dtype=int)}))
    y = np.arange(30.0)
    y[3] = np.nan
    with pytest.raises(ProblemError, match="data.y: the target has NaN"):
        load_problem(mutate(data={"X": np.zeros((30, 2)), "y": y}, task="regression", objective={"scoring": "r2"},
                            constraints=[]))


def test_yaml_file_with_relative_csv_and_test_split(tmp_path, csv_file):
    problem_file = tmp_path / "p.yaml"
    problem_file.write_text(yaml.safe_dump({"data": {"source": "data.csv", "target": "label", "test_size": 0.25},
                                            "objective": {"cv": 2}, "budget": {"evaluations": 3}}))
    problem = load_problem(problem_file)
    assert problem.name == "p" and problem.task == "classification"
    assert len(problem.data.X) == 15 and len(problem.data.X_test) == 5


def test_parquet_and_categorical_columns(tmp_path):
    frame = pd.DataFrame({"colour": ["red", "blue", "green"] * 10, "size": np.arange(30.0), "target": [0, 1] * 15})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    problem = load_problem({"data": {"source": str(path)}, "objective": {"cv": 3}, "budget": {"evaluations": 2}})
    assert problem.data.categorical == ["colour"]


def test_yaml_file_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: sklearn:wine\nconstraints:\n  - {metric: fit_time_s, max: fast}\n")
    with pytest.raises(ProblemError, match=r"^constraints\[0\]\.max: expected a number, got 'fast'$"):
        load_problem(path)
    path.write_text("data: [unclosed\n")
    with pytest.raises(ProblemError, match="not valid YAML"):
        load_problem(path)


def test_budget_strings():
    assert parse_budget("200").evaluations == 200
    assert parse_budget("90s").seconds == 90 and parse_budget("5m").seconds == 300
    with pytest.raises(ProblemError, match="budget"):
        parse_budget("soon")


def test_shipped_problems_load():
    for name in ("breast_cancer", "digits", "wine", "diabetes"):
        problem = load_problem(f"problems/{name}.yaml")
        assert problem.budget.evaluations == 60
        assert problem.task == ("regression" if name == "diabetes" else "classification")


def test_scoring_takes_names_scorer_objects_and_callables_and_refuses_what_cannot_score_the_task():
    from sklearn.datasets import load_iris
    from sklearn.metrics import fbeta_score, make_scorer

    X, y = load_iris(return_X_y=True)
    data = {"X": X, "y": y}

    def hits(estimator, X, y):
        return float((estimator.predict(X) == y).mean())

    fbeta = make_scorer(fbeta_score, beta=2, average="macro")
    for scoring, name in ((fbeta, repr(fbeta)), (hits, "hits"), ("f1_macro", "f1_macro")):
        objective = load_problem({"data": data, "objective": {"scoring": scoring, "cv": 3}}).objective
        assert objective.name == name and objective.loss(0.75) == 0.25
    with pytest.raises(ProblemError, match=r"objective.scoring: roc_auc cannot score this target.*'roc_auc_ovr'"):
        load_problem({"data": data, "objective": {"scoring": "roc_auc"}})
    with pytest.raises(ProblemError, match="'r2' scores regression, but the task is classification"):
        load_problem({"data": data, "objective": {"scoring": "r2"}})
    with pytest.raises(ProblemError, match="'accuracy' scores classification, but the task is regression"):
        load_problem({"data": {"X": X, "y": X[:, 0] * 1.5}, "objective": {"scoring": "accuracy"}})
    with pytest.raises(ProblemError, match="returned str, not a number"):
        load_problem({"data": data, "objective": {"scoring": lambda e, X, y: "good"}})


def test_a_scorer_returning_nan_fails_its_candidates_with_the_reason():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    calls = []

    def nan_after_the_check(estimator, X, y):  # a number when the problem is loaded, NaN in the search
        calls.append(1)
        return 0.5 if len(calls) == 1 else float("nan")

    with pytest.raises(admm_tune.RunError, match="non-finite CV score"):
        admm_tune.fit({"data": {"X": X, "y": y}, "objective": {"scoring": nan_after_the_check, "cv": 3},
                       "budget": 2, "seed": 0}, storage="memory", progress=False)
