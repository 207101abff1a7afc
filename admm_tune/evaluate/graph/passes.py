"""Lossless passes over exported pipeline graphs.

:func:`fold_scalers_into_trees`
    An affine scaler (standard, robust, max-abs, min-max) in front of a tree
    ensemble is folded into the ensemble's thresholds.  scikit-learn computes
    ``z = float32(g(x))`` with ``g`` the scaler's float64 operations and
    compares ``z <= t``; ``g`` increases strictly in each feature, so for
    every float32 ``x`` the decision equals ``x <= v`` with ``v`` the largest
    float32 whose ``float32(g(v)) <= t``, found by bisection over the
    float32 values (their bit patterns are ordered).  The folded graph
    decides exactly as scikit-learn does on float32 inputs, where the
    unfolded one, computing ``g`` in float32, moved rows lying close to a
    threshold to the other side (and was rejected at fp32).  The float64
    operations come from the record :mod:`~admm_tune.evaluate.converters`
    leaves on the scaler's last node.
:func:`drop_dead_nodes`
    Nodes whose outputs nothing reads are removed.

Merging consecutive linear maps, constant folding and the fusions of
ONNX Runtime's graph optimiser are left to that optimiser (the backend's
``graph_optimization_level``), which already does them.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ._builder import ML_DOMAIN, attributes

AFFINE_KEY = "admm_tune.affine"
"""Record of a scaler's float64 operations (written by :mod:`admm_tune.evaluate.converters`)."""
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
OPS = {"sub": np.subtract, "div": np.divide, "mul": np.multiply, "add": np.add}
INCREASING = {"div", "mul"}
"""Operations whose per-feature value must be positive for the map to increase."""


def affine_records(model: onnx.ModelProto) -> dict[str, dict[str, Any]]:
    """``{output name: record}`` of every recorded affine scaler of the graph."""
    out = {}
    for node in model.graph.node:
        if AFFINE_KEY in node.doc_string:
            try:
                out[node.output[0]] = json.loads(node.doc_string)[AFFINE_KEY]
            except (ValueError, KeyError):
                continue
    return out


def _ordered(v: np.ndarray) -> np.ndarray:
    """float32 -> int64 keys in the same order (-0.0 and 0.0 share a key)."""
    bits = v.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _unordered(k: np.ndarray) -> np.ndarray:
    bits = np.where(k >= 0, k, (-k) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def folded_thresholds(thresholds: np.ndarray, strict: np.ndarray, steps: list[list[Any]],
                      features: np.ndarray) -> np.ndarray:
    """For each split ``float32(g(x)) <= t`` (``< t`` where ``strict``) the float32 ``v`` with the same
    decision as ``x <= v`` for every float32 ``x``.

    Parameters
    ----------
    thresholds : ndarray of float32
    strict : ndarray of bool
    steps : list of [op, values]
        The scaler's float64 operations (``sub``/``div``/``mul``/``add`` by a per-feature value).
    features : ndarray of int
        Each split's feature.
    """

    def holds(k: np.ndarray) -> np.ndarray:
        z = _unordered(k).astype(np.float64)
        for op, values in steps:
            z = OPS[op](z, np.asarray(values, dtype=np.float64)[features])
        z = z.astype(np.float32)
        return np.where(strict, z < thresholds, z <= thresholds)

    inf = int(_ordered(np.array([np.inf], dtype=np.float32))[0])
    lo = np.full(len(thresholds), -inf, dtype=np.int64)  # g(-inf) = -inf: holds unless t is -inf and strict
    hi = np.full(len(thresholds), inf, dtype=np.int64)
    top = holds(hi)
    with np.errstate(all="ignore"):
        while np.any(hi - lo > 1):
            mid = (lo + hi) // 2
            ok = holds(mid)
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
    return np.where(top, np.float32(np.inf), _unordered(lo)).astype(np.float32)


def fold_scalers_into_trees(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with recorded affine scalers folded into the tree ensembles they feed.

    A scaler is folded only when every reader of its output is a tree
    ensemble with ``BRANCH_LEQ`` / ``BRANCH_LT`` splits and float thresholds,
    and its multiplications / divisions are by positive values (a strictly
    increasing map); otherwise the graph is returned as it was.
    """
    records = affine_records(model)
    if not records:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in out.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in out.graph.output}
    changed = False
    for name, record in records.items():
        users = readers.get(name, [])
        steps = record["steps"]
        if not users or name in outputs or not all(_foldable(n) for n in users):
            continue
        if any(op in INCREASING and min(values) <= 0 for op, values in steps):
            continue
        for node in users:
            _fold(node, steps)
            node.input[0] = record["input"]
        changed = True
    return drop_dead_nodes(out) if changed else model


def _foldable(node: onnx.NodeProto) -> bool:
    if node.domain != ML_DOMAIN or node.op_type not in TREE_OPS:
        return False
    a = attributes(node)
    return a.get("nodes_values_as_tensor") is None and set(a["nodes_modes"]) <= {"BRANCH_LEQ", "BRANCH_LT", "LEAF"}


def _fold(node: onnx.NodeProto, steps: list[list[Any]]) -> None:
    a = attributes(node)
    modes = np.asarray(a["nodes_modes"])
    split = modes != "LEAF"
    values = np.asarray(a["nodes_values"], dtype=np.float32)
    features = np.asarray(a["nodes_featureids"], dtype=np.int64)
    new = values.copy()
    new[split] = folded_thresholds(values[split], (modes == "BRANCH_LT")[split], steps, features[split])
    new_modes = np.where(split, "BRANCH_LEQ", modes)
    kept = [x for x in node.attribute if x.name not in ("nodes_values", "nodes_modes")]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("nodes_values", new.tolist()),
                           helper.make_attribute("nodes_modes", [m.encode() for m in new_modes])])


def drop_dead_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without the nodes (and initialisers) whose outputs nothing reads (in place; returned)."""
    graph = model.graph
    while True:
        read = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        live = [n for n in graph.node if any(o in read for o in n.output)]
        if len(live) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(live)
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


__all__ = ["AFFINE_KEY", "drop_dead_nodes", "fold_scalers_into_trees", "folded_thresholds"]
