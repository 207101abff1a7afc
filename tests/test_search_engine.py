"""The search engine of issue 14: class balancing, the bandit's credit, cost, the warm start, early stopping.

Properties of a search are asserted over seeds 0-19 with the pass rate the
code meets, with a margin (see docs/optimiser.md, "Search engine").
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_limits

import admm_tune
from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.export import export, feeds
from admm_tune.evaluate.pipeline import MLEvaluator, build_pipeline, clearly_worse
from admm_tune.journal import Journal
from admm_tune.observation import Observation
from admm_tune.optim import ADMM, SimulatedExecutor
from admm_tune.optim.cost import CostModel
from admm_tune.optim import admm, credit
from admm_tune.optim.allocation import behind, projected, shares
from admm_tune.optim.credit import UNTRIED, arm, optimistic, value_stats
from admm_tune.portfolio import PORTFOLIO, warm_start
from admm_tune.problem import Budget, OptimizerSettings, load_problem
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
    """60 evaluations reach b's basin (loss < 0.2; a's optimum is 0.3) at >= 12 of seeds 0-19 (measured 18/20 with
    the θ-step shares, 16/20 before them;
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


# -- sharing the θ-steps ------------------------------------------------------------------------------------------
RISING_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": name, "params": {"x": {"type": "float", "low": 0, "high": 1}, "y": {"type": "float", "low": 0, "high": 1}}}
    for name in "abcd"]}]}
RISING = {"a": (0.6, 0.6, 0.30, 0.6), "b": (0.85, 0.15, 0.15, 20.0), "c": (0.3, 0.8, 0.40, 2.0), "d": (0.2, 0.2, 0.45, 2.0)}
"""Per algorithm: optimum (x, y), loss there, curvature.  ``a`` is best at its defaults (0.31) and a little
tuning takes it to its optimum 0.30; ``b`` has the best optimum (0.15) in a narrow basin far from its defaults
(0.89 there), so one θ-step leaves it behind ``a``."""


def rising(config: dict) -> float:
    algo = config["m"]
    x0, y0, base, k = RISING[algo]
    return base + k * ((config[f"m.{algo}.x"] - x0) ** 2 + (config[f"m.{algo}.y"] - y0) ** 2)


def rising_run(seed: int) -> tuple[float, dict[str, int]]:
    """Best loss of 150 evaluations, and the θ-steps (iterations) each algorithm had."""
    opt = ADMM(SearchSpace.from_dict(RISING_SPACE), [], OptimizerSettings(initial_pulls=3), Budget(evaluations=150),
               seed=seed)
    opt.run(lambda batch: [Observation("complete", rising(c.config)) for c in batch])
    steps: dict[str, int] = {}
    for entry in opt.trace:
        steps[entry["structure"]] = steps.get(entry["structure"], 0) + 1
    return float(opt.best().observation.loss), steps


@pytest.mark.slow
def test_the_theta_steps_are_shared_so_a_structure_that_needs_tuning_is_tuned():
    """Over seeds 0-19 (150 evaluations): b's basin (loss < 0.2) is reached at >= 13 (measured 16/20; 9/20 with
    ``shared_algorithms=1``, where a's tuning held z), and at least 3 of the 4 algorithms get 3 or more θ-steps
    at >= 13 (measured 16/20; 3/20 with ``shared_algorithms=1``)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(rising_run, SEEDS))
    assert sum(loss < 0.2 for loss, _ in runs) >= 13, runs
    assert sum(sum(n >= 3 for n in steps.values()) >= 3 for _, steps in runs) >= 13, runs


SMALL_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": "a", "params": {"x": {"type": "float", "low": 0, "high": 1}}},
    {"name": "b", "params": {"k": {"type": "int", "low": 0, "high": 2}}},
    {"name": "c", "params": {"x": {"type": "float", "low": 0, "high": 1}}}]}]}


def small(config: dict) -> float:
    algo = config["m"]
    if algo == "b":  # three points in all: its θ-steps soon find nothing new
        return 0.3 + 0.01 * config["m.b.k"]
    return (0.1 + (config["m.a.x"] - 0.7) ** 2) if algo == "a" else (0.5 + (config["m.c.x"] - 0.2) ** 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_an_algorithm_whose_theta_step_found_nothing_new_gets_no_more_shares(seed):
    """``b`` has three points: once a θ-step on it proposes nothing, z never goes back to it for a share."""
    opt = ADMM(SearchSpace.from_dict(SMALL_SPACE), [], OptimizerSettings(initial_pulls=3, theta_solver="random"),
               Budget(evaluations=80), seed=seed)
    opt.run(lambda batch: [Observation("complete", small(c.config)) for c in batch])
    held = [json.loads(e["z"])["m"] for e in opt.trace]
    tuned = {r.candidate.iteration for r in opt.records if r.candidate.step == "theta"}
    empty = [e["iteration"] for e in opt.trace if json.loads(e["z"])["m"] == "b" and e["iteration"] not in tuned]
    assert len(empty) <= 1, (held, empty)  # (before: every third iteration went to b, evaluating nothing)


TWO_SPACE = {"modules": [
    {"name": "p", "algorithms": [{"name": name, "params": {"n": {"type": "int", "low": 1, "high": 50}}}
                                 for name in ("p1", "p2")]},
    {"name": "e", "algorithms": [{"name": name, "params": {"x": {"type": "float", "low": 0, "high": 1}}}
                                 for name in "abc"]}]}


def two(config: dict) -> float:
    algo, n = config["e"], config[f"p.{config['p']}.n"]
    return ({"a": 0.1, "b": 0.2, "c": 0.3}[algo] + (config[f"e.{algo}.x"] - {"a": 0.7, "b": 0.2, "c": 0.5}[algo]) ** 2
            + 0.002 * abs(n - 20) + (0.05 if config["p"] == "p2" else 0.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_a_move_to_another_algorithm_leaves_the_integer_duals_as_admm_updates_them(seed):
    """λ of an integer kept across a move is updated from the θ-step's θ̃ (before the move), and a moved-to
    structure starts with δ at its θ and λ at 0: every λ stays within one ADMM step of 0, ρ·½/range (measured:
    exactly that at seeds 0-19; a move used to add (θ_move − δ)/range, e.g. −0.10 where steps are ±0.01)."""
    opt = ADMM(SearchSpace.from_dict(TWO_SPACE), [], OptimizerSettings(initial_pulls=4, theta_solver="random"),
               Budget(evaluations=80), seed=seed)
    opt.run(lambda batch: [Observation("complete", two(c.config)) for c in batch])
    moves = sum(e["z_next"] != e["z"] for e in opt.trace)
    assert moves >= 2
    for entry in opt.trace:
        assert all(abs(v) <= opt.rho_int * 0.5 / 49 + 1e-9 for v in json.loads(entry["lam"]).values()), entry["lam"]


def test_shares_halve_by_rank_and_the_next_theta_step_goes_to_the_one_furthest_behind():
    assert shares(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7]) and shares(1) == [1.0]
    ranked = ["a", "b", "c", "d", "e"]
    assert behind(ranked, {}, "a") == ("a", 1.0)  # nobody tuned: the leader first
    chosen, lag = behind(ranked, {"a": 3}, "a")  # a has (3 + 1) / (8/15) = 7.5; b (0 + 1) / (4/15) = 3.75
    assert chosen == "b" and lag == pytest.approx(2.0)
    # a: 5 / (8/15) = 9.4, b: 3 / (4/15) = 11.25, c: 1 / (2/15) = 7.5, d: 1 / (1/15) = 15
    assert behind(ranked, {"a": 4, "b": 2}, "a")[0] == "c"
    assert behind(ranked, {"a": 3, "b": 1}, "a")[0] == "a"  # a, b, c all at 7.5: the better rank
    assert behind(ranked, {"a": 9}, "e") == ("e", 1.0)  # outside the first four: z stays (constraints decide)
    assert behind(ranked, {"a": 9}, "a", top=1) == ("a", 1.0)  # sharing off


def test_an_algorithm_is_projected_on_by_the_gain_of_its_last_theta_step():
    class Rec:
        def __init__(self, step: str, iteration: int) -> None:
            self.candidate = type("C", (), {"step": step, "iteration": iteration})()

    history = [(Rec("init", 0), 0.9, True), (Rec("theta", 2), 0.5, True), (Rec("z", 2), 0.7, True),
               (Rec("theta", 5), 0.4, True), (Rec("theta", 5), 0.45, True)]
    assert projected(history) == pytest.approx(0.4 - (0.5 - 0.4))  # the last θ-step (iteration 5) gained 0.1
    assert projected(history[:3]) == pytest.approx(0.5 - 0.4)  # iteration 2 took it from 0.9 to 0.5
    assert projected(history[:1]) == 0.9  # never tuned: its best
    assert projected([(Rec("theta", 1), 0.3, False)]) == float("inf")  # nothing that counts (failed, partial)


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


SLOW_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": name, "params": {"x": {"type": "float", "low": 0, "high": 1}}} for name in ("a", "b", "c", "slow")]}]}


def slow_seconds(config: dict) -> float:
    return 10.0 if config["m"] == "slow" else 0.2


def slow_run(args: tuple[int, bool]) -> tuple[int, int]:
    """θ-steps on ``slow`` (10 s per evaluation, never the best) and evaluations in 60 simulated seconds;
    ``bound``: optimism's time bound on (``admm.OPTIMISM_TIME``), else off."""
    seed, bound = args
    admm.OPTIMISM_TIME = 0.1 if bound else float("inf")

    def evaluate(config):
        algo = config["m"]
        loss = (config[f"m.{algo}.x"] - 0.7) ** 2 + {"a": 0.1, "b": 0.15, "c": 0.2, "slow": 0.3}[algo]
        return Observation("complete", loss, duration_s=slow_seconds(config))

    executor = SimulatedExecutor(1, slow_seconds, evaluate)
    opt = ADMM(SearchSpace.from_dict(SLOW_SPACE), [], OptimizerSettings(initial_pulls=2, theta_solver="random"),
               Budget(seconds=BUDGET), seed=seed)
    opt.run(executor, time_left=lambda: BUDGET - executor.now)
    return sum(entry["structure"] == "slow" for entry in opt.trace), len(executor.log)


def test_optimism_does_not_spend_the_time_left_on_tuning_a_slow_untried_structure(monkeypatch):
    """A θ-step of ``slow`` (>= 2 evaluations of 10 s) never fits in 10 % of a 60 s budget: it gets no θ-step at
    >= 16 of seeds 0-19 (measured 18/20; with the bound off, 1/20), and runs do more evaluations in all (measured
    1,914 against 1,378)."""
    monkeypatch.setattr(admm, "OPTIMISM_TIME", admm.OPTIMISM_TIME)  # slow_run sets it: restored after the test
    bounded = [slow_run((seed, True)) for seed in SEEDS]
    unbounded = [slow_run((seed, False)) for seed in SEEDS]
    assert sum(steps == 0 for steps, _ in bounded) >= 16, bounded
    assert sum(n for _, n in bounded) > sum(n for _, n in unbounded), (bounded, unbounded)


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


# -- warm start: the portfolio's entries are the first evaluations -------------------------------------------------
def unseen_problem(seed: int = 0, **optimizer) -> dict:
    """A small classification problem that is none of the portfolio's training sets (benchmarks/portfolio.py)."""
    X, y = make_classification(n_samples=300, n_features=10, n_informative=4, n_redundant=2, random_state=0)
    return {"name": "unseen", "data": {"X": X, "y": y}, "objective": {"cv": 3}, "seed": seed,
            "budget": {"evaluations": 16}, "optimizer": optimizer}


def portfolio_configs(task: str) -> list[dict]:
    return [entry["config"] for entry in json.loads(PORTFOLIO.read_text())[task]["entries"]]


def test_the_first_evaluations_of_a_run_are_the_portfolio_entries():
    entries = portfolio_configs("classification")
    result = admm_tune.fit(unseen_problem(initial_share=1.0, initial_pulls=len(entries)),
                           budget=len(entries), storage="memory", progress=False)
    trials = result.trials.sort_values("number")
    assert list(trials["step"]) == ["init"] * len(entries)
    assert [json.loads(c) for c in trials["config"]] == entries  # exact configs, in the portfolio's order


def test_a_restricted_space_keeps_the_entries_it_holds_and_draws_the_rest():
    keep = {"scaler": ["standard", "none"], "transformer": ["none", "pca"],
            "estimator": ["qda", "gaussian_nb", "knn", "logistic_regression"]}
    problem = load_problem({**unseen_problem(), "restrict": keep})
    held = [c for c in portfolio_configs("classification")
            if c["scaler"] in keep["scaler"] and c["transformer"] in keep["transformer"]
            and c["estimator"] in keep["estimator"]]
    assert 0 < len(held) < len(portfolio_configs("classification"))
    assert warm_start(problem) == held
    opt = ADMM(problem.space, (), replace(problem.optimizer, initial_share=1.0), Budget(evaluations=6), seed=0,
               initial=warm_start(problem))
    evaluator = MLEvaluator(problem.space, problem.data, problem.objective, 0)
    opt.run(lambda batch: [evaluator(c.config) for c in batch])
    first = [r.config for r in opt.records if r.candidate.step == "init"]
    assert first[:len(held)] == held and len(first) == 6  # the others are bandit draws, distinct
    assert len({json.dumps(c, sort_keys=True) for c in first}) == 6


def test_the_warm_start_is_a_setting_and_starts_constrained_and_deployment_problems_too():
    assert warm_start(load_problem(unseen_problem())) == portfolio_configs("classification")
    assert warm_start(load_problem(unseen_problem(warm_start=False))) == []
    assert warm_start(load_problem({**unseen_problem(), "constraints": {"fit_time_s": 1.0}})) == \
        portfolio_configs("classification")
    assert load_problem(unseen_problem()).optimizer.warm_start is True
    deployed = load_problem({**unseen_problem(), "deployment": "cpu", "constraints": {"latency_p95_ms": 1.0}})
    entries = warm_start(deployed)
    assert entries and all(e["backend"] == "onnxruntime" and e["precision"] == "fp32" for e in entries)
    ml = [{k: v for k, v in e.items() if k.split(".")[0] not in ("backend", "precision")} for e in entries]
    assert ml == [c for c in portfolio_configs("classification") if c in ml]  # the exportable ones, in order


def test_regression_takes_its_own_portfolio_and_a_wide_table_drops_the_polynomial_entries():
    entries = portfolio_configs("regression")
    narrow = np.random.default_rng(0).normal(size=(60, 5))
    assert warm_start(load_problem({"data": {"X": narrow, "y": narrow @ np.arange(5.0)}})) == entries
    wide = np.random.default_rng(0).normal(size=(60, 45))  # polynomial features are left out beyond 40 columns
    kept = warm_start(load_problem({"data": {"X": wide, "y": wide[:, 0]}}))
    assert kept == [c for c in entries if c["transformer"] != "polynomial"] and len(kept) < len(entries)


def unseen_run(args: tuple[int, bool]) -> dict:
    """16 evaluations on the unseen problem, in this process: the best loss, and what early stopping did.

    ``missed``: the stopped candidates that, evaluated in full afterwards, beat the incumbent they were stopped
    against; ``bias``: their partial losses minus their full ones.
    """
    seed, warm = args
    problem = load_problem(unseen_problem(seed, warm_start=warm))
    evaluator = MLEvaluator(problem.space, problem.data, problem.objective, seed)
    opt = ADMM(problem.space, problem.constraints, problem.optimizer, problem.budget, seed,
               initial=warm_start(problem))
    with threadpool_limits(1):
        opt.run(lambda batch: [evaluator(c.config, c.incumbent) for c in batch])
        stopped = [r for r in opt.records if not r.full]
        full = [evaluator(r.config).loss for r in stopped]  # not cached when stopped: evaluated in full now
    best = opt.best()
    return {"best": float(best.observation.loss), "best_full": best.full, "fits": evaluator.n_fits - 3 * len(full),
            "evaluations": len(opt.records), "stopped": len(stopped),
            "missed": sum(f < np.mean(r.candidate.incumbent) for r, f in zip(stopped, full)),
            "bias": [r.observation.loss - f for r, f in zip(stopped, full)]}


@pytest.fixture(scope="module")
def unseen_runs() -> dict[bool, list[dict]]:
    """Seeds 0-19, warm and cold (about 60 CPU-seconds, two at a time)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return {warm: list(pool.map(unseen_run, [(seed, warm) for seed in SEEDS])) for warm in (True, False)}


@pytest.mark.slow
def test_the_warm_start_finds_at_least_as_good_a_pipeline_in_a_small_budget(unseen_runs):
    """After 16 evaluations (4 initial), the warm-started run's best CV loss is at most the cold run's (random
    structures at their defaults) at >= 13 of seeds 0-19 (measured 16/20; mean best loss 0.068 against 0.096)."""
    pairs = list(zip(unseen_runs[True], unseen_runs[False]))
    assert sum(warm["best"] <= cold["best"] for warm, cold in pairs) >= 13, pairs


# -- cheap evaluations first: cross-validation stops on a candidate clearly worse than the incumbent ---------------
def test_cross_validation_stops_on_a_clearly_bad_candidate_and_not_on_a_good_one():
    problem = load_problem({**unseen_problem(), "objective": {"cv": 5}})
    space, evaluator = problem.space, MLEvaluator(problem.space, problem.data, problem.objective, 0)
    base = {"scaler": "standard", "transformer": "none", "estimator": "knn"}  # CV loss 0.12 here
    incumbent = evaluator(space.complete(base))
    assert incumbent.fidelity == 1.0 and len(incumbent.step_losses) == 5 and evaluator.n_fits == 5
    close = evaluator(space.complete(base, {"estimator.knn.n_neighbors": 6}), incumbent.step_losses)
    assert close.fidelity == 1.0 and evaluator.n_fits == 10  # as good: every fold
    bad_config = space.complete({**base, "estimator": "gaussian_nb"})  # CV loss 0.30 in full
    bad = evaluator(bad_config, incumbent.step_losses)
    assert bad.fidelity < 1.0 and bad.attrs["folds_done"] < 5 and evaluator.n_fits == 10 + bad.attrs["folds_done"]
    assert bad.loss == pytest.approx(float(np.mean(bad.step_losses)))  # the partial loss: the folds done
    assert bad.loss > incumbent.loss
    again = evaluator(bad_config)  # a stopped evaluation is not cached: without an incumbent, every fold
    assert again.fidelity == 1.0 and not again.attrs["cache_hit"] and evaluator.n_fits == 15 + bad.attrs["folds_done"]


def test_clearly_worse_is_a_paired_gap_of_two_incumbent_fold_spreads():
    incumbent = [0.1, 0.2, 0.3]  # fold spread (sample standard deviation) 0.1
    assert clearly_worse([0.45], incumbent, 3) and clearly_worse([0.3, 0.45], incumbent, 3)
    assert not clearly_worse([0.25], incumbent, 3) and not clearly_worse([0.2, 0.4], incumbent, 3)
    assert not clearly_worse([0.9, 0.9, 0.9], incumbent, 3)  # every fold done: nothing to save
    assert not clearly_worse([0.9], [], 3)  # no incumbent


def test_stopped_trials_are_journaled_with_their_fidelity_and_a_run_resumes_over_them(tmp_path):
    storage = f"sqlite:///{tmp_path / 'journal.db'}"
    first = admm_tune.fit(unseen_problem(), budget=10, storage=storage, progress=False)
    before = first.trials.sort_values("number")
    stopped = before[before["fidelity"] < 1.0]
    assert len(stopped) and (stopped["folds_done"] < 3).all()
    assert (stopped["loss"] == [float(np.mean(v)) for v in stopped["step_losses"]]).all()  # the partial loss
    assert first.trials.set_index("number").loc[first.best.trial, "fidelity"] == 1.0
    history = Journal.open(storage).history()
    partial = [obs for _, obs in history if obs.fidelity < 1]  # what a resumed optimiser reads back
    assert sorted(obs.fidelity for obs in partial) == sorted(stopped["fidelity"])
    assert all(obs.loss == pytest.approx(float(np.mean(obs.step_losses))) for obs in partial)

    resumed = admm_tune.fit(unseen_problem(), budget=16, storage=storage, resume=True, progress=False)
    after = resumed.trials.sort_values("number")
    assert len(after) == 16 and list(after["config"][:10]) == list(before["config"])  # nothing redone
    assert after["config"].is_unique
    assert resumed.trials.set_index("number").loc[resumed.best.trial, "fidelity"] == 1.0
    assert resumed.best.loss <= first.best.loss


@pytest.mark.slow
def test_the_winner_is_always_fully_evaluated_and_stopped_candidates_save_folds(unseen_runs):
    """Over seeds 0-19, warm and cold: the best is evaluated in full in 40/40 runs; candidates stop early in every
    run (measured 2-13 of 16 per run) and the runs fit at most 80 % of the folds every evaluation in full would
    (measured 1,216 of 1,920, 63 %)."""
    runs = unseen_runs[True] + unseen_runs[False]
    assert all(run["best_full"] for run in runs), runs
    assert all(run["stopped"] > 0 for run in runs), runs
    assert sum(run["fits"] for run in runs) <= 0.8 * 3 * sum(run["evaluations"] for run in runs), runs


@pytest.mark.slow
def test_a_stopped_candidate_would_rarely_have_beaten_its_incumbent(unseen_runs):
    """Every candidate stopped in those 40 runs, evaluated in full afterwards: at most 3 % of them beat the
    incumbent they were stopped against (measured 2 of 357); their partial loss estimates the full one, too high
    by 0.009 on average (standard deviation 0.041)."""
    runs = unseen_runs[True] + unseen_runs[False]
    stopped = sum(run["stopped"] for run in runs)
    assert sum(run["missed"] for run in runs) <= 0.03 * stopped, runs
    assert abs(np.mean([b for run in runs for b in run["bias"]])) < 0.03


# -- optimism for values never tried -----------------------------------------------------------------------------
MANY_SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": name, "params": {"x": {"type": "float", "low": 0, "high": 1}}} for name in "abcdefgh"]}]}
"""Eight algorithms with one parameter each."""


def many(config: dict) -> float:
    """``a``-``g``: 0.5-0.8 at their optimum x = 0.5; ``h``: 0.84 at its default, 0.2 at x = 0.9."""
    algo = config["m"]
    x = config[f"m.{algo}.x"]
    if algo == "h":
        return 0.2 + 4 * (x - 0.9) ** 2
    return 0.5 + 0.05 * "abcdefg".index(algo) + (x - 0.5) ** 2


def many_run(args: tuple[int, bool]) -> int:
    """How many of the eight algorithms 40 evaluations (2 initial draws) try; ``flat``: arms start at Beta(1, 1)."""
    seed, flat = args
    admm.UNTRIED = [1.0, 1.0] if flat else credit.UNTRIED  # in a worker process of the test's own pool
    opt = ADMM(SearchSpace.from_dict(MANY_SPACE), [], OptimizerSettings(initial_pulls=2), Budget(evaluations=40),
               seed=seed)
    opt.run(lambda batch: [Observation("complete", many(c.config)) for c in batch])
    return len({r.config["m"] for r in opt.records})


def test_a_value_never_tried_is_as_promising_as_an_untuned_one_tried_once():
    """Two initial draws at their defaults, each judged 1 while untuned (``optim/credit.py``) on one evaluation:
    Beta(2, 1), the arm every algorithm never tried keeps (before: Beta(1, 1), below every tried one)."""
    opt = ADMM(SearchSpace.from_dict(MANY_SPACE), [], OptimizerSettings(initial_pulls=2, initial_share=1.0),
               Budget(evaluations=2), seed=0)
    opt.run(lambda batch: [Observation("complete", many(c.config)) for c in batch])
    assert len({r.config["m"] for r in opt.records}) == 2
    assert UNTRIED == [2.0, 1.0] and all(arm == UNTRIED for arm in opt.bandit.arms["m"].values())


@pytest.mark.slow
def test_the_bandit_tries_more_algorithms_when_untried_ones_get_optimism():
    """40 evaluations over 8 algorithms (2 initial draws) try at least 6 of them at >= 13 of seeds 0-19
    (measured 15/20; 12/20 when untried arms stay flat at Beta(1, 1), as before), and more in all (measured 124
    algorithm-runs against 110; before the θ-step shares 16/20 and 11/20, 125 and 106)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        tried = list(pool.map(many_run, [(seed, False) for seed in SEEDS]))
        flat = list(pool.map(many_run, [(seed, True) for seed in SEEDS]))
    assert sum(n >= 6 for n in tried) >= 13, tried
    assert sum(tried) > sum(flat), (tried, flat)
