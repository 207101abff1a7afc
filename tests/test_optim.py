"""The ADMM optimiser on synthetic problems with known optima (no scikit-learn pipelines)."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
from synthetic import QUADRATIC_OPTIMUM, QUADRATIC_SPACE, quadratic

from admm_tune import SearchSpace
from admm_tune.observation import Observation
from admm_tune.optim import ADMM, SimulatedExecutor
from admm_tune.optim.bandit import ThompsonBandit, reward
from admm_tune.problem import Budget, Constraint, OptimizerSettings

ONE_STRUCTURE = OptimizerSettings(z_pulls=1, inner_max=8, initial_pulls=3)
"""A problem with a single pipeline structure: the θ-step does the work, so
one z pull per iteration (the categorical) and a larger θ budget."""

SEEDS = range(20)
"""A property of a search is asserted over seeds 0–19 with the pass rate it must meet, never at one seed.

The runs are deterministic per seed, so each rate below is what the code gives at these seeds; it is required
with a margin of one or two seeds (other platforms' floating point, small changes to the optimiser) and the
measured count is written beside it.  docs/optimiser.md quotes the same figures."""
EVALUATIONS = 50
"""Evaluations of each run of the shared fixture: 50 keeps the 20 GP runs near 80 CPU-seconds (40 s on two
cores); the rates below are measured at this budget (docs/optimiser.md also gives them at 80)."""
TOLERANCE, WITHIN_TOLERANCE = 0.75, 17
"""Best feasible loss <= optimum + 0.75 after 50 evaluations: at least 17 of the 20 seeds (measured 19/20; the
random θ-solver, the ablation of the GP, 0/20)."""
CLOSE, CLOSE_SEEDS = 0.25, 5
"""And within 0.25 of the optimum (1.5): at least 5 of the 20 seeds (measured 7/20; the random θ-solver 0/20).

The lattice has a feasible local optimum at n1=1 (loss 2.0) whose neighbour
n1=2 pays only together with a move of x1 onto the boundary; a seed that
stays there lands within the looser tolerance.
"""
RESIDUAL_CLOSED = 12
"""The integer consensus residual is 0 at the last ADMM iteration: at least 12 of the 20 seeds (measured 14/20).
The others end within two iterations of a move of an integer (the dual closes the residual of a move over the
next iterations); a swing between two neighbouring integers is settled (docs/optimiser.md) and no longer ends a
run, which is what ended seeds 1, 4 and 16 at 0.05 before."""


def run_quadratic(seed: int, evaluations: int = EVALUATIONS, solver: str = "gp") -> ADMM:
    opt = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [Constraint("g", 2.0, "max")],
               replace(ONE_STRUCTURE, theta_solver=solver), Budget(evaluations=evaluations), seed=seed)
    opt.run(lambda batch: [Observation("complete", *quadratic(c.config)) for c in batch])
    return opt


def outcome(seed: int, evaluations: int = EVALUATIONS, solver: str = "gp") -> dict:
    """What the tests check of one run (picklable: the runs go to worker processes)."""
    opt = run_quadratic(seed, evaluations, solver)
    best = opt.best()
    return {"seed": seed, "records": len(opt.records), "feasible": best.feasible, "loss": best.observation.loss,
            "g": best.observation.metrics["g"], "trace": opt.trace,
            "visited": [(r.observation.loss, r.feasible, r is best) for r in opt.records]}


@pytest.fixture(scope="module")
def gp_runs() -> list[dict]:
    """The default solver on the constrained quadratic, 50 evaluations, seeds 0–19: about 80 CPU-seconds, two
    runs at a time (each is single-threaded)."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(outcome, SEEDS))


def count(runs: list[dict], passes) -> tuple[int, list[int]]:
    """How many runs pass, and the seeds that do not."""
    failing = [r["seed"] for r in runs if not passes(r)]
    return len(runs) - len(failing), failing


@pytest.mark.slow
def test_constrained_quadratic_reaches_the_known_optimum(gp_runs):
    """Every seed: 50 evaluations and a feasible best; 17/20 seeds within 0.75 of the optimum, 5/20 within 0.25
    (measured 19/20 and 7/20; the random θ-solver 0/20 and 0/20)."""
    for run in gp_runs:
        assert run["records"] == EVALUATIONS and run["feasible"] and run["g"] <= 2.0, run["seed"]
    within, failing = count(gp_runs, lambda r: r["loss"] <= QUADRATIC_OPTIMUM + TOLERANCE)
    assert within >= WITHIN_TOLERANCE, failing
    close, failing = count(gp_runs, lambda r: r["loss"] <= QUADRATIC_OPTIMUM + CLOSE)
    assert close >= CLOSE_SEEDS, failing


VISITED_SEEDS = 17
"""Seeds whose search visits the region the constraint cuts off (loss < optimum - 0.25, reachable only with
x1 + n1 > 2): at least 17 of 20 (measured 19/20: seed 1 settles on the feasible local optimum n1=1 without
crossing the boundary; the random θ-solver visits it at 4/20)."""


@pytest.mark.slow
def test_constraint_cuts_off_the_unconstrained_optimum(gp_runs):
    """No seed returns a point of the region the constraint cuts off (the same runs without the constraint return
    one at 20/20 seeds), and the search goes there, so the constraint, not a failure to get close, keeps it out:
    at least :data:`VISITED_SEEDS` seeds visit it."""
    visited = 0
    for run in gp_runs:
        unconstrained = [(feasible, is_best) for loss, feasible, is_best in run["visited"]
                         if loss < QUADRATIC_OPTIMUM - 0.25]
        assert not any(feasible or is_best for feasible, is_best in unconstrained), run["seed"]
        visited += bool(unconstrained)
    assert visited >= VISITED_SEEDS, f"{visited}/20 seeds visited the region the constraint cuts off"


@pytest.mark.slow
def test_integer_residual_shrinks_to_zero(gp_runs):
    """The consensus residual is positive at some iteration (there is something to close) at every seed, every
    iteration that settles a cycle of δ ends with the residual 0, and it is 0 at the last iteration at 12/20 seeds (measured 14/20)."""
    for run in gp_runs:
        assert max(t["primal_residual"] for t in run["trace"]) > 0, run["seed"]
        for before, after in zip(run["trace"], run["trace"][1:]):  # a cycle of δ is settled: the residual closes
            if json.loads(before["state"])["settle"]:
                assert after["primal_residual"] == 0.0, (run["seed"], after["iteration"])
    closed, failing = count(gp_runs, lambda r: r["trace"][-1]["primal_residual"] <= 1e-6)
    assert closed >= RESIDUAL_CLOSED, failing


@pytest.mark.slow
def test_multipliers_grow_while_the_constraint_is_violated(gp_runs):
    """At every seed and iteration: μ stays >= 0, grows when the iterate violates the constraint and does not
    grow when it satisfies it; and some iteration of every seed violates it."""
    for run in gp_runs:
        before, violated = 0.0, 0
        for t in run["trace"]:
            mu = json.loads(t["mu"])[0]
            assert mu >= 0.0, run["seed"]
            if t["violation"] > 0:
                violated += 1
                assert mu > before, (run["seed"], t["iteration"])
            else:
                assert mu <= before, (run["seed"], t["iteration"])
            before = mu
        assert violated, f"seed {run['seed']} never violated the constraint"


OTHER_SOLVERS = {"tpe": 7.0, "random": 20.0}
"""Median best feasible loss over seeds 0–19 after 30 evaluations, required (measured: TPE 5.4, random 11.9;
one uniformly drawn point of the space has expected loss 36.7, the optimum is 1.5)."""


@pytest.mark.parametrize("solver", sorted(OTHER_SOLVERS))
def test_other_theta_solvers_run_behind_the_same_protocol(solver):
    runs = [outcome(seed, evaluations=30, solver=solver) for seed in SEEDS]  # cheap without a GP: no processes
    assert all(r["records"] == 30 and r["feasible"] for r in runs)
    assert np.median([r["loss"] for r in runs]) <= OTHER_SOLVERS[solver], sorted(r["loss"] for r in runs)


def test_same_seed_same_sequence():
    a, b = run_quadratic(7, evaluations=25), run_quadratic(7, evaluations=25)
    assert [r.config for r in a.records] == [r.config for r in b.records]
    c = run_quadratic(8, evaluations=25)
    assert [r.config for r in a.records] != [r.config for r in c.records]


def test_bandit_concentrates_on_the_best_arm(rng):
    space = SearchSpace.from_dict({"modules": [{"name": "arm", "algorithms": [{"name": n} for n in "abcde"]}]})
    bandit = ThompsonBandit(space)
    means = {"a": 0.2, "b": 0.4, "c": 0.9, "d": 0.5, "e": 0.1}
    counts = dict.fromkeys(means, 0)
    for _ in range(300):
        arm = bandit.sample(rng)["arm"]
        counts[arm] += 1
        bandit.update({"arm": arm}, means[arm], rng)
    assert max(counts, key=counts.get) == "c"
    assert counts["c"] > 0.6 * 300
    assert bandit.means()["arm"]["c"] == max(bandit.means()["arm"].values())


def test_reward_is_relative_to_best_and_median():
    seen = [0.03, 0.05, 0.04, 0.5]
    assert reward(0.03, seen) == 1.0
    assert reward(0.5, seen) == 0.0
    assert 0.0 < reward(0.035, seen) < 1.0


def test_failed_evaluations_are_bad_observations_and_the_run_goes_on():
    space = SearchSpace.from_dict(QUADRATIC_SPACE)

    def evaluate(batch):
        out = []
        for c in batch:
            if c.config["f.q.n2"] > 8:
                out.append(Observation.failed("error: boom"))
            else:
                out.append(Observation("complete", *quadratic(c.config)))
        return out

    opt = ADMM(space, [], OptimizerSettings(), Budget(evaluations=30), seed=0)
    opt.run(evaluate)
    assert len(opt.records) == 30
    assert opt.best().observation.ok




def test_patience_stops_a_stalled_run_and_seconds_bound_the_time():
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [
        {"name": "a", "params": {"n": {"type": "int", "low": 0, "high": 3}}}]}]})
    opt = ADMM(space, [], OptimizerSettings(), Budget(evaluations=500, patience=2), seed=0)
    opt.run(lambda batch: [Observation("complete", float(c.config["m.a.n"] ** 2)) for c in batch])
    assert len(opt.records) < 500 and opt.best().observation.loss == 0.0
    timed = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [], OptimizerSettings(), Budget(seconds=1.0), seed=0)
    timed.run(lambda batch: [Observation("complete", *quadratic(c.config)) for c in batch])
    assert 0 < len(timed.records) < 500


def test_an_exhausted_space_ends_the_run():
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [
        {"name": "a", "params": {"n": {"type": "int", "low": 0, "high": 3}}}, {"name": "b"}]}]})
    opt = ADMM(space, [], OptimizerSettings(), Budget(evaluations=100), seed=0)
    opt.run(lambda batch: [Observation("complete", 1.0) for c in batch])
    assert len(opt.records) == 5


def test_min_constraint_slack_does_not_punish_being_well_inside():
    from admm_tune.optim.constraints import ConstraintTerms

    terms = ConstraintTerms([Constraint("throughput_rps", 100.0, "min")])
    mu, rho = np.zeros(1), 4.0
    inside_far = 1.0 + terms.violations({"throughput_rps": 500.0})
    assert terms.penalty(inside_far, mu, rho) == 0.0
    u = terms.slack(inside_far, mu, rho)
    assert terms.dual_update(mu, inside_far, u, rho)[0] >= 0.0
    broken = 1.0 + terms.violations({"throughput_rps": 50.0})
    assert terms.penalty(broken, mu, rho) > 0.0


def test_bandit_never_proposes_a_forbidden_combination(rng):
    space = SearchSpace.from_dict({"modules": [
        {"name": "scaler", "algorithms": [{"name": "none"}, {"name": "s"}]},
        {"name": "est", "algorithms": [{"name": "svc"}, {"name": "rf"}, {"name": "nb"}]}],
        "forbidden": [{"when": {"scaler": "none", "est": ["svc", "rf"]}}]})
    bandit = ThompsonBandit(space)
    for _ in range(200):
        choice = bandit.sample(rng)
        assert space.allowed(choice)
        bandit.update(choice, 1.0 if choice["scaler"] == "none" else 0.0, rng)


def test_a_seconds_budget_bounds_the_initial_draws_too():
    import time

    def slow(batch):
        time.sleep(0.2)
        return [Observation("complete", *quadratic(c.config)) for c in batch]

    opt = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [], OptimizerSettings(initial_pulls=8), Budget(seconds=0.5),
               seed=0)
    opt.run(slow)
    # Each evaluation sleeps 0.2 s, so within 0.5 s at most 3 can start (at 0, 0.2 and 0.4 s), however slow the
    # machine: not the 8 initial draws.  Counting evaluations, not seconds, holds on a loaded machine.
    assert 1 <= len(opt.records) <= 3, len(opt.records)


def test_a_pull_that_keeps_a_module_is_masked_against_it(rng):
    space = SearchSpace.from_dict({"modules": [
        {"name": "est", "algorithms": [{"name": "tree"}, {"name": "linear"}]},
        {"name": "backend", "algorithms": [{"name": "ml_ops"}, {"name": "standard_only"}]}],
        "forbidden": [{"when": {"est": "tree", "backend": "standard_only"}}]})
    bandit = ThompsonBandit(space)
    bandit.arms["est"] = {"tree": [40.0, 1.0], "linear": [1.0, 40.0]}  # the arms strongly prefer the tree
    for _ in range(50):
        choice = bandit.sample(rng, fixed={"backend": "standard_only"})
        assert choice == {"backend": "standard_only", "est": "linear"}


def test_a_failed_evaluation_never_beats_one_that_ran_and_broke_a_constraint():
    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [{"name": "broken"}, {"name": "slow"}]}]})
    opt = ADMM(space, [Constraint("latency", 1.0, "max")], OptimizerSettings(initial_pulls=2), Budget(evaluations=2),
               seed=0)

    def evaluate(batch):
        return [Observation.failed("error: crash") if c.config["m"] == "broken"
                else Observation("complete", 0.5, {"latency": 9.0}) for c in batch]

    opt.run(evaluate)
    failed, slow = sorted(opt.records, key=lambda r: r.observation.ok)
    assert opt._merit(failed) > opt._merit(slow)
    assert opt.state.z["m"] == "slow"


@pytest.mark.parametrize("capacity", [2, 4])
def test_asynchronous_slots_never_wait_for_the_slowest_evaluation(capacity):
    # Candidates with n1 > 5 take 30 time units, the others 1: a synchronous batch
    # holding one slow candidate would leave its other slots idle for 29 units.
    slots = SimulatedExecutor(capacity, lambda config: 30.0 if config["f.q.n1"] > 5 else 1.0,
                              lambda config: Observation("complete", *quadratic(config)))
    opt = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [Constraint("g", 2.0, "max")], ONE_STRUCTURE,
               Budget(evaluations=60), seed=0)
    opt.run(slots)
    assert len(opt.records) == len(slots.log) == 60
    assert len({json.dumps(r.config, sort_keys=True) for r in opt.records}) == 60
    slow = [start for start, end in slots.log if end - start > 1]
    assert slow, "the run should try some slow candidates"
    assert slots.idle_share() < 0.05, slots.idle_share()
    assert opt.best().feasible


@pytest.mark.parametrize("capacity", [1, 8])
def test_a_run_killed_before_its_first_result_resumes_from_the_retried_candidates(capacity):
    from admm_tune.optim import Candidate

    space = SearchSpace.from_dict(QUADRATIC_SPACE)
    settings = replace(ONE_STRUCTURE, initial_pulls=8)
    first = ADMM(space, [Constraint("g", 2.0, "max")], settings, Budget(evaluations=30), seed=0)
    choices = [first.bandit.sample(first.rng) for _ in range(3)]
    interrupted = [Candidate(space.complete(c, {k: p.sample(first.rng) for k, p in space.numeric_params(c)}), "init", 0)
                   for c in choices]
    resumed = ADMM(space, [Constraint("g", 2.0, "max")], settings, Budget(evaluations=30), seed=0)
    resumed.restore([], [], [replace(c, step="retry") for c in interrupted])
    slots = SimulatedExecutor(capacity, lambda config: 1.0, lambda config: Observation("complete", *quadratic(config)))
    resumed.run(slots)
    configs = [json.dumps(r.config, sort_keys=True) for r in resumed.records]
    assert len(configs) == len(set(configs)) == 30
    assert [r.candidate.step for r in resumed.records[:3]] == ["retry"] * 3
    assert resumed.best().feasible


def test_the_gaussian_process_is_scikit_learns_without_scikit_learn():
    """The θ-step's GP (numpy/scipy, ``optim/bayes/kernel.py``) against scikit-learn's GaussianProcessRegressor
    with the same kernel, bounds and target scaling: the analytic gradient of the log marginal likelihood matches
    finite differences, both fits reach the same likelihood, and with the same hyper-parameters the posteriors
    agree."""
    from scipy.optimize import check_grad
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from admm_tune.optim.bayes.kernel import GaussianProcess, initial_theta

    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(40)
    ours = GaussianProcess(initial_theta(3)).fit(X, y, restarts=2, seed=0)
    value = lambda theta: ours._negative_lml(theta)[0]  # noqa: E731
    gradient = lambda theta: ours._negative_lml(theta)[1]  # noqa: E731
    assert check_grad(value, gradient, initial_theta(3) + 0.3) < 1e-4 * np.linalg.norm(gradient(initial_theta(3) + 0.3))
    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.full(3, 0.3), (1e-2, 1e2), nu=2.5)
              + WhiteKernel(1e-3, (1e-8, 1e-1)))
    theirs = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0).fit(X, y)
    assert -value(ours.theta) == pytest.approx(theirs.log_marginal_likelihood_value_, abs=1e-6)
    np.testing.assert_allclose(ours.theta, theirs.kernel_.theta, atol=1e-4)  # its restarts drawn as scikit-learn's
    same = GaussianProcess(theirs.kernel_.theta).fit(X, y, optimize=False)
    Xq = rng.random((200, 3))
    for a, b in zip(same.predict(Xq, return_std=True), theirs.predict(Xq, return_std=True)):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_with_constraints_a_candidate_is_stopped_only_against_a_feasible_best_and_its_violations_are_imputed():
    # The evaluator stops a candidate worse than the incumbent it was handed before measuring g (as a deployment
    # evaluator skips the deployment of a candidate clearly worse than the best feasible one).
    def evaluate(batch):
        out = []
        for c in batch:
            loss, metrics = quadratic(c.config)
            if c.incumbent and loss > max(c.incumbent):
                out.append(Observation("complete", loss, {}, attrs={"fidelity": 1 / 3, "step_losses": [loss]}))
            else:
                out.append(Observation("complete", loss, metrics, attrs={"step_losses": [loss] * 3}))
        return out

    opt = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [Constraint("g", 2.0, "max")], OptimizerSettings(),
               Budget(evaluations=40), seed=0)
    opt.run(evaluate)
    stopped = [r for r in opt.records if not r.measured]
    assert stopped and all(r.observation.fidelity < 1 for r in stopped)
    for i, r in enumerate(opt.records):  # an incumbent handed is the step losses of a feasible, full record
        if r.candidate.incumbent:
            assert any(q.feasible and q.full and tuple(q.observation.step_losses) == r.candidate.incumbent
                       for q in opt.records[:i])
    measured = np.array([r.violations for r in opt.records if r.measured])
    for r in stopped:  # never feasible; violations within what was measured, not the cap of a missing metric
        assert not r.feasible and r.miss == float("inf")
        assert measured.min() <= r.violations[0] <= measured.max() < 10.0
    best = opt.best()
    assert best.feasible and best.full and best.measured
