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
    threshold to the other side (and was rejected at fp32).
    HistGradientBoosting compares ``g(x) <= t`` in float64, unrounded: its
    folded split compares the float32 input with ``g^-1(t)`` rounded to the
    nearest float32, as an unscaled tree does (the bisection moved up to 2 %
    of the breast-cancer rows, lying on a threshold, to the other side).  The float64
    operations come from the record :mod:`~admm_tune.evaluate.converters`
    leaves on the scaler's last node.
:func:`drop_dead_nodes`
    Nodes whose outputs nothing reads are removed.
:func:`zero_safe_l2_norms`
    ``x / sqrt(sum(x^2))`` (skl2onnx's L2 normalisation of TF-IDF rows)
    divides by ``max(norm, FLT_MIN)``: a row without any known word stays
    all zeros, as scikit-learn's ``normalize`` leaves it, instead of 0 / 0 =
    NaN probabilities.

:func:`merge_linear_chains`
    A chain of affine steps around a MatMul (scaler, PCA / SVD, a linear
    model's scores) becomes one MatMul + Add; ONNX Runtime's optimiser fuses
    MatMul + Add into Gemm but merges no two constant maps.

Constant folding and the operator fusions of ONNX Runtime's graph optimiser
are left to that optimiser (the backend's ``graph_optimization_level``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

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
                      features: np.ndarray, float64: bool = False) -> np.ndarray:
    """For each split ``float32(g(x)) <= t`` (``< t`` where ``strict``) the float32 ``v`` with the same
    decision as ``x <= v`` for every float32 ``x``; for a tree that splits in float64 (``float64``:
    ``g(x) <= t``, :data:`FLOAT64_SPLITS`), the boundary ``g^-1(t)`` rounded to the nearest float32
    (:func:`_nearest_boundaries`).

    Parameters
    ----------
    thresholds : ndarray of float32
    strict : ndarray of bool
    steps : list of [op, values]
        The scaler's float64 operations (``sub``/``div``/``mul``/``add`` by a per-feature value).
    features : ndarray of int
        Each split's feature.
    float64 : bool
        The tree compares ``g(x)`` in float64 (HistGradientBoosting), not rounded to float32.
    """
    if float64:
        return _nearest_boundaries(thresholds, strict, steps, features)

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


INVERSE = {"sub": np.add, "add": np.subtract, "mul": np.divide, "div": np.multiply}
"""Each affine operation's inverse."""


def _nearest_boundaries(thresholds: np.ndarray, strict: np.ndarray, steps: list[list[Any]],
                        features: np.ndarray) -> np.ndarray:
    """The float64 boundaries ``b = g^-1(t)`` rounded to the nearest float32 (for a strict split, the nearest
    float32 below ``b``).

    The graph holds ``t`` rounded to float32; ``b`` is taken at the far end
    of the float64 values that round to it (half a float32 spacing above,
    below for a strict split), so that a row lying exactly on scikit-learn's
    threshold (HistGradientBoosting places them at data values) stays on
    its side.  Rounding is monotone, so ``float32(x) <= v`` then decides as
    scikit-learn for every float64 ``x`` except within half a float32
    spacing around the boundary, as an unscaled tree does.
    """
    t = thresholds.astype(np.float32)
    edge = (t.astype(np.float64) + np.nextafter(t, np.where(strict, -np.inf, np.inf).astype(np.float32))) / 2
    with np.errstate(all="ignore"):
        b = np.where(np.isfinite(edge), edge, t.astype(np.float64))
        for op, values in reversed(steps):
            b = INVERSE[op](b, np.asarray(values, dtype=np.float64)[features])
    v = b.astype(np.float32)
    below = strict & (v.astype(np.float64) >= b)
    return np.where(below, np.nextafter(v, np.float32(-np.inf)), v).astype(np.float32)


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
    producers = {o: node for node in out.graph.node for o in node.output}
    constants = _constants(out)
    changed = False
    for name, record in records.items():
        users = readers.get(name, [])
        steps = record["steps"]
        source = _scaler_input(producers, constants, name, len(steps))
        if source is None or not users or name in outputs or not all(_foldable(n) for n in users):
            continue
        if any(op in INCREASING and min(values) <= 0 for op, values in steps):
            continue
        for node in users:
            _fold(node, steps)
            node.input[0] = source
        changed = True
    return drop_dead_nodes(out) if changed else model


AFFINE_OPS = {"Sub", "Div", "Mul", "Add"}


def _scaler_input(producers: dict[str, onnx.NodeProto], constants: dict[str, np.ndarray], output: str, steps: int
                  ) -> str | None:
    """The value a recorded scaler reads, found in the graph from its ``output`` (None when the nodes there are not
    the scaler's): its ai.onnx.ml ``Scaler`` node's input, or the input of the first of its ``steps`` standard
    arithmetic nodes.  (The name skl2onnx gave the input while converting may be renamed when it finishes the
    graph, so the record's own ``input`` is not used.)"""
    node = producers.get(output)
    if node is not None and node.domain == ML_DOMAIN and node.op_type == "Scaler":
        return node.input[0]
    for _ in range(steps - 1):
        if node is None or node.op_type not in AFFINE_OPS:
            return None
        node = producers.get(node.input[0])
    if node is None or node.op_type not in AFFINE_OPS:
        return None
    while True:  # the converters' own neutral steps: MinMaxScaler's Cast to float, MaxAbsScaler's Sub of zeros
        before = producers.get(node.input[0])
        if before is None or not (_neutral(before, constants) or (
                before.op_type == "Cast" and attributes(before).get("to") == onnx.TensorProto.FLOAT)):
            return node.input[0]
        node = before


def _neutral(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """Whether ``node`` adds or subtracts zeros, or multiplies or divides by ones: the identity."""
    value = constants.get(node.input[1]) if len(node.input) > 1 else None
    if node.op_type not in AFFINE_OPS or value is None:
        return False
    return bool(np.all(value == (0 if node.op_type in ("Add", "Sub") else 1)))


def _foldable(node: onnx.NodeProto) -> bool:
    if node.domain != ML_DOMAIN or node.op_type not in TREE_OPS:
        return False
    a = attributes(node)
    return a.get("nodes_values_as_tensor") is None and set(a["nodes_modes"]) <= {"BRANCH_LEQ", "BRANCH_LT", "LEAF"}


FLOAT64_SPLITS = "admm_tune.float64_splits"
"""Mark in a tree ensemble node's ``doc_string`` (:mod:`~admm_tune.evaluate.converters`): scikit-learn compares its
splits in float64 (HistGradientBoosting*), where its other trees cast the input to float32 first."""


def _fold(node: onnx.NodeProto, steps: list[list[Any]]) -> None:
    a = attributes(node)
    modes = np.asarray(a["nodes_modes"])
    split = modes != "LEAF"
    values = np.asarray(a["nodes_values"], dtype=np.float32)
    features = np.asarray(a["nodes_featureids"], dtype=np.int64)
    new = values.copy()
    new[split] = folded_thresholds(values[split], (modes == "BRANCH_LT")[split], steps, features[split],
                                   FLOAT64_SPLITS in node.doc_string)
    new_modes = np.where(split, "BRANCH_LEQ", modes)
    kept = [x for x in node.attribute if x.name not in ("nodes_values", "nodes_modes")]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("nodes_values", new.tolist()),
                           helper.make_attribute("nodes_modes", [m.encode() for m in new_modes])])


LINEAR_OPS = {"Add", "Sub", "Mul", "Div", "MatMul"}


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Values of the graph's initialisers and ``Constant`` nodes, by name."""
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = attributes(node).get("value")
            if isinstance(value, np.ndarray):
                out[node.output[0]] = value
    return out


def _linear_step(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple[str, str, np.ndarray] | None:
    """``(data input, kind, constant)`` when ``node`` maps its one non-constant input affinely, else None.

    ``kind`` is ``add``, ``neg_add`` (``c - x``), ``mul`` or ``matmul``; a
    constant must broadcast along the last axis (a scalar, ``[F]`` or
    ``[1, F]``), a MatMul weight be a matrix.
    """
    if node.domain not in ("", "ai.onnx") or node.op_type not in LINEAR_OPS or len(node.input) != 2:
        return None
    a, b = node.input
    first_const, second_const = a in constants, b in constants
    if first_const == second_const:
        return None
    x, c = (b, constants[a]) if first_const else (a, constants[b])
    if c.dtype != np.float32:
        return None
    if node.op_type == "MatMul":
        return (x, "matmul", c.astype(np.float64)) if not first_const and c.ndim == 2 else None
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
        return None
    c = c.astype(np.float64).reshape(-1)
    if node.op_type == "Add":
        return x, "add", c
    if node.op_type == "Sub":
        return (x, "neg_add", c) if first_const else (x, "add", -c)
    if node.op_type == "Mul":
        return x, "mul", c
    return None if first_const else (x, "mul", 1.0 / c)  # Div(x, c)


def merge_linear_chains(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` in which each chain of affine steps around a MatMul becomes one MatMul + Add.

    A chain is a run of ``Add`` / ``Sub`` / ``Mul`` / ``Div`` by constants
    (per feature or scalar) and ``MatMul`` by constant matrices, each step
    read only by the next (a scaler, PCA / truncated SVD, a linear model's
    scores).  Its composition ``x @ A + b`` is computed in float64 and
    stored in float32: the same map in real arithmetic, one rounding of the
    constants instead of float32 rounding at every step.  Chains that feed
    a tree ensemble are left alone (their float32 values decide splits).
    Returns ``model`` itself when there is nothing to merge.
    """
    constants = _constants(model)
    nodes = list(model.graph.node)  # protobuf may wrap an element anew at each access: work by index
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            readers.setdefault(name, []).append(i)
    outputs = {o.name for o in model.graph.output}
    steps = [_linear_step(n, constants) for n in nodes]
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    chains = []
    for i, step in enumerate(steps):
        if step is None:
            continue
        before = producer.get(step[0])
        if before is not None and steps[before] is not None and len(readers.get(step[0], [])) == 1 \
                and step[0] not in outputs:
            continue  # not the start of a chain
        chain = [i]
        while True:
            out = nodes[chain[-1]].output[0]
            nxt = readers.get(out, [])
            if out in outputs or len(nxt) != 1 or steps[nxt[0]] is None or steps[nxt[0]][0] != out:
                break
            chain.append(nxt[0])
        last_readers = [nodes[r] for r in readers.get(nodes[chain[-1]].output[0], [])]
        if len(chain) >= 2 and any(steps[j][1] == "matmul" for j in chain) and \
                not any(r.domain == ML_DOMAIN and r.op_type in TREE_OPS for r in last_readers):
            chains.append(chain)
    if not chains:
        return model
    widths = _last_dims(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    drop = set()
    replace: dict[str, list[onnx.NodeProto]] = {}
    for k, chain in enumerate(chains):
        x, y = steps[chain[0]][0], nodes[chain[-1]].output[0]
        try:
            a, b = _compose([steps[j] for j in chain])
        except ValueError:  # constants that do not act per feature of one matrix
            continue
        if widths.get(x) != a.shape[0]:  # the input must have as many columns as the map (no broadcasting)
            continue
        w, c = f"merged_linear_{k}_weight", f"merged_linear_{k}_bias"
        out.graph.initializer.extend([numpy_helper.from_array(a.astype(np.float32), w),
                                      numpy_helper.from_array(b.astype(np.float32).reshape(1, -1), c)])
        replace[y] = [helper.make_node("MatMul", [x, w], [f"{y}_merged"], name=f"merged_{k}_mm"),
                      helper.make_node("Add", [f"{y}_merged", c], [y], name=f"merged_{k}_add")]
        drop.update(nodes[j].output[0] for j in chain)
    if not replace:
        return model
    nodes = []
    for node in out.graph.node:
        if node.output and node.output[0] in replace:
            nodes += replace[node.output[0]]
        elif not (node.output and node.output[0] in drop):
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return drop_dead_nodes(out)


def _last_dims(model: onnx.ModelProto) -> dict[str, int]:
    """Known last dimension of the graph's 2-D float tensors, by name (shape inference)."""
    try:
        graph = shape_inference.infer_shapes(model).graph
    except Exception:  # inference fails on some graphs; then nothing is merged
        return {}
    out = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].HasField("dim_value"):
            out[value.name] = dims[1].dim_value
    for node in graph.node:  # ONNX infers no shape for ai.onnx.ml operators (nor after them); these keep their input's
        if node.op_type in SHAPE_KEEPING.get(node.domain, set()) and node.input[0] in out:
            out.setdefault(node.output[0], out[node.input[0]])
    return out


SHAPE_KEEPING = {ML_DOMAIN: {"Imputer", "Scaler", "Binarizer", "Normalizer"}, "": {"Cast", "Identity"}}
"""Operators whose output has their input's shape, by domain (the front's imputer, a scaler's cast)."""


def _compose(chain: list[tuple[str, str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``x @ A + b`` equal to the chain's steps applied in turn (float64).

    Raises
    ------
    ValueError
        When a constant's length is neither 1 nor the width of the values it acts on.
    """
    width = next(c.shape[0] for _, kind, c in chain if kind == "matmul")
    a, b = np.eye(width), np.zeros(width)
    for _, kind, c in chain:
        if kind != "matmul" and c.size not in (1, a.shape[1]):
            raise ValueError("a constant that broadcasts across features")
        if kind == "add":
            b = b + c
        elif kind == "neg_add":
            a, b = -a, c - b
        elif kind == "mul":
            a, b = a * c, b * c
        elif c.shape[0] != a.shape[1]:
            raise ValueError("a MatMul whose rows do not match")
        else:
            a, b = a @ c, b @ c
    return a, b


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


def zero_safe_l2_norms(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every ``Div(x, Sqrt(ReduceSumSquare(x)))`` divides by ``Max(norm, FLT_MIN)`` instead (in place; returned):
    an all-zero row stays zero, as scikit-learn's ``normalize`` leaves it, where 0 / 0 gave NaN."""
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        root = producers.get(node.input[1]) if node.op_type == "Div" and len(node.input) == 2 else None
        squares = producers.get(root.input[0]) if root is not None and root.op_type == "Sqrt" else None
        if squares is not None and squares.op_type == "ReduceSumSquare" and squares.input[0] == node.input[0]:
            floor = f"{node.name or node.output[0]}_l2_floor"
            graph.initializer.append(numpy_helper.from_array(np.array(np.finfo(np.float32).tiny, np.float32),
                                                             floor))
            nodes.append(helper.make_node("Max", [root.output[0], floor], [f"{floor}_norm"]))
            node.input[1] = f"{floor}_norm"
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


__all__ = ["AFFINE_KEY", "drop_dead_nodes", "fold_scalers_into_trees", "folded_thresholds", "merge_linear_chains",
           "zero_safe_l2_norms"]
