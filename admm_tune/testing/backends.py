"""The contract of an inference backend (:class:`~admm_tune.evaluate.backends.base.Backend`), as checks.

::

    from admm_tune.testing.backends import check_backend
    check_backend(MyBackend())

What every backend does, whether or not it runs on this machine:

- :meth:`~.Backend.available` answers ``(bool, reason)`` with a reason
  a user can act on; a backend that cannot run here refuses to compile
  with :class:`~.BackendError` (detected, never simulated).

What a backend that runs here does:

- its capabilities offer ``fp32`` and name only precisions of
  :data:`~.base.PRECISIONS`, at least one device, and knobs that are well
  formed (integers with a lower bound, categories with choices);
- every knob takes an admissible value and refuses an inadmissible one
  with a :class:`~.BackendError` naming the knob, as it refuses an unknown
  knob and a precision it does not run;
- :meth:`~.Backend.settings` are JSON data for every precision it runs and
  every knob set (``deployment.json`` stores them);
- a fixed pipeline (standard scaler + logistic regression on a 3-class
  table, exported by admm_tune) compiles at fp32 and agrees with
  scikit-learn: every label, and probabilities within 1e-4;
- the loader's functions (:meth:`~.Backend.serving_functions`: what
  ``load_model.py`` runs) reproduce the compiled session's outputs, from
  the graph :meth:`~.Backend.prepare` gives.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from ..evaluate.backends.base import PRECISIONS, Backend, BackendError, Knob, check_request
from . import run_checks

__all__ = ["CHECKS", "check_backend", "reference_pipeline"]

TOLERANCE = 1e-4
"""Largest probability difference from scikit-learn allowed at fp32."""


@cache
def reference_pipeline() -> tuple[Any, Any, Any]:
    """``(fitted pipeline, its ONNX graph, 40 rows)``: a standard scaler + logistic regression on a generated
    3-class table of 200 x 5, exported by admm_tune."""
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..evaluate.export import export

    X, y = make_classification(200, 5, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    return pipeline, export(pipeline, frame.iloc[:5]), frame.iloc[:40]


def _feeds(model: Any, rows: Any) -> dict[str, np.ndarray]:
    from ..evaluate.export import feeds

    return feeds(model, rows)


def _runs(backend: Backend) -> bool:
    return bool(backend.available()[0])


def _admissible(knob: Knob) -> Any:
    return knob.low if knob.kind == "int" else knob.choices[0]


def _inadmissible(knob: Knob) -> Any:
    return (knob.low - 1) if knob.kind == "int" else "no-such-value"


def check_availability_is_explained(backend: Backend) -> None:
    """``available()`` is ``(bool, non-empty reason)``."""
    ok, reason = backend.available()
    assert isinstance(ok, bool) and isinstance(reason, str) and reason.strip(), \
        f"{backend.name}: available() gave {(ok, reason)!r}"


def check_refuses_to_compile_where_it_cannot_run(backend: Backend) -> None:
    """Where it cannot run, compiling raises :class:`BackendError` (no fallback to another engine)."""
    if _runs(backend):
        return
    _, model, _ = reference_pipeline()
    try:
        backend.compile(model, {}, "fp32")
    except BackendError:
        return
    raise AssertionError(f"{backend.name}: unavailable ({backend.available()[1]}), yet compile() returned")


def check_capabilities_are_well_formed(backend: Backend) -> None:
    """fp32 offered, only known precisions, a device, and knobs of a known kind with their bounds or choices."""
    if not _runs(backend):
        return
    caps = backend.capabilities()
    assert "fp32" in caps.precisions and set(caps.precisions) <= set(PRECISIONS), \
        f"{backend.name}: precisions {caps.precisions}"
    assert caps.devices, f"{backend.name}: no device"
    for name, knob in caps.knobs.items():
        assert knob.kind in ("int", "categorical"), f"{backend.name}.{name}: kind {knob.kind!r}"
        assert (knob.low is not None) if knob.kind == "int" else bool(knob.choices), f"{backend.name}.{name}: {knob}"


def check_knobs_are_accepted_and_refused(backend: Backend) -> None:
    """Each knob takes an admissible value and refuses an inadmissible one naming the knob; an unknown knob and
    a precision the backend does not run are refused."""
    if not _runs(backend):
        return
    caps = backend.capabilities()
    for name, knob in caps.knobs.items():
        check_request(backend, {name: _admissible(knob)}, "fp32")
        try:
            check_request(backend, {name: _inadmissible(knob)}, "fp32")
        except BackendError as exc:
            assert name in str(exc), f"{backend.name}: the refusal of {name} does not name it: {exc}"
        else:
            raise AssertionError(f"{backend.name}: {name}={_inadmissible(knob)!r} accepted")
    for request in ({"no_such_knob": 1}, {}):
        precision = "fp32" if request else next((p for p in PRECISIONS if p not in caps.precisions), None)
        if precision is None:  # runs every precision
            continue
        try:
            check_request(backend, request, precision)
        except BackendError:
            continue
        raise AssertionError(f"{backend.name}: accepted {request or precision!r}")


def check_settings_are_json(backend: Backend) -> None:
    """``settings()`` is JSON data for every precision it runs, with no knob and with every knob set."""
    if not _runs(backend):
        return
    caps = backend.capabilities()
    every = {name: _admissible(knob) for name, knob in caps.knobs.items()}
    for precision in caps.precisions:
        for knobs in ({}, every):
            settings = backend.settings(knobs, precision)
            assert json.loads(json.dumps(settings)) == settings, f"{backend.name}: {settings!r} is not JSON data"


def check_compiles_and_agrees_with_scikit_learn(backend: Backend) -> None:
    """The reference pipeline at fp32: every label as scikit-learn's, probabilities within :data:`TOLERANCE`."""
    if not _runs(backend):
        return
    pipeline, model, rows = reference_pipeline()
    session = backend.compile(model, {}, "fp32")
    assert session.size_bytes > 0, f"{backend.name}: size_bytes {session.size_bytes}"
    labels, proba = session.run(_feeds(model, rows))[:2]
    expected = pipeline.predict(rows)
    assert (np.asarray(labels).ravel() == expected).all(), f"{backend.name}: labels differ from scikit-learn's"
    gap = float(np.abs(np.asarray(proba).reshape(len(rows), -1) - pipeline.predict_proba(rows)).max())
    assert gap <= TOLERANCE, f"{backend.name}: probabilities differ from scikit-learn's by {gap:.3g}"


def check_loader_functions_reproduce_the_session(backend: Backend) -> None:
    """``open_session(prepared graph, settings)`` + ``infer`` (``load_model.py``'s calls) give the session's
    outputs, and ``infer`` on the session's own ``native`` does too."""
    if not _runs(backend):
        return
    _, model, rows = reference_pipeline()
    caps = backend.capabilities()
    knobs = {name: _admissible(knob) for name, knob in caps.knobs.items()
             if name in ("intra_op_num_threads", "inference_num_threads")}
    session = backend.compile(model, knobs, "fp32")
    feeds = _feeds(model, rows)
    expected = session.run(feeds)
    open_session, infer = backend.serving_functions()
    graph = backend.prepare(model, knobs)
    assert hasattr(graph, "graph"), f"{backend.name}: prepare() gave {type(graph).__name__}, not an ONNX model"
    shipped = open_session(graph.SerializeToString(), backend.settings(knobs, "fp32"))
    for what, outputs in (("open_session + infer", infer(shipped, feeds)), ("infer(native)",
                                                                          infer(session.native, feeds))):
        assert len(outputs) == len(expected), f"{backend.name}: {what} gave {len(outputs)} outputs"
        for got, want in zip(outputs, expected):
            assert np.allclose(np.asarray(got), np.asarray(want), atol=1e-6), f"{backend.name}: {what} differs"


CHECKS: tuple[Callable[[Backend], None], ...] = (
    check_availability_is_explained, check_refuses_to_compile_where_it_cannot_run,
    check_capabilities_are_well_formed, check_knobs_are_accepted_and_refused, check_settings_are_json,
    check_compiles_and_agrees_with_scikit_learn, check_loader_functions_reproduce_the_session)
"""Every check of the contract, in the order :func:`check_backend` runs them."""


def check_backend(backend: Backend) -> None:
    """Run :data:`CHECKS` on ``backend``: an ``AssertionError`` names the first check it fails and why."""
    run_checks(CHECKS, backend)
