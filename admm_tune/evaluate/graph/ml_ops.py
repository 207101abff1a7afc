"""Standard-operator forms of the ai.onnx.ml operators other than tree ensembles.

Each rule takes a :class:`~._builder.Builder`, the node and its attributes
and the element type of the node's first input, and emits nodes whose
outputs carry the node's own output names.  The semantics followed are ONNX
Runtime's (the reference every graph was verified against before): where
ONNX Runtime and the ONNX specification differ, ONNX Runtime wins, and the
docstring says so.  ``docs/lowering.md`` gives each rewrite's exactness
argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from ._builder import BOOL, FLOAT, INT64, Builder, LoweringError

Rule = Callable[[Builder, onnx.NodeProto, dict[str, Any], int], None]
TINY = np.float32(1e-30)


def as_float(b: Builder, x: str, elem_type: int) -> str:
    """``x`` as float32 (a ``Cast`` unless it already is)."""
    return x if elem_type == FLOAT else b.cast(x, FLOAT)


def row(values: Any) -> np.ndarray:
    """A ``[1, C]`` float32 row (or a scalar for one value, which broadcasts the same)."""
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    return array.reshape(()) if array.size == 1 else array.reshape(1, -1)


def scaler(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``Scaler``: ``(X - offset) * scale``, in float32 like ONNX Runtime."""
    x = as_float(b, node.input[0], t)
    b.op("Mul", b.op("Sub", x, b.const(row(a.get("offset", [0.0])))), b.const(row(a.get("scale", [1.0]))),
         out=node.output[0])


def normalizer(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``Normalizer``: each row over its max, L1 or L2 norm.

    ``MAX`` divides by the largest value (signed, as the ONNX specification
    and ONNX Runtime define it; scikit-learn's ``norm='max'`` uses the
    largest absolute value, so the two differ on rows whose largest
    magnitude is negative), a row whose max is 0 unchanged; L1 and L2 norms
    below 1e-30 count as 1e-30.
    """
    x = as_float(b, node.input[0], t)
    axes = b.const(np.array([1], dtype=np.int64))
    norm = a.get("norm", "MAX")
    if norm == "MAX":
        top = b.op("ReduceMax", x, axes, keepdims=1)
        zero = b.op("Equal", top, b.const(np.float32(0.0)))
        b.op("Div", x, b.op("Where", zero, b.const(np.float32(1.0)), top), out=node.output[0])
        return
    if norm == "L1":
        d = b.op("ReduceSum", b.op("Abs", x), axes, keepdims=1)
    elif norm == "L2":
        d = b.op("Sqrt", b.op("ReduceSumSquare", x, axes, keepdims=1))
    else:
        raise LoweringError(f"Normalizer norm {norm!r}")
    b.op("Div", x, b.op("Max", d, b.const(TINY)), out=node.output[0])


def binarizer(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``Binarizer``: 1 where ``x > threshold``, else 0, in the input's type."""
    threshold = b.const(np.float32(a.get("threshold", 0.0)))
    if t != FLOAT:
        threshold = b.cast(threshold, t)
    b.op("Cast", b.op("Greater", node.input[0], threshold), out=node.output[0], to=t)


def imputer(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``Imputer``: replaced values (NaN when ``replaced_value_float`` is NaN) become the imputed ones."""
    x = node.input[0]
    if a.get("imputed_value_floats"):
        values, replaced = np.asarray(a["imputed_value_floats"], dtype=np.float32), a.get("replaced_value_float", 0.0)
    elif a.get("imputed_value_int64s"):
        values, replaced = np.asarray(a["imputed_value_int64s"], dtype=np.int64), a.get("replaced_value_int64", 0)
    else:
        raise LoweringError("Imputer without imputed values")
    values = values.reshape(()) if values.size == 1 else values.reshape(1, -1)
    if isinstance(replaced, float) and np.isnan(replaced):
        hit = b.op("IsNaN", x)
    else:
        hit = b.op("Equal", x, b.const(np.asarray(replaced, dtype=values.dtype)))
    b.op("Where", hit, b.const(values), x, out=node.output[0])


def _match(b: Builder, x: str, keys: np.ndarray, t: int) -> str:
    """``[..., K]`` booleans: ``x[..., None] == keys`` (float inputs truncated to int64 for integer keys)."""
    if keys.dtype.kind == "i" and t != INT64:
        x = b.cast(x, INT64)  # ONNX Runtime casts the value to int64 (truncation) before the look-up
    elif keys.dtype.kind == "f" and t != FLOAT:
        x = b.cast(x, FLOAT)
    elif keys.dtype.kind in "UO":
        b.opset = max(b.opset, 19)  # Equal on strings
    expanded = b.op("Unsqueeze", x, b.const(np.array([-1], dtype=np.int64)))
    return b.op("Equal", expanded, b.const(keys))


def one_hot_encoder(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``OneHotEncoder``: ``x[..., None] == cats`` as float; unknown values give zeros.

    With ``zeros=0`` ONNX Runtime fails on an unknown value; the rewrite
    gives zeros there (it cannot fail), which only differs on inputs the
    native graph rejects.
    """
    if a.get("cats_int64s"):
        cats = np.asarray(a["cats_int64s"], dtype=np.int64)
    elif a.get("cats_strings"):
        cats = np.asarray(a["cats_strings"], dtype=object)
    else:
        raise LoweringError("OneHotEncoder without categories")
    b.op("Cast", _match(b, node.input[0], cats, t), out=node.output[0], to=FLOAT)


def label_encoder(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``LabelEncoder``: the value of the first matching key, else the default."""
    keys = _typed(a, "keys")
    values = _typed(a, "values")
    default = {"i": a.get("default_int64", -1), "f": a.get("default_float", -0.0),
               "U": a.get("default_string", "_Unused"), "O": a.get("default_string", "_Unused")}[values.dtype.kind]
    hit = _match(b, node.input[0], keys, t)
    hit_i = b.cast(hit, onnx.TensorProto.INT32)
    last = b.const(np.array([-1], dtype=np.int64))
    index = b.op("ArgMax", hit_i, axis=-1, keepdims=0)
    found = b.cast(b.op("ReduceMax", hit_i, last, keepdims=0), BOOL)
    picked = b.op("Gather", b.const(values), index, axis=0)
    b.op("Where", found, picked, b.const(np.asarray(default, dtype=values.dtype)), out=node.output[0])


def _typed(a: dict[str, Any], prefix: str) -> np.ndarray:
    for suffix, dtype in (("int64s", np.int64), ("floats", np.float32), ("strings", object)):
        if a.get(f"{prefix}_{suffix}"):
            return np.asarray(a[f"{prefix}_{suffix}"], dtype=dtype)
    if a.get(f"{prefix}_tensor") is not None:
        return np.asarray(a[f"{prefix}_tensor"])
    raise LoweringError(f"LabelEncoder without {prefix}")


def array_feature_extractor(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``ArrayFeatureExtractor(X, idx)``: ``X[..., idx]``, a ``Gather`` on the last axis."""
    flat = b.op("Reshape", node.input[1], b.const(np.array([-1], dtype=np.int64)))
    b.op("Gather", node.input[0], flat, out=node.output[0], axis=-1)


def zipmap(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``ZipMap``: the probability tensor itself (a sequence of maps has no tensor form).

    The output becomes a ``[N, C]`` float tensor whose columns are the
    classes in ``classlabels_*`` order; :func:`~.lower.lower` retypes the
    graph output.
    """
    b.rename(node.input[0], node.output[0])


def linear_scores(b: Builder, x: str, coefficients: Any, intercepts: Any, n_rows: int) -> str:
    """``X @ W.T + b`` for ``W`` given flat, ``n_rows`` rows."""
    w = np.asarray(coefficients, dtype=np.float32).reshape(n_rows, -1)
    scores = b.op("MatMul", x, b.const(np.ascontiguousarray(w.T)))
    if intercepts is not None and len(intercepts):
        scores = b.op("Add", scores, b.const(row(intercepts)))
    return scores


def classes_of(a: dict[str, Any]) -> list[Any]:
    """``classlabels_int64s`` or ``classlabels_strings`` (or ``classlabels_ints`` of SVMs)."""
    for key in ("classlabels_int64s", "classlabels_ints", "classlabels_strings"):
        if a.get(key):
            return list(a[key])
    raise LoweringError("a classifier without class labels")


def two_columns(b: Builder, s: str) -> str:
    """``[-s, s]`` from a ``[N, 1]`` score."""
    return b.concat_columns(b.op("Neg", s), s)


def linear_classifier(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``LinearClassifier``: scores ``X W^T + b``, one row per intercept (ONNX Runtime's count).

    Several rows: label of the first largest raw score, scores through
    ``post_transform``.  One row ``s`` and two classes (ONNX Runtime's
    binary case): label ``classes[1]`` where ``s > 0``, scores
    ``[1 - sigmoid(s), sigmoid(s)]`` (LOGISTIC) or ``[1 - s, s]`` (any other
    transform, which ONNX Runtime then skips).
    """
    classes = classes_of(a)
    n_rows = len(a["intercepts"]) if a.get("intercepts") else len(classes)
    scores = linear_scores(b, as_float(b, node.input[0], t), a["coefficients"], a.get("intercepts"), n_rows)
    post = a.get("post_transform", "NONE")
    if n_rows > 1:
        b.labels(b.argmax(scores), classes, node.output[0])
        b.rename(b.post_transform(scores, post), node.output[1])
        return
    if len(classes) != 2 or post == "PROBIT":
        raise LoweringError(f"LinearClassifier with one score row, {len(classes)} classes and {post}")
    positive = b.cast(b.op("Greater", b.op("Reshape", scores, b.const(np.array([-1], dtype=np.int64))),
                           b.const(np.float32(0.0))), INT64)
    b.labels(positive, classes, node.output[0])
    p = b.op("Sigmoid", scores) if post == "LOGISTIC" else scores
    b.rename(b.concat_columns(b.op("Sub", b.const(np.float32(1.0)), p), p), node.output[1])


def linear_regressor(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``LinearRegressor``: ``X W^T + b`` for ``targets`` outputs (``post_transform`` NONE only)."""
    if a.get("post_transform", "NONE") != "NONE":
        raise LoweringError(f"LinearRegressor post_transform {a['post_transform']}")
    scores = linear_scores(b, as_float(b, node.input[0], t), a["coefficients"], a.get("intercepts"),
                           int(a.get("targets", 1)))
    b.rename(scores, node.output[0])


def kernel(b: Builder, x: str, a: dict[str, Any], vectors: np.ndarray) -> str:
    """``K[n, v] = k(x_n, sv_v)`` for the SVM's ``kernel_type`` and ``kernel_params`` (gamma, coef0, degree).

    RBF takes the squared distance as a sum of squared differences (as ONNX
    Runtime does), never ``|x|^2 - 2 x.sv + |sv|^2``, which cancels badly
    on unscaled data; an integer degree is repeated multiplication.
    """
    gamma, coef0, degree = (list(a.get("kernel_params", [])) + [0.0, 0.0, 0.0])[:3]
    kind = a.get("kernel_type", "LINEAR")
    if kind == "RBF":
        diff = b.op("Sub", b.op("Unsqueeze", x, b.const(np.array([1], dtype=np.int64))), b.const(vectors[None]))
        dist = b.op("ReduceSum", b.op("Mul", diff, diff), b.const(np.array([2], dtype=np.int64)), keepdims=0)
        return b.op("Exp", b.op("Mul", dist, b.const(np.float32(-gamma))))
    dot = b.op("MatMul", x, b.const(np.ascontiguousarray(vectors.T)))
    if kind == "LINEAR":
        return dot
    affine = b.op("Add", b.op("Mul", dot, b.const(np.float32(gamma))), b.const(np.float32(coef0)))
    if kind == "SIGMOID":
        return b.op("Tanh", affine)
    if kind == "POLY":
        if float(degree).is_integer() and 1 <= degree <= 8:
            out = affine
            for _ in range(int(degree) - 1):
                out = b.op("Mul", out, affine)
            return out
        return b.op("Pow", affine, b.const(np.float32(degree)))
    raise LoweringError(f"SVM kernel_type {kind}")


def svm_classifier(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``SVMClassifier`` without probability estimates.

    One-vs-one (``vectors_per_class`` given): pairwise decisions
    ``s_ij = rho_p + sum_{v in i} c[j-1, v] K_v + sum_{v in j} c[i, v] K_v``
    as one matrix product, votes to ``i`` when ``s_ij > 0`` else to ``j``,
    the label of the first class with most votes; the scores output is the
    pairwise decisions (two classes: ``[-s, s]``).  Linear mode (no support
    vectors): ``scores = X c^T + rho_0``.

    Raises
    ------
    LoweringError
        With ``prob_a`` (libsvm's iterative pairwise coupling has no
        closed form), or a PROBIT post transform.
    """
    if a.get("prob_a"):
        raise LoweringError("SVMClassifier with probability estimates (prob_a): libsvm's pairwise coupling is "
                            "iterative and has no standard-operator form here")
    classes = classes_of(a)
    n_classes = len(classes)
    x = as_float(b, node.input[0], t)
    coef = np.asarray(a["coefficients"], dtype=np.float64)
    rho = np.asarray(a["rho"], dtype=np.float64)
    per_class = [int(v) for v in a.get("vectors_per_class", [])]
    if not sum(per_class):
        scores = linear_scores(b, x, coef, None, n_classes)
        scores = b.op("Add", scores, b.const(np.float32(rho[0])))
        final = b.post_transform(scores, a.get("post_transform", "NONE"))
        b.labels(b.argmax(scores), classes, node.output[0])
        b.rename(final, node.output[1])
        return
    n_sv = sum(per_class)
    vectors = np.asarray(a["support_vectors"], dtype=np.float32).reshape(n_sv, -1)
    coef = coef.reshape(n_classes - 1, n_sv)
    start = np.concatenate([[0], np.cumsum(per_class)])
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    weights = np.zeros((n_sv, len(pairs)))
    to_i, to_j = np.zeros((len(pairs), n_classes), np.float32), np.zeros((len(pairs), n_classes), np.float32)
    for p, (i, j) in enumerate(pairs):
        weights[start[i]:start[i + 1], p] = coef[j - 1, start[i]:start[i + 1]]
        weights[start[j]:start[j + 1], p] = coef[i, start[j]:start[j + 1]]
        to_i[p, i] = to_j[p, j] = 1.0
    k = kernel(b, x, a, vectors)
    decision = b.op("Add", b.op("MatMul", k, b.const(weights)), b.const(rho.reshape(1, -1)))
    win = b.cast(b.op("Greater", decision, b.const(np.float32(0.0))), FLOAT)
    lose = b.op("Sub", b.const(np.float32(1.0)), win)
    votes = b.op("Add", b.op("MatMul", win, b.const(to_i)), b.op("MatMul", lose, b.const(to_j)))
    b.labels(b.argmax(votes), classes, node.output[0])
    if n_classes == 2:
        post = a.get("post_transform", "NONE")
        if post == "PROBIT":
            raise LoweringError("SVMClassifier post_transform PROBIT")
        final = two_columns(b, decision) if post != "LOGISTIC" else b.op("Sigmoid", two_columns(b, decision))
    else:
        final = b.post_transform(decision, a.get("post_transform", "NONE"))
    b.rename(final, node.output[1])


def svm_regressor(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int) -> None:
    """``SVMRegressor``: ``sum_v c_v K(x, sv_v) + rho_0`` (linear mode: ``x c^T + rho_0``);
    ``one_class`` maps it to +1 / -1."""
    x = as_float(b, node.input[0], t)
    coef = np.asarray(a["coefficients"], dtype=np.float32)
    rho = np.float32(np.asarray(a.get("rho", [0.0])).reshape(-1)[0])
    n_sv = int(a.get("n_supports", 0))
    if n_sv:
        vectors = np.asarray(a["support_vectors"], dtype=np.float32).reshape(n_sv, -1)
        value = b.op("MatMul", kernel(b, x, a, vectors), b.const(coef.reshape(n_sv, 1)))
    else:
        value = b.op("MatMul", x, b.const(coef.reshape(-1, 1)))
    value = b.op("Add", value, b.const(rho))
    if a.get("post_transform", "NONE") != "NONE":
        raise LoweringError(f"SVMRegressor post_transform {a['post_transform']}")
    if a.get("one_class"):
        positive = b.op("Greater", value, b.const(np.float32(0.0)))
        value = b.op("Where", positive, b.const(np.float32(1.0)), b.const(np.float32(-1.0)))
    b.rename(value, node.output[0])


RULES: dict[str, Rule] = {
    "Scaler": scaler, "Normalizer": normalizer, "Binarizer": binarizer, "Imputer": imputer,
    "OneHotEncoder": one_hot_encoder, "LabelEncoder": label_encoder,
    "ArrayFeatureExtractor": array_feature_extractor, "ZipMap": zipmap,
    "LinearClassifier": linear_classifier, "LinearRegressor": linear_regressor,
    "SVMClassifier": svm_classifier, "SVMRegressor": svm_regressor,
}
"""Rewrite of each non-tree ai.onnx.ml operator, by ``op_type``."""

__all__ = ["RULES"]
