"""``load_model.py`` runs an exported deployment where only its backend, numpy and pandas can be imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import admm_tune
from admm_tune.data import as_categories

ONLY_THE_BACKEND = """
import importlib.abc, json, runpy, sys
import numpy as np
BLOCKED = {"admm_tune", "sklearn", "skl2onnx", "onnx", "scipy", "optuna", "joblib", "matplotlib", "yaml", "dask",
           "cloudpickle", "sqlalchemy"}
class Blocker(importlib.abc.MetaPathFinder):  # a deployment machine: none of these is installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Blocker())
runpy.run_path("load_model.py", run_name="__main__")  # as a user runs it: prints the outputs
loader = runpy.run_path("load_model.py", run_name="loader")
spec = json.load(open("deployment.json"))
import pandas as pd
rows = pd.read_json("rows.json", orient="split")
session = loader["open_session"]("model.onnx", spec["session"])
np.save("labels.npy", np.asarray(loader["infer"](session, loader["feeds"](rows, spec["graph_inputs"]))[0]).reshape(-1))
"""


def mixed_data(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n)})
    return X, ((X["x"] > 0) ^ (X["colour"] == "red")).astype(int).to_numpy()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("data", ["numeric", "categorical"])
def test_load_model_runs_with_only_the_backend_numpy_and_pandas(tmp_path, backend, data):
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
    rows = as_categories(X.iloc[:40].reset_index(drop=True), result.problem.data.categorical)
    rows.to_json(tmp_path / "rows.json", orient="split")
    out = subprocess.run([sys.executable, "-I", "-c", ONLY_THE_BACKEND], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert spec["outputs"][0] in out.stdout  # the script itself printed its outputs
    labels = np.load(tmp_path / "labels.npy", allow_pickle=True)
    assert (labels == result.pipeline.predict(rows)).mean() >= 0.95
