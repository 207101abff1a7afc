"""The lowering driver: every ai.onnx.ml node of a graph replaced by standard operators.

:func:`lower` keeps the graph's inputs and outputs (a ``ZipMap`` output
becomes the probability tensor it wraps) and drops the ``ai.onnx.ml``
opset import once no node uses it.
"""

from __future__ import annotations

import re

import onnx
from onnx import helper, shape_inference

from ._builder import FLOAT, Builder, LoweringError, attributes
from .ml_ops import RULES
from .trees import STRATEGIES, tree_classifier, tree_regressor

ML_DOMAIN = "ai.onnx.ml"
TREES = {"TreeEnsembleClassifier": tree_classifier, "TreeEnsembleRegressor": tree_regressor}
NATIVE = "native"
"""``tree_lowering`` value that keeps tree ensembles as ai.onnx.ml operators (ONNX Runtime only)."""
TREE_LOWERINGS = (NATIVE, *STRATEGIES)
"""Every value of the ``tree_lowering`` deployment choice."""


def ml_operators(model: onnx.ModelProto) -> list[str]:
    """``op_type`` of every ai.onnx.ml node of the graph, sorted."""
    return sorted({n.op_type for n in model.graph.node if n.domain == ML_DOMAIN})


def lower(model: onnx.ModelProto, tree_strategy: str = "traversal") -> onnx.ModelProto:
    """A copy of ``model`` whose ai.onnx.ml operators are rewritten into standard ones.

    Parameters
    ----------
    model : onnx.ModelProto
    tree_strategy : {"gemm", "traversal", "perfect", "native"}
        How tree ensembles are rewritten (see :mod:`.trees`); ``native``
        keeps them (the result then still needs ONNX Runtime).

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


__all__ = ["ML_DOMAIN", "NATIVE", "TREE_LOWERINGS", "LoweringError", "lower", "ml_operators"]
