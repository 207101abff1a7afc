"""The `admm-tune` command through subprocess, with real problem files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

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


def test_bad_usage_exits_2():
    assert run("frobnicate").returncode == 2
    assert run("run", "no-such-file.yaml").returncode == 2
