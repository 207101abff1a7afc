"""Deploy problems (``kind: deploy``): a trained ONNX model, its data split, compression, the search end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

import admm_tune
from admm_tune import ProblemError, load_problem
from admm_tune.deploy_problem import RACE_ROUNDS, deploy_problem, race, structures
from admm_tune.evaluate import onnx_model
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.onnx_model import ModelError, check_data, split_rows
from admm_tune.evaluate.timing import TimingSettings, measure
from admm_tune.machine import cores
from admm_tune.parallel import WorkerPool

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "problems" / "models"
PROBLEM = ROOT / "problems" / "digits_cnn_deploy.yaml"
WIDE = ROOT / "problems" / "digits_wide_cnn_deploy.yaml"
FAST_TIMING = {"warmup": 5, "min_runs": 30, "max_runs": 300, "seconds": 0.1}


@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM)


@pytest.fixture(scope="module")
def wide():
    return load_problem(WIDE)


@pytest.fixture(scope="module")
def eval_arrays():
    with np.load(MODELS / "digits_cnn_eval.npz") as npz:
        return npz["input"], npz["labels"]


def test_the_split_is_seeded_and_its_slices_never_overlap(problem):
    split = problem.objective.data.split
    assert len(np.intersect1d(split.calibration, split.held_out)) == 0
    assert sorted([*split.calibration, *split.held_out]) == list(range(597))
    assert len(split.calibration) == round(0.3 * 597)
    again = split_rows(597, 0.3, seed=0)
    assert np.array_equal(again.calibration, split.calibration)
    assert not np.array_equal(split_rows(597, 0.3, seed=1).calibration, split.calibration)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("shipped", ["problem", "wide"])
def test_int8_static_runs_and_its_drop_is_measured_on_rows_never_calibrated_on(shipped, backend, monkeypatch, request):
    problem = request.getfixturevalue(shipped)
    evaluator = problem.objective
    split = evaluator.data.split
    seen = []
    real = onnx_model.compress

    def spy(model, precision, calibration_feeds=None, **kw):
        seen.append(calibration_feeds)
        return real(model, precision, calibration_feeds, **kw)

    monkeypatch.setattr(onnx_model, "compress", spy)
    evaluator.graphs.clear()
    obs = evaluator({"backend": backend, "precision": "int8_static",
                     "precision.int8_static.calibration": "entropy", "precision.int8_static.per_channel": True})
    assert obs.ok, obs.reason
    (feeds,) = seen  # quantised once, from the calibration slice only
    assert np.array_equal(feeds["input"], evaluator.data.inputs["input"][split.calibration])
    assert len(np.intersect1d(split.calibration, split.held_out)) == 0
    assert len(evaluator.truth) == len(split.held_out)  # the accuracy is measured on the held-out rows
    graph = evaluator.graphs["int8_static", "entropy", True].model
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.graph.node}
    assert 0 <= obs.metrics["accuracy"] <= 1
    assert obs.metrics["accuracy_drop"] == pytest.approx(evaluator.reference - obs.metrics["accuracy"])
    assert obs.metrics["accuracy_drop"] <= 0.02  # both CNNs keep their accuracy at int8 (0.0 and 0.0024 measured)
    model_file = PROBLEM.parent / problem.source["model"]
    assert obs.metrics["model_size_kb"] < 0.5 * model_file.stat().st_size / 1024


def test_reduced_precisions_run_where_the_backend_has_them(problem):
    evaluator = problem.objective
    space = problem.space
    for backend in space.module("backend").names:
        for precision in space.module("precision").names:
            config = space.complete({"backend": backend, "precision": precision})
            if not space.allowed(config):
                continue
            obs = evaluator(config)
            assert obs.ok, (backend, precision, obs.reason)
            assert obs.metrics["accuracy_drop"] <= 0.02, (backend, precision)
    bf16 = "BF16" in __import__("openvino").Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert space.allowed(space.complete({"backend": "openvino", "precision": "bf16"})) == bf16  # detected, not faked
    assert not space.allowed(space.complete({"backend": "onnxruntime", "precision": "bf16"}))
    assert "int8_nncf" in space.module("precision").names  # NNCF installs without PyTorch (the test extra)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {
        n.op_type for n in evaluator.graphs["int8_nncf", "performance"].model.graph.node}


def _runtime_precisions(session) -> set[str]:
    """OpenVINO's execution precisions of the convolutions and the dense layer of a compiled CNN."""
    info = [op.get_rt_info() for op in session.compiled.get_runtime_model().get_ops()]
    return {i["runtimePrecision"].astype(str) for i in info
            if i["layerType"].astype(str) in ("Convolution", "FullyConnected")}


def test_openvino_really_runs_int8_and_bf16(problem):
    evaluator = problem.objective
    openvino = get_backend("openvino")
    int8 = evaluator.graph("int8_static", "minmax", True).model
    assert _runtime_precisions(openvino.compile(int8, {}, "fp32")) <= {"i8", "u8"}
    if "bf16" in openvino.capabilities().precisions:
        assert _runtime_precisions(openvino.compile(evaluator.model, {}, "bf16")) == {"bf16"}
    assert _runtime_precisions(openvino.compile(evaluator.model, {}, "fp32")) == {"f32"}


def test_a_shape_or_type_mismatch_is_refused_naming_the_input(eval_arrays):
    model = onnx.load(MODELS / "digits_cnn.onnx")
    x, y = eval_arrays
    with pytest.raises(ModelError, match=r"data\.input: input 'input' expects shape float32\[N, 1, 8, 8\].*"
                                         r"the data has float32\[597, 64\]"):
        check_data(model, {"input": x.reshape(len(x), 64)}, y)
    with pytest.raises(ModelError, match=r"input 'input' expects float32\[N, 1, 8, 8\], the data has float64"):
        check_data(model, {"input": x.astype(np.float64)}, y)
    with pytest.raises(ModelError, match=r"data\.pixels: the model has no input 'pixels'; its inputs: input: "):
        check_data(model, {"pixels": x, "input": x}, y)
    with pytest.raises(ProblemError, match=r"input 'input' expects shape float32\[N, 1, 8, 8\]"):
        deploy_problem(MODELS / "digits_cnn.onnx", {"inputs": x[:, 0], "labels": y})


def test_without_labels_the_metric_is_agreement_with_fp32(eval_arrays):
    x, _ = eval_arrays
    problem = deploy_problem(str(MODELS / "digits_cnn.onnx"), {"inputs": x[:200]}, calibration=50,
                             deployment={"space": "cpu", "timing": FAST_TIMING}, restrict={"backend": ["onnxruntime"]})
    evaluator = problem.objective
    assert evaluator.metric_name == "agreement" and evaluator.reference == 1.0
    assert len(evaluator.data.split.calibration) == 50 and len(evaluator.data.split.held_out) == 150
    obs = evaluator(problem.space.complete({"backend": "onnxruntime", "precision": "fp32"}))
    assert obs.ok and obs.metrics["accuracy"] == 1.0 and obs.metrics["accuracy_drop"] == 0.0


def test_throughput_is_measured_at_the_searched_batch_and_requests_in_flight(eval_arrays, monkeypatch):
    x, y = eval_arrays
    problem = deploy_problem(MODELS / "digits_cnn.onnx", {"inputs": x, "labels": y}, objective="throughput_rps",
                             deployment={"space": "cpu", "batch_size": 4, "timing": FAST_TIMING},
                             constraints={"accuracy_drop": 0.01, "throughput_rps": 1000})
    assert [str(c) for c in problem.constraints] == ["accuracy_drop <= 0.01", "throughput_rps >= 1000 rows/s"]
    knobs = {a.name: {p.name for p in a.params} for a in problem.space.module("backend").algorithms}
    assert "throughput_batch" in knobs["onnxruntime"] and "infer_requests" not in knobs["onnxruntime"]
    assert {"throughput_batch", "infer_requests"} <= knobs["openvino"]
    queued, timed = [], []
    real_queue, real_measure = onnx_model.queued_throughput, onnx_model.measure
    monkeypatch.setattr(onnx_model, "queued_throughput",
                        lambda compiled, feeds, n, s: queued.append((len(feeds["input"]), n)) or
                        real_queue(compiled, feeds, n, s))
    monkeypatch.setattr(onnx_model, "measure",
                        lambda session, feeds, settings: timed.append(len(feeds["input"])) or
                        real_measure(session, feeds, settings))
    obs = problem.objective(problem.space.complete({"backend": "openvino", "precision": "fp32",
                                                    "backend.openvino.throughput_batch": 32,
                                                    "backend.openvino.infer_requests": 2}))
    assert obs.ok, obs.reason
    assert queued == [(32, 2)] and timed == [4]  # throughput: 32 rows, 2 in flight; latency: the problem's batch
    assert obs.metrics["batch_size"] == 4 and obs.loss == -obs.metrics["throughput_rps"] < 0
    obs = problem.objective(problem.space.complete({"backend": "onnxruntime", "precision": "fp32",
                                                    "backend.onnxruntime.throughput_batch": 8}))
    assert obs.ok and timed[1:] == [4, 8]  # ONNX Runtime: calls in a row at the searched batch


def test_a_model_with_a_fixed_batch_runs_at_that_batch(tmp_path, eval_arrays):
    x, y = eval_arrays
    model = onnx.load(MODELS / "digits_cnn.onnx")
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, tmp_path / "fixed.onnx")
    problem = deploy_problem(tmp_path / "fixed.onnx", {"inputs": x[:120], "labels": y[:120]}, calibration=20,
                             deployment={"space": "cpu", "timing": FAST_TIMING})
    evaluator = problem.objective
    assert evaluator.fixed_batch == 1
    obs = evaluator(problem.space.complete({"backend": "onnxruntime", "precision": "int8_static"}))
    assert obs.ok and obs.metrics["accuracy_drop"] <= 0.02, obs.reason
    with pytest.raises(ProblemError, match=r"deployment\.batch_size: the model fixes its batch dimension to 1"):
        deploy_problem(tmp_path / "fixed.onnx", {"inputs": x, "labels": y}, deployment={"batch_size": 4})


def test_malformed_deploy_fields_are_named():
    base = {"kind": "deploy", "model": str(MODELS / "digits_cnn.onnx"), "data": str(MODELS / "digits_cnn_eval.npz")}
    for change, field in [({"objective": "accuracy"}, "objective"), ({"model": "nowhere.onnx"}, "model"),
                          ({"restrict": {"precision": ["int4"]}}, "restrict.precision"),
                          ({"constraints": [{"metric": "fit_time_s", "max": 1}]}, "constraints[0].metric"),
                          ({"search_space": "classification"}, "search_space")]:
        with pytest.raises(ProblemError) as info:
            load_problem({**base, **change})
        assert info.value.field == field, (change, str(info.value))


def _ort_defaults(path: Path):
    """ONNX Runtime at its own default session options, called through the same path as the search's candidates
    (admm_tune's ``OrtSession``: I/O binding), so that only the configuration differs."""
    from admm_tune.evaluate.backends.onnxruntime import OrtSession

    return OrtSession(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), path.stat().st_size)


@pytest.mark.serial
def test_a_latency_search_under_an_accuracy_bound_beats_ort_defaults(tmp_path, eval_arrays):
    raw = yaml.safe_load(PROBLEM.read_text())
    raw["model"], raw["data"]["path"] = str(PROBLEM.parent / raw["model"]), str(PROBLEM.parent / raw["data"]["path"])
    raw["deployment"]["timing"] = FAST_TIMING
    raw["restrict"] = {"precision": ["fp32", "int8_static"]}  # the others are slower here (the benchmark's grid)
    file = tmp_path / "problem.yaml"
    file.write_text(yaml.safe_dump(raw))
    budget = 4 * len(structures(load_problem(file).space))  # a quarter of it tries every backend x precision once
    result = admm_tune.fit(file, budget=budget, seed=0, progress=False, run_dir=tmp_path / "run", report=True)
    assert result.feasible and result.best is not None
    assert result.best.metrics["accuracy_drop"] <= 0.01
    assert (tmp_path / "run" / "result.json").is_file() and (tmp_path / "run" / "report.html").is_file()
    evaluator = load_problem(PROBLEM).objective
    settings = TimingSettings(warmup=20, min_runs=100, max_runs=2000, seconds=0.3)
    evaluator.timing = settings
    feeds = {"input": eval_arrays[0][:1]}
    default, tuned = [], []
    for _ in range(3):  # interleaved, so that load on the machine hits both alike
        default.append(measure(_ort_defaults(MODELS / "digits_cnn.onnx"), feeds, settings).latency_p50_ms)
        obs = evaluator(result.best.config)
        assert obs.ok and obs.metrics["accuracy_drop"] <= 0.01
        tuned.append(obs.metrics["latency_p50_ms"])
    assert np.median(tuned) < np.median(default), (result.best.config, tuned, default)


def _trials(problem, configs, losses):
    """A journal's trials frame for ``configs``, measured for real, with the given (search) losses."""
    rows = []
    for number, (config, loss) in enumerate(zip(configs, losses)):
        obs = problem.objective(config)
        assert obs.ok, obs.reason
        rows.append({"number": number, "state": "complete", "feasible": True, "loss": loss,
                     "duration_s": obs.duration_s, "config": json.dumps(config),
                     "structure": f"{config['backend']}/{config['precision']}",
                     **{f"metric:{k}": v for k, v in obs.metrics.items()}})
    return pd.DataFrame(rows)


def test_the_final_race_chooses_the_lower_remeasured_median_within_its_time(eval_arrays):
    x, y = eval_arrays
    problem = deploy_problem(MODELS / "digits_cnn.onnx", {"inputs": x, "labels": y},
                             constraints={"accuracy_drop": 0.01},
                             deployment={"space": "cpu", "batch_size": 64, "timing": FAST_TIMING},
                             restrict={"backend": ["onnxruntime"], "precision": ["fp32", "int8_dynamic"]})
    fast = problem.space.complete({"backend": "onnxruntime", "precision": "fp32"})
    slow = problem.space.complete({"backend": "onnxruntime", "precision": "int8_dynamic"})  # ~7x fp32's time here
    trials = _trials(problem, [slow, fast], [1e-6, 2e-6])  # the search mis-ranked them: the slow one "won"
    with WorkerPool(problem.objective, 1) as pool:
        record = race(pool, trials, problem, None)
        assert record["search_pick"] == 0 and record["chosen"] == 1, record["note"]
        assert record["rounds"] == RACE_ROUNDS and "trial 1, not the search's pick (trial 0)" in record["note"]
        by_trial = {f["trial"]: f for f in record["finalists"]}
        assert [len(f["rounds"]) for f in by_trial.values()] == [RACE_ROUNDS, RACE_ROUNDS]
        assert by_trial[1]["remeasured"] == np.median(by_trial[1]["rounds"]) < by_trial[0]["remeasured"]
        skipped = race(pool, trials, problem, 0.01)  # no time left: nothing is run, the search's pick stays
        assert skipped["chosen"] == 0 and skipped["rounds"] == 0 and "s left, the race needs" in skipped["note"]
    answer = problem.objective.final({"finalists": [fast, slow], "rounds": 10_000, "share": 1.0, "seconds": 1.0})
    per_round = answer["seconds"] / answer["rounds"]
    assert 1 <= answer["rounds"] < 10_000 and answer["seconds"] <= 1.0 + 3 * per_round  # no round starts too late


def test_openvino_streams_may_share_its_threads_in_a_deploy_space(problem):
    space = problem.space
    both = {"backend.openvino.num_streams": cores(), "backend.openvino.inference_num_threads": cores()}
    assert space.allowed(space.complete({"backend": "openvino", "precision": "fp32", **both}))  # THROUGHPUT's own


def test_thread_knobs_start_at_the_libraries_defaults_in_a_deploy_space(problem):
    first = {b: problem.space.complete({"backend": b, "precision": "fp32"}) for b in ("onnxruntime", "openvino")}
    assert first["onnxruntime"]["backend.onnxruntime.intra_op_num_threads"] == cores()  # ORT's default pool
    assert first["openvino"]["backend.openvino.inference_num_threads"] == cores()  # OpenVINO's default
    assert first["openvino"]["backend.openvino.num_streams"] == 1  # the LATENCY hint's one stream
    ml = load_problem({"data": "sklearn:breast_cancer", "deployment": "cpu"}).space  # the ML kind starts at one thread
    assert ml.module("backend").algorithm("onnxruntime").param("intra_op_num_threads").default == 1


def test_the_shipped_problem_runs_at_a_tiny_budget_and_resumes_from_its_journal(tmp_path):
    result = admm_tune.fit(PROBLEM, budget=2, seed=0, progress=False, run_dir=tmp_path)
    assert result.best is not None and len(result.trials) == 2
    assert {"backend", "precision", "metric:accuracy_drop", "metric:latency_p50_ms"} <= set(result.trials.columns)
    assert (tmp_path / "result.json").is_file()
    result = admm_tune.runner.resume(tmp_path, budget=4, progress=False)
    assert len(result.trials) == 4 and result.best is not None


def test_the_documented_template_loads_as_shipped():
    problem = load_problem(ROOT / "problems" / "onnx_model_deploy.yaml")
    assert problem.kind == "deploy" and problem.objective.objective == "latency_p95_ms"
    assert [str(c) for c in problem.constraints] == ["accuracy_drop <= 0.005", "model_size_kb <= 40 kB"]


def test_nncf_accuracy_control_gets_the_bound_and_validates_on_calibration_rows_only(problem, monkeypatch):
    import nncf

    evaluator = problem.objective
    split = evaluator.data.split
    calls = []
    real = nncf.quantize_with_accuracy_control

    def spy(model, calibration, validation, validation_fn, **kw):
        calls.append((kw["max_drop"], list(validation.get_data())))
        return real(model, calibration, validation, validation_fn, **kw)

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", spy)
    evaluator.graphs.pop(("int8_nncf_accuracy_control", "performance"), None)  # quantised afresh, through the spy
    obs = evaluator(problem.space.complete({"backend": "openvino", "precision": "int8_nncf_accuracy_control"}))
    assert obs.ok, obs.reason
    ((max_drop, items),) = calls
    assert max_drop == 0.01  # the problem's accuracy_drop bound
    assert np.array_equal(np.concatenate([feeds["input"] for feeds, _ in items]),
                          evaluator.data.inputs["input"][split.calibration])
    assert np.array_equal(np.concatenate([truth for _, truth in items]), evaluator.data.labels[split.calibration])
    assert len(evaluator.truth) == len(split.held_out)  # its drop, like every other, on the held-out rows
    assert obs.metrics["accuracy_drop"] == pytest.approx(evaluator.reference - obs.metrics["accuracy"])


def test_accuracy_control_is_left_out_without_an_accuracy_bound(eval_arrays):
    x, y = eval_arrays
    problem = deploy_problem(MODELS / "digits_cnn.onnx", {"inputs": x, "labels": y},
                             restrict={"backend": ["onnxruntime"]})
    assert "int8_nncf_accuracy_control" not in problem.space.module("precision").names
    assert any("int8_nncf_accuracy_control left out: it needs an accuracy_drop bound" in n for n in problem.notes)


def test_onnx_runtimes_offline_optimised_graph_is_what_is_exported_and_run(problem, tmp_path):
    evaluator = problem.objective
    config = problem.space.complete({"backend": "onnxruntime", "precision": "int8_static",
                                     "backend.onnxruntime.graph_optimization_level": "all"})
    path = evaluator.export(config, tmp_path)
    spec = yaml.safe_load((tmp_path / "deployment.json").read_text())
    assert spec["session"]["options"]["graph_optimization_level"] == "ORT_DISABLE_ALL"  # optimised offline, once
    assert "offline-optimised graph (ORT_ENABLE_ALL)" in spec["graph"]
    given = {n.op_type for n in evaluator.graph("int8_static", "minmax", False).model.graph.node}
    saved = {n.op_type for n in onnx.load(path).graph.node}
    assert "QuantizeLinear" in given and saved != given  # ONNX Runtime's fusions, written by ONNX Runtime
    assert spec["verification"].startswith("agrees"), spec["verification"]


SCORER = """import numpy as np


def top2(outputs, truth):
    best2 = np.argsort(outputs, axis=1)[:, -2:]
    return float(np.mean((best2 == np.asarray(truth)[:, None]).any(axis=1)))
"""


def test_a_user_scorer_is_the_preserved_metric_from_python_and_from_a_problem_file(tmp_path, eval_arrays):
    x, y = eval_arrays
    (tmp_path / "my_scorers.py").write_text(SCORER)
    namespace: dict = {}
    exec(SCORER, namespace)
    seen = []

    def top2(outputs, truth):
        seen.append((outputs.shape, truth.shape))
        return namespace["top2"](outputs, truth)

    problem = deploy_problem(MODELS / "digits_cnn.onnx", {"inputs": x, "labels": y}, metric=top2,
                             deployment={"space": "cpu", "timing": FAST_TIMING},
                             restrict={"backend": ["onnxruntime"], "precision": ["fp32", "int8_static"]})
    evaluator = problem.objective
    held = evaluator.data.split.held_out
    fp32 = ort.InferenceSession(str(MODELS / "digits_cnn.onnx")).run(None, {"input": x[held]})[0]
    assert evaluator.metric_name == "top2" and seen[0] == ((len(held), 10), (len(held),))
    assert evaluator.reference == namespace["top2"](fp32, y[held])
    obs = evaluator(problem.space.complete({"backend": "onnxruntime", "precision": "int8_static"}))
    assert obs.ok and obs.metrics["accuracy_drop"] == pytest.approx(evaluator.reference - obs.metrics["accuracy"])
    raw = yaml.safe_load(PROBLEM.read_text())
    raw["model"], raw["data"]["path"] = str(PROBLEM.parent / raw["model"]), str(PROBLEM.parent / raw["data"]["path"])
    file = tmp_path / "problem.yaml"
    for metric, error in (("my_scorers:top2", None), ("my_scorers:nope", r"metric: cannot import 'my_scorers:nope'"),
                          ("top2", r"metric: expected 'module:function'")):
        file.write_text(yaml.safe_dump({**raw, "metric": metric}))
        if error is None:  # the module beside the problem file
            assert load_problem(file).objective.reference == evaluator.reference
        else:
            with pytest.raises(ProblemError, match=error):
                load_problem(file)


def test_the_wide_problem_runs_and_exports_its_deployment(tmp_path):
    result = admm_tune.fit(WIDE, budget=2, seed=0, progress=False, run_dir=tmp_path, report=True)
    assert result.feasible and result.deployment is not None
    assert result.deployment["backend"] == result.best.config["backend"] and result.deployment["batch_size"] == 1
    spec = yaml.safe_load((tmp_path / "deployment.json").read_text())
    assert spec["verification"].startswith("agrees") and spec["precision"] == result.best.config["precision"]
    assert spec["lossless_passes"] == []  # admm_tune's own passes fold scalers into trees: nothing in a CNN
    assert spec["remeasured"] == result.race and result.race["chosen"] == result.best.trial  # the final race's record
    assert json.loads((tmp_path / "result.json").read_text())["race"] == result.race
    assert f"final race   {result.race['note']}" in result.summary()
    loaded = admm_tune.Result.load(tmp_path)  # what `admm-tune report` reads
    assert loaded.deployment["precision"] == spec["precision"] and loaded.onnx_path == tmp_path / "model.onnx"
    assert loaded.feasible and loaded.race == result.race and loaded.best.trial == result.best.trial
    assert "Accuracy against latency per precision and backend" in (tmp_path / "report.html").read_text()
    out = subprocess.run([sys.executable, str(tmp_path / "load_model.py")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("logits array("), out.stderr[-2000:]
    printed = eval(out.stdout.removeprefix("logits "), {"array": np.array, "float32": np.float32})
    with np.load(tmp_path / "example_inputs.npz") as example:  # what the script ran: the fp32 model's class
        expected = ort.InferenceSession(str(MODELS / "digits_wide_cnn.onnx")).run(None, dict(example))[0]
    assert printed.shape == expected.shape == (1, 10) and printed.argmax() == expected.argmax()


@pytest.mark.slow
def test_the_training_script_reproduces_the_committed_model(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_digits_cnn.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("digits_cnn.onnx", "digits_cnn_eval.npz", "digits_cnn.json"):
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits_wide_cnn", "digits_mlp"])
def test_the_pytorch_training_scripts_reproduce_the_committed_models(tmp_path, name):
    """The same graph (operators, initialisers' names and shapes), held-out rows and accuracy as committed.

    Not the same bytes: the distortion of the rows (``grid_sample``) differs by up to 4e-6 between two x86-64 CPUs
    with the same torch build (measured: 673 of 612,352 held-out pixels), and 25 epochs of training carry that into
    every weight."""
    torch = pytest.importorskip("torch")  # the optional `train` extra: the shipped files were written by 2.13.0 (CPU)
    if torch.__version__.split("+")[0] != "2.13.0":
        pytest.skip(f"the committed graphs were trained with torch 2.13.0, this is {torch.__version__}")
    out = subprocess.run([sys.executable, str(ROOT / "examples" / f"train_{name}.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    fresh, committed = (onnx.load(folder / f"{name}.onnx").graph for folder in (tmp_path, MODELS))
    def shape(graph):
        return [(n.op_type, list(n.input)) for n in graph.node], [(t.name, list(t.dims)) for t in graph.initializer]

    assert shape(fresh) == shape(committed)
    with np.load(tmp_path / "digits_wide_cnn_eval.npz") as rows, np.load(MODELS / "digits_wide_cnn_eval.npz") as ours:
        assert np.array_equal(rows["labels"], ours["labels"]) and np.abs(rows["input"] - ours["input"]).max() < 1e-4
    facts, shipped = (json.loads((folder / f"{name}.json").read_text()) for folder in (tmp_path, MODELS))
    assert facts["parameters"] == shipped["parameters"] and facts["script"] == shipped["script"]
    assert abs(facts["held_out_accuracy"] - shipped["held_out_accuracy"]) < 0.02, (facts, shipped)


def regression_model(width: int = 32, hidden: int = 64) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """A one-output regression network (MatMul, Relu, MatMul: [N, 1]) and 400 rows with float labels."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = (rng.normal(size=(width, hidden)) / np.sqrt(width)).astype(np.float32)
    w2 = (rng.normal(size=(hidden, 1)) / np.sqrt(hidden)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "regression",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(400, width)).astype(np.float32)
    y = (np.maximum(x @ w1, 0) @ w2).ravel().astype(np.float64) + 0.05 * rng.normal(size=400)
    return model, x, y


def test_a_regression_output_is_measured_by_r2_and_its_labels_type_is_checked():
    model, x, y = regression_model()
    deployment = {"space": "cpu", "timing": FAST_TIMING}
    labelled = deploy_problem(model, {"inputs": {"x": x}, "labels": y}, calibration=100, deployment=deployment,
                              restrict={"backend": ["onnxruntime"]})
    evaluator = labelled.objective
    assert evaluator.metric_name == "r2" and 0.9 < evaluator.reference < 1.0  # not top-1 of one column (always 1)
    assert any("(r2)" in note for note in labelled.notes)
    fp32 = evaluator(labelled.space.complete({"backend": "onnxruntime", "precision": "fp32"}))
    assert fp32.ok and fp32.metrics["accuracy_drop"] == pytest.approx(0.0, abs=1e-6)
    unlabelled = deploy_problem(model, {"inputs": {"x": x}}, calibration=100, deployment=deployment,
                                restrict={"backend": ["onnxruntime"]})
    assert unlabelled.objective.metric_name == "fidelity_r2" and unlabelled.objective.reference == 1.0
    with pytest.raises(ModelError, match=r"data.labels: integer class labels, but the model's output 'y'"):
        deploy_problem(model, {"inputs": {"x": x}, "labels": (y > 0).astype(np.int64)}, deployment=deployment)


def test_float_labels_on_class_scores_are_refused_naming_the_field(eval_arrays):
    x, labels = eval_arrays
    with pytest.raises(ModelError, match=r"data.labels: float labels, but the model's output .* class scores"):
        deploy_problem(str(MODELS / "digits_cnn.onnx"), {"inputs": x[:200], "labels": labels[:200] + 0.5},
                       deployment={"space": "cpu", "timing": FAST_TIMING})
