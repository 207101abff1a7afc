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

from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.export import export, feeds
from admm_tune.evaluate.timing import TimingSettings, batch_rows, measure

MODELS = {"fast": lambda: LogisticRegression(max_iter=1000), "slow": lambda: KNeighborsClassifier()}
"""Rough p95s on breast_cancer at batch 64 on ONNX Runtime, timed on a 2-core x86 machine when this was written
(no committed result file: the tests that rely on a separation assert it at run time): logistic regression
~10 µs, gaussian_nb ~17 µs, a 100-tree forest ~50 µs, k-NN ~1400 µs."""


def session_of(kind: str):
    """``(ONNX model, ONNX Runtime session)`` of the scaled reference model ``kind`` fitted on breast_cancer."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = export(make_pipeline(StandardScaler(), MODELS[kind]()).fit(X, y), X.iloc[:5])
    return model, get_backend("onnxruntime").compile(model, {}, "fp32")


def p95_ms(model, session, batch: int, timing: TimingSettings, repeats: int = 5) -> float:
    """Median over ``repeats`` timings of the p95 latency of one call of ``batch`` breast_cancer rows."""
    X = load_breast_cancer(as_frame=True).data
    inputs = feeds(model, X.iloc[batch_rows(len(X), batch)])
    return float(np.median([measure(session, inputs, timing).latency_p95_ms for _ in range(repeats)]))


def reference_p95_ms(kind: str, batch: int, timing: TimingSettings) -> float:
    """p95 latency (ms) of the reference model ``kind`` ("fast" or "slow"), measured now."""
    return p95_ms(*session_of(kind), batch, timing)
