"""Resume with nothing lost: a real run killed with SIGKILL and continued from its journal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime

import optuna
import pytest
import yaml
from waiting import finished, wait_for_trials

import admm_tune
from admm_tune import RunError

PROBLEM = {"name": "killed", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
           "restrict": {"estimator": ["logistic_regression", "knn", "decision_tree", "gaussian_nb"],
                        "transformer": ["none", "pca"]},
           # Timing each deployment for 0.2 s makes a kill likely to land in the middle of an evaluation.
           "deployment": {"space": "cpu", "timing": {"warmup": 2, "min_runs": 10, "max_runs": 100000,
                                                     "seconds": 0.2}},
           "budget": {"evaluations": 24}, "seed": 0}


@pytest.mark.slow
def test_a_killed_run_resumes_without_losing_or_repeating_work(tmp_path):
    problem = tmp_path / "killed.yaml"
    problem.write_text(yaml.safe_dump(PROBLEM))
    run_dir = tmp_path / "run"
    storage = f"sqlite:///{run_dir / 'journal.db'}"
    cli = [sys.executable, "-m", "admm_tune.cli"]
    proc = subprocess.Popen([*cli, "run", str(problem), "--out", str(run_dir), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill on an observable state, 12 finished evaluations in the journal; the next 12 take seconds (each is
    # timed for 0.2 s), so the kill lands half-way however slow the machine.
    wait_for_trials(proc, storage, "killed", 12)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = datetime.now()  # the journal's clock: local time
    before = finished(storage, "killed")
    assert 12 <= len(before) < 24, f"{len(before)} evaluations: the run should have been killed half-way"
    done_before = {t.number: t.user_attrs["config"] for t in before}

    out = subprocess.run([*cli, "resume", str(run_dir), "--no-progress"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    study = optuna.load_study(study_name="killed", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert all(t.state.is_finished() for t in trials)
    interrupted = [t for t in trials if t.user_attrs.get("reason") == "interrupted"]
    counted = [t for t in trials if t.user_attrs.get("reason") != "interrupted"]
    assert len(counted) == 24  # the same total as an uninterrupted run
    for number, config in done_before.items():  # finished evaluations kept, untouched
        assert study.trials[number].user_attrs["config"] == config
    complete = [t.user_attrs["config"] for t in counted if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(set(complete))  # no completed evaluation run twice
    for t in (t for t in interrupted if "config" in t.user_attrs):  # started when killed: retried exactly once
        retries = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert len(retries) == 1 and retries[0].user_attrs["config"] == t.user_attrs["config"]
    resumed = [t for t in counted if t.number not in done_before]
    assert resumed and all(t.datetime_start > killed_at for t in resumed)  # the resumed process ran the rest
    # The result is read from the whole journal: its best is the best feasible evaluation before or after the kill.
    best = json.loads((run_dir / "result.json").read_text())["best"]
    feasible = [t.value for t in counted if t.user_attrs.get("feasible")]
    assert best["feasible"] and best["loss"] == min(feasible)
    iterations = [json.loads(v["state"])["iteration"] for k, v in sorted(study.user_attrs.items())
                  if k.startswith("admm:")]
    assert iterations == list(range(1, len(iterations) + 1))  # the trace goes on where it stopped
    assert (run_dir / "report.html").is_file()


def test_fit_resume_extends_a_finished_run_to_a_larger_budget(tmp_path, fast_problem_dict):
    first = admm_tune.fit(fast_problem_dict, budget=8, run_dir=tmp_path, progress=False)
    more = admm_tune.fit(fast_problem_dict, budget=12, run_dir=tmp_path, progress=False, resume=True)
    assert len(first.trials) == 8 and len(more.trials) == 12
    assert list(more.trials["config"][:8]) == list(first.trials["config"])
    assert more.trials["config"].is_unique
    # The resumed result judges all 12 evaluations, not only its own 4 (nor only the first 8).
    feasible = more.trials[more.trials["feasible"].astype(bool)]
    assert more.best.feasible and more.best.loss == feasible["loss"].min()
    assert admm_tune.Result.load(tmp_path).problem.budget.evaluations == 12  # a later plain resume keeps it


def test_resume_needs_a_journal(tmp_path, fast_problem_dict):
    with pytest.raises(RunError, match="not a run directory"):
        admm_tune.runner.resume(tmp_path)
    with pytest.raises(admm_tune.ProblemError, match="resume"):
        admm_tune.fit(fast_problem_dict, resume=True, progress=False)


def test_reopening_closes_trials_left_running_or_enqueued(tmp_path):
    from admm_tune import SearchSpace
    from admm_tune.journal import Journal

    space = SearchSpace.from_dict({"modules": [{"name": "m", "algorithms": [{"name": "a"}, {"name": "b"}]}]})
    storage = f"sqlite:///{tmp_path / 'j.db'}"
    journal = Journal(storage, "cut", space)
    journal.start({"m": "a"}, {"config": '{"m": "a"}', "step": "init", "iteration": 0})  # running when killed
    journal.study.enqueue_trial({"m": "b"})  # killed between enqueue and ask
    again = Journal.reopen(storage, "cut", space)
    states = [t.state for t in again.study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL] * 2
    assert [t.user_attrs["reason"] for t in again.study.get_trials()] == ["interrupted"] * 2
    assert [a["config"] for a in again.interrupted()] == ['{"m": "a"}']  # only a started evaluation is retried
