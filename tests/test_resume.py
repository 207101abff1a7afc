"""Resume with nothing lost: a real run killed with SIGKILL and continued from its journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import yaml
from waiting import finished, wait_for_trials

import admm_tune
from admm_tune import RunError

ROOT = Path(__file__).resolve().parent.parent

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


def _table(tmp_path, rows: int = 120, extra: bool = False, flip: int | None = None):
    """A CSV of breast_cancer's first ``rows`` rows (target ``target``), written beside a problem that reads it."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:rows].copy()
    if extra:
        frame.insert(0, "added column", range(rows))
    if flip is not None:
        frame.loc[flip, "target"] = 1 - frame.loc[flip, "target"]
    frame.to_csv(tmp_path / "table.csv", index=False)
    return str(tmp_path / "table.csv")


CHANGES = {  # what a user edits in a problem between a run and its resume → the parts the refusal names
    "scoring": ({"objective": {"cv": 3, "scoring": "neg_log_loss"}}, {"objective"}),
    "folds": ({"objective": {"cv": 4}}, {"objective"}),
    "restrict": ({"restrict": {"estimator": ["knn"]}}, {"space"}),
    "constraint": ({"constraints": [{"metric": "fit_time_s", "max": 5.0}]}, {"constraints"}),
    # a deployment adds backend and precision to the space and its own output_mismatch constraint
    "deployment": ({"deployment": "cpu"}, {"deployment", "space", "constraints"}),
    "a row changed": ({"data": ("flip", 7)}, {"data"}),
    "a row added": ({"data": ("rows", 121)}, {"data"}),
    "a column added": ({"data": ("extra", True)}, {"data"}),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_resume_refuses_a_changed_problem_naming_what_changed_and_touches_nothing(tmp_path, change):
    problem = {"name": "changed", "data": _table(tmp_path), "objective": {"cv": 3},
               "restrict": {"estimator": ["logistic_regression", "gaussian_nb"], "transformer": ["none"]},
               "budget": {"evaluations": 3}, "seed": 0}
    run = tmp_path / "run"
    first = admm_tune.fit(problem, run_dir=run, progress=False)
    edit, parts = CHANGES[change]
    changed = {**problem, **edit}
    if "data" in edit:
        key, value = edit["data"]
        changed["data"] = _table(tmp_path, **{key: value})
    with pytest.raises(admm_tune.ProblemError, match=r"^resume: the problem changed since the run started: ") as no:
        admm_tune.fit(changed, budget=6, run_dir=run, progress=False, resume=True)
    named = {p for p in ("data", "objective", "space", "constraints", "deployment") if f"{p} (" in str(no.value)}
    assert named == parts  # what changed, and only that
    trials = optuna.load_study(study_name="changed", storage=f"sqlite:///{run / 'journal.db'}").trials
    assert len(trials) == len(first.trials) == 3  # the journal was not touched
    if "data" in edit:  # the run's own data again: the resume goes on
        _table(tmp_path)
    else:
        changed = problem
    assert len(admm_tune.fit(changed, budget=5, run_dir=run, progress=False, resume=True).trials) == 5


def test_what_may_change_on_resume_does_not_count_as_a_changed_problem(tmp_path, fast_problem_dict):
    from admm_tune.fingerprint import changes, fingerprint
    from admm_tune.problem import load_problem

    before = fingerprint(load_problem(fast_problem_dict))
    after = fingerprint(load_problem({**fast_problem_dict, "budget": {"seconds": 30}, "seed": 5,
                                      "isolation": {"seconds": 20}, "optimizer": {"rho": 2.0}}))
    assert changes(before, after) == []
    assert changes({}, after) == []  # a journal from before fingerprints: nothing to compare


@pytest.mark.slow
def test_the_command_line_refuses_a_changed_problem_with_exit_2_and_forks_a_new_run(tmp_path):
    problem = tmp_path / "p.yaml"
    fields = {"name": "edited", "data": _table(tmp_path), "objective": {"cv": 3, "scoring": "balanced_accuracy"},
              "restrict": {"estimator": ["logistic_regression", "gaussian_nb"], "transformer": ["none"]},
              "budget": {"evaluations": 3}, "seed": 0}
    problem.write_text(yaml.safe_dump(fields))
    cli = [sys.executable, "-m", "admm_tune.cli"]
    run = tmp_path / "runs" / "first"
    out = subprocess.run([*cli, "run", str(problem), "--out", str(run), "--no-progress"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    problem.write_text(yaml.safe_dump({**fields, "objective": {"cv": 3, "scoring": "neg_log_loss"}}))
    out = subprocess.run([*cli, "resume", str(run), "--no-progress"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "objective (was scoring balanced_accuracy, cv 3, now scoring neg_log_loss, cv 3)" in out.stderr
    assert f"admm-tune resume {run} --fork" in out.stderr  # a command to paste
    out = subprocess.run([*cli, "resume", str(run), "--fork", "--no-progress"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    forks = [d for d in run.parent.iterdir() if d != run]
    assert len(forks) == 1
    fork = admm_tune.Result.load(forks[0])
    assert fork.problem.objective.scoring == "neg_log_loss" and len(fork.trials) == 3  # none of the first run's
    assert optuna.load_study(study_name="edited", storage=f"sqlite:///{forks[0] / 'journal.db'}"
                             ).user_attrs["forked_from"] == str(run)
    assert len(admm_tune.Result.load(run).trials) == 3  # the first run is left as it was


def test_the_fingerprint_of_an_unchanged_problem_is_the_same_in_every_process(tmp_path):
    # Sets (the space's forbidden combinations) iterate in an order that changes with the hash seed: two processes
    # with different seeds must agree, for an ML problem with a deployment and for a deploy problem.
    code = ("import json, sys; sys.path.insert(0, 'tests'); from test_resume import PROBLEM; "
            "from admm_tune.problem import load_problem; from admm_tune.fingerprint import fingerprint; "
            "print(json.dumps([fingerprint(load_problem(p)) for p in "
            "(dict(PROBLEM), 'problems/onnx_model_deploy.yaml')]))")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, cwd=ROOT).stdout for seed in ("1", "2")}
    assert len(seen) == 1 and "digest" in seen.pop()
