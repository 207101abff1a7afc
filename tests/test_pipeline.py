"""Config → scikit-learn pipeline, for every algorithm of the bundled spaces."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from admm_tune import ProblemError, SearchSpace, load_problem
from admm_tune.evaluate.pipeline import MLEvaluator, build_pipeline
from admm_tune.registry import resolve_class

SPACES = {"classification": "sklearn:breast_cancer", "regression": "sklearn:diabetes"}


def algorithms(space_name):
    space = SearchSpace.load(space_name)
    return [(space_name, m.name, a.name) for m in space.modules for a in m.algorithms]


CASES = algorithms("classification") + algorithms("regression")


@pytest.mark.parametrize("space_name, module, algorithm", CASES, ids=["/".join(c) for c in CASES])
def test_every_algorithm_builds_and_fits_at_its_defaults(space_name, module, algorithm):
    problem = load_problem({"data": SPACES[space_name], "search_space": space_name, "objective": {"cv": 2},
                            "budget": 1})
    space = problem.space
    choice = {m.name: m.algorithms[0].name for m in space.modules}
    if module != space.module_names[-1]:
        choice[space.module_names[-1]] = "decision_tree"
    choice[module] = algorithm
    config = space.complete(choice)
    pipeline = build_pipeline(config, space, problem.data, seed=0)
    X, y = problem.data.X.iloc[:200], problem.data.y[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline.fit(X, y)
    assert pipeline.predict(X).shape == (200,)


def test_categorical_front_is_added_when_the_data_needs_it():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"colour": rng.choice(["r", "g", "b"], 60), "size": rng.random(60)})
    frame.loc[3, "size"] = np.nan
    problem = load_problem({"data": {"X": frame, "y": np.array([0, 1] * 30)}, "objective": {"cv": 3}, "budget": 2})
    config = problem.space.complete({"scaler": "standard", "transformer": "none", "estimator": "logistic_regression"})
    pipeline = build_pipeline(config, problem.space, problem.data)
    assert pipeline.steps[0][0] == "front"
    obs = MLEvaluator(problem.space, problem.data, problem.objective, seed=0)(config)
    assert obs.ok, obs.reason


def test_evaluator_caches_by_config_and_records_failures():
    problem = load_problem({"data": "sklearn:wine", "objective": {"cv": 3}, "budget": 2})
    evaluator = MLEvaluator(problem.space, problem.data, problem.objective, seed=0)
    config = problem.space.complete({"scaler": "standard", "transformer": "none", "estimator": "knn"})
    first = evaluator(config)
    again = evaluator(config)
    assert first.ok and not first.attrs["cache_hit"] and again.attrs["cache_hit"]
    assert again.loss == first.loss and first.metrics["fit_time_s"] > 0
    bad = dict(config, **{"estimator.knn.n_neighbors": 10_000})
    failed = evaluator(bad)
    assert not failed.ok and failed.reason.startswith("error: ValueError")


def test_classes_outside_the_allow_list_are_refused():
    with pytest.raises(ProblemError, match="outside the allowed modules"):
        resolve_class("os.system")
    with pytest.raises(ProblemError, match="cannot import"):
        resolve_class("sklearn.linear_model.NoSuchModel")


def test_code_can_allow_another_package_and_workers_follow(tmp_path, monkeypatch):
    from admm_tune import fit, registry

    problem = {"data": "sklearn:iris", "objective": {"cv": 3}, "budget": {"evaluations": 2},
               "search_space": {"modules": [{"name": "estimator", "algorithms": [
                   {"name": "wrapped", "class": "custom_estimators.Wrapped"}]}]}}
    with pytest.raises(ProblemError, match="outside the allowed modules"):
        fit(problem, run_dir=tmp_path / "a", progress=False)
    monkeypatch.setattr(registry, "ALLOWED_PREFIXES", registry.ALLOWED_PREFIXES)
    registry.allow("custom_estimators")
    result = fit(problem, run_dir=tmp_path / "b", progress=False)  # evaluated in a worker process
    assert result.best.metrics["cv_score"] > 0.9
    with pytest.raises(ValueError, match="not a package name"):
        registry.allow("os; rm")
