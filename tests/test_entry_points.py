"""fit and the estimators work from every way a user runs Python, with one or two worker processes.

Workers never execute the user's main module: the snippet below has no
``__main__`` guard, and before the fix its top level ran again in every
worker (a file) or could not be found (standard input).  Each mode is a
real subprocess (a Jupyter kernel through nbclient).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SNIPPET = Path(__file__).parent / "corpus" / "entry" / "snippet.py"


def _run(args: list[str], tmp_path: Path, n_jobs: int, stdin: str | None = None) -> str:
    env = {**os.environ, "N_JOBS": str(n_jobs)}
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _check(out: str) -> None:
    line = next(line for line in out.splitlines() if line.startswith("ENTRY-OK"))
    assert "evals=6" in line  # the function problem ran its budget, in this process only
    assert out.count("ENTRY-OK") == 1  # the top level ran once: no worker re-ran the script


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("mode", ["file", "stdin", "dash-c"])
def test_a_script_without_a_main_guard_runs(mode, n_jobs, tmp_path):
    code = SNIPPET.read_text()
    if mode == "file":
        script = tmp_path / "first.py"
        script.write_text(code)
        out = _run([sys.executable, str(script)], tmp_path, n_jobs)
    elif mode == "stdin":
        out = _run([sys.executable, "-"], tmp_path, n_jobs, stdin=code)
    else:
        out = _run([sys.executable, "-c", code], tmp_path, n_jobs)
    _check(out)


def test_ipython_runs_the_script(tmp_path):
    pytest.importorskip("IPython")
    script = tmp_path / "first.py"
    script.write_text(SNIPPET.read_text())
    _check(_run([sys.executable, "-m", "IPython", "--no-banner", "--quick", str(script)], tmp_path, 2))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_jupyter_kernel_runs_the_snippet(n_jobs, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("N_JOBS", str(n_jobs))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SNIPPET.read_text())])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {
        "path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for o in notebook.cells[0].outputs if o.get("output_type") == "stream")
    _check(out)


def test_a_dask_local_cluster_without_a_guard_says_why_and_what_to_do(tmp_path):
    """The one mode that cannot work: Dask's LocalCluster spawns workers that run the script again."""
    script = tmp_path / "dask_first.py"
    script.write_text("import admm_tune\nfrom sklearn.datasets import make_classification\n"
                      "X, y = make_classification(60, 4, random_state=0)\n"
                      "admm_tune.fit({'data': {'X': X, 'y': y}, 'objective': {'cv': 3}, 'budget': {'evaluations': 2}},"
                      " backend='dask', n_jobs=2, progress=False, storage='memory')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: the Dask LocalCluster's worker processes did not start")
    assert 'if __name__ == "__main__":' in last and "backend='processes'" in last
