"""skl2onnx converters of our own, registered when :mod:`.export` is imported.

``LinearDiscriminantAnalysis``: skl2onnx 1.20's converter gives binary
probabilities up to 0.15 away from scikit-learn's.  scikit-learn computes
``d = X @ coef_.T + intercept_`` and then ``[1 − σ(d), σ(d)]`` for two
classes or ``softmax(d)`` for more; this converter writes exactly that in
standard operators (MatMul, Add, Sigmoid/Softmax, ArgMax, Gather), so the
graph also runs on OpenVINO.

``StandardScaler``, ``RobustScaler``, ``MaxAbsScaler`` and ``MinMaxScaler``
(without ``clip``): skl2onnx's own converters, whose last node also records,
in its ``doc_string`` (:data:`AFFINE_KEY`), the float64 operations
scikit-learn applies per feature.  The graph computes them in float32, which
moves some rows across the split thresholds of a tree ensemble behind the
scaler; :func:`admm_tune.evaluate.graph.passes.fold_scalers_into_trees`
uses the record to fold the scaler into the thresholds exactly.
``HistGradientBoosting*``: skl2onnx's converters, whose tree node is marked
as splitting in float64 (scikit-learn's other trees cast to float32), which
decides how a scaler is folded into it.

Feature selectors (``SelectKBest``, ``SelectPercentile``, ``VarianceThreshold``,
``SelectFromModel``, ``RFE``...): skl2onnx 1.20's converter tests
``index.any()`` on the kept columns' indices, false when only column 0 is
kept, and then writes a lone ``ConstantOfShape`` with a float input, an
invalid graph on every backend.  :func:`convert_selector` gathers the kept
columns by their indices, whichever they are.

``SimpleImputer`` of numbers with NaN as the missing marker (the front every
pipeline starts with): ``Where(IsNaN(x), statistics, x)`` in standard
operators, where skl2onnx writes an ``ai.onnx.ml`` ``Imputer``; the graph of
an all-numeric pipeline then stays standard (OpenVINO compiles it unlowered,
the lossless passes see through it).  Other imputers keep skl2onnx's.

``OnnxOperator._verify_add_to_`` (skl2onnx's check, after each node is
added, that every node it depends on was added too) is replaced by the same
check visiting each node once: skl2onnx's walk follows every path, and the
``QuantileTransformer`` converter's binary search reuses each step's index
several times, so the walk grew exponentially with ``log2(n_quantiles)``
(9 s for one export at ``n_quantiles=100``, minutes at 1000; now
milliseconds).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_operator import OnnxOperator
from skl2onnx.algebra.onnx_ops import (
    OnnxAdd,
    OnnxArgMax,
    OnnxConcat,
    OnnxGather,
    OnnxIdentity,
    OnnxIsNaN,
    OnnxMatMul,
    OnnxSigmoid,
    OnnxSoftmax,
    OnnxSub,
    OnnxWhere,
)
from skl2onnx.common._registration import get_converter, register_converter
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from .graph.passes import FLOAT64_SPLITS

AFFINE_KEY = "admm_tune.affine"
"""``doc_string`` key of a scaler's last node: ``{"input": name, "steps": [[op, [float64 per feature]], ...]}``."""
_ANNOTATED: set[str] = set()
SCALERS = {"SklearnScaler": StandardScaler, "SklearnRobustScaler": RobustScaler,
           "SklearnMaxAbsScaler": MaxAbsScaler, "SklearnMinMaxScaler": MinMaxScaler}
FLOAT64_TREES = ("SklearnHistGradientBoostingClassifier", "SklearnHistGradientBoostingRegressor")
"""Tree ensembles scikit-learn splits in float64 (the others cast their input to float32 first): their tree node is
marked :data:`~admm_tune.evaluate.graph.passes.FLOAT64_SPLITS`, so that a scaler is folded into them as they
compare."""


def convert_lda(scope: Any, operator: Any, container: Any) -> None:
    """Label and probabilities of a fitted LinearDiscriminantAnalysis, as scikit-learn computes them."""
    lda = operator.raw_operator
    opv = container.target_opset
    dtype = np.float32
    decision = OnnxAdd(OnnxMatMul(operator.inputs[0], lda.coef_.T.astype(dtype), op_version=opv),
                       lda.intercept_.astype(dtype), op_version=opv)
    if len(lda.classes_) == 2:
        positive = OnnxSigmoid(decision, op_version=opv)
        proba = OnnxConcat(OnnxSub(np.array([1], dtype=dtype), positive, op_version=opv), positive, axis=1,
                           op_version=opv)
    else:
        proba = OnnxSoftmax(decision, axis=1, op_version=opv)
    label = OnnxGather(lda.classes_, OnnxArgMax(proba, axis=1, keepdims=0, op_version=opv), op_version=opv)
    OnnxIdentity(label, op_version=opv, output_names=[operator.outputs[0]]).add_to(scope, container)
    OnnxIdentity(proba, op_version=opv, output_names=[operator.outputs[1]]).add_to(scope, container)


SELECTORS = ("SklearnGenericUnivariateSelect", "SklearnRFE", "SklearnRFECV", "SklearnSelectFdr", "SklearnSelectFpr",
             "SklearnSelectFromModel", "SklearnSelectFwe", "SklearnSelectKBest", "SklearnSelectPercentile",
             "SklearnVarianceThreshold")
"""skl2onnx's aliases of scikit-learn's feature selectors, all converted by :func:`convert_selector`."""


def convert_selector(scope: Any, operator: Any, container: Any) -> None:
    """The kept columns of a fitted feature selector (``get_support``), gathered by index on axis 1.

    Raises
    ------
    RuntimeError
        When the selector keeps no column (scikit-learn's ``transform`` then
        returns an empty matrix, which no estimator behind it takes).
    """
    kept = np.asarray(operator.raw_operator.get_support(indices=True), dtype=np.int64)
    if kept.size == 0:
        raise RuntimeError(f"{type(operator.raw_operator).__name__} keeps no column")
    OnnxGather(operator.inputs[0], kept, axis=1, op_version=container.target_opset,
               output_names=[operator.outputs[0]]).add_to(scope, container)


_IMPUTER: list[Callable[..., None]] = []
"""skl2onnx's own SimpleImputer converter, for the imputers :func:`convert_imputer` leaves to it."""


def convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """A fitted numeric ``SimpleImputer`` with NaN markers as ``Where(IsNaN(x), statistics, x)``; else skl2onnx's."""
    imputer = operator.raw_operator
    missing = imputer.missing_values
    numeric = operator.inputs[0].type.__class__.__name__ == "FloatTensorType"
    if not (numeric and isinstance(missing, float) and np.isnan(missing)) or imputer.add_indicator:
        _IMPUTER[0](scope, operator, container)
        return
    opv = container.target_opset
    statistics = np.asarray(imputer.statistics_, dtype=np.float32).reshape(1, -1)
    x = operator.inputs[0]
    OnnxWhere(OnnxIsNaN(x, op_version=opv), statistics, x, op_version=opv,
              output_names=[operator.outputs[0]]).add_to(scope, container)


def affine_steps(scaler: Any) -> list[tuple[str, list[float]]] | None:
    """The per-feature float64 operations ``transform`` applies, in order (None: not a plain affine map)."""
    if isinstance(scaler, StandardScaler):
        return ([("sub", scaler.mean_.tolist())] if scaler.with_mean else []) + \
            ([("div", scaler.scale_.tolist())] if scaler.with_std else [])
    if isinstance(scaler, RobustScaler):
        return ([("sub", scaler.center_.tolist())] if scaler.with_centering else []) + \
            ([("div", scaler.scale_.tolist())] if scaler.with_scaling else [])
    if isinstance(scaler, MaxAbsScaler):
        return [("div", scaler.scale_.tolist())]
    if isinstance(scaler, MinMaxScaler) and not getattr(scaler, "clip", False):
        return [("mul", scaler.scale_.tolist()), ("add", scaler.min_.tolist())]
    return None


def annotated(convert: Callable[..., None]) -> Callable[..., None]:
    """``convert`` followed by the :data:`AFFINE_KEY` record on the node that makes the scaler's output."""

    def convert_and_record(scope: Any, operator: Any, container: Any) -> None:
        convert(scope, operator, container)
        steps = affine_steps(operator.raw_operator)
        if not steps or len(operator.inputs) != 1:
            return
        out = operator.outputs[0].full_name
        node = next((n for n in reversed(container.nodes) if out in n.output), None)
        if node is not None:
            node.doc_string = json.dumps({AFFINE_KEY: {"input": operator.inputs[0].full_name, "steps": steps}})

    return convert_and_record


def marked_float64(convert: Callable[..., None]) -> Callable[..., None]:
    """``convert`` followed by the :data:`~admm_tune.evaluate.graph.passes.FLOAT64_SPLITS` mark on the tree
    ensemble nodes it added."""

    def convert_and_mark(scope: Any, operator: Any, container: Any) -> None:
        before = len(container.nodes)
        convert(scope, operator, container)
        for node in container.nodes[before:]:
            if node.op_type.startswith("TreeEnsemble"):
                node.doc_string = FLOAT64_SPLITS

    return convert_and_mark


def verify_added(node: OnnxOperator) -> None:
    """Raise ``RuntimeError`` unless ``node`` and every operator it depends on were added to the graph.

    skl2onnx's own check, walking the operator graph with each node visited once.
    """
    seen: set[int] = set()
    stack = [node]
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        if op.state is None:
            raise RuntimeError(f"Graph was not produced for operator '{type(op).__name__}': {op}.")
        stack.extend(i for i in op.inputs if isinstance(i, OnnxOperator))


def register() -> None:
    """Register the converters above with skl2onnx, and its dependency check that visits each node once
    (idempotent)."""
    OnnxOperator._verify_add_to_ = verify_added
    update_registered_converter(LinearDiscriminantAnalysis, "SklearnLinearDiscriminantAnalysis",
                                calculate_linear_classifier_output_shapes, convert_lda,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    for alias in SELECTORS:
        register_converter(alias, convert_selector, overwrite=True)
    if not _IMPUTER:
        _IMPUTER.append(get_converter("SklearnSimpleImputer"))
        register_converter("SklearnSimpleImputer", convert_imputer, overwrite=True)
    for aliases, wrap in ((SCALERS, annotated), (FLOAT64_TREES, marked_float64)):
        for alias in aliases:
            current = get_converter(alias)
            if alias in _ANNOTATED:
                continue
            register_converter(alias, wrap(current), overwrite=True, options=current.get_allowed_options())
            _ANNOTATED.add(alias)
