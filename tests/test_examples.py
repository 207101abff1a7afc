"""The examples run end to end with tiny budgets (each in a scratch directory) and write only under ``admm_runs/``
(ignored by git) or the folder they are given, never into the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def ignored(path: str) -> bool:
    """Whether git ignores ``path`` (relative to the repository root)."""
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("script, args, expect", [
    ("quickstart.py", ["6"], "report:"),
    ("sklearn_estimator.py", ["4"], "pickled and restored: same predictions"),
    ("latency_constrained.py", ["8", "0.5"], "ONNX Runtime predicts"),
])
def test_python_examples(tmp_path, script, args, expect):
    """Each runs, says what it shows, and writes only under ``admm_runs/`` (ignored by git), never into the checkout."""
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert expect in out.stdout
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parts[0] == "admm_runs" for p in written), written
    assert all(ignored(str(p)) for p in written)


@pytest.mark.slow
def test_sweep_script(tmp_path):
    env = {**os.environ, "ADMM_TUNE": f"{sys.executable} -m admm_tune.cli"}
    out = subprocess.run(["bash", str(EXAMPLES / "sweep.sh"), str(tmp_path / "sweep"), "3"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(6 rows)" in out.stdout


def test_the_sweep_script_writes_under_an_ignored_folder_by_default():
    default = re.search(r"^OUT=\$\{1:-([^}]+)\}", (EXAMPLES / "sweep.sh").read_text(), flags=re.M).group(1)
    assert ignored(f"{default}/results.csv"), default
