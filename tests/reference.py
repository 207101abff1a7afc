"""Latency references measured by the test that uses them, so that bounds scale with this machine, now.

A test that bounds a latency in absolute units passes on an idle fast machine
and fails on a loaded one.  Instead a test times reference models first, on
the same backend, batch and timing settings as its search, and sets its
bound as a multiple of the fast reference: a uniform slowdown (load, a slower
CPU) moves the bound with the candidates.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.deploy import serving_spec
from admm_tune.evaluate.export import export
from admm_tune.evaluate.timing import TimingSettings, batch_rows, measure_call
from admm_tune.serving import Model

MODELS = {"fast": lambda: LogisticRegression(max_iter=1000), "slow": lambda: KNeighborsClassifier()}
"""The tests that rely on a separation of the two assert it at run time."""


def session_of(kind: str):
    """``(ONNX model, ONNX Runtime session)`` of the scaled reference model ``kind`` fitted on breast_cancer."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export(make_pipeline(StandardScaler(), MODELS[kind]()).fit(X, y), X.iloc[:5])
    return model, get_backend("onnxruntime").compile(model, {}, "fp32")


def p95_ms(model, session, batch: int, timing: TimingSettings, repeats: int = 5) -> float:
    """Median over ``repeats`` timings of the p95 latency of one service call of ``batch`` breast_cancer rows, as
    the search times its candidates: raw JSON records prepared and run through ONNX Runtime's ``infer``."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    data = load_dataset({"X": X, "y": y})
    _, infer = get_backend("onnxruntime").serving_functions()
    served = Model(lambda inputs: infer(session.native, inputs), serving_spec(data, model, model))
    records = [data.examples[i] for i in batch_rows(len(data.examples), batch)]
    return float(np.median([measure_call(lambda: served.predict(records), batch, timing).latency_p95_ms
                            for _ in range(repeats)]))


def reference_p95_ms(kind: str, batch: int, timing: TimingSettings) -> float:
    """p95 latency (ms) of the reference model ``kind`` ("fast" or "slow"), measured now."""
    return p95_ms(*session_of(kind), batch, timing)
