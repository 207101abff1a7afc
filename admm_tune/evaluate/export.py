"""Export of fitted scikit-learn pipelines to ONNX (skl2onnx) and graph rewrites.

:func:`export` converts a fitted pipeline with ``zipmap`` off and float32
input (one input per column when the categorical front is in the graph).
Outputs are ``label`` + ``probabilities`` (or the decision scores of
classifiers without ``predict_proba``) for classification and ``variable``
for regression.

OpenVINO (and TensorRT) reject the ``ai.onnx.ml`` operators that skl2onnx
emits by default.  For those skl2onnx has standard-operator alternatives
(:data:`STANDARD_ALTERNATIVES`, through its ``black_op`` option); the one
``ai.onnx.ml`` operator left in linear models and the MLP is the
``ArrayFeatureExtractor`` that maps the arg-max to a class label, which
:func:`lower` rewrites into a standard ``Gather``.  :func:`export` first tries
that standard form and falls back to the default one (tree ensembles, SVMs,
...), so :func:`is_standard` tells which backends can run the graph.
:func:`quantize_int8` makes the dynamic int8 variant for ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import helper

ML_DOMAIN = "ai.onnx.ml"
STANDARD_DOMAINS = ("", "ai.onnx")
TARGET_OPSET = {"": 18, ML_DOMAIN: 3}
"""Opsets of the exported graphs (supported by ONNX Runtime >= 1.15 and OpenVINO >= 2023)."""

STANDARD_ALTERNATIVES = frozenset({"Scaler", "LinearClassifier", "LinearRegressor", "Normalizer"})
"""``ai.onnx.ml`` operators that skl2onnx can replace by standard ones (``black_op``)."""


class ExportError(RuntimeError):
    """A fitted pipeline could not be converted to ONNX (quantised, run by a backend).

    Parameters
    ----------
    message : str
    structural : {"graph", "precision", "backend"} or None
        Set when the failure follows from the pipeline's structure, not
        from its parameters, so that no candidate of that structure is tried
        again: ``"graph"``, a step has no converter (any deployment);
        ``"precision"``, the precision cannot apply to the structure's graph
        (int8 with no weights to quantise); ``"backend"``, the backend cannot
        run the graph's operators.  None when it may depend on parameters.
    """

    def __init__(self, message: str, structural: str | None = None) -> None:
        super().__init__(message)
        self.structural = structural


MISSING_CONVERTER = ("MissingShapeCalculator", "MissingConverter")
"""skl2onnx's errors for a step it has no converter for, whatever its parameters."""


def export(pipeline: Any, X_sample: pd.DataFrame | np.ndarray) -> onnx.ModelProto:
    """Convert a fitted pipeline, in standard operators where skl2onnx can.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted.
    X_sample : DataFrame or ndarray
        A few training rows: they fix the input names and types (a DataFrame
        with non-numeric columns gives one input per column).

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ExportError
        When skl2onnx has no converter for a step or the conversion fails.
    """
    from skl2onnx import to_onnx

    from .converters import register
    from .graph import zero_safe_l2_norms

    register()
    columns = [str(c) for c in X_sample.columns] if isinstance(X_sample, pd.DataFrame) else None
    pipeline, target = _without_target_scaling(pipeline)
    X_sample = _numeric_as_float32(X_sample)
    options = _options(pipeline)
    errors = []
    missing = False
    for black_op in (STANDARD_ALTERNATIVES, None):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = to_onnx(pipeline, X_sample, options=options, target_opset=dict(TARGET_OPSET),
                                black_op=black_op)
        except Exception as exc:  # skl2onnx raises many types for unsupported steps
            errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            missing = type(exc).__name__ in MISSING_CONVERTER
            continue
        model = zero_safe_l2_norms(lower(model) if black_op else model)
        if columns is not None:
            set_columns(model, columns)
        if target is not None:
            model.metadata_props.add(key=TARGET_KEY, value=json.dumps(target))
        if not hasattr(pipeline, "predict_proba") and hasattr(pipeline, "decision_function"):
            model.metadata_props.add(key=SCORES_KEY, value=json.dumps(
                {"scores": DECISION_FUNCTION, "decision_column": _decision_column(model, pipeline, X_sample)}))
        return model
    raise ExportError(errors[-1], "graph" if missing else None)


SCORES_KEY = "admm_tune.scores"
"""Metadata entry of a classifier's graph whose second output holds decision scores, not probabilities (a
classifier without ``predict_proba``, such as an SVC fitted without ``objective.probabilities``):
``{"scores": "decision_function", "decision_column": c}`` (:func:`scores`)."""
DECISION_FUNCTION = "decision_function"


def scores(model: onnx.ModelProto) -> dict[str, Any]:
    """What a classifier's graph's second output holds: ``{"scores": "probabilities"}``, or
    ``{"scores": "decision_function", "decision_column": c}``, where ``c`` (two classes) is the output's column
    that holds scikit-learn's ``decision_function`` (None: the output is that function's, one column per class)."""
    value = next((p.value for p in model.metadata_props if p.key == SCORES_KEY), None)
    return {"scores": "probabilities"} if value is None else json.loads(value)


def _decision_column(model: onnx.ModelProto, pipeline: Any, X_sample: Any) -> int | None:
    """For two classes, the column of the graph's second output that equals ``pipeline.decision_function``: the
    converters of skl2onnx lay a binary score out as ``[-s, s]`` (linear SVC) or ``[s, -s]`` (SVC). None for more
    classes (one column per class, as scikit-learn's)."""
    import onnxruntime

    with warnings.catch_warnings():  # X_sample as float32 arrays: a step fitted on named columns would warn
        warnings.simplefilter("ignore")
        want = np.asarray(pipeline.decision_function(X_sample), dtype=np.float64)
    if want.ndim > 1:
        return None
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    graph = np.asarray(session.run(None, feeds(model, X_sample))[1], dtype=np.float64).reshape(len(want), -1)
    return matching_column(graph, want)


def matching_column(raw: np.ndarray, want: np.ndarray) -> int | None:
    """The column of ``raw`` (a graph's decision-score output, a row per row) closest to ``want`` (scikit-learn's
    ``decision_function`` of two classes, shape ``(n,)``); None when ``want`` has a column per class."""
    if want.ndim > 1:
        return None
    return int(np.argmin([np.abs(raw[:, c] - want).sum() for c in range(raw.shape[1])]))


TARGET_KEY = "admm_tune.target"
"""Metadata entry of a regressor's graph that predicts the standardised target: ``{"mean": m, "scale": s}``, the
float64 affine map :func:`restore` applies to its output (float32 cannot hold 1e7 ± 3 to a unit)."""


def _without_target_scaling(pipeline: Any) -> tuple[Any, dict[str, float] | None]:
    """``pipeline`` with a final ``TransformedTargetRegressor`` (a ``StandardScaler`` on the target) replaced by its
    fitted regressor, and the target's mean and scale; unchanged and None otherwise."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    final = pipeline.steps[-1][1] if isinstance(pipeline, Pipeline) else pipeline
    if not (isinstance(final, TransformedTargetRegressor) and isinstance(getattr(final, "transformer_", None),
                                                                            StandardScaler)):
        return pipeline, None
    scaler = final.transformer_
    target = {"mean": float(scaler.mean_[0]) if scaler.with_mean else 0.0,
              "scale": float(scaler.scale_[0]) if scaler.with_std else 1.0}
    if not isinstance(pipeline, Pipeline):
        return final.regressor_, target
    return Pipeline(pipeline.steps[:-1] + [(pipeline.steps[-1][0], final.regressor_)]), target


def target_scaling(model: onnx.ModelProto) -> dict[str, float] | None:
    """``{"mean", "scale"}`` of a graph that predicts the standardised target (None: it predicts the target)."""
    value = next((p.value for p in model.metadata_props if p.key == TARGET_KEY), None)
    return None if value is None else json.loads(value)


def restore(model: onnx.ModelProto, values: np.ndarray) -> np.ndarray:
    """A regressor graph's output as the target: ``value * scale + mean`` in float64 where the graph predicts the
    standardised target (:data:`TARGET_KEY`), else the values as they are."""
    target = target_scaling(model)
    if target is None:
        return np.asarray(values)
    return np.asarray(values, dtype=np.float64) * target["scale"] + target["mean"]


COLUMNS_KEY = "admm_tune.columns"
"""Metadata entry of an exported graph: which table columns feed which graph input (JSON, see :func:`columns`)."""


def set_columns(model: onnx.ModelProto, columns: list[str]) -> None:
    """Record in ``model`` which of the table's ``columns`` feed each of its inputs.

    skl2onnx names the inputs after the columns but renames those that are
    not identifiers (``0`` → ``_0``, ``price ($)`` → ``price____``, ``a-b``
    next to ``a_b`` → ``a_b1``), in column order: one input takes every
    column as a float matrix, or there is one input per column.
    """
    inputs = [i.name for i in model.graph.input]
    spec = [{"input": inputs[0], "columns": columns}] if len(inputs) == 1 else [
        {"input": name, "columns": [column]} for name, column in zip(inputs, columns)]
    for prop in list(model.metadata_props):
        if prop.key == COLUMNS_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=COLUMNS_KEY, value=json.dumps(spec))


def columns(model: onnx.ModelProto) -> list[dict[str, Any]] | None:
    """``[{"input": name, "columns": [...]}, ...]`` as :func:`set_columns` recorded it; None if it did not."""
    value = next((p.value for p in model.metadata_props if p.key == COLUMNS_KEY), None)
    return None if value is None else json.loads(value)


def _options(pipeline: Any) -> dict[int, dict[str, Any]]:
    """``zipmap=False`` on the final classifier wherever its converter has the option.

    Classifiers without ``predict_proba`` (SVC, RidgeClassifier) still get a
    ZipMap of their scores by default.  LinearSVC's converter has no such
    option, and inside a Pipeline skl2onnx 1.20 then fails asking for
    ``zipmap`` anyway unless some option of the classifier is given
    explicitly: it gets its default ``nocl=False``.
    """
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from skl2onnx.common._registration import get_converter

    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    alias = sklearn_operator_name_map.get(type(final))
    if alias is None or not hasattr(final, "classes_"):
        return {}
    allowed = get_converter(alias).get_allowed_options() or {}
    return {id(final): {"zipmap": False} if "zipmap" in allowed else {"nocl": False}}


def _numeric_as_float32(X: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    if isinstance(X, pd.DataFrame):
        if all(pd.api.types.is_numeric_dtype(t) for t in X.dtypes):
            return X.to_numpy(dtype=np.float32)
        return X.apply(lambda c: c.astype(np.float32) if pd.api.types.is_numeric_dtype(c) else c.astype(str))
    return np.asarray(X, dtype=np.float32)


def lower(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite a standard-operator export so that OpenVINO runs it right.

    - ``ArrayFeatureExtractor(X, idx)`` picks ``X[..., idx]``; the only place
      skl2onnx leaves it in standard-operator graphs is the label lookup
      ``classes[argmax]``, reshaped right after: it becomes a ``Gather`` on
      the last axis.
    - ``Reduce*(keepdims=0)`` becomes ``Reduce*(keepdims=1)`` + ``Squeeze``:
      OpenVINO 2026.4's CPU plugin returned wrong results at batch >= 3 for
      the GaussianNB graph's ``ReduceSum``/``ReduceLogSumExp`` with
      ``keepdims=0`` (right at batches 1 and 2); the rewritten graph agrees.

    Agreement of the rewritten graph is still checked for every candidate
    (verification).
    """
    nodes = []
    for node in model.graph.node:
        if node.domain == ML_DOMAIN and node.op_type == "ArrayFeatureExtractor":
            flat = f"{node.output[0]}_flat_indices"
            shape = f"{node.output[0]}_flat_shape"
            nodes.append(helper.make_node("Constant", [], [shape], value=helper.make_tensor(
                shape, onnx.TensorProto.INT64, [1], [-1])))
            nodes.append(helper.make_node("Reshape", [node.input[1], shape], [flat]))
            nodes.append(helper.make_node("Gather", [node.input[0], flat], list(node.output), axis=-1,
                                          name=node.name))
        elif node.op_type.startswith("Reduce") and _keepdims(node) == 0:
            nodes += _reduce_keeping_dims(node)
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if is_standard(model):
        kept = [o for o in model.opset_import if o.domain != ML_DOMAIN]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return model


def _keepdims(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "keepdims"), 1)


def _reduce_keeping_dims(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """``Reduce*(keepdims=0)`` as ``Reduce*(keepdims=1)`` followed by ``Squeeze`` of the same axes."""
    kept = f"{node.output[0]}_kept"
    reduce = onnx.NodeProto()
    reduce.CopyFrom(node)
    for attr in reduce.attribute:
        if attr.name == "keepdims":
            attr.i = 1
    reduce.output[0] = kept
    axes = list(node.input[1:2])
    if not axes:  # older opsets give the axes as an attribute
        values = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if values is not None:
            axes = [f"{node.output[0]}_axes"]
            const = helper.make_node("Constant", [], axes, value=helper.make_tensor(
                axes[0], onnx.TensorProto.INT64, [len(values)], values))
            return [reduce, const, helper.make_node("Squeeze", [kept, *axes], [node.output[0]])]
    return [reduce, helper.make_node("Squeeze", [kept, *axes], [node.output[0]])]


def is_standard(model: onnx.ModelProto) -> bool:
    """Whether every node of the graph is a standard ONNX operator."""
    return all(node.domain in STANDARD_DOMAINS for node in model.graph.node)


def operators(model: onnx.ModelProto) -> list[str]:
    """``domain:op`` of every node type in the graph, sorted."""
    return sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node})


def feeds(model: onnx.ModelProto, X: pd.DataFrame | np.ndarray) -> dict[str, np.ndarray]:
    """The graph's input dict for prepared rows ``X`` (see :meth:`admm_tune.data.Dataset.prepare`).

    A DataFrame's columns are looked up by name (as strings: a column ``0``
    is ``"0"``), as the graph's metadata maps them to its inputs
    (:func:`set_columns`), so their order does not matter; an array's
    columns are taken in the recorded order.  A matrix input takes its
    columns as float32 ``(n, k)``; a per-column input takes its column as an
    ``(n, 1)`` array of its declared type: strings, float32, or, in a graph
    lowered for a backend without strings, the strings' int64 codes.

    Raises
    ------
    KeyError
        When a column the graph needs is not in ``X`` (named).
    TypeError
        When a numeric input gets dates or time deltas, which prepared rows
        hold as numbers (``Dataset.prepare``).
    """
    from .graph import encode_strings, string_codes

    spec = columns(model)
    if spec is None:  # positional: one matrix input, or one input per column in order
        names = [i.name for i in model.graph.input]
        width = np.shape(X)[1]
        positions = [list(range(width))] if len(names) == 1 else [[c] for c in range(width)]
        spec = [{"input": n, "columns": c} for n, c in zip(names, positions)]
        frame = pd.DataFrame(np.asarray(X)) if not isinstance(X, pd.DataFrame) else X.set_axis(range(width), axis=1)
    elif isinstance(X, pd.DataFrame):
        frame = X.rename(columns=str)
    else:
        frame = pd.DataFrame(np.asarray(X), columns=[c for entry in spec for c in entry["columns"]])
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    codes = string_codes(model)
    out = {}
    for entry in spec:
        missing = [c for c in entry["columns"] if c not in frame.columns]
        if missing:
            raise KeyError(f"column {missing[0]!r} (graph input {entry['input']!r}) is not in the rows")
        part = frame[entry["columns"]]
        name, kind = entry["input"], types[entry["input"]]
        if kind == onnx.TensorProto.STRING or name in codes:
            strings = part.astype(str).to_numpy(dtype=object).reshape(len(part), -1)
            out[name] = encode_strings(strings, codes[name]) if name in codes else strings
            continue
        for column in part.columns:
            if pd.api.types.is_datetime64_any_dtype(part[column]) or pd.api.types.is_timedelta64_dtype(part[column]):
                raise TypeError(f"column {column!r} holds {part[column].dtype} values: the graph takes the numbers "
                                "admm_tune.data.Dataset.prepare makes of them (date parts, seconds)")
        out[name] = np.ascontiguousarray(part.to_numpy(dtype=np.float32, na_value=np.nan))
    return out


def for_precision(model: onnx.ModelProto, precision: str) -> onnx.ModelProto:
    """The graph a backend runs at ``precision``: int8 is a graph transform, the rest are runtime hints."""
    return quantize_int8(model) if precision == "int8" else model


def quantize_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Dynamic int8 quantisation of the graph's MatMul/Gemm weights (ONNX Runtime).

    ``DefaultTensorType=FLOAT`` lets the quantiser handle tensors whose type
    it cannot infer (the MLP graph); without it quantisation stops with an
    error on those graphs.

    Raises
    ------
    ExportError
        When the graph has nothing to quantise (no MatMul or Gemm) or the
        quantiser fails.
    """
    if not any(n.op_type in ("MatMul", "Gemm") for n in model.graph.node):
        raise ExportError("int8: the graph has no MatMul/Gemm weights to quantise", "precision")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, src)
        logging.disable(logging.WARNING)  # the quantiser logs advice on the root logger for every graph
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_dynamic(src, dst, weight_type=QuantType.QInt8,
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        except Exception as exc:  # the quantiser raises many types on graphs it cannot handle
            raise ExportError(f"int8: {type(exc).__name__}: {exc}".splitlines()[0][:300]) from None
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load_model(dst)
    kept = {p.key for p in quantized.metadata_props}
    for prop in model.metadata_props:  # the quantiser may keep the metadata or drop it
        if prop.key.startswith("admm_tune.") and prop.key not in kept:
            quantized.metadata_props.add(key=prop.key, value=prop.value)
    return quantized
