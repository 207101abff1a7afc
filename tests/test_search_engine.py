"""The search engine of issue 14: class balancing in the space, the bandit's credit, cost-aware choices.

Properties of a search are asserted over seeds 0-19 with the pass rate the
code meets, with a margin (see docs/optimiser.md, "Search engine").
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.export import export, feeds
from admm_tune.evaluate.pipeline import build_pipeline
from admm_tune.observation import Observation
from admm_tune.optim import ADMM, SimulatedExecutor
from admm_tune.optim.cost import CostModel
from admm_tune.optim.credit import arm, optimistic, value_stats
from admm_tune.problem import Budget, OptimizerSettings
from admm_tune.space import SearchSpace, param_key

SEEDS = range(20)
CLASSIFICATION = SearchSpace.load("classification")
BALANCED = [algo.name for algo in CLASSIFICATION.module("estimator").algorithms
            if any(p.name == "class_weight" for p in algo.params)]


def test_class_weight_is_searched_for_the_estimators_that_take_it():
    assert set(BALANCED) == {"logistic_regression", "linear_svc", "sgd", "ridge", "decision_tree", "random_forest",
                             "extra_trees", "hist_gradient_boosting", "svc"}
    for name in BALANCED:
        p = CLASSIFICATION.module("estimator").algorithm(name).param("class_weight")
        assert p.choices == (None, "balanced") and p.initial() is None


@pytest.fixture(scope="module")
def imbalanced():
    X, y = make_classification(n_samples=400, n_features=8, n_informative=4, weights=[0.9, 0.1], flip_y=0.02,
                               random_state=0)
    return load_dataset({"X": X, "y": y})


@pytest.mark.parametrize("name", BALANCED)
def test_balanced_estimators_export_unchanged_and_weigh_the_minority(name, imbalanced):
    data = imbalanced
    key = param_key("estimator", name, "class_weight")
    choice = {"scaler": "standard", "transformer": "none", "estimator": name}
    train = np.arange(len(data.y)) % 4 != 0
    X, y = data.X[~train], data.y[~train]
    scores = {}
    for weight in (None, "balanced"):
        config = CLASSIFICATION.complete({**choice, key: weight})
        pipeline = build_pipeline(config, CLASSIFICATION, data, seed=0)
        assert pipeline[-1].class_weight == weight
        with threadpool_limits(1):
            pipeline.fit(data.X[train], data.y[train])
        model = export(pipeline, data.X.iloc[:5])
        labels = get_backend("onnxruntime").compile(model, {}, "fp32").run(feeds(model, X))[0].ravel()
        assert (labels != pipeline.predict(X)).sum() <= 1  # the graph does what the weighted fit does
        scores[weight] = (pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba")
                          else pipeline.decision_function(X))
    assert not np.allclose(scores["balanced"], scores[None])  # the weights reach the fit


# -- the bandit does not judge a structure by its defaults ------------------------------------------------------
TRAP_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": name, "params": {"x": {"type": "float", "low": 0, "high": 1}, "y": {"type": "float", "low": 0, "high": 1}}}
    for name in "abc"]}]}
"""Three algorithms, each with two parameters defaulting to 0.5."""


def trap(config: dict) -> float:
    """``a`` has the best default (0.3) and no better optimum; ``b`` the worst default (1.13) and the optimum (0)."""
    algo = config["m"]
    x, y = config[f"m.{algo}.x"], config[f"m.{algo}.y"]
    if algo == "a":
        return 0.3 + 0.2 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    if algo == "b":
        return 10 * ((x - 0.85) ** 2 + (y - 0.2) ** 2)
    return 0.6 + (x - 0.5) ** 2 + (y - 0.5) ** 2


def trap_run(seed: int) -> float:
    opt = ADMM(SearchSpace.from_dict(TRAP_SPACE), [], OptimizerSettings(initial_pulls=3), Budget(evaluations=60),
               seed=seed)
    opt.run(lambda batch: [Observation("complete", trap(c.config)) for c in batch])
    return float(opt.best().observation.loss)


@pytest.mark.slow
def test_the_structure_with_the_worse_default_and_the_better_optimum_is_found():
    """60 evaluations reach b's basin (loss < 0.2; a's optimum is 0.3) at >= 12 of seeds 0-19 (measured 16/20;
    2/20 when the bandit was credited with each evaluation's own value and z only followed the best merit)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        losses = list(pool.map(trap_run, SEEDS))
    assert sum(loss < 0.2 for loss in losses) >= 12, losses


def test_arms_are_judged_by_the_best_value_with_optimism_while_untuned():
    assert optimistic(0.0, 0) == 1.0 and optimistic(0.0, 1) == 0.5 and optimistic(0.2, 2) == pytest.approx(0.4)
    assert arm(1.0, 3) == [4.0, 1.0] and arm(0.5, 100) == [1.0 + 5.0, 1.0 + 5.0]  # evidence capped at MEMORY
    stats = value_stats([{"m": "a"}, {"m": "a"}, {"m": "b"}], [3.0, 1.0, 2.0], [None, 4, None])
    assert stats[("m", "a")].best == 1.0 and stats[("m", "a")].evaluations == 2 and stats[("m", "a")].tuned == 1
    assert stats[("m", "b")].tuned == 0


# -- cost under a time budget ----------------------------------------------------------------------------------
COST_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": "slow", "params": {"x": {"type": "float", "low": 0, "high": 1}}},
    {"name": "fast", "params": {"x": {"type": "float", "low": 0, "high": 1}}}]}]}
BUDGET = 60.0


def seconds(config: dict) -> float:
    """``slow`` costs 5 to 25 s (growing with x), ``fast`` 0.5 s."""
    return 5.0 + 20.0 * config["m.slow.x"] if config["m"] == "slow" else 0.5


def cost_run(seed: int) -> dict:
    """A simulated-time run: the loss favours ``slow`` slightly; what starts, when, and what the model predicted."""
    def evaluate(config):
        algo = config["m"]
        loss = (config[f"m.{algo}.x"] - 0.7) ** 2 + (0.0 if algo == "slow" else 0.05)
        return Observation("complete", loss, duration_s=seconds(config))

    executor = SimulatedExecutor(1, seconds, evaluate)
    opt = ADMM(SearchSpace.from_dict(COST_SPACE), [], OptimizerSettings(initial_pulls=2), Budget(seconds=BUDGET),
               seed=seed)
    opt.run(executor, time_left=lambda: BUDGET - executor.now)
    return {"overruns": sum(end > BUDGET for start, end in executor.log[2:]),
            "first_overrun": next((end for start, end in executor.log if end > BUDGET), None),
            "evaluations": len(executor.log)}


@pytest.mark.slow
def test_no_candidate_starts_that_its_learnt_cost_says_cannot_finish():
    """After the initial draws (whose cost is unknown), a candidate ends past the budget at <= 2 of seeds 0-19
    (measured 1/20: seed 12 starts slow at x=0.77 with 20.4 s left, predicted 15 s from three evaluations at
    x <= 0.5, and ends 0.08 s late); with the check switched off, 20/20 seeds end one past the budget."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(cost_run, SEEDS))
    assert sum(run["overruns"] > 0 for run in runs) <= 2, runs
    assert all(run["first_overrun"] is None or run["first_overrun"] < 1.1 * BUDGET for run in runs), runs


def test_the_cost_model_learns_seconds_per_structure_and_parameters():
    space = SearchSpace.from_dict(COST_SPACE)
    model = CostModel(space)
    assert model.predict(space.complete({"m": "slow"})) is None
    rng = np.random.default_rng(0)
    for _ in range(12):
        config = space.complete({"m": "slow"}, {"m.slow.x": float(rng.random())})
        model.observe(config, seconds(config))
    model.observe(space.complete({"m": "fast"}), 0.5)
    cheap, dear = (space.complete({"m": "slow"}, {"m.slow.x": x}) for x in (0.1, 0.9))
    assert model.predict(cheap) < model.predict(dear)
    for config in (cheap, dear):  # log-linear fit of a linear cost: within a factor 1.5
        assert seconds(config) / 1.5 < model.predict(config) < 1.5 * seconds(config)
    assert model.predict(space.complete({"m": "fast"})) == pytest.approx(0.5)
