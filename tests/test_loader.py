"""``load_model.py`` serves an exported deployment from raw records where only its backend and numpy can be imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import admm_tune
from admm_tune.data import records

ONLY_THE_BACKEND = """
import importlib.abc, json, runpy, sys
import numpy as np
BLOCKED = {"admm_tune", "sklearn", "skl2onnx", "onnx", "scipy", "optuna", "joblib", "matplotlib", "yaml", "dask",
           "cloudpickle", "sqlalchemy", "pandas"}
class Blocker(importlib.abc.MetaPathFinder):  # a deployment machine: none of these is installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocker())
runpy.run_path("load_model.py", run_name="__main__")  # as a user runs it: prints the example rows' predictions
model = runpy.run_path("load_model.py", run_name="loader")["load"](".")
records = json.load(open("rows.json"))
np.save("labels.npy", model.predict(records))
"""


def mixed_data(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n)})
    return X, ((X["x"] > 0) ^ (X["colour"] == "red")).astype(int).to_numpy()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("data", ["numeric", "categorical"])
def test_load_model_serves_raw_records_with_only_the_backend_and_numpy(tmp_path, backend, data):
    if data == "numeric":
        from sklearn.datasets import load_breast_cancer

        X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    else:
        X, y = mixed_data()
    result = admm_tune.fit({"name": "loader", "data": {"X": X, "y": np.asarray(y)}, "objective": {"cv": 3},
                            "restrict": {"estimator": ["logistic_regression", "decision_tree"], "backend": [backend],
                                         "scaler": ["none"], "transformer": ["none"], "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.02, "min_runs": 5}}, "budget": {"evaluations": 3},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    assert result.feasible and result.onnx_path == tmp_path / "model.onnx"
    spec = json.loads((tmp_path / "deployment.json").read_text())
    assert spec["backend"] == backend and "session" in spec
    rows = X.iloc[:40].reset_index(drop=True)
    (tmp_path / "rows.json").write_text(json.dumps(records(rows)))
    out = subprocess.run([sys.executable, "-I", "-c", ONLY_THE_BACKEND], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "predict" in out.stdout  # the script itself printed the example rows' predictions
    labels = np.load(tmp_path / "labels.npy", allow_pickle=True)
    assert (labels == result.pipeline.predict(result.problem.data.prepare(rows))).mean() >= 0.95
