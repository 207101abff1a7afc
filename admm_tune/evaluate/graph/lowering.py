"""The lowering driver: every ai.onnx.ml node of a graph replaced by standard operators.

:func:`lower` keeps the graph's inputs and outputs (a ``ZipMap`` output
becomes the probability tensor it wraps) and drops the ``ai.onnx.ml``
opset import once no node uses it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict

import numpy as np
import onnx
from onnx import helper, shape_inference

from ._builder import FLOAT, INT64, ML_DOMAIN, STRING, Builder, CapacityError, LoweringError, attributes
from .ml_ops import RULES
from .passes import fold_scalers_into_trees, merge_linear_chains
from .strategies import NATIVE, TREE_LOWERINGS
from .trees import tree_classifier, tree_regressor

TREES = {"TreeEnsembleClassifier": tree_classifier, "TreeEnsembleRegressor": tree_regressor}
CODES_KEY = "admm_tune.string_codes"
"""Metadata key of a lowered graph whose string inputs became integer codes: ``{input: vocabulary}``."""
PASS_THROUGH = {"Identity", "Gather", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Transpose", "Concat"}
"""Operators that only move string values around (their outputs stay codes of the same vocabulary)."""
ENCODERS = {"OneHotEncoder": ("cats_strings", "cats_int64s"), "LabelEncoder": ("keys_strings", "keys_int64s")}


def ml_operators(model: onnx.ModelProto) -> list[str]:
    """``op_type`` of every ai.onnx.ml node of the graph, sorted."""
    return sorted({n.op_type for n in model.graph.node if n.domain == ML_DOMAIN})


def lower(model: onnx.ModelProto, tree_strategy: str = "traversal", string_codes: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` whose ai.onnx.ml operators are rewritten into standard ones.

    Parameters
    ----------
    model : onnx.ModelProto
    tree_strategy : {"gemm", "traversal", "perfect", "native"}
        How tree ensembles are rewritten (see :mod:`.trees`); ``native``
        keeps them (the result then still needs ONNX Runtime).
    string_codes : bool
        Turn string inputs into int64 inputs of codes (the position in a
        vocabulary, -1 for an unknown string), for backends without string
        tensors (OpenVINO); the vocabulary of each input is recorded in the
        graph's metadata under :data:`CODES_KEY` (:func:`encode_strings`
        makes the codes).

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    LoweringError
        When an operator or an attribute combination has no standard form here.
    """
    if tree_strategy not in TREE_LOWERINGS:
        raise LoweringError(f"unknown tree strategy {tree_strategy!r}; expected one of {list(TREE_LOWERINGS)}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if string_codes:
        _strings_to_codes(out)
    if not ml_operators(out):
        return out
    types = _elem_types(out)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    opset = 18
    retype: dict[str, int] = {}
    for i, node in enumerate(out.graph.node):
        if node.domain != ML_DOMAIN or (node.op_type in TREES and tree_strategy == NATIVE):
            nodes.append(node)
            continue
        b = Builder(f"{re.sub(r'[^A-Za-z0-9_]', '_', node.name or node.op_type)}_l{i}_")
        a = attributes(node)
        t = types.get(node.input[0], FLOAT)
        if node.op_type in TREES:
            TREES[node.op_type](b, node, a, t, tree_strategy)
        elif node.op_type in RULES:
            RULES[node.op_type](b, node, a, t)
        else:
            raise LoweringError(f"ai.onnx.ml operator {node.op_type} has no standard-operator form here")
        # declared shapes of rewritten outputs are dropped: skl2onnx declares some wrongly
        # (a binary RidgeClassifier's one-column scores as two), which full shape inference rejects
        retype.update({name: FLOAT if node.op_type == "ZipMap" else types.get(name, 0) for name in node.output})
        nodes += b.nodes
        initializers += b.initializers
        opset = max(opset, b.opset)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(initializers)
    _set_opsets(out, opset)
    _retype_outputs(out, retype)
    return out


def _retype_outputs(model: onnx.ModelProto, names: dict[str, int]) -> None:
    """Outputs in ``names`` get the type and shape that inference gives the rewritten graph."""
    outputs = [o for o in model.graph.output if o.name in names]
    if not outputs:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for o in probe.graph.output:
        if o.name in names:
            o.ClearField("type")
    graph = shape_inference.infer_shapes(probe).graph
    inferred = {v.name: v for v in [*graph.value_info, *graph.output]}
    for o in outputs:
        if o.name in inferred and inferred[o.name].type.tensor_type.HasField("shape"):
            o.type.CopyFrom(inferred[o.name].type)
        else:
            elem = names[o.name] or o.type.tensor_type.elem_type
            o.CopyFrom(helper.make_tensor_value_info(o.name, elem, None))


_PREPARED: OrderedDict[tuple[bytes, str, bool], onnx.ModelProto | None] = OrderedDict()


FALLBACK = "traversal"
"""The tree strategy that holds any forest (its size grows with the nodes, not with 2^depth or paths x leaves)."""
APPLIED_KEY = "admm_tune.tree_lowering"
"""Metadata entry of a graph lowered with :data:`FALLBACK` because the requested strategy could not hold it."""


def prepared(model: onnx.ModelProto, tree_lowering: str, string_codes: bool = False) -> onnx.ModelProto:
    """The graph a backend compiles: ``model`` through the lossless passes (scalers folded into the
    trees they feed, chains of affine steps merged: :mod:`.passes`, every backend), then lowered by
    :func:`lower` unless ``tree_lowering="native"`` (ONNX Runtime's ai.onnx.ml kernels).  A strategy that
    cannot hold the fitted forest (:class:`CapacityError`: gemm's path matrices, perfect's 2^depth slots) is
    replaced by :data:`FALLBACK` in the same call, and the graph says so (:data:`APPLIED_KEY`): no candidate
    fails for a strategy that could not apply.

    A graph no pass or lowering applies to comes back as it was.  The last
    few prepared graphs are cached by content, so deployments of one
    pipeline that differ only in knobs prepare it once.
    """
    has_strings = string_codes and any(i.type.tensor_type.elem_type == STRING for i in model.graph.input)
    key = (hashlib.sha1(model.SerializeToString()).digest(), tree_lowering, string_codes)
    if key not in _PREPARED:
        graph = merge_linear_chains(fold_scalers_into_trees(model))
        if tree_lowering != NATIVE and (ml_operators(graph) or has_strings):
            try:
                graph = lower(graph, tree_lowering, string_codes)
            except CapacityError as exc:  # the fitted forest rules the strategy out: the one that holds any forest
                graph = lower(graph, FALLBACK, string_codes)
                graph.metadata_props.add(key=APPLIED_KEY, value=f"{FALLBACK} ({exc})")
        _PREPARED[key] = None if graph is model else graph  # never the caller's object: it may change later
        while len(_PREPARED) > 8:
            _PREPARED.popitem(last=False)
    _PREPARED.move_to_end(key)
    cached = _PREPARED[key]
    return model if cached is None else cached


def _strings_to_codes(model: onnx.ModelProto) -> None:
    """String inputs become int64 codes into the sorted vocabulary of every string-keyed encoder.

    Raises
    ------
    LoweringError
        When a string value reaches an operator other than a pass-through
        (:data:`PASS_THROUGH`) or a string-keyed encoder.
    """
    graph = model.graph
    strings = {i.name for i in graph.input if i.type.tensor_type.elem_type == STRING}
    if not strings:
        return
    encoders = [n for n in graph.node if n.domain == ML_DOMAIN and n.op_type in ENCODERS]
    vocabulary = sorted({v for n in encoders for v in attributes(n).get(ENCODERS[n.op_type][0], [])})
    code = {v: i for i, v in enumerate(vocabulary)}
    for node in graph.node:  # topological order: string values propagate forward
        if not strings.intersection(node.input):
            continue
        if node.op_type in PASS_THROUGH and node.domain in ("", "ai.onnx"):
            strings.update(node.output)
        elif node.domain == ML_DOMAIN and node.op_type in ENCODERS and ENCODERS[node.op_type][0] in attributes(node):
            old, new = ENCODERS[node.op_type]
            keys = [code[v] for v in attributes(node)[old]]
            kept = [a for a in node.attribute if a.name != old]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute(new, keys)])
        else:
            raise LoweringError(f"string input reaches {node.op_type}, which has no integer-code form here")
    inputs = [i for i in graph.input if i.type.tensor_type.elem_type == STRING]
    for inp in inputs:
        inp.type.tensor_type.elem_type = INT64
    entry = model.metadata_props.add()
    entry.key, entry.value = CODES_KEY, json.dumps({i.name: vocabulary for i in inputs})


def string_codes(model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    """``{input: {string: code}}`` of a graph lowered with ``string_codes=True`` (empty otherwise)."""
    raw = next((p.value for p in model.metadata_props if p.key == CODES_KEY), None)
    return {name: {v: i for i, v in enumerate(vocab)} for name, vocab in json.loads(raw).items()} if raw else {}


def encode_strings(values: np.ndarray, codes: dict[str, int]) -> np.ndarray:
    """The int64 codes of an array of strings (-1 for a string outside the vocabulary)."""
    flat = np.asarray(values).reshape(-1)
    return np.fromiter((codes.get(str(v), -1) for v in flat), dtype=np.int64, count=flat.size).reshape(
        np.shape(values))


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every typed value of the graph (after shape inference)."""
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:  # inference fails on some exotic graphs; inputs' types are then all we know
        inferred = model
    graph = inferred.graph
    return {v.name: v.type.tensor_type.elem_type
            for v in [*graph.input, *graph.value_info, *graph.output] if v.type.HasField("tensor_type")}


def _set_opsets(model: onnx.ModelProto, opset: int) -> None:
    keep_ml = any(n.domain == ML_DOMAIN for n in model.graph.node)
    imports = [o for o in model.opset_import if o.domain not in ("", "ai.onnx", ML_DOMAIN) or
               (o.domain == ML_DOMAIN and keep_ml)]
    current = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [opset])
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", max(current, opset)), *imports])


__all__ = ["CODES_KEY", "ML_DOMAIN", "NATIVE", "TREE_LOWERINGS", "LoweringError", "encode_strings", "lower",
           "ml_operators", "prepared", "string_codes"]
