"""The examples write only under ``admm_runs/`` (ignored by git) or a temporary folder, never into the checkout."""

from __future__ import annotations

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


def test_the_sweep_script_writes_under_an_ignored_folder_by_default():
    default = re.search(r"^OUT=\$\{1:-([^}]+)\}", (EXAMPLES / "sweep.sh").read_text(), flags=re.M).group(1)
    assert ignored(f"{default}/results.csv"), default


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [("quickstart.py", ["3"]), ("sklearn_estimator.py", ["3"])])
def test_python_examples_write_only_under_admm_runs(tmp_path, script, args):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.parts[0] == "admm_runs" for p in written), written
    assert all(ignored(str(p)) for p in written)
