"""Regression targets and inputs at any scale: fitted, deployed and served as they are at the scale of 1.

Before: a target at 1e7 ± 3 disagreed on every row (float32 holds 1e7 to a unit, and fp16 not at all), and an
MLP or a linear SVR fitted to it scored losses of 1e14 where Bayesian ridge scored 0.008.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import r2_score

import admm_tune
from admm_tune.evaluate.deploy import DeploymentEvaluator
from admm_tune.evaluate.export import restore
from admm_tune.evaluate.pipeline import MLEvaluator
from admm_tune.problem import load_problem

RNG = np.random.default_rng(0)
X = RNG.normal(size=(240, 4))
SIGNAL = X[:, 0] + 0.5 * X[:, 1]
TARGETS = {"1e7 +- 3": 1e7 + 3 * SIGNAL, "-4e6 +- 2": -4e6 + 2 * SIGNAL,
           "heavy-tailed": np.exp(2 * SIGNAL) + RNG.standard_t(2, size=240)}


def space(estimator: str, backend: str = "onnxruntime", precision: str = "fp32") -> dict:
    return {"scaler": "standard", "transformer": "none", "estimator": estimator, "backend": backend,
            "precision": precision}


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_target_at_any_scale_deploys_and_agrees(name, backend):
    problem = load_problem({"data": {"X": X, "y": TARGETS[name]}, "objective": {"cv": 3}, "deployment":
                            {"timing": {"seconds": 0.01, "min_runs": 3}}})
    evaluator = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    for estimator in ("ridge", "mlp", "linear_svr"):
        obs = evaluator(problem.space.complete(space(estimator, backend)))
        assert obs.ok, (estimator, obs.reason)
        assert obs.attrs["verification"].startswith("agrees"), (estimator, obs.attrs["verification"])
        assert obs.metrics["max_output_diff"] < 1e-3, estimator  # in target sd


def test_scale_sensitive_estimators_fit_an_offset_target_as_a_centred_one():
    """The same CV score (R², invariant to the offset) with the target at 1e7 and at 0, for every estimator that
    is sensitive to the target's scale: they are fitted on the standardised target."""
    scores = {}
    for offset in (0.0, 1e7):
        problem = load_problem({"data": {"X": X, "y": offset + 3 * SIGNAL}, "objective": {"cv": 3}})
        evaluator = MLEvaluator(problem.space, problem.data, problem.objective, seed=0)
        for estimator in ("mlp", "linear_svr", "sgd"):
            config = problem.space.complete({"scaler": "standard", "transformer": "none", "estimator": estimator})
            obs = evaluator(config)
            assert obs.ok, obs.reason
            scores[offset, estimator] = obs.metrics["cv_score"]
    for estimator in ("mlp", "linear_svr", "sgd"):
        assert scores[1e7, estimator] > 0.9, (estimator, scores)
        assert scores[1e7, estimator] == pytest.approx(scores[0.0, estimator], abs=0.02), estimator


def test_the_exported_regressor_restores_the_target_in_float64(tmp_path):
    y = TARGETS["1e7 +- 3"]
    result = admm_tune.fit({"data": {"X": X, "y": y}, "objective": {"cv": 3}, "budget": 2, "seed": 0,
                            "restrict": {"scaler": ["standard"], "transformer": ["none"], "estimator": ["ridge"],
                                         "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.01, "min_runs": 3}}},
                           run_dir=tmp_path, progress=False)
    import runpy

    served = runpy.run_path(str(tmp_path / "load_model.py"))["load"](tmp_path)
    records = [{f"x{j}": float(v) for j, v in enumerate(row)} for row in X[:50]]
    predicted = served.predict(records)
    expected = result.pipeline.predict(result.problem.data.prepare(records))
    assert np.abs(predicted - expected).max() < 1e-3 * np.std(y)  # float32 alone is off by up to 0.5 here
    assert r2_score(y[:50], predicted) > 0.99


def test_fp16_is_left_out_or_refused_where_values_exceed_its_range():
    wide = X.copy()
    wide[:, 0] *= 1e6
    problem = load_problem({"data": {"X": wide, "y": SIGNAL}, "objective": {"cv": 3}, "deployment": "cpu"})
    assert "fp16" not in problem.space.module("precision").names
    assert any("fp16 left out" in note for note in problem.notes)
    scaled = X * 300  # within range, but degree-2 features of it are not
    problem = load_problem({"data": {"X": scaled, "y": SIGNAL}, "objective": {"cv": 3}, "deployment": "cpu",
                            "restrict": {"backend": ["openvino"]}})
    if "fp16" not in problem.space.module("precision").names:
        pytest.skip("this CPU offers OpenVINO no fp16")
    evaluator = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    config = problem.space.complete({"scaler": "none", "transformer": "polynomial", "estimator": "ridge",
                                     "backend": "openvino", "precision": "fp16"})
    obs = evaluator(config)
    assert not obs.ok and "beyond float16's range" in obs.reason and "compile" not in obs.metrics


def test_restore_is_the_identity_for_a_graph_of_the_target_itself():
    import onnx

    values = np.arange(3.0)
    assert restore(onnx.ModelProto(), values) is not None and (restore(onnx.ModelProto(), values) == values).all()
