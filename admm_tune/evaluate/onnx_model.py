"""Deploy problems: a user's trained ONNX model, its evaluation data, compression, and one candidate measured.

A deploy problem (``kind: deploy``, :mod:`admm_tune.deploy_problem`) has no
pipeline to fit: its candidates are ways to run one trained ONNX model.
This module holds everything that touches the model and its data:

- :func:`load_model` and :func:`model_inputs` read the graph and its inputs;
  :func:`check_data` refuses evaluation arrays that do not fit them, naming
  the input, its expected shape and type, and the data's;
- :func:`split_rows` splits the evaluation rows, seeded, into a calibration
  slice (int8 static calibration only ever sees it) and a held-out slice
  (every accuracy figure is measured on it), which never overlap;
- :func:`compress` applies a precision that is a graph transform: int8
  static quantisation in QDQ format (``onnxruntime.quantization.quantize_static``,
  calibration ``minmax`` / ``entropy`` / ``percentile``, per-tensor or
  per-channel), int8 dynamic (``quantize_dynamic``) and fp16 graphs
  (``onnxconverter_common.float16``, inputs and outputs kept float32), and
  NNCF's ``quantize`` and ``quantize_with_accuracy_control``
  (:class:`AccuracyControl`: the problem's bound, validated on the
  calibration rows); bf16 and OpenVINO's fp16 are the backend's precision
  hint instead;
- :class:`OnnxModelEvaluator` turns a config (backend, precision and its
  parameters, the backend's knobs) into an :class:`~admm_tune.observation.Observation`:
  it compresses the graph (cached per precision), compiles it, runs the
  held-out rows at the problem's batch size, measures the preserved metric
  and ``accuracy_drop`` against the fp32 model on those same rows, and times
  it with the harness (:mod:`.timing`); with the concurrency knobs of a
  throughput objective, throughput is measured at their batch and, on
  OpenVINO, with their requests in flight (:func:`queued_throughput`);
  :meth:`OnnxModelEvaluator.final` times the run's finalists in
  interleaved rounds (the final race, :func:`admm_tune.deploy_problem.race`);
  :meth:`OnnxModelEvaluator.export` writes the chosen deployment.

The preserved metric is top-1 accuracy when labels are given (the arg-max
of the first output's last axis, or the output itself when it holds
integer labels), else the share of held-out rows whose top-1 agrees with
the fp32 model's (``agreement``; the fp32 model agrees with itself, so
``accuracy_drop`` is then ``1 - agreement``), or a user's :data:`Scorer`
(:func:`load_scorer`).  The fp32 reference is the model as given, run by
ONNX Runtime with its default session options.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._fields import join
from ..errors import ProblemError
from ..metrics import BY_NAME, DEPLOY, measured
from ..observation import COMPLETE, Observation
from ..space import Config
from .backends import BackendError, get_backend
from .graph import fold_scalers_into_trees, merge_linear_chains
from .timing import TimingSettings, batch_rows, exclusive, measure

BACKEND, PRECISION = "backend", "precision"

CALIBRATIONS = ("minmax", "entropy", "percentile")
"""Calibration methods of int8 static quantisation (ONNX Runtime's ``CalibrationMethod``)."""

GRAPH_PRECISIONS = ("int8_static", "int8_dynamic", "int8_nncf", "int8_nncf_accuracy_control", "fp16")
"""Precisions made by rewriting the graph (on ONNX Runtime; OpenVINO takes fp16 as a hint)."""

HINT_PRECISIONS = {"openvino": ("bf16", "fp16")}
"""Precisions a backend applies itself, as a runtime hint, where its capabilities list them."""

DEPLOY_PRECISIONS = ("fp32", "fp16", "bf16", "int8_static", "int8_dynamic", "int8_nncf", "int8_nncf_accuracy_control")
"""Every precision of a deploy problem."""

NNCF_PRECISIONS = ("int8_nncf", "int8_nncf_accuracy_control")
"""Precisions quantised by NNCF (``nncf.quantize``; ``nncf.quantize_with_accuracy_control``)."""

NNCF_PRESETS = ("performance", "mixed")
"""``nncf.QuantizationPreset`` values searched for the NNCF precisions (symmetric, or asymmetric activations)."""

Scorer = Callable[[np.ndarray, np.ndarray], float]
"""A user's preserved metric: ``scorer(outputs, truth) -> float``, higher is better.

``outputs`` is the model's first output on the held-out rows (``[n, ...]``);
``truth`` is the labels (``[n]``) when the data has them, else the fp32
model's first output on the same rows."""

OBJECTIVES = {name: "max" if BY_NAME[name].higher_is_better else "min"
              for name in ("latency_p50_ms", "latency_p95_ms", "throughput_rps")}
"""Objectives of a deploy problem and their sense."""

METRICS = measured(DEPLOY)
"""Metrics measured for every candidate of a deploy problem, usable in constraints (:mod:`admm_tune.metrics`)."""


class ModelError(ProblemError):
    """A deploy problem's model or data cannot be used (the message names the field and the input)."""


# -- the model and its data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInput:
    """One graph input: its name, element type and shape (ints for fixed dimensions, else names or None)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        """``float32[N, 1, 8, 8]``."""
        return f"{self.dtype}[{', '.join('?' if d is None else str(d) for d in self.shape)}]"


def load_model(source: str | Path | bytes | onnx.ModelProto, path: str = "model") -> onnx.ModelProto:
    """Read an ONNX model from a file, bytes or a ModelProto, and check it.

    Raises
    ------
    ModelError
        When the file is missing or not a valid ONNX model.
    """
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        if isinstance(source, (str, Path)) and not Path(source).is_file():
            raise ModelError(path, f"ONNX file {str(source)!r} does not exist")
        try:
            model = onnx.load_model_from_string(source) if isinstance(source, bytes) else onnx.load_model(source)
            onnx.checker.check_model(model)
        except Exception as exc:
            raise ModelError(path, f"not a valid ONNX model: {' '.join(str(exc).split())[:300]}") from None
    if not model_inputs(model):
        raise ModelError(path, "the graph has no input")
    return model


def model_inputs(model: onnx.ModelProto) -> list[ModelInput]:
    """The graph's inputs that are fed at run time (initializers excluded)."""
    constants = {i.name for i in model.graph.initializer}
    out = []
    for value in model.graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        out.append(ModelInput(value.name, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return out


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The batch dimension the model's first input fixes, or None when it is dynamic."""
    first = model_inputs(model)[0].shape[:1]
    return first[0] if first and isinstance(first[0], int) and first[0] > 0 else None


def check_data(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], labels: np.ndarray | None = None,
               path: str = "data") -> int:
    """Check that ``inputs`` feed every input of ``model``; return the number of rows.

    Axis 0 of every array is the rows (the model's batch dimension); the
    other dimensions must equal the model's fixed ones, and the element
    type must be the model's.

    Raises
    ------
    ModelError
        Naming the input, the shape and type the model expects and those of the data.
    """
    expected = model_inputs(model)
    names = [i.name for i in expected]
    unknown = [k for k in inputs if k not in names]
    if unknown:
        raise ModelError(join(path, unknown[0]), f"the model has no input {unknown[0]!r}; its inputs: "
                                                   f"{', '.join(f'{i.name}: {i.describe()}' for i in expected)}")
    rows = None
    for spec in expected:
        where = join(path, spec.name)
        if spec.name not in inputs:
            raise ModelError(where, f"missing: the model's input {spec.name!r} expects {spec.describe()}")
        array = np.asarray(inputs[spec.name])
        given = f"{array.dtype}[{', '.join(map(str, array.shape))}]"
        if array.ndim != len(spec.shape) or any(isinstance(d, int) and d > 0 and d != s
                                                for d, s in zip(spec.shape[1:], array.shape[1:])):
            raise ModelError(where, f"input {spec.name!r} expects shape {spec.describe()} (axis 0: rows), "
                                    f"the data has {given}")
        if array.dtype != spec.dtype:
            raise ModelError(where, f"input {spec.name!r} expects {spec.describe()}, the data has {given} "
                                    f"(convert it, e.g. .astype('{spec.dtype}'))")
        if rows is not None and len(array) != rows:
            raise ModelError(where, f"{len(array)} rows, but the other inputs have {rows}")
        rows = len(array)
    if labels is not None and len(labels) != rows:
        raise ModelError(join(path, "labels"), f"{len(labels)} labels for {rows} rows")
    if not rows:
        raise ModelError(path, "no rows")
    return int(rows)


@dataclass(frozen=True)
class Split:
    """Row indices of the calibration and the held-out slices (disjoint, sorted)."""

    calibration: np.ndarray
    held_out: np.ndarray
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: both index lists and the seed."""
        return {"calibration": self.calibration.tolist(), "held_out": self.held_out.tolist(), "seed": self.seed}


def split_rows(n_rows: int, calibration: float | int = 0.3, seed: int | None = 0) -> Split:
    """Split ``n_rows`` rows at random (``seed``) into a calibration slice and a held-out slice.

    Parameters
    ----------
    n_rows : int
    calibration : float or int
        A share of the rows (``0 < share < 1``) or a row count for calibration.
    seed : int, optional

    Raises
    ------
    ModelError
        When either slice would be empty.
    """
    n_cal = int(round(calibration * n_rows)) if isinstance(calibration, float) else int(calibration)
    if not 1 <= n_cal < n_rows:
        raise ModelError("data.calibration", f"{n_cal} calibration rows of {n_rows}: both the calibration and the "
                                             "held-out slices need at least one row")
    order = np.random.default_rng(seed).permutation(n_rows)
    return Split(np.sort(order[:n_cal]), np.sort(order[n_cal:]), seed)


@dataclass
class EvalData:
    """Evaluation rows of a deploy problem: one array per model input, optional labels, and their split."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    split: Split

    def rows(self, which: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs restricted to the row indices ``which``."""
        return {k: v[which] for k, v in self.inputs.items()}


def read_arrays(source: Any, model: onnx.ModelProto, path: str = "data") -> tuple[dict[str, np.ndarray],
                                                                                  np.ndarray | None]:
    """Input arrays and labels from an ``.npz`` path or ``{"inputs": ..., "labels": ...}``.

    An ``.npz`` holds one array per model input (named after it) and,
    optionally, ``labels``; a model with one input also takes an ``.npz``
    with one other array under any name.  In the mapping form ``inputs`` is
    such a mapping, or one array for a one-input model.
    """
    names = [i.name for i in model_inputs(model)]
    if isinstance(source, (str, Path)):
        file = Path(source)
        if not file.is_file():
            raise ModelError(path, f"data file {str(file)!r} does not exist")
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        labels = arrays.pop("labels", None)
    elif isinstance(source, Mapping):
        arrays = source.get("inputs")
        labels = source.get("labels")
        if arrays is None:
            raise ModelError(join(path, "inputs"), "missing")
        if not isinstance(arrays, Mapping):
            arrays = {names[0]: arrays} if len(names) == 1 else arrays
        if not isinstance(arrays, Mapping):
            raise ModelError(join(path, "inputs"), f"the model has {len(names)} inputs {names}: give a mapping "
                                                     "from input name to array")
        arrays = dict(arrays)
    else:
        raise ModelError(path, f"expected an .npz path or a mapping with inputs (and labels), got "
                               f"{type(source).__name__}")
    if len(names) == 1 and len(arrays) == 1 and names[0] not in arrays:
        arrays = {names[0]: next(iter(arrays.values()))}
    return {k: np.asarray(v) for k, v in arrays.items()}, None if labels is None else np.asarray(labels).reshape(-1)


# -- compression -------------------------------------------------------------------------------------------------


def runs_on(backend: str, precision: str, hints: tuple[str, ...]) -> bool:
    """Whether ``backend`` runs ``precision`` for a deploy problem (``hints``: its runtime precisions here)."""
    if precision == "fp32" or precision == "int8_static":
        return True
    if precision == "int8_dynamic":
        return backend in ("onnxruntime", "openvino")
    if precision in NNCF_PRECISIONS:
        return nncf_available() and backend in ("onnxruntime", "openvino")
    if precision == "fp16":
        return backend == "onnxruntime" or precision in hints
    return precision in hints  # bf16: a runtime hint only


def nncf_available() -> bool:
    """Whether NNCF is installed (the optional extra ``admm_tune[nncf]``; it needs no PyTorch for ONNX graphs)."""
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


def runtime_hint(backend: str, precision: str) -> str:
    """The precision the backend is told at compile time: the hint for bf16/fp16 there, else fp32."""
    return precision if precision in HINT_PRECISIONS.get(backend, ()) else "fp32"


def compress(model: onnx.ModelProto, precision: str, calibration_feeds: Mapping[str, np.ndarray] | None = None,
             *, method: str = "minmax", per_channel: bool = False, batch: int | None = None,
             preset: str = "performance", control: AccuracyControl | None = None) -> onnx.ModelProto:
    """The graph at ``precision`` (fp32: unchanged).

    Parameters
    ----------
    model : onnx.ModelProto
    precision : {"fp32", "fp16", "int8_static", "int8_dynamic", "int8_nncf", "int8_nncf_accuracy_control"}
    calibration_feeds : mapping, optional
        The calibration rows (int8 static only; never the held-out rows).
    method : {"minmax", "entropy", "percentile"}
        Calibration method of int8 static.
    per_channel : bool
        Per-channel weight scales (int8 static).
    batch : int, optional
        Rows per calibration call: the model's fixed batch dimension, else
        all calibration rows in one call (ONNX Runtime's histogram
        calibrators need calls of equal size).  NNCF gets rows one call each
        (or ``batch`` rows when the model fixes it).
    preset : {"performance", "mixed"}
        ``nncf.QuantizationPreset`` of ``int8_nncf`` (``nncf.quantize`` on the
        ONNX graph: a QDQ graph, with NNCF's own bias correction) and of
        ``int8_nncf_accuracy_control``.
    control : AccuracyControl, optional
        What ``int8_nncf_accuracy_control`` validates with
        (``nncf.quantize_with_accuracy_control``: layers go back to fp32
        until the drop on the calibration rows is within ``max_drop``).

    Raises
    ------
    BackendError
        When quantisation or conversion fails.
    """
    if precision == "fp32":
        return model
    try:  # the quantiser prints its calibration progress and logs advice on the root logger: kept quiet
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), _quiet_logging():
            if precision == "fp16":
                from onnxconverter_common import float16

                return float16.convert_float_to_float16(model, keep_io_types=True)
            if precision in NNCF_PRECISIONS:
                if precision == "int8_nncf_accuracy_control" and control is None:
                    raise BackendError("int8_nncf_accuracy_control needs an accuracy_drop bound")
                return _nncf_quantize(model, calibration_feeds, batch or 1, preset,
                                      control if precision == "int8_nncf_accuracy_control" else None)
            from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, \
                quantize_static

            src, dst = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "quantized.onnx")
            onnx.save_model(model, src)
            if precision == "int8_dynamic":
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            elif precision == "int8_static":
                if calibration_feeds is None:
                    raise BackendError("int8_static needs calibration rows")
                methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                           "percentile": CalibrationMethod.Percentile}
                quantize_static(src, dst, _Reader(calibration_feeds, batch), quant_format=QuantFormat.QDQ,
                                per_channel=bool(per_channel), calibrate_method=methods[method],
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            else:
                raise BackendError(f"unknown precision {precision!r}; expected one of {list(DEPLOY_PRECISIONS)}")
            return onnx.load_model(dst)
    except BackendError:
        raise
    except Exception as exc:  # the quantiser and the converter raise their own types
        raise BackendError(f"{precision}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from None


@dataclass(frozen=True)
class AccuracyControl:
    """What ``nncf.quantize_with_accuracy_control`` validates with, on the calibration rows only.

    Parameters
    ----------
    truth : ndarray, shape (n_calibration, ...)
        The calibration rows' labels, or the fp32 model's first output on them.
    score : callable
        ``score(outputs, truth) -> float``, higher is better (the problem's preserved metric).
    per_row : bool
        Whether ``score`` of a single call's rows is meaningful (NNCF then ranks layers by it).
    max_drop : float
        The problem's ``accuracy_drop`` bound (absolute).
    """

    truth: np.ndarray
    score: Callable[[np.ndarray, np.ndarray], float]
    per_row: bool
    max_drop: float

    def validate(self, model: onnx.ModelProto, items: Any) -> tuple[float, list[float] | None]:
        """NNCF's ``validation_fn``: the metric over ``items`` (``(feeds, truth)`` pairs), and per item."""
        import onnxruntime as ort

        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        outputs, truths = [], []
        for feeds, truth in items:
            outputs.append(session.run(None, dict(feeds))[0])
            truths.append(truth)
        per_item = [self.score(o, t) for o, t in zip(outputs, truths)] if self.per_row else None
        return float(self.score(np.concatenate(outputs), np.concatenate(truths))), per_item


def _nncf_quantize(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray] | None, batch: int,
                   preset: str, control: AccuracyControl | None = None) -> onnx.ModelProto:
    """``nncf.quantize`` (or, with ``control``, ``quantize_with_accuracy_control``) on the calibration rows.

    In calls of ``batch`` rows; accuracy control validates on the same rows.
    """
    if feeds is None:
        raise BackendError("int8_nncf needs calibration rows")
    import nncf

    nncf.set_log_level(logging.ERROR)
    n = len(next(iter(feeds.values())))
    starts = range(0, n - batch + 1, batch)
    calls = [{k: v[i:i + batch] for k, v in feeds.items()} for i in starts]
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        if control is None:
            return nncf.quantize(model, nncf.Dataset(calls), preset=nncf.QuantizationPreset(preset),
                                 subset_size=len(calls))
        validation = nncf.Dataset([(call, control.truth[i:i + batch]) for call, i in zip(calls, starts)],
                                  lambda item: item[0])  # validate_fn gets (feeds, truth); the model only feeds
        return nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(calls), validation, control.validate, max_drop=control.max_drop,
            drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset(preset), subset_size=len(calls))


@contextlib.contextmanager
def _quiet_logging() -> Any:
    """Warnings and below of every logger silenced for the block."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` over calibration arrays, in calls of ``batch`` rows."""

    def __init__(self, feeds: Mapping[str, np.ndarray], batch: int | None) -> None:
        n = len(next(iter(feeds.values())))
        b = batch or n
        self.calls = iter([{k: v[i:i + b] for k, v in feeds.items()} for i in range(0, n - b + 1, b)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.calls, None)

    def rewind(self) -> None:  # some calibrators read twice; ours are made fresh per quantisation
        pass


# -- the metric ----------------------------------------------------------------------------------------------------


def top1(output: np.ndarray) -> np.ndarray:
    """Predicted classes: the arg-max over the last axis, or the output itself when it holds integer labels."""
    output = np.asarray(output)
    if output.ndim == 1 or (np.issubdtype(output.dtype, np.integer) and output.shape[-1:] == (1,)):
        return output.reshape(len(output))
    return output.reshape(len(output), -1).argmax(axis=1)


def run_rows(session: Any, inputs: Mapping[str, np.ndarray], batch: int) -> np.ndarray:
    """The first output for every row, run in calls of ``batch`` rows (the last call padded by cycling)."""
    n = len(next(iter(inputs.values())))
    parts = []
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        rows = start + batch_rows(stop - start, batch)
        parts.append(np.asarray(session.run({k: v[rows] for k, v in inputs.items()})[0])[:stop - start])
    return np.concatenate(parts)


def reference_outputs(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], batch: int | None = None
                      ) -> np.ndarray:
    """The first output of the fp32 model as given, run by ONNX Runtime with its default session options.

    In calls of ``batch`` rows (a model that fixes its batch dimension), else all rows in one call.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    class _Run:
        run = staticmethod(lambda feeds: session.run(None, dict(feeds)))

    return run_rows(_Run, inputs, batch or len(next(iter(inputs.values()))))


def top1_agreement(outputs: np.ndarray, truth: np.ndarray) -> float:
    """The built-in metric of class scores: the share of rows whose top-1 equals the truth's (labels, or the fp32
    outputs' top-1)."""
    return float(np.mean(top1(outputs) == top1(truth)))


def r2(outputs: np.ndarray, truth: np.ndarray) -> float:
    """The built-in metric of values (regression): R² of the outputs against the truth (labels, or the fp32
    outputs: then 1 means the deployment reproduces fp32 exactly), averaged over output columns."""
    y = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
    pred = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    residual = ((y - pred) ** 2).sum(axis=0)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - residual / np.where(total > 0, total, 1.0)))


SCORES, VALUES, LABELS = "class scores", "values", "labels"
"""What a model's first output holds, as :func:`output_kind` reads its declared shape and type."""


def output_kind(model: onnx.ModelProto) -> str:
    """:data:`LABELS` (an integer output), :data:`VALUES` (one float per row: ``[N]`` or ``[N, 1]``) or
    :data:`SCORES` (several floats per row, or a last dimension the model leaves open)."""
    output = model.graph.output[0].type.tensor_type
    if output.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
        return LABELS
    dims = [d.dim_value if d.HasField("dim_value") else None for d in output.shape.dim]
    return VALUES if len(dims) == 1 or dims[-1:] == [1] else SCORES


def default_metric(model: onnx.ModelProto, labels: np.ndarray | None, path: str = "data.labels"
                   ) -> tuple[Scorer, str]:
    """The preserved metric a deploy problem measures when it names none, from the model's output and the labels.

    Class scores or labels: top-1 accuracy against integer labels, or top-1 agreement with fp32.  Values: R²
    against float labels, or R² against fp32's outputs (``fidelity_r2``).

    Raises
    ------
    ModelError
        When the labels do not fit the output: float labels on class scores, or class labels on one value per
        row (a single-logit classifier needs a ``metric``), naming the field.
    """
    kind = output_kind(model)
    name = model.graph.output[0].name
    if labels is not None:
        whole = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
        if kind != VALUES and not whole and not np.all(np.mod(labels, 1) == 0):
            raise ModelError(path, f"float labels, but the model's output {name!r} holds {kind}: give integer class "
                                   "labels, or a `metric` for this output")
        if kind == VALUES and whole:
            raise ModelError(path, f"integer class labels, but the model's output {name!r} holds one value per row "
                                   "(regression): give float labels (labels.astype(float)) for a regression, or a "
                                   "`metric` that reads a single-logit classifier's output")
    if kind == VALUES:
        return r2, "r2" if labels is not None else "fidelity_r2"
    return top1_agreement, "top1_accuracy" if labels is not None else "agreement"


def load_scorer(source: str | Callable[..., Any], base_dir: Path | None = None, path: str = "metric") -> Scorer:
    """A user scorer from a callable, or from ``"module:function"`` (a problem file's ``metric``).

    The module is imported as Python would, with the problem file's
    directory searched first, so a ``scorers.py`` beside the problem works.

    Raises
    ------
    ProblemError
        Naming ``path`` when the text is not ``module:function``, or the
        function cannot be imported or is not callable.
    """
    if callable(source):
        return source
    if not isinstance(source, str) or source.count(":") != 1:
        raise ProblemError(path, f"expected 'module:function' (or a callable from Python), got {source!r}")
    import importlib
    import sys

    module_name, name = source.split(":")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ProblemError(path, f"cannot import {source!r}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    if not callable(function):
        raise ProblemError(path, f"{source!r} is not callable")
    return function


# -- throughput with requests in flight ------------------------------------------------------------------------------

CONCURRENCY_KNOBS = ("throughput_batch", "infer_requests")
"""Knobs of a throughput objective that the evaluator applies, not the backend's compiler: rows per call
(every backend) and requests in flight (OpenVINO's ``AsyncInferQueue``)."""

THROUGHPUT_BATCHES = (1, 8, 32, 128)
"""Rows per call searched for a throughput objective (a model that fixes its batch keeps it)."""


def queued_throughput(compiled: Any, feeds: Mapping[str, np.ndarray], requests: int, seconds: float) -> float:
    """Rows per second of an OpenVINO compiled model with ``requests`` inferences in flight.

    ``ov.AsyncInferQueue`` of ``requests`` requests, each call ``feeds``; one
    round untimed, then calls for ``seconds`` (at least two rounds), under the
    machine-wide timing lock.
    """
    import openvino as ov

    batch = int(next(iter(feeds.values())).shape[0])
    queue = ov.AsyncInferQueue(compiled, requests)
    with exclusive():
        for _ in range(requests):
            queue.start_async(dict(feeds))
        queue.wait_all()
        calls, start = 0, time.perf_counter()
        while calls < 2 * requests or time.perf_counter() - start < seconds:
            queue.start_async(dict(feeds))
            calls += 1
        queue.wait_all()
        elapsed = time.perf_counter() - start
    return calls * batch / elapsed


# -- the evaluator ---------------------------------------------------------------------------------------------------


@dataclass
class _Graph:
    model: onnx.ModelProto | None
    seconds: float = 0.0
    error: str = ""


@dataclass
class OnnxModelEvaluator:
    """Evaluates deploy configs: compress, compile, measure the preserved metric, time.

    Parameters
    ----------
    model : onnx.ModelProto
        The trained fp32 model.
    data : EvalData
        Evaluation rows and their calibration / held-out split.
    objective : str
        One of :data:`OBJECTIVES`; the loss is its value (``throughput_rps``: negated).
    batch_size : int
        Rows per call, for accuracy and latency.
    timing : TimingSettings
    scorer : callable, optional
        The preserved metric (:data:`Scorer`); by default
        :func:`default_metric` (top-1 for class scores, R² for values).
    max_drop : float, optional
        The problem's ``accuracy_drop`` bound: what ``int8_nncf_accuracy_control`` is asked to keep.

    Attributes
    ----------
    metric_name : str
        ``top1_accuracy``, ``agreement``, ``r2``, ``fidelity_r2``, or the scorer's name.
    reference : float
        The fp32 model's metric on the held-out rows.
    """

    model: onnx.ModelProto
    data: EvalData
    objective: str = "latency_p50_ms"
    batch_size: int = 1
    timing: TimingSettings = field(default_factory=TimingSettings)
    scorer: Scorer | None = None
    max_drop: float | None = None

    def __post_init__(self) -> None:
        held = self.data.rows(self.data.split.held_out)
        self.fixed_batch = fixed_batch(self.model)
        reference = reference_outputs(self.model, held, self.fixed_batch)
        labels = self.data.labels
        self.truth = reference if labels is None else labels[self.data.split.held_out]
        if self.scorer is None:
            self.score, self.metric_name = default_metric(self.model, labels)
        else:
            self.score, self.metric_name = self.scorer, getattr(self.scorer, "__name__", "scorer")
        self.reference = float(self.score(reference, self.truth))
        self.graphs: dict[tuple[Any, ...], _Graph] = {}

    def control(self) -> AccuracyControl | None:
        """What ``int8_nncf_accuracy_control`` validates with: the calibration rows' metric (None without a bound)."""
        if self.max_drop is None:
            return None
        rows = self.data.split.calibration
        truth = reference_outputs(self.model, self.data.rows(rows), self.fixed_batch) if self.data.labels is None \
            else self.data.labels[rows]
        return AccuracyControl(truth, self.score, self.score is top1_agreement, self.max_drop)

    def graph(self, precision: str, method: str, per_channel: bool, preset: str = "performance") -> _Graph:
        """The graph at a precision (cached): compressed once per precision and its parameters."""
        key = {"int8_static": (precision, method, per_channel)}.get(
            precision, (precision, preset) if precision in NNCF_PRECISIONS else (precision,))
        if key not in self.graphs:
            start = time.perf_counter()
            try:
                model = compress(self.model, precision, self.data.rows(self.data.split.calibration), method=method,
                                 per_channel=per_channel, batch=self.fixed_batch, preset=preset,
                                 control=self.control() if precision == "int8_nncf_accuracy_control" else None)
                self.graphs[key] = _Graph(model, time.perf_counter() - start)
            except BackendError as exc:
                self.graphs[key] = _Graph(None, time.perf_counter() - start, str(exc))
        return self.graphs[key]

    def parts(self, config: Config) -> tuple[str, str, dict[str, Any], dict[str, Any], _Graph]:
        """``(backend, precision, precision parameters, backend knobs, graph)`` of a config.

        The graph is the one the backend compiles (a runtime-hint precision
        compiles the fp32 graph).
        """
        backend, precision = str(config[BACKEND]), str(config[PRECISION])
        prefix = f"{PRECISION}.{precision}."
        params = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
        knobs = {k[len(f"{BACKEND}.{backend}."):]: v for k, v in config.items()
                 if k.startswith(f"{BACKEND}.{backend}.")}
        hint = runtime_hint(backend, precision)
        graph = self.graph(precision if hint == "fp32" else "fp32", str(params.get("calibration", "minmax")),
                           bool(params.get("per_channel")), str(params.get("preset", "performance")))
        return backend, precision, params, knobs, graph

    def __call__(self, config: Config) -> Observation:
        """Evaluate one config; a failure becomes a failed observation with its reason."""
        start = time.perf_counter()
        backend, precision, params, knobs, graph = self.parts(config)
        attrs: dict[str, Any] = {"backend": backend, "precision": precision, **{f"precision_{k}": v
                                                                                 for k, v in params.items()}}
        if graph.model is None:
            return Observation.failed(f"deploy: {graph.error}"[:500], time.perf_counter() - start, **attrs)
        concurrency = {k: knobs.pop(k) for k in CONCURRENCY_KNOBS if k in knobs}
        try:
            compiled = time.perf_counter()
            session = get_backend(backend).compile(graph.model, knobs, runtime_hint(backend, precision))
            compile_s = time.perf_counter() - compiled
            held = self.data.rows(self.data.split.held_out)
            score = float(self.score(run_rows(session, held, self.batch_size), self.truth))
            metrics = self.timings(session, held, concurrency, self.timing)
        except Exception as exc:  # a backend's failure on one candidate is recorded, never fatal
            return Observation.failed(f"deploy: {type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
                                      time.perf_counter() - start, **attrs)
        metrics.update({"model_size_kb": session.size_bytes / 1024.0, "compile_time_s": compile_s,
                        "compress_time_s": graph.seconds, "accuracy": score, "accuracy_drop": self.reference - score})
        value = metrics[self.objective]
        loss = -value if OBJECTIVES[self.objective] == "max" else value
        attrs["verification"] = (f"{self.metric_name} {score:.4f} on {len(self.truth)} held-out rows "
                                 f"(fp32: {self.reference:.4f})")
        return Observation(COMPLETE, float(loss), metrics, duration_s=time.perf_counter() - start, attrs=attrs)

    def timings(self, session: Any, held: Mapping[str, np.ndarray], concurrency: Mapping[str, Any],
             timing: TimingSettings) -> dict[str, float]:
        """The harness's figures of one compiled candidate at the problem's batch (throughput: the knobs' own)."""
        feeds = {k: v[batch_rows(len(v), self.batch_size)] for k, v in held.items()}
        metrics = measure(session, feeds, timing).metrics()
        if concurrency:
            metrics["throughput_rps"] = self.throughput(session, held, concurrency, timing)
        return metrics

    def final(self, race: Mapping[str, Any]) -> dict[str, Any]:
        """The final race: the finalists compiled once, then timed in interleaved rounds.

        The runner's final step for a deploy problem (run isolated, in the
        worker that holds the compressed graphs, by ``Pool.final``).

        Parameters
        ----------
        race : mapping
            ``finalists`` (configs), ``rounds`` (at most this many), ``share``
            (each timing lasts ``share x timing.seconds``) and ``seconds``
            (None: no limit): a round starts only when it is expected to end
            within ``seconds`` of the call's start.

        Returns
        -------
        dict
            ``figures``: per finalist, one dict of the harness's figures per
            round (:meth:`time`), or ``error`` for a finalist that no longer
            compiles; ``rounds``: how many ran; ``seconds``: the wall time.
        """
        start = time.perf_counter()
        deadline = math.inf if race.get("seconds") is None else start + float(race["seconds"])
        held = self.data.rows(self.data.split.held_out)
        timing = replace(self.timing, seconds=self.timing.seconds * float(race.get("share", 1.0)))
        entries: list[tuple[Any, dict[str, Any]] | str] = []
        for config in race["finalists"]:
            backend, precision, _, knobs, graph = self.parts(config)
            concurrency = {k: knobs.pop(k) for k in CONCURRENCY_KNOBS if k in knobs}
            try:
                if graph.model is None:
                    raise BackendError(graph.error)
                entries.append((get_backend(backend).compile(graph.model, knobs, runtime_hint(backend, precision)),
                                concurrency))
            except Exception as exc:  # recorded for that finalist; the others still race
                entries.append(f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300])
        figures: list[list[dict[str, float]]] = [[] for _ in entries]
        rounds, last = 0, 0.0
        while rounds < int(race["rounds"]) and time.perf_counter() + last < deadline:
            began = time.perf_counter()
            for i, entry in enumerate(entries):  # interleaved: load on the machine hits every finalist alike
                if not isinstance(entry, str):
                    figures[i].append(self.timings(entry[0], held, entry[1], timing))
            rounds, last = rounds + 1, time.perf_counter() - began
        return {"figures": [e if isinstance(e, str) else f for e, f in zip(entries, figures)], "rounds": rounds,
                "seconds": time.perf_counter() - start}

    def fallback(self, race: Mapping[str, Any], reason: str) -> dict[str, Any]:
        """What :meth:`final` answers when it ran out of time in the worker (``reason``): no figures."""
        return {"figures": [], "rounds": 0, "error": reason}

    def throughput(self, session: Any, held: Mapping[str, np.ndarray], concurrency: Mapping[str, Any],
                   timing: TimingSettings) -> float:
        """Rows per second at the knobs' batch, with the knobs' requests in flight on OpenVINO.

        ONNX Runtime: calls in a row, timed by the harness (its threads are the
        concurrency).  OpenVINO: ``AsyncInferQueue`` (:func:`queued_throughput`).
        """
        batch = int(concurrency.get("throughput_batch", self.batch_size))
        feeds = {k: v[batch_rows(len(v), batch)] for k, v in held.items()}
        if "infer_requests" in concurrency and hasattr(session, "compiled"):
            return queued_throughput(session.compiled, feeds, int(concurrency["infer_requests"]), timing.seconds)
        return measure(session, feeds, timing).throughput_rps

    def export(self, config: Config, target: str | Path, searched: float | None = None,
               remeasured: Mapping[str, Any] | None = None) -> Path:
        """Write the deployment of ``config``: the graph, ``deployment.json``, example inputs and ``load_model.py``.

        ``target`` is a directory (the graph is ``model.onnx`` in it) or the
        graph's file name (``*.onnx``).  The graph is the compressed one, as
        the backend compiles it; on ONNX Runtime it is ONNX Runtime's own
        offline-optimised graph at the chosen ``graph_optimization_level``
        (``SessionOptions.optimized_model_filepath``), opened with
        optimisation disabled.  The written files are then run as
        ``load_model.py`` runs them, on every held-out row, and the metric
        compared with the search's: ``deployment.json``'s ``verification``.
        ``lossless_passes`` names those of admm_tune's own passes
        (:mod:`.graph.passes`, which every backend's graph goes through)
        that changed this graph: none on a CNN, they fold scalers into trees
        and merge chains of affine steps.

        Parameters
        ----------
        config : Config
        target : path
        searched : float, optional
            The metric the search measured for ``config`` (else measured again now).
        remeasured : mapping, optional
            The final race's record (:func:`admm_tune.deploy_problem.race`),
            written as ``deployment.json``'s ``remeasured``.

        Returns
        -------
        Path
            Where the graph was written (``deployment.json`` and the rest beside it).

        Raises
        ------
        BackendError
            When the config's graph cannot be made or compiled.
        """
        backend_name, precision, params, knobs, graph = self.parts(config)
        if graph.model is None:
            raise BackendError(graph.error)
        concurrency = {k: knobs.pop(k) for k in CONCURRENCY_KNOBS if k in knobs}
        target = Path(target)
        path = target if target.suffix == ".onnx" else target / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = get_backend(backend_name)
        module = _backend_module(backend)
        model = backend.prepare(graph.model, knobs)
        passes = [f.__name__ for f in (fold_scalers_into_trees, merge_linear_chains)
                  if f(graph.model) is not graph.model]
        settings = backend.settings(knobs, runtime_hint(backend_name, precision))
        note = "the compressed graph as the backend compiles it"
        if backend_name == "onnxruntime":
            offline = {**settings, "options": {**settings["options"], "optimized_model_filepath": str(path)}}
            module.open_session(model.SerializeToString(), offline)  # ONNX Runtime writes the optimised graph
            level = settings["options"].get("graph_optimization_level", "ORT_ENABLE_ALL")
            settings["options"]["graph_optimization_level"] = "ORT_DISABLE_ALL"
            note = f"ONNX Runtime's offline-optimised graph ({level}), opened with optimisation disabled"
        else:
            onnx.save_model(model, path)
        session = module.open_session(str(path), settings)

        class _Run:
            run = staticmethod(lambda feeds: module.infer(session, feeds))

        held = self.data.rows(self.data.split.held_out)
        score = float(self.score(run_rows(_Run, held, self.batch_size), self.truth))
        if searched is None:
            searched = self(config).metrics.get("accuracy", math.nan)
        verdict = "agrees" if score == searched else "differs"
        examples = {k: v[:self.batch_size] for k, v in held.items()}
        np.savez(path.with_name("example_inputs.npz"), **examples)
        spec = {"model": path.name, "graph": note, "backend": backend_name, "precision": precision,
                "precision_params": params, "knobs": knobs, "concurrency": concurrency, "batch_size": self.batch_size,
                "session": settings, "inputs": [{"name": i.name, "type": str(i.dtype), "shape": list(i.shape)}
                                                for i in model_inputs(self.model)],
                "outputs": [o.name for o in self.model.graph.output], "example_inputs": "example_inputs.npz",
                "metric": self.metric_name, "reference": self.reference, "lossless_passes": passes,
                "verification": f"{verdict}: {self.metric_name} {score:.4f} on {len(self.truth)} held-out rows "
                                f"from the written files, {searched:.4f} in the search"}
        if remeasured is not None:
            spec["remeasured"] = remeasured
        path.with_name("deployment.json").write_text(json.dumps(spec, indent=2, default=str))
        functions = "\n\n".join(inspect.getsource(f) for f in (module.open_session, module.infer)).strip()
        path.with_name("load_model.py").write_text(LOADER.format(
            backend=backend_name, precision=precision, package=module.__name__.rsplit(".", 1)[-1],
            functions=functions))
        return path


def _backend_module(backend: Any) -> Any:
    """The module of an admm_tune backend object: its ``open_session`` and ``infer`` need only the backend's package."""
    return inspect.getmodule(type(backend))


LOADER = '''"""Run the ONNX model admm_tune deployed, on {backend} ({precision}), with its tuned knobs.

Needs only {package} and numpy.  Replace the example inputs with yours: one
array per input that deployment.json's "inputs" names, rows along axis 0,
in calls of "batch_size" rows.
"""
from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np


{functions}


if __name__ == "__main__":
    here = pathlib.Path(__file__).resolve().parent
    spec = json.loads((here / "deployment.json").read_text())
    session = open_session(str(here / spec["model"]), spec["session"])
    with np.load(here / spec["example_inputs"]) as example:
        feeds = {{name: example[name] for name in example.files}}
    for name, output in zip(spec["outputs"], infer(session, feeds)):
        print(name, repr(output))
'''
"""``load_model.py`` of an exported deploy problem: the backend module's ``open_session`` and ``infer``, and a main."""


__all__ = ["CALIBRATIONS", "CONCURRENCY_KNOBS", "DEPLOY_PRECISIONS", "METRICS", "NNCF_PRECISIONS", "OBJECTIVES",
           "THROUGHPUT_BATCHES", "AccuracyControl", "EvalData", "ModelError", "ModelInput", "OnnxModelEvaluator",
           "Scorer", "Split", "check_data", "compress", "fixed_batch", "load_model", "load_scorer", "model_inputs",
           "nncf_available", "queued_throughput", "read_arrays", "reference_outputs", "run_rows", "runs_on",
           "runtime_hint", "split_rows", "top1", "top1_agreement"]
