"""No evaluation is spent twice on a failure that follows from a structure; a trial starts in one write."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from admm_tune import AutoPipelineClassifier, SearchSpace
from admm_tune.journal import MEMORY, Journal
from admm_tune.observation import COMPLETE, Observation
from admm_tune.optim import ADMM
from admm_tune.problem import Budget, OptimizerSettings

SPACE = {"modules": [
    {"name": "m", "algorithms": [{"name": n, "params": {"x": {"type": "float", "low": 0, "high": 1}}}
                                 for n in ("a", "b", "c")]},
    {"name": "d", "algorithms": [{"name": "p"}, {"name": "q"}]}]}


def _structural_evaluator(seen: list[dict]):
    """(m=b, d=q) fails by structure (as int8 on a graph without weights); the rest is a smooth loss."""
    def evaluate(batch):
        out = []
        for candidate in batch:
            config = candidate.config
            seen.append(config)
            if config["m"] == "b" and config["d"] == "q":
                out.append(Observation.failed("deploy: int8: the graph has no MatMul/Gemm weights to quantise",
                                              structural="m,d"))
            else:
                x = config[f"m.{config['m']}.x"]
                out.append(Observation(COMPLETE, (x - 0.3) ** 2 + (config["m"] == "c"), {}))
        return out
    return evaluate


@pytest.mark.parametrize("seed", range(20))
def test_a_structural_failure_bans_its_structure_for_the_rest_of_the_run(seed):
    seen: list[dict] = []
    opt = ADMM(SearchSpace.from_dict(SPACE), [], OptimizerSettings(initial_pulls=6), Budget(evaluations=40), seed)
    opt.run(_structural_evaluator(seen))
    pairs = [(c["m"], c["d"]) for c in seen]
    assert pairs.count(("b", "q")) <= 1  # every seed: tried at most once, never again after it failed
    assert len(seen) == 40 and sum(p == ("b", "p") for p in pairs) >= 1  # the rest of the space is still searched


def test_a_resumed_run_remembers_its_bans():
    seen: list[dict] = []
    space = SearchSpace.from_dict(SPACE)
    first = ADMM(space, [], OptimizerSettings(initial_pulls=6), Budget(evaluations=20), 0)
    first.run(_structural_evaluator(seen))
    assert ("b", "q") in [(c["m"], c["d"]) for c in seen]  # seed 0 meets the failure in its first 20
    history = [(r.candidate, r.observation) for r in first.records]
    resumed = ADMM(space, [], OptimizerSettings(initial_pulls=6), Budget(evaluations=60), 0)
    resumed.restore(history, first.trace)
    later: list[dict] = []
    resumed.run(_structural_evaluator(later))
    assert later and not [c for c in later if c["m"] == "b" and c["d"] == "q"]


def test_int8_is_never_proposed_for_a_pipeline_without_weights():
    """The int8 case of the issue, seeds 0–9: no evaluation lost to int8 on a graph with nothing to quantise,
    and no structure evaluated again after any structural failure."""
    X, y = make_classification(200, 8, random_state=0)
    for seed in range(10):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoPipelineClassifier(max_evals=6, random_state=seed, n_jobs=2, deployment={
                "space": "cpu", "timing": {"seconds": 0.02, "min_runs": 10}}).fit(X, y)  # latency plays no part
        trials = model.result_.trials
        assert not trials["reason"].fillna("").str.contains("no MatMul/Gemm").any(), (seed, trials["reason"])
        banned: set[str] = set()
        for _, trial in trials.iterrows():
            assert trial["structure"] not in banned, (seed, trial["structure"])
            if trial["state"] == "fail" and isinstance(trial.get("structural"), str):
                banned.add(trial["structure"])


def test_a_trial_starts_in_one_write_and_finishes_in_two(tmp_path):
    """Its config and attributes in one transaction: a kill at any moment leaves no trial or a whole one; its
    outcome's attributes in one more (a commit waits for the disk), then its state."""
    from sqlalchemy import event

    space = SearchSpace.from_dict(SPACE)
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}", "run", space)
    engine = journal.study._storage._backend.engine if hasattr(journal.study._storage, "_backend") \
        else journal.study._storage.engine
    writes: list[str] = []  # statements that write, since the last commit
    commits: list[list[str]] = []  # per committed transaction that wrote anything: its writes

    def statement(conn, cursor, sql, *args):
        if sql.lstrip().split(" ")[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(sql.split("(")[0])

    def commit(conn):
        if writes:
            commits.append(list(writes))
            writes.clear()

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    config = space.complete({"m": "b", "d": "q"})
    trial = journal.start(config, {"step": "init", "config": "{}", "iteration": 0})
    assert len(commits) == 1 and len(commits[0]) >= 3, commits  # the trial, its params and attributes, together
    frozen = journal.study.get_trials(deepcopy=False)[0]
    assert frozen.state.name == "RUNNING" and frozen.params == {"m": "b", "d": "q", "m.b.x": config["m.b.x"]}
    assert frozen.user_attrs["step"] == "init" and trial.number == frozen.number
    assert MEMORY == "memory" and np.isfinite(config["m.b.x"])
    commits.clear()
    journal.finish(trial, Observation(COMPLETE, 0.5, {"accuracy": 0.9, "latency_p95_ms": 0.1}), 0.0)
    assert len(commits) == 2 and len(commits[0]) >= 7, commits  # its attributes together, then its state
    frozen = journal.study.get_trials(deepcopy=False)[0]
    assert frozen.state.name == "COMPLETE" and frozen.value == 0.5 and frozen.user_attrs["feasible"]
    assert frozen.user_attrs["metric:latency_p95_ms"] == 0.1 and frozen.user_attrs["step"] == "init"
