"""The `admm-tune` command through subprocess, with real problem files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from waiting import wait_for_trials

import admm_tune
from admm_tune.cli import main

CLI = [sys.executable, "-m", "admm_tune.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_validate_ok_and_bad(tmp_path):
    ok = run("validate", "problems/wine.yaml")
    assert ok.returncode == 0 and "ok" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": "sklearn:wine", "budget": {"evaluations": "many"}}))
    out = run("validate", str(bad))
    assert out.returncode == 2
    assert "budget.evaluations: expected an integer, got 'many'" in out.stderr


def test_run_prints_the_pipeline_and_trace(tmp_path):
    problem = tmp_path / "p.yaml"
    problem.write_text(yaml.safe_dump({"name": "tiny", "data": "sklearn:iris", "objective": {"cv": 3},
                                       "restrict": {"estimator": ["knn", "logistic_regression"]},
                                       "budget": {"evaluations": 6}}))
    out = run("run", str(problem), "--seed", "0", "--out", str(tmp_path / "run"), "--budget", "7")
    assert out.returncode == 0, out.stderr
    assert "best" in out.stdout and "ADMM trace" in out.stdout and "evaluations  7" in out.stdout
    assert (tmp_path / "run" / "journal.db").is_file()
    assert "7/7 evals" in out.stderr


def in_process(*args: str) -> int:
    """``admm-tune ARGS`` run by :func:`admm_tune.cli.main` in this process (argparse's exits included): the
    command line's own code without a new interpreter's 2-4 s of imports; the subprocess tests cover the entry
    point and its exit status."""
    try:
        return main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_bad_usage_exits_2(capsys):
    assert in_process("frobnicate") == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err
    assert in_process("run", "no-such-file.yaml") == 2 and "no-such-file.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "resume", "sweep", "report", "validate", "backends"])
def test_every_command_has_help(command, capsys):
    assert in_process(command, "--help") == 0
    assert capsys.readouterr().out.startswith(f"usage: admm-tune {command}")


def test_help_is_plain_text_and_the_python_backends_table_prints_every_reason_whole(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    table = admm_tune.list_backends()
    printed = repr(table)
    assert all(str(reason) in printed for reason in table["reason"])  # pandas would cut them at 50 characters
    assert isinstance(table, pd.DataFrame) and isinstance(table[table["available"]], pd.DataFrame)


def test_bad_destinations_exit_2_naming_the_option_without_a_traceback(tmp_path, capsys):
    problem = tiny_problem(tmp_path / "p.yaml", "dest", "sklearn:iris")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for args, option in ((["--out", str(blocker / "run")], "--out"),
                         (["--storage", f"sqlite:///{tmp_path / 'missing' / 'j.db'}"], "--storage"),
                         (["--storage", "not a url"], "--storage")):
        assert in_process("run", str(problem), "--no-progress", *args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"admm-tune: {option}: ") and "Traceback" not in err, err


def tiny_problem(path: Path, name: str, data: str) -> Path:
    path.write_text(yaml.safe_dump({"name": name, "data": data, "objective": {"cv": 3},
                                    "restrict": {"estimator": ["logistic_regression", "knn"], "transformer": ["none"]},
                                    "budget": {"evaluations": 4}}))
    return path


@pytest.mark.slow
def test_an_interrupted_sweep_finishes_only_the_missing_combinations(tmp_path):
    files = [str(tiny_problem(tmp_path / "a.yaml", "tiny_iris", "sklearn:iris")),
             str(tiny_problem(tmp_path / "b.yaml", "tiny_wine", "sklearn:wine"))]
    out = tmp_path / "sweep"
    args = [*CLI, "sweep", *files, "--seeds", "0-1", "--budgets", "3,4", "--out", str(out)]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill on an observable state, the first combination written, however slow the machine: the sweep runs one
    # combination at a time, each of several evaluations in worker processes, so the next takes seconds.
    deadline = time.monotonic() + 900
    while not list(out.glob("*/sweep.json")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the sweep ended before it could be cut off"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    done = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/sweep.json")}
    assert 1 <= len(done) < 8, "the sweep should have been cut off half-way"
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} of 8 combinations already complete" in again.stdout
    for name, mtime in done.items():  # complete combinations were not run again
        assert (out / name / "sweep.json").stat().st_mtime_ns == mtime
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 8 and set(table["status"]) == {"complete"}
    assert len(pd.read_parquet(out / "results.parquet")) == 8
    assert sorted(table["seed"].unique()) == [0, 1] and sorted(table["budget"].astype(str).unique()) == ["3", "4"]


def test_sweep_refuses_bad_seeds_and_budgets(tmp_path):
    file = str(tiny_problem(tmp_path / "a.yaml", "tiny_iris", "sklearn:iris"))
    bad_seeds = run("sweep", file, "--seeds", "4-1", "--out", str(tmp_path / "s"))
    assert bad_seeds.returncode == 2 and "--seeds" in bad_seeds.stderr
    bad_budget = run("sweep", file, "--budgets", "fast", "--out", str(tmp_path / "s"))
    assert bad_budget.returncode == 2 and "--budgets" in bad_budget.stderr
    twin = str(tiny_problem(tmp_path / "b.yaml", "tiny_iris", "sklearn:wine"))  # same name: same run directories
    same_name = run("sweep", file, twin, "--out", str(tmp_path / "s"))
    assert same_name.returncode == 2 and "'tiny_iris'" in same_name.stderr


def test_ctrl_c_prints_one_line_with_the_resume_command_and_exits_130(tmp_path):
    problem = tiny_problem(tmp_path / "p.yaml", "tiny_iris", "sklearn:iris")
    run_dir = tmp_path / "run"
    # A terminal's Ctrl-C finds SIGINT at its default; a test run started in the background of a non-interactive
    # shell (nohup make test &) ignores SIGINT, which every child inherits and Python then keeps ignoring.
    process = subprocess.Popen([*CLI, "run", str(problem), "--budget", "500", "--out", str(run_dir), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_trials(process, f"sqlite:///{run_dir / 'journal.db'}", "tiny_iris", 2)  # some evaluations finish
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group, workers included
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.fullmatch(rf"admm-tune: interrupted after \d+ evaluations; continue with: admm-tune resume {run_dir}",
                        lines[0]), lines[0]
    again = run("resume", str(run_dir), "--budget", "8", "--no-progress")
    assert again.returncode == 0, again.stderr


def test_version_and_a_backends_table_in_100_columns():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"admm-tune {admm_tune.__version__}"
    table = run("backends")
    assert table.returncode == 0 and "onnxruntime" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 100


def test_report_on_a_run_given_arrays_from_python_says_why_not(tmp_path):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    admm_tune.fit({"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": {"evaluations": 2},
                   "restrict": {"estimator": ["knn"]}}, run_dir=tmp_path / "run", progress=False)
    out = run("report", str(tmp_path / "run"))
    assert out.returncode == 2
    assert "data.X, data.y were Python objects" in out.stderr and "result.report(path)" in out.stderr


def test_the_sweep_table_has_typed_budget_columns(tmp_path):
    file = str(tiny_problem(tmp_path / "a.yaml", "tiny_iris", "sklearn:iris"))
    out = run("sweep", file, "--seeds", "0", "--budgets", "2,3s", "--out", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    table = pd.read_parquet(tmp_path / "s" / "results.parquet")
    by_label = table.set_index("budget")
    assert by_label.loc["2", "budget_evaluations"] == 2 and pd.isna(by_label.loc["2", "budget_seconds"])
    assert by_label.loc["3s", "budget_seconds"] == 3.0 and pd.isna(by_label.loc["3s", "budget_evaluations"])
    assert str(table["budget_evaluations"].dtype) == "Int64" and table["budget_seconds"].dtype == "float64"
    assert "wall_s" in table and "test_score" in table
