"""Real inference backends: availability, knobs, precisions, and the timing harness."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import admm_tune
from admm_tune.evaluate.backends import BACKENDS, BackendError, get_backend
from admm_tune.evaluate.backends.tensorrt import gpu_names
from admm_tune.evaluate.export import export, feeds
from admm_tune.evaluate.timing import LOCK_FILE, TimingSettings, batch_rows, exclusive, measure


@pytest.fixture(scope="module")
def model_and_rows():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return pipeline, export(pipeline, X.iloc[:5]), X


def test_backends_table_says_what_runs_here_and_why_not():
    table = admm_tune.list_backends()
    assert list(table["backend"]) == list(BACKENDS)
    assert table.set_index("backend").loc["onnxruntime", "available"]
    assert table.set_index("backend").loc["openvino", "available"]
    assert table["reason"].str.len().min() > 10
    out = subprocess.run([sys.executable, "-m", "admm_tune.cli", "backends"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "tensorrt" in out.stdout and "onnxruntime" in out.stdout


def test_tensorrt_is_detected_never_simulated(model_and_rows):
    _, model, X = model_and_rows
    trt = get_backend("tensorrt")
    ok, reason = trt.available()
    if not gpu_names():
        assert not ok and "no NVIDIA GPU" in reason
    if not ok:
        with pytest.raises(BackendError, match="tensorrt is unavailable"):
            trt.compile(model, {}, "fp32")
        return
    session = trt.compile(model, {"workspace_mb": 256}, "fp32")  # on a machine with a GPU and TensorRT
    assert session.run(feeds(model, X.iloc[:8]))[0].shape == (8,)


@pytest.mark.parametrize("name, knobs", [
    ("onnxruntime", {"intra_op_num_threads": 1, "inter_op_num_threads": 1, "graph_optimization_level": "basic",
                     "execution_mode": "sequential", "allow_spinning": False}),
    ("openvino", {"performance_hint": "LATENCY", "num_streams": 1, "inference_num_threads": 1}),
])
def test_knobs_are_applied_and_outputs_agree(model_and_rows, name, knobs):
    pipeline, model, X = model_and_rows
    session = get_backend(name).compile(model, knobs, "fp32")
    labels, proba = session.run(feeds(model, X.iloc[:16]))[:2]
    assert (labels.ravel() == pipeline.predict(X.iloc[:16])).all()
    assert np.abs(proba - pipeline.predict_proba(X.iloc[:16])).max() < 1e-4


@pytest.mark.parametrize("name, knobs, precision, message", [
    ("onnxruntime", {"intra_op_num_threads": -1}, "fp32", "must be in"),
    ("onnxruntime", {"threads": 2}, "fp32", "has no knob 'threads'"),
    ("onnxruntime", {"execution_mode": "fast"}, "fp32", "must be one of"),
    ("onnxruntime", {}, "bf16", "does not run 'bf16'"),
    ("openvino", {"num_streams": 0}, "fp32", "must be in"),
    ("openvino", {}, "int8", "does not run 'int8'"),
])
def test_bad_knobs_and_precisions_are_refused(model_and_rows, name, knobs, precision, message):
    with pytest.raises(BackendError, match=message):
        get_backend(name).compile(model_and_rows[1], knobs, precision)


def test_openvino_runs_the_reduced_precisions_this_cpu_reports(model_and_rows):
    pipeline, model, X = model_and_rows
    backend = get_backend("openvino")
    for precision in backend.capabilities().precisions:
        labels = backend.compile(model, {}, precision).run(feeds(model, X))[0]
        assert (labels.ravel() == pipeline.predict(X)).mean() > 0.95


def test_harness_reports_percentiles_and_throughput(model_and_rows):
    _, model, X = model_and_rows
    session = get_backend("onnxruntime").compile(model, {}, "fp32")
    settings = TimingSettings(warmup=2, min_runs=20, max_runs=50, seconds=0.05)
    inputs = feeds(model, X.iloc[batch_rows(len(X), 32)])
    start = time.perf_counter()
    timing = measure(session, inputs, settings)
    wall = time.perf_counter() - start
    assert 20 <= timing.runs <= 50 and timing.batch_size == 32
    assert 0 < timing.latency_p50_ms <= timing.latency_p95_ms <= timing.latency_p99_ms
    # Throughput against two bounds the test measures itself, each holding however loaded the machine: the timed
    # calls took at most the wall time of measure() (rows per second >= rows timed / that wall time), and a
    # typical call takes about the median of calls timed one by one here (rows per second <= 3 x 32 / median).
    # A harness reporting calls (not rows) per second, or mixing ms and s, is 32x or 1000x off one of them.
    assert 32 * timing.runs / wall <= timing.throughput_rps, (timing, wall)
    calls = []
    for _ in range(200):
        began = time.perf_counter()
        session.run(inputs)
        calls.append(time.perf_counter() - began)
    assert timing.throughput_rps <= 3 * 32 / np.median(calls), (timing, np.median(calls))
    assert list(batch_rows(3, 7)) == [0, 1, 2, 0, 1, 2, 0]


def test_one_timing_at_a_time_on_the_machine():
    code = ("import time; from admm_tune.evaluate.timing import exclusive\n"
            "with exclusive():\n    print('held', flush=True); time.sleep(3)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        fd = os.open(LOCK_FILE, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        holder.wait(timeout=30)
    with exclusive():  # free again once the other timing ended
        pass
