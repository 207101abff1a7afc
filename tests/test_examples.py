"""The examples run end to end with tiny budgets (each in a scratch directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("script, args, expect", [
    ("quickstart.py", ["6"], "report:"),
    ("sklearn_estimator.py", ["4"], "pickled and restored: same predictions"),
    ("latency_constrained.py", ["8", "0.5"], "ONNX Runtime predicts"),
])
def test_python_examples(tmp_path, script, args, expect):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert expect in out.stdout


@pytest.mark.slow
def test_sweep_script(tmp_path):
    env = {**os.environ, "ADMM_TUNE": f"{sys.executable} -m admm_tune.cli"}
    out = subprocess.run(["bash", str(EXAMPLES / "sweep.sh"), str(tmp_path / "sweep"), "3"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "(6 rows)" in out.stdout
