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
  (``onnxconverter_common.float16``, inputs and outputs kept float32);
  bf16 and OpenVINO's fp16 are the backend's precision hint instead;
- :class:`OnnxModelEvaluator` turns a config (backend, precision and its
  parameters, the backend's knobs) into an :class:`~admm_tune.observation.Observation`:
  it compresses the graph (cached per precision), compiles it, runs the
  held-out rows at the problem's batch size, measures the preserved metric
  and ``accuracy_drop`` against the fp32 model on those same rows, and times
  it with the harness (:mod:`.timing`).

The preserved metric is top-1 accuracy when labels are given (the arg-max
of the first output's last axis, or the output itself when it holds
integer labels), else the share of held-out rows whose top-1 agrees with
the fp32 model's (``agreement``; the fp32 model agrees with itself, so
``accuracy_drop`` is then ``1 - agreement``).  The fp32 reference is the
model as given, run by ONNX Runtime with its default session options.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._fields import join
from ..errors import ProblemError
from ..observation import COMPLETE, Observation
from ..space import Config
from .backends import BackendError, get_backend
from .timing import TimingSettings, batch_rows, measure

BACKEND, PRECISION = "backend", "precision"

CALIBRATIONS = ("minmax", "entropy", "percentile")
"""Calibration methods of int8 static quantisation (ONNX Runtime's ``CalibrationMethod``)."""

GRAPH_PRECISIONS = ("int8_static", "int8_dynamic", "int8_nncf", "fp16")
"""Precisions made by rewriting the graph (on ONNX Runtime; OpenVINO takes fp16 as a hint)."""

HINT_PRECISIONS = {"openvino": ("bf16", "fp16")}
"""Precisions a backend applies itself, as a runtime hint, where its capabilities list them."""

DEPLOY_PRECISIONS = ("fp32", "fp16", "bf16", "int8_static", "int8_dynamic", "int8_nncf")

NNCF_PRESETS = ("performance", "mixed")
"""``nncf.QuantizationPreset`` values searched for ``int8_nncf`` (symmetric, or asymmetric activations)."""
"""Every precision of a deploy problem."""

OBJECTIVES = {"latency_p50_ms": "min", "latency_p95_ms": "min", "throughput_rps": "max"}
"""Objectives of a deploy problem and their sense."""

METRICS = {
    "latency_p50_ms": "median latency of one call at the batch size (ms)",
    "latency_p95_ms": "95th percentile latency of one call (ms)",
    "latency_p99_ms": "99th percentile latency of one call (ms)",
    "latency_mean_ms": "mean latency of one call (ms)",
    "throughput_rps": "rows per second at the batch size (use with min)",
    "model_size_kb": "size of the compiled ONNX graph (kB)",
    "compile_time_s": "session creation / compilation time (s)",
    "compress_time_s": "time to quantise or convert the graph (s; 0 for fp32 and runtime hints)",
    "accuracy": "the preserved metric (top-1 accuracy, or agreement with fp32) on the held-out rows",
    "accuracy_drop": "the fp32 model's metric minus the deployed one's, on the held-out rows",
}
"""Metrics measured for every candidate of a deploy problem, usable in constraints."""


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
    if precision == "int8_nncf":
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
             preset: str = "performance") -> onnx.ModelProto:
    """The graph at ``precision`` (fp32: unchanged).

    Parameters
    ----------
    model : onnx.ModelProto
    precision : {"fp32", "fp16", "int8_static", "int8_dynamic", "int8_nncf"}
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
        ONNX graph: a QDQ graph, with NNCF's own bias correction).

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
            if precision == "int8_nncf":
                return _nncf_quantize(model, calibration_feeds, batch or 1, preset)
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


def _nncf_quantize(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray] | None, batch: int,
                   preset: str) -> onnx.ModelProto:
    """``nncf.quantize`` of the ONNX graph on the calibration rows, in calls of ``batch`` rows."""
    if feeds is None:
        raise BackendError("int8_nncf needs calibration rows")
    import nncf

    nncf.set_log_level(logging.ERROR)
    n = len(next(iter(feeds.values())))
    calls = [{k: v[i:i + batch] for k, v in feeds.items()} for i in range(0, n - batch + 1, batch)]
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        return nncf.quantize(model, nncf.Dataset(calls), preset=nncf.QuantizationPreset(preset),
                             subset_size=len(calls))


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


def reference_classes(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], batch: int | None = None
                      ) -> np.ndarray:
    """Top-1 of the fp32 model as given, run by ONNX Runtime with its default session options.

    In calls of ``batch`` rows (a model that fixes its batch dimension), else all rows in one call.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    class _Run:
        run = staticmethod(lambda feeds: session.run(None, dict(feeds)))

    return top1(run_rows(_Run, inputs, batch or len(next(iter(inputs.values())))))


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
        Rows per call, for accuracy and timing.
    timing : TimingSettings
    """

    model: onnx.ModelProto
    data: EvalData
    objective: str = "latency_p50_ms"
    batch_size: int = 1
    timing: TimingSettings = field(default_factory=TimingSettings)

    def __post_init__(self) -> None:
        held = self.data.rows(self.data.split.held_out)
        first = model_inputs(self.model)[0].shape[:1]
        self.fixed_batch = first[0] if first and isinstance(first[0], int) and first[0] > 0 else None
        reference = reference_classes(self.model, held, self.fixed_batch)
        labels = self.data.labels
        self.truth = reference if labels is None else labels[self.data.split.held_out]
        self.metric_name = "agreement" if labels is None else "top1_accuracy"
        self.reference = float(np.mean(reference == self.truth))
        self.graphs: dict[tuple[Any, ...], _Graph] = {}

    def graph(self, precision: str, method: str, per_channel: bool, preset: str = "performance") -> _Graph:
        """The graph at a precision (cached): compressed once per precision and its parameters."""
        key = {"int8_static": (precision, method, per_channel), "int8_nncf": (precision, preset)}.get(
            precision, (precision,))
        if key not in self.graphs:
            start = time.perf_counter()
            try:
                model = compress(self.model, precision, self.data.rows(self.data.split.calibration), method=method,
                                 per_channel=per_channel, batch=self.fixed_batch, preset=preset)
                self.graphs[key] = _Graph(model, time.perf_counter() - start)
            except BackendError as exc:
                self.graphs[key] = _Graph(None, time.perf_counter() - start, str(exc))
        return self.graphs[key]

    def __call__(self, config: Config) -> Observation:
        """Evaluate one config; a failure becomes a failed observation with its reason."""
        start = time.perf_counter()
        backend, precision = str(config[BACKEND]), str(config[PRECISION])
        prefix = f"{PRECISION}.{precision}."
        params = {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}
        knobs = {k[len(f"{BACKEND}.{backend}."):]: v for k, v in config.items()
                 if k.startswith(f"{BACKEND}.{backend}.")}
        attrs: dict[str, Any] = {"backend": backend, "precision": precision, **{f"precision_{k}": v
                                                                                 for k, v in params.items()}}
        hint = runtime_hint(backend, precision)
        graph = self.graph(precision if hint == "fp32" else "fp32", str(params.get("calibration", "minmax")),
                           bool(params.get("per_channel")), str(params.get("preset", "performance")))
        if graph.model is None:
            return Observation.failed(f"deploy: {graph.error}"[:500], time.perf_counter() - start, **attrs)
        try:
            compiled = time.perf_counter()
            session = get_backend(backend).compile(graph.model, knobs, hint)
            compile_s = time.perf_counter() - compiled
            held = self.data.rows(self.data.split.held_out)
            predicted = top1(run_rows(session, held, self.batch_size))
            score = float(np.mean(predicted == self.truth))
            feeds = {k: v[batch_rows(len(v), self.batch_size)] for k, v in held.items()}
            timing = measure(session, feeds, self.timing)
        except Exception as exc:  # a backend's failure on one candidate is recorded, never fatal
            return Observation.failed(f"deploy: {type(exc).__name__}: {' '.join(str(exc).split())}"[:500],
                                      time.perf_counter() - start, **attrs)
        metrics = {**timing.metrics(), "model_size_kb": session.size_bytes / 1024.0, "compile_time_s": compile_s,
                   "compress_time_s": graph.seconds, "accuracy": score, "accuracy_drop": self.reference - score}
        value = metrics[self.objective]
        loss = -value if OBJECTIVES[self.objective] == "max" else value
        attrs["verification"] = (f"{self.metric_name} {score:.4f} on {len(self.truth)} held-out rows "
                                 f"(fp32: {self.reference:.4f})")
        return Observation(COMPLETE, float(loss), metrics, duration_s=time.perf_counter() - start, attrs=attrs)


__all__ = ["CALIBRATIONS", "DEPLOY_PRECISIONS", "METRICS", "OBJECTIVES", "EvalData", "ModelError", "ModelInput",
           "OnnxModelEvaluator", "Split", "check_data", "compress", "load_model", "model_inputs", "nncf_available",
           "read_arrays",
           "reference_classes", "run_rows", "runs_on", "runtime_hint", "split_rows", "top1"]
