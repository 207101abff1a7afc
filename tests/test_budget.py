"""A time budget holds for the whole call: search, final refit, deployment and result.

The bound is the product's own promise, relative to the budget:
``max(1.1 × budget, budget + 5 s)``; nothing here depends on the machine's speed
(the slow candidates sleep, and the bound is what stops them).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import make_classification

import admm_tune
from admm_tune import registry
from admm_tune.errors import RunError


def bound(seconds: float) -> float:
    return max(1.1 * seconds, seconds + 5.0)


@pytest.fixture(autouse=True)
def _allow_custom_estimators(monkeypatch):
    """tests/custom_estimators.py for these tests only (the allow-list is process-wide)."""
    monkeypatch.setattr(registry, "ALLOWED_PREFIXES", registry.ALLOWED_PREFIXES)
    registry.allow("custom_estimators")


def _problem(delay: dict, above: int, budget: float) -> dict:
    X, y = make_classification(150, 5, random_state=0)
    return {"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": {"seconds": budget}, "seed": 0,
            "search_space": {"modules": [{"name": "estimator", "algorithms": [
                {"name": "sleepy", "class": "custom_estimators.Sleepy", "fixed": {"above": above},
                 "params": {"delay": delay}},
                {"name": "logistic_regression", "class": "sklearn.linear_model.LogisticRegression"}]}]}}


@pytest.mark.serial
def test_a_candidate_slower_than_the_budget_is_stopped_within_it(tmp_path):
    problem = _problem({"type": "float", "low": 30.0, "high": 90.0, "default": 60.0}, 0, 10.0)
    start = time.monotonic()
    try:
        result = admm_tune.fit(problem, run_dir=tmp_path, progress=False)
    except RunError as exc:  # the slow candidate came first and took all the time: said, within the bound
        assert "timeout" in str(exc)
    else:
        assert result.timing["budget_s"] == 10.0 and result.timing["overrun"] <= bound(10.0) / 10.0
        slow = result.trials[result.trials["structure"] == "sleepy"]
        assert (slow["state"] == "fail").all() and slow["reason"].str.startswith("timeout").all()
    assert time.monotonic() - start <= bound(10.0)


@pytest.mark.serial
def test_a_refit_that_cannot_finish_falls_back_to_the_verified_fold_pipeline(tmp_path):
    # CV training folds have 100 rows and fit at once; the refit on all 150 rows would sleep 600 s
    problem = _problem({"type": "float", "low": 600.0, "high": 601.0}, 100, 10.0)
    problem["search_space"]["modules"][0]["algorithms"].pop()  # sleepy only
    start = time.monotonic()
    result = admm_tune.fit(problem, run_dir=tmp_path, progress=False)
    assert time.monotonic() - start <= bound(10.0)
    assert result.refit.startswith("the first CV fold's pipeline, fitted on 100 of 150 training rows")
    assert "timeout" in result.refit and "pipeline     the first CV fold's" in result.summary()
    X = result.problem.data.X
    assert np.mean(result.pipeline.predict(X) == result.problem.data.y) > 0.7


def logistic_deployment(rows: int = 90):
    """``(problem, evaluator, config)``: a deployment problem of one logistic regression, its evaluator, and the
    config deploying it on ONNX Runtime at fp32."""
    from admm_tune.evaluate.deploy import DeploymentEvaluator
    from admm_tune.problem import load_problem

    X, y = make_classification(rows, 4, random_state=0)
    problem = load_problem({"data": {"X": X, "y": y}, "objective": {"cv": 3}, "deployment": "cpu",
                            "restrict": {"scaler": ["none"], "transformer": ["none"],
                                         "estimator": ["logistic_regression"]}})
    evaluator = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    config = problem.space.complete({"scaler": "none", "transformer": "none", "estimator": "logistic_regression",
                                     "backend": "onnxruntime", "precision": "fp32"})
    return problem, evaluator, config


def test_the_deployment_fallback_is_the_graph_the_search_verified():
    problem, evaluator, config = logistic_deployment()
    obs = evaluator(config)
    assert obs.ok
    final = evaluator.fallback(config, "timeout: over the 1 s limit")
    assert final.pipeline is evaluator.ml.holdouts[evaluator.ml.key({k: v for k, v in config.items()
                                                                      if k.split(".")[0] in problem.space.module_names[:3]})].pipeline
    assert final.deployed.verification == obs.attrs["verification"]
    assert final.deployed.metrics["latency_p95_ms"] == obs.metrics["latency_p95_ms"]
    assert "did not finish (timeout: over the 1 s limit)" in final.source


@pytest.mark.parametrize("seconds", [None, 30.0])
def test_the_clock_plan_keeps_every_phase_inside_the_bound(seconds):
    from admm_tune.runner import FINISH_S, Clock

    start = time.monotonic()
    clock = Clock(seconds, start)
    if seconds is None:
        assert clock.final_seconds(600.0) == 600.0 and clock.search_left(5.0) == float("inf")
        return
    assert clock.end == pytest.approx(start + bound(seconds) - FINISH_S)
    before = time.monotonic()
    left = clock.search_left(1e9)  # the reserve is capped at 30 % of the budget, whatever the machine's speed
    assert start + 0.7 * seconds - time.monotonic() <= left <= start + 0.7 * seconds - before
    # a candidate started at the last moment may run until the search's end plus the grace; the final step
    # gets what is left, less a grace of its own: all of it ends by clock.end
    assert start + seconds + clock.grace_s <= clock.end
    assert time.monotonic() + clock.final_seconds(None) + clock.grace_s <= clock.end + 1e-6


def test_a_refit_that_cannot_be_deployed_falls_back_to_the_graph_the_search_verified(monkeypatch, tmp_path):
    """The refit pipeline's export fails (skl2onnx raised for it): the fold pipeline whose graph the search verified
    is what the run hands over, and says why; a result without any deployment says why, never that the problem has
    no deployment field."""
    from admm_tune.evaluate.export import ExportError

    problem, evaluator, config = logistic_deployment()

    def undeployable(config, pipeline):
        raise ExportError("RuntimeError: no converter for this refit")

    monkeypatch.setattr(evaluator, "finalize", undeployable)
    unsearched = evaluator.final(config)  # nothing verified yet: no deployment, and the reason
    assert unsearched.deployed is None and "could not be deployed (RuntimeError: no converter" in unsearched.error
    assert evaluator(config).ok
    final = evaluator.final(config)
    assert final.deployed is not None and final.deployed.verification.startswith("agrees")
    assert final.source.startswith("the first CV fold's pipeline, whose graph the search verified: the refit "
                                   "pipeline could not be deployed (RuntimeError: no converter for this refit)")

    X, y = make_classification(90, 4, random_state=0)
    result = admm_tune.fit({"data": {"X": X, "y": y}, "objective": {"cv": 3}, "deployment": "cpu", "budget": 2,
                            "restrict": {"scaler": ["none"], "transformer": ["none"],
                                         "estimator": ["logistic_regression"]}, "seed": 0},
                           run_dir=tmp_path, progress=False)
    result.exporter, result.final = None, {"verification": unsearched.error, "measured": {}}  # as _finalize leaves it
    with pytest.raises(RunError) as raised:
        result.export(tmp_path / "out")
    assert "no `deployment` field" not in str(raised.value) and "could not be deployed" in str(raised.value)


def test_a_refit_graph_that_disagrees_falls_back_to_the_search_graph_once_it_agrees_on_the_same_rows(monkeypatch):
    """Every deployment of the refit pipeline's graph disagreed (stood in for here: finalize's verdict, no race):
    the fold pipeline's graph, re-verified on the refit's verification rows and re-timed, is handed over."""
    from admm_tune.evaluate.deploy import Deployed

    problem, evaluator, config = logistic_deployment(rows=120)
    assert evaluator(config).ok
    disagreeing = "DISAGREES: 31/120 rows differ in 3 labels"
    monkeypatch.setattr(evaluator, "finalize", lambda c, p: Deployed(None, {}, disagreeing))
    monkeypatch.setattr(evaluator, "race", lambda final: None)
    final = evaluator.final(config)
    assert final.deployed.verification.startswith("agrees") and "latency_p95_ms" in final.deployed.metrics
    assert final.source.startswith("the first CV fold's pipeline, whose graph the search verified: the refit "
                                   f"pipeline's graph disagreed with it ({disagreeing})")


def test_with_an_impossible_constraint_the_candidate_that_missed_least_is_chosen_and_refit(tmp_path):
    # Every candidate breaks fit_time_s <= 1e-9 by orders of magnitude: capped, their violations all tied, and the
    # choice fell to the loss; the result (and its refit pipeline) is the one that missed least.
    problem = {"name": "impossible", "data": "sklearn:iris", "objective": {"cv": 3}, "seed": 0,
               "restrict": {"estimator": ["logistic_regression", "knn", "gaussian_nb", "decision_tree"]},
               "constraints": [{"metric": "fit_time_s", "max": 1e-9}], "budget": {"evaluations": 6}}
    result = admm_tune.fit(problem, run_dir=tmp_path, progress=False)
    done = result.trials[result.trials["state"] == "complete"]
    assert not result.feasible and result.best.trial == int(done.loc[done["metric:fit_time_s"].idxmin(), "number"])
    assert result.pipeline[-1].__class__.__name__ == {
        "logistic_regression": "LogisticRegression", "knn": "KNeighborsClassifier", "gaussian_nb": "GaussianNB",
        "decision_tree": "DecisionTreeClassifier"}[result.best.config["estimator"]]
