"""Deployment problems end to end: loading, validation, verification, reuse of fits, export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from reference import p95_ms, reference_p95_ms

import admm_tune
from admm_tune import ProblemError, load_problem
from admm_tune.deployment import DEPLOY_METRICS
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.deploy import DeploymentEvaluator
from admm_tune.evaluate.pipeline import STOPPED_WORSE
from admm_tune.evaluate.timing import TimingSettings

ROOT = Path(__file__).resolve().parent.parent

FAST_TIMING = {"warmup": 2, "min_runs": 10, "max_runs": 50, "seconds": 0.02}
P95_TOLERANCE = 1.5
"""A re-measured p95 may exceed the bound by this factor: five p95 figures of one session spread by at
most 13 % on this machine (benchmarks/results/deployment.md), and CI machines are shared."""


def deployed(**changes) -> dict:
    problem = {"name": "deployed", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
               "restrict": {"estimator": ["logistic_regression", "knn", "random_forest", "gaussian_nb"],
                            "transformer": ["none", "pca"]},
               "deployment": {"space": "cpu", "batch_size": 64, "timing": FAST_TIMING},
               "budget": {"evaluations": 16}, "seed": 0}
    problem.update(changes)
    return problem


def test_the_joint_space_is_fitted_to_this_machine():
    problem = load_problem(deployed())
    assert problem.space.module_names == ("scaler", "transformer", "estimator", "backend", "precision")
    assert problem.space.groups == ("ml", "deployment")
    assert problem.constraints[-1].metric == "output_mismatch"
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):  # never int8 on OpenVINO, bf16 on ONNX Runtime; tree ensembles everywhere (lowered)
        config = problem.space.sample(rng)
        seen.add((config["backend"], config["estimator"]))
        assert (config["backend"], config["precision"]) not in {("openvino", "int8"), ("onnxruntime", "bf16"),
                                                                ("onnxruntime", "fp16")}
    assert ("openvino", "random_forest") in seen
    # OpenVINO's threads are those of all its streams together: THROUGHPUT's own setting (as many streams as
    # cores, sharing them) is allowed, as on a deploy problem
    both = {"backend.openvino.num_streams": admm_tune.machine.cores(),
            "backend.openvino.inference_num_threads": admm_tune.machine.cores()}
    assert problem.space.allowed(problem.space.complete({"scaler": "none", "transformer": "none",
                                                         "estimator": "logistic_regression", "backend": "openvino",
                                                         "precision": "fp32", **both}))


def test_gpu_space_is_refused_here_with_the_reasons():
    if get_backend("tensorrt").available()[0]:
        pytest.skip("this machine has TensorRT")
    with pytest.raises(ProblemError, match=r"deployment\.space: no backend .* tensorrt: no NVIDIA GPU"):
        load_problem(deployed(deployment="gpu"))


def knob_space(**params) -> dict:
    return {"modules": [{"name": "backend", "algorithms": [{"name": "onnxruntime", "params": params}]},
                        {"name": "precision", "algorithms": [{"name": "fp32"}]}]}


KNOBS = "deployment.space.modules[0].algorithms[0].params"
MALFORMED = [
    (deployed(deployment={"space": knob_space(intra_op_num_threads={"type": "int", "low": -1, "high": 2})}),
     f"{KNOBS}.intra_op_num_threads.low", "must be >= 1"),
    (deployed(deployment={"space": knob_space(threads={"type": "int", "low": 1, "high": 2})}),
     f"{KNOBS}.threads", "unknown knob of onnxruntime"),
    (deployed(deployment={"space": knob_space(execution_mode={"type": "categorical", "choices": ["fast"]})}),
     f"{KNOBS}.execution_mode.choices", "'fast' is not a value"),
    (deployed(deployment={"space": knob_space(intra_op_num_threads={"type": "categorical", "choices": [1]})}),
     f"{KNOBS}.intra_op_num_threads.type", "integer knob"),
    (deployed(deployment={"space": {"modules": [
        {"name": "backend", "algorithms": [{"name": "onnxruntime"}]},
        {"name": "precision", "algorithms": [{"name": "fp8"}]}]}}),
     "deployment.space.modules[1].algorithms[0].name", "unknown precision 'fp8'"),
    (deployed(deployment={"space": {"modules": [
        {"name": "backend", "algorithms": [{"name": "tvm"}]},
        {"name": "precision", "algorithms": [{"name": "fp32"}]}]}}),
     "deployment.space.modules[0].algorithms[0].name", "unknown backend 'tvm'"),
    (deployed(deployment={"space": {"modules": [{"name": "backend", "algorithms": [{"name": "onnxruntime"}]}]}}),
     "deployment.space.modules", "exactly the modules"),
    (deployed(deployment={"space": "cpu", "batch_size": 0}), "deployment.batch_size", "must be >= 1"),
    (deployed(deployment={"space": "cpu", "timing": {"runs": 5}}), "deployment.timing.runs", "unknown field"),
    (deployed(deployment={"space": "cpu", "timing": {"min_runs": 50, "max_runs": 10}}),
     "deployment.timing.max_runs", "must be >= min_runs"),
    (deployed(deployment={"space": "tpu"}), "deployment.space", "unknown search space 'deployment_tpu'"),
    (deployed(deployment=None, constraints=[{"metric": "latency_p95_ms", "max": 1.0}]),
     "constraints[0].metric", "add a `deployment` to measure it"),
    (deployed(data="sklearn:diabetes", restrict=None, constraints=[{"metric": "max_proba_diff", "max": 0.1}]),
     "constraints[0].metric", "unknown metric 'max_proba_diff' (not measured for this task)"),
]


@pytest.mark.parametrize("raw, field, reason", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_deployment_fields_are_named(raw, field, reason):
    with pytest.raises(ProblemError) as err:
        load_problem(raw)
    assert err.value.field == field and reason in err.value.reason


@pytest.fixture(scope="module")
def evaluator():
    problem = load_problem(deployed())
    return problem, DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)


def config(problem, **choice):
    base = {"scaler": "standard", "transformer": "none", "estimator": "logistic_regression",
            "backend": "onnxruntime", "precision": "fp32"}
    return problem.space.complete({**base, **choice})


def test_deployment_only_moves_reuse_the_fit(evaluator):
    problem, ev = evaluator
    first = ev(config(problem))
    fits = ev.ml.n_fits
    assert first.ok and first.attrs["reused_fit"] is False and fits == 3
    for choice in ({"backend": "openvino"}, {"precision": "int8"}):
        obs = ev(config(problem, **choice))
        assert obs.ok and obs.attrs["reused_fit"] is True, obs.reason
        assert obs.loss == first.loss and obs.metrics["output_mismatch"] <= 1.0
    knobs = config(problem)
    knobs["backend.onnxruntime.intra_op_num_threads"] = 2
    assert ev(knobs).attrs["reused_fit"] is True
    assert ev.ml.n_fits == fits  # no refit for any deployment-only move
    ev(config(problem, estimator="gaussian_nb"))
    assert ev.ml.n_fits == fits + 3
    for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "throughput_rps", "model_size_kb",
                "compile_time_s", "accuracy_drop", "label_agreement", "max_proba_diff"):
        assert np.isfinite(first.metrics[key]), key


def test_a_candidate_clearly_worse_than_the_incumbent_is_not_deployed():
    problem = load_problem(deployed())
    ev = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    incumbent = ev(config(problem))  # logistic regression: CV loss 0.028, fold losses 0.032, 0.039, 0.011
    assert len(incumbent.step_losses) == 3 and incumbent.fidelity == 1.0 and "latency_p95_ms" in incumbent.metrics
    bad_config = config(problem, estimator="gaussian_nb")  # first fold 0.079: 3.2 fold spreads worse
    bad = ev(bad_config, incumbent.step_losses)
    assert bad.ok and bad.fidelity < 1.0 and bad.attrs["stopped"] == STOPPED_WORSE
    assert ev.ml.n_fits == 3 + bad.attrs["folds_done"]
    assert not set(DEPLOY_METRICS) & set(bad.metrics)  # nothing of the deployment was measured
    close = ev(config(problem, transformer="pca"), incumbent.step_losses)  # as good: every fold, deployed
    assert close.fidelity == 1.0 and "latency_p95_ms" in close.metrics and "stopped" not in close.attrs
    again = ev(bad_config)  # a stopped evaluation is not cached: without an incumbent, in full and deployed
    assert again.fidelity == 1.0 and "latency_p95_ms" in again.metrics


def test_int8_shrinks_the_graph_and_reports_the_accuracy_drop(evaluator):
    problem, ev = evaluator
    fp32 = ev(config(problem, transformer="pca"))
    int8 = ev(config(problem, transformer="pca", precision="int8"))
    # the compiled fp32 graph has its scaler, PCA and logistic scores merged into one 30 x 1 MatMul
    # (graph.merge_linear_chains), smaller than any int8 form; int8 shrinks the graph as exported
    from admm_tune.deployment import Deployment
    from admm_tune.evaluate.pipeline import MLEvaluator

    exported = ev.graph(MLEvaluator.key(Deployment.split(config(problem, transformer="pca"))[0]), "fp32")
    assert int8.metrics["model_size_kb"] < exported.ByteSize() / 1024
    assert abs(int8.metrics["accuracy_drop"]) < 0.05 and fp32.metrics["accuracy_drop"] == 0.0


def test_a_disagreeing_deployment_is_infeasible_with_its_reason():
    # A min-max scaler is folded into the forest's thresholds (exact on float32 inputs), but wine's float64
    # values rounded to the graph's float32 input still cross 5 of 60 rows over them (docs/lowering.md);
    # without the scaler the same forest agrees.
    problem = load_problem(deployed(data="sklearn:wine", restrict=None))
    ev = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    scaled = ev(config(problem, scaler="minmax", estimator="random_forest"))
    assert scaled.ok and scaled.metrics["output_mismatch"] > 1.0
    assert scaled.attrs["verification"].startswith("DISAGREES")
    plain = ev(config(problem, scaler="none", estimator="random_forest"))
    assert plain.metrics["output_mismatch"] <= 1.0 and plain.attrs["verification"].startswith("agrees")


def test_a_candidate_that_fails_to_convert_is_recorded_and_the_search_goes_on(evaluator):
    problem, ev = evaluator
    bad = config(problem, scaler="quantile")
    bad["scaler.quantile.output_distribution"] = "normal"
    assert not problem.space.allowed(bad)  # the space's not_exportable clause: never proposed
    obs = ev(bad)
    assert not obs.ok and obs.reason.startswith("deploy: export:") and "not supported" in obs.reason
    trees = ev(config(problem, estimator="random_forest", precision="int8"))
    assert not trees.ok and "no MatMul/Gemm" in trees.reason


def onnxruntime_only() -> dict:
    """The bundled CPU deployment space with ONNX Runtime alone.

    OpenVINO's fixed per-call cost (57-62 µs over ONNX Runtime's, benchmarks/results/deployment.md) lies near
    any bound that separates fast from slow models at batch 64; how the search copes with that is the
    optimiser's business (docs/deployment.md), not what this test checks.
    """
    raw = yaml.safe_load((ROOT / "search_spaces" / "deployment_cpu.yaml").read_text())
    backend = next(m for m in raw["modules"] if m["name"] == "backend")
    backend["algorithms"] = [a for a in backend["algorithms"] if a["name"] == "onnxruntime"]
    raw["limits"] = []
    return raw


BOUND_FACTOR = 2.0
"""The bound is 2x the end-to-end p95 of the fast reference (logistic regression) measured in the test: at batch
64 the preparation of 64 raw records is most of a fast model's service call, so gaussian_nb and forests pass and
k-NN does not (tests/reference.py): k-NN measured 8.5x the fast reference on the development machine and 5.6x on
CI's, where the preparation in Python weighs more against k-NN's native distance computation."""

SEPARATION = 2.0
"""The slow reference must exceed the bound by this factor for the test to mean anything (asserted first)."""


@pytest.mark.serial
def test_latency_constrained_fit_is_feasible_and_remeasures_within_the_bound(tmp_path):
    timing = TimingSettings(**FAST_TIMING)
    fast, slow = (reference_p95_ms(kind, 64, timing) for kind in ("fast", "slow"))
    bound = BOUND_FACTOR * fast
    assert slow > SEPARATION * bound, (fast, slow)  # the bound separates the references
    problem = deployed(constraints=[{"metric": "latency_p95_ms", "max": bound}], budget={"evaluations": 20})
    problem["deployment"] = {**problem["deployment"], "space": onnxruntime_only()}
    result = admm_tune.fit(problem, run_dir=tmp_path, progress=False)
    trials = result.trials
    assert result.best.feasible and result.best.metrics["latency_p95_ms"] <= bound
    measured = trials[trials["state"] == "complete"]
    slow_trials = measured[measured["metric:latency_p95_ms"] > bound]
    assert len(slow_trials) and not slow_trials["feasible"].astype(bool).any()  # measured too slow: rejected
    # Both ways, from the raw metrics: feasible exactly when fast enough and agreeing with scikit-learn.
    fits = (measured["metric:latency_p95_ms"] <= bound) & (measured["metric:output_mismatch"] <= 1.0)
    assert (measured["feasible"].astype(bool) == fits).all()
    assert fits.sum() >= 2, measured[["metric:latency_p95_ms", "feasible", "stopped"]]  # not one lucky candidate
    assert trials["reused_fit"].astype(bool).any()
    deployment = result.deployment
    assert deployment["backend"] == "onnxruntime" and deployment["batch_size"] == 64
    # Re-measure the exported model on the chosen backend with the chosen knobs, against the fast reference
    # re-measured now: their ratio, not the absolute time, must stay within the bound's.
    spec = json.loads((tmp_path / "deployment.json").read_text())
    model = onnx.load(result.onnx_path)
    session = get_backend(spec["backend"]).compile(model, spec["knobs"], spec["precision"])
    chosen, fast_now = p95_ms(model, session, 64, TimingSettings()), reference_p95_ms("fast", 64, TimingSettings())
    assert chosen <= BOUND_FACTOR * fast_now * P95_TOLERANCE, (chosen, fast_now, spec, result.summary())
    out = subprocess.run([sys.executable, "load_model.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "array(" in out.stdout, out.stderr
    assert "deployment   " in result.summary()


def test_refit_graph_is_verified_and_timed_and_its_loader_runs_with_categorical_columns(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=160), "colour": rng.choice(["red", "green", None], 160)})
    y = ((X["x"] > 0) ^ (X["colour"] == "red")).astype(int).to_numpy()
    result = admm_tune.fit({"name": "mixed", "data": {"X": X, "y": y}, "objective": {"cv": 3},
                            "restrict": {"estimator": ["decision_tree", "logistic_regression"], "scaler": ["none"],
                                         "transformer": ["none"]},
                            "deployment": {"space": "cpu", "timing": FAST_TIMING}, "budget": {"evaluations": 6},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    assert not any("openvino left out" in note for note in result.problem.notes)  # the one-hot front is lowered
    assert result.final["verification"].startswith("agrees") and "latency_p95_ms" in result.final["measured"]
    spec = json.loads((tmp_path / "deployment.json").read_text())
    assert [i["name"] for i in spec["graph_inputs"]] == ["x", "colour"] and spec["measured"] == result.final["measured"]
    assert [c["kind"] for c in spec["rows"]["columns"]] == ["number", "category"]
    out = subprocess.run([sys.executable, "load_model.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "array(" in out.stdout, out.stderr


@pytest.mark.parametrize("estimator", ["svc", "linear_svc"])
def test_a_classifier_without_probabilities_is_scored_on_its_deployed_decision_scores(estimator):
    """roc_auc on a graph of decision scores: the scorer reads the graph's scores as scikit-learn's
    ``decision_function`` (one column of two, whichever way the converter laid them out), never NaN or inverted."""
    from sklearn.metrics import roc_auc_score

    problem = load_problem(deployed(objective={"cv": 3, "scoring": "roc_auc"}, restrict={"estimator": [estimator]}))
    ev = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0)
    obs = ev(config(problem, estimator=estimator))
    holdout = next(iter(ev.ml.holdouts.values()))
    rows = problem.data.X.iloc[holdout.rows]
    want = roc_auc_score(problem.data.y[holdout.rows], holdout.pipeline.decision_function(rows))
    assert obs.ok and obs.metrics["deployed_score"] == pytest.approx(want, abs=1e-3)


def test_a_run_journals_stopped_candidates_as_complete_and_unmeasured(tmp_path):
    """A constrained run's candidates stopped as clearly worse than the best feasible one are complete trials at a
    lower fidelity, with no deployment figure, never feasible, never failed, and never the choice."""
    problem = deployed(objective={"cv": 5}, restrict={"backend": ["onnxruntime"], "precision": ["fp32"]},
                       constraints=[{"metric": "latency_p95_ms", "max": 50.0}], budget={"evaluations": 15})
    result = admm_tune.fit(problem, run_dir=tmp_path, progress=False)
    trials = result.trials
    stopped = trials[trials["stopped"].notna()] if "stopped" in trials else trials[:0]
    assert len(stopped) and result.n_failed == 0, trials[["state", "reason"]]  # CV losses are seeded: same stops
    assert (stopped["state"] == "complete").all() and (stopped["fidelity"] < 1).all()
    assert stopped["metric:latency_p95_ms"].isna().all() and not stopped["feasible"].astype(bool).any()
    assert result.best.trial not in set(stopped["number"]) and result.best.feasible
    assert "latency_p95_ms not measured" not in result.report(tmp_path / "report.html").read_text()
