"""Tree ensembles (``TreeEnsembleClassifier`` / ``TreeEnsembleRegressor``) in standard operators.

The operator's attributes are first read into a :class:`Forest` in which
every split is ``x <= threshold`` (``true`` branch) with a float32 threshold
that gives exactly the operator's decision for every float32 ``x``:

- ``BRANCH_LEQ`` ``x <= t`` keeps ``t`` (a float64 threshold, from
  ``nodes_values_as_tensor``, becomes the largest float32 ``<= t``);
- ``BRANCH_LT`` ``x < t`` is ``x <= t'`` with ``t'`` the largest float32
  ``< t``;
- ``BRANCH_GTE`` / ``BRANCH_GT`` are the negations of ``LT`` / ``LEQ``: the
  branches swap, and so does the side NaN goes to;
- NaN goes to the ``false`` branch, or to the ``true`` one where
  ``nodes_missing_value_tracks_true`` says so.

Three strategies then compute every tree's leaf for a batch
(:data:`STRATEGIES`):

``gemm``
    All splits of all trees are evaluated at once (one ``Gather`` of the
    features, one comparison); a batched matrix product with a ``[trees,
    splits, leaves]`` matrix of +1 (leaf below the ``true`` side) / -1
    (below the ``false`` side; refused beyond :data:`GEMM_LIMIT` entries)
    counts, for each leaf, the satisfied
    conditions on its path, which equals the number of its ``true``-side
    ancestors exactly for the one leaf reached (small integers: exact in
    float32); a second product picks that leaf's values.
``traversal``
    Level by level: each tree's current node index, for ``depth`` steps,
    moves to its ``true`` or ``false`` child (``Gather``,
    ``GatherElements``, ``Where``); leaves point to themselves.
``perfect``
    Every tree completed to a perfect binary tree of the ensemble's depth
    (a leaf above the last level repeats itself below), so the child of
    slot ``k`` is ``2k`` or ``2k + 1`` and no child tables are read.  Refused
    beyond :data:`PERFECT_LIMIT` slots.

All three give each tree's leaf values ``[trees, N, K]`` or ``[N, trees,
K]``; the ensemble's aggregation and its classifier post-processing follow
ONNX Runtime (see :func:`classifier_outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ._builder import FLOAT, INT64, Builder, CapacityError, LoweringError
from .strategies import STRATEGIES

PERFECT_LIMIT = 1 << 20
"""Largest number of leaf slots (trees x 2^depth) the ``perfect`` strategy builds."""
GEMM_LIMIT = 1 << 24
"""Largest path matrix (trees x splits x leaves of the largest tree, float32: 64 MiB) ``gemm`` builds."""

DOUBLE = onnx.TensorProto.DOUBLE


@dataclass
class Forest:
    """All trees of one operator, every split as ``x <= threshold``.

    Node arrays are indexed by a global node number; a leaf's ``yes`` and
    ``no`` are itself.
    """

    feature: np.ndarray
    threshold: np.ndarray
    yes: np.ndarray
    no: np.ndarray
    nan_yes: np.ndarray
    leaf: np.ndarray
    values: np.ndarray
    roots: np.ndarray
    depth: int

    @property
    def n_trees(self) -> int:
        """Number of trees."""
        return len(self.roots)


def _round_down(t: np.ndarray, strict: np.ndarray) -> np.ndarray:
    """Largest float32 ``<= t`` (``< t`` where ``strict``), for float64 ``t``."""
    t32 = t.astype(np.float32)
    over = t32.astype(np.float64) > t
    t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
    on = strict & (t32.astype(np.float64) == t)
    t32[on] = np.nextafter(t32[on], np.float32(-np.inf))
    return t32


def read_forest(a: dict[str, Any], prefix: str, double: bool = False) -> Forest:
    """The :class:`Forest` of a ``TreeEnsemble*`` node's attributes.

    Parameters
    ----------
    a : dict
        The node's attributes.
    prefix : {"class", "target"}
        Prefix of the leaf-weight attributes.
    double : bool
        Whether the input is float64 (thresholds stay float64, unrounded).
    """
    tree_ids = np.asarray(a["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(a["nodes_nodeids"], dtype=np.int64)
    n = len(tree_ids)
    index = {(t, i): g for g, (t, i) in enumerate(zip(tree_ids.tolist(), node_ids.tolist(), strict=True))}
    modes = np.asarray(a["nodes_modes"])
    values = a.get("nodes_values_as_tensor")
    values = np.asarray(values if values is not None and len(values) else a.get("nodes_values", np.zeros(n)),
                        dtype=np.float64)
    leaf = modes == "LEAF"
    if np.isin(modes, ["BRANCH_EQ", "BRANCH_NEQ"]).any():
        raise LoweringError("tree splits BRANCH_EQ / BRANCH_NEQ have no '<=' form (scikit-learn never emits them)")
    yes = np.arange(n)
    no = np.arange(n)
    for g in np.flatnonzero(~leaf):
        yes[g] = index[int(tree_ids[g]), int(a["nodes_truenodeids"][g])]
        no[g] = index[int(tree_ids[g]), int(a["nodes_falsenodeids"][g])]
    nan_yes = np.asarray(a.get("nodes_missing_value_tracks_true") or np.zeros(n), dtype=bool)
    negated = np.isin(modes, ["BRANCH_GTE", "BRANCH_GT"])  # x >= t is not (x < t); x > t is not (x <= t)
    strict = np.isin(modes, ["BRANCH_LT", "BRANCH_GTE"])
    threshold = values if double else _round_down(values, strict)
    if double and strict.any():
        threshold = threshold.copy()
        threshold[strict] = np.nextafter(threshold[strict], -np.inf)
    yes[negated], no[negated] = no[negated].copy(), yes[negated].copy()
    nan_yes = nan_yes ^ negated
    threshold = np.where(leaf, 0, threshold).astype(np.float64 if double else np.float32)
    feature = np.where(leaf, 0, np.asarray(a["nodes_featureids"], dtype=np.int64))
    weights = _leaf_weights(a, prefix, index, n)
    roots = np.asarray([index[t, 0] if (t, 0) in index else min(g for (tt, _), g in index.items() if tt == t)
                        for t in dict.fromkeys(tree_ids.tolist())], dtype=np.int64)
    return Forest(feature, threshold, yes, no, nan_yes & ~leaf, leaf, weights, roots, _depth(roots, yes, no, leaf))


def _leaf_weights(a: dict[str, Any], prefix: str, index: dict[tuple[int, int], int], n: int) -> np.ndarray:
    ids = np.asarray(a[f"{prefix}_ids"], dtype=np.int64)
    w = a.get(f"{prefix}_weights_as_tensor")
    w = np.asarray(w if w is not None and len(w) else a[f"{prefix}_weights"], dtype=np.float64)
    k = int(a.get("n_targets", 0)) or max(len(a.get("classlabels_int64s") or a.get("classlabels_strings") or []),
                                           int(ids.max()) + 1)
    if prefix == "class" and len(set(ids.tolist())) == 1:
        k = int(ids.max()) + 1
    out = np.zeros((n, k))
    nodes = [index[int(t), int(i)] for t, i in zip(a[f"{prefix}_treeids"], a[f"{prefix}_nodeids"], strict=True)]
    np.add.at(out, (np.asarray(nodes, dtype=np.int64), ids), w)
    return out


def _depth(roots: np.ndarray, yes: np.ndarray, no: np.ndarray, leaf: np.ndarray) -> int:
    frontier, depth = roots, 0
    while True:
        frontier = frontier[~leaf[frontier]]
        if not len(frontier):
            return depth
        frontier = np.concatenate([yes[frontier], no[frontier]])
        depth += 1


def _split(b: Builder, xv: str, threshold: str, nan_yes: str | None) -> str:
    """``xv <= threshold``, or NaN where the node sends NaN to the ``true`` branch."""
    cond = b.op("LessOrEqual", xv, threshold)
    if nan_yes is not None:
        cond = b.op("Or", cond, b.op("And", b.op("IsNaN", xv), nan_yes))
    return cond


def gemm(b: Builder, x: str, f: Forest) -> tuple[str, int]:
    """Per-tree leaf values ``[trees, N, K]`` by two batched matrix products; returns (name, tree axis)."""
    internal = [[] for _ in f.roots]
    leaves = [[] for _ in f.roots]
    path: dict[int, list[tuple[int, int]]] = {}
    for t, root in enumerate(f.roots):
        stack = [(int(root), [])]
        while stack:
            g, above = stack.pop()
            if f.leaf[g]:
                leaves[t].append(g)
                path[g] = above
                continue
            i = len(internal[t])
            internal[t].append(g)
            stack += [(int(f.yes[g]), above + [(i, 1)]), (int(f.no[g]), above + [(i, -1)])]
    n_i = max(1, max(len(v) for v in internal))
    n_l = max(len(v) for v in leaves)
    T, K = f.n_trees, f.values.shape[1]
    if T * n_i * n_l > GEMM_LIMIT:
        raise CapacityError(f"gemm trees: a {T} x {n_i} x {n_l} path matrix exceeds {GEMM_LIMIT} entries")
    feat = np.zeros((T, n_i), np.int64)
    thr = np.zeros((T, n_i), f.threshold.dtype)
    nan = np.zeros((T, n_i), bool)
    paths = np.zeros((T, n_i, n_l), np.float32)
    need = np.full((T, 1, n_l), -1.0, np.float32)
    vals = np.zeros((T, n_l, K), np.float32)
    for t in range(T):
        g = np.asarray(internal[t], dtype=np.int64)
        feat[t, :len(g)], thr[t, :len(g)], nan[t, :len(g)] = f.feature[g], f.threshold[g], f.nan_yes[g]
        for j, leaf in enumerate(leaves[t]):
            for i, sign in path[leaf]:
                paths[t, i, j] = sign
            need[t, 0, j] = sum(1 for _, sign in path[leaf] if sign > 0)
            vals[t, j] = f.values[leaf]
    xs = b.op("Gather", x, b.const(feat.reshape(-1)), axis=1)
    cond = _split(b, xs, b.const(thr.reshape(-1)), b.const(nan.reshape(-1)) if nan.any() else None)
    cond = b.op("Reshape", b.cast(cond, FLOAT), b.const(np.array([-1, T, n_i], dtype=np.int64)))
    counts = b.op("MatMul", b.op("Transpose", cond, perm=[1, 0, 2]), b.const(paths))
    reached = b.cast(b.op("Equal", counts, b.const(need)), FLOAT)
    return b.op("MatMul", reached, b.const(vals)), 0


def _per_row(b: Builder, x: str, row: np.ndarray) -> str:
    """``row`` (``[T]`` int64) repeated for every row of ``x``: ``[N, T]``."""
    n = b.op("Shape", x, start=0, end=1)
    shape = b.op("Concat", n, b.const(np.array([len(row)], dtype=np.int64)), axis=0)
    return b.op("Expand", b.const(row.reshape(1, -1)), shape)


def traversal(b: Builder, x: str, f: Forest) -> tuple[str, int]:
    """Per-tree leaf values ``[N, trees, K]`` by ``depth`` steps of every tree's node index."""
    idx = _per_row(b, x, f.roots)
    feat, thr = b.const(f.feature), b.const(f.threshold)
    yes, no = b.const(f.yes.astype(np.int64)), b.const(f.no.astype(np.int64))
    nan = b.const(f.nan_yes) if f.nan_yes.any() else None
    for _ in range(f.depth):
        xv = b.op("GatherElements", x, b.op("Gather", feat, idx, axis=0), axis=1)
        cond = _split(b, xv, b.op("Gather", thr, idx, axis=0),
                      b.op("Gather", nan, idx, axis=0) if nan else None)
        idx = b.op("Where", cond, b.op("Gather", yes, idx, axis=0), b.op("Gather", no, idx, axis=0))
    return b.op("Gather", b.const(f.values.astype(np.float32)), idx, axis=0), 1


def perfect(b: Builder, x: str, f: Forest) -> tuple[str, int]:
    """Per-tree leaf values ``[N, trees, K]`` on trees completed to perfect binary trees.

    Raises
    ------
    LoweringError
        When trees x 2^depth exceeds :data:`PERFECT_LIMIT`.
    """
    T = f.n_trees
    if T << f.depth > PERFECT_LIMIT:
        raise CapacityError(f"perfect trees: {T} trees x 2^{f.depth} slots exceed {PERFECT_LIMIT}")
    slots = f.roots.reshape(T, 1)
    k = _per_row(b, x, np.zeros(T, dtype=np.int64))
    two, one = b.const(np.int64(2)), b.const(np.int64(1))
    for level in range(f.depth):
        offsets = b.const((np.arange(T, dtype=np.int64) << level).reshape(1, -1))
        flat = slots.reshape(-1)
        g = b.op("Add", k, offsets)
        xv = b.op("GatherElements", x, b.op("Gather", b.const(f.feature[flat]), g, axis=0), axis=1)
        nan = b.op("Gather", b.const(f.nan_yes[flat]), g, axis=0) if f.nan_yes[flat].any() else None
        cond = _split(b, xv, b.op("Gather", b.const(f.threshold[flat]), g, axis=0), nan)
        k = b.op("Add", b.op("Mul", k, two), b.op("Sub", one, b.cast(cond, INT64)))
        slots = np.stack([f.yes[slots], f.no[slots]], axis=-1).reshape(T, -1)
    offsets = b.const((np.arange(T, dtype=np.int64) << f.depth).reshape(1, -1))
    table = b.const(f.values[slots.reshape(-1)].astype(np.float32))
    return b.op("Gather", table, b.op("Add", k, offsets), axis=0), 1


BUILDERS = {"gemm": gemm, "traversal": traversal, "perfect": perfect}


def _input(b: Builder, node: onnx.NodeProto, t: int) -> str:
    return node.input[0] if t in (FLOAT, DOUBLE) else b.cast(node.input[0], FLOAT)


def _aggregate(b: Builder, per_tree: str, axis: int, how: str, n_trees: int) -> str:
    axes = b.const(np.array([axis], dtype=np.int64))
    if how in ("SUM", "AVERAGE"):
        total = b.op("ReduceSum", per_tree, axes, keepdims=0)
        return total if how == "SUM" else b.op("Div", total, b.const(np.float32(n_trees)))
    if how in ("MIN", "MAX"):
        return b.op("ReduceMin" if how == "MIN" else "ReduceMax", per_tree, axes, keepdims=0)
    raise LoweringError(f"aggregate_function {how}")


def _base(a: dict[str, Any]) -> np.ndarray:
    base = a.get("base_values_as_tensor")
    base = base if base is not None and len(base) else a.get("base_values") or []
    return np.asarray(base, dtype=np.float32)


def _leaf_sums(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int, strategy: str, prefix: str,
               how: str) -> tuple[str, Forest]:
    if strategy not in BUILDERS:
        raise LoweringError(f"unknown tree strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    forest = read_forest(a, prefix, double=t == DOUBLE)
    per_tree, axis = BUILDERS[strategy](b, _input(b, node, t), forest)
    return _aggregate(b, per_tree, axis, how, forest.n_trees), forest


def tree_regressor(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int, strategy: str) -> None:
    """``TreeEnsembleRegressor``: aggregated leaf values plus ``base_values``."""
    if a.get("post_transform", "NONE") != "NONE":
        raise LoweringError(f"TreeEnsembleRegressor post_transform {a['post_transform']}")
    how = a.get("aggregate_function", "SUM")
    value, forest = _leaf_sums(b, node, a, t, strategy, "target", how)
    base = _base(a)
    if len(base) == forest.values.shape[1] or len(base) == 1:
        value = b.op("Add", value, b.const(base.reshape(1, -1)))
    b.rename(value, node.output[0])


def tree_classifier(b: Builder, node: onnx.NodeProto, a: dict[str, Any], t: int, strategy: str) -> None:
    """``TreeEnsembleClassifier``: summed class weights, then ONNX Runtime's classifier outputs."""
    raw, _ = _leaf_sums(b, node, a, t, strategy, "class", "SUM")
    classifier_outputs(b, node, a, raw)


def classifier_outputs(b: Builder, node: onnx.NodeProto, a: dict[str, Any], raw: str) -> None:
    """Label and scores from summed class weights ``raw``, as ONNX Runtime's tree classifier makes them.

    More than two classes: ``raw + base_values``, label of the largest,
    scores through ``post_transform``.  Two classes with all weights on
    class column 0 (scikit-learn's binary layout): ``s = raw + base``; with
    non-negative weights the label is positive when ``s > 0.5`` and the
    scores are ``[1 - s, s]``; with mixed signs the label is positive when
    ``s > 0`` and the scores are ``[sigmoid(-s), sigmoid(s)]`` (LOGISTIC) or
    ``[-s, s]``.

    Raises
    ------
    LoweringError
        For binary layouts ONNX Runtime treats inconsistently (weights on
        both class columns, or only on column 1, or two base values) and
        for PROBIT.
    """
    from .ml_ops import classes_of

    classes = classes_of(a)
    ids = set(int(i) for i in a["class_ids"])
    base = _base(a)
    post = a.get("post_transform", "NONE")
    if len(classes) > 2:
        scores = b.op("Add", raw, b.const(base.reshape(1, -1))) if len(base) == len(classes) else raw
        b.labels(b.argmax(scores), classes, node.output[0])
        b.rename(b.post_transform(scores, post), node.output[1])
        return
    if len(classes) != 2 or ids != {0} or len(base) > 1 or post == "PROBIT":
        raise LoweringError(f"binary TreeEnsembleClassifier layout (class_ids {sorted(ids)}, {len(base)} base "
                            f"values, {post}) that ONNX Runtime treats inconsistently")
    s = b.op("Add", raw, b.const(base.reshape(1, 1))) if len(base) else raw
    positive = np.all(np.asarray(a.get("class_weights") or a.get("class_weights_as_tensor"), dtype=float) >= 0)
    cut = b.const(np.float32(0.5 if positive else 0.0))
    b.labels(b.cast(b.op("Greater", s, cut), INT64), classes, f"{node.output[0]}_col")
    b.op("Reshape", f"{node.output[0]}_col", b.const(np.array([-1], dtype=np.int64)), out=node.output[0])
    if positive:
        scores = b.concat_columns(b.op("Sub", b.const(np.float32(1.0)), s), s)
    elif post == "LOGISTIC":
        scores = b.op("Sigmoid", b.concat_columns(b.op("Neg", s), s))
    else:
        scores = b.concat_columns(b.op("Neg", s), s)
    b.rename(scores, node.output[1])


__all__ = ["GEMM_LIMIT", "PERFECT_LIMIT", "STRATEGIES", "Forest", "read_forest", "tree_classifier", "tree_regressor"]
