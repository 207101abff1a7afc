"""Which graphs TensorRT's ONNX parser can take, checked without TensorRT.

TensorRT cannot run on the machines admm_tune is built and tested on, so
it is never simulated; what can be checked here is that a (lowered) graph
uses only operators and element types its ONNX parser supports.
:data:`PARSER_OPS` lists the operators marked supported in the parser's
published support matrix (onnx-tensorrt ``docs/operators.md``, the
TensorRT 8.4 table; later releases support a superset), and
:func:`tensorrt_unsupported` reports what a graph uses beyond it: an
``ai.onnx.ml`` operator, an operator outside the matrix, or a string tensor
(TensorRT has no string type).  :func:`for_tensorrt` rewrites the one
operator of the exported graphs outside the table (``Reciprocal``, in the
SGD classifier's normalisation).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._builder import STRING

PARSER_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min Mul Neg Not Or
Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform RandomUniformLike Range ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh Size
Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose
Unsqueeze Upsample Where Xor
""".split())
"""Operators TensorRT's ONNX parser supports (default domain)."""


def for_tensorrt(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the standard operators the parser lacks rewritten: ``Reciprocal(x)`` as ``Div(1, x)``
    (the same correctly rounded division).  Returns ``model`` itself when there is none."""
    if not any(n.op_type == "Reciprocal" for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    one = "tensorrt_one"
    out.graph.initializer.append(numpy_helper.from_array(np.array(1.0, dtype=np.float32), one))
    for node in out.graph.node:
        if node.op_type == "Reciprocal" and node.domain in ("", "ai.onnx"):
            node.CopyFrom(helper.make_node("Div", [one, node.input[0]], list(node.output), name=node.name))
    return out


def tensorrt_unsupported(model: onnx.ModelProto) -> list[str]:
    """What in ``model`` TensorRT's ONNX parser would refuse (empty: nothing), sorted.

    Subgraphs (``Scan``, ``Loop``, ``If`` bodies) are checked too.
    """
    problems: set[str] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if node.domain not in ("", "ai.onnx"):
                problems.add(f"{node.domain}:{node.op_type}")
            elif node.op_type not in PARSER_OPS:
                problems.add(node.op_type)
            graphs += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
        for value in [*graph.input, *graph.output]:
            if value.type.tensor_type.elem_type == STRING:
                problems.add(f"string tensor {value.name}")
    return sorted(problems)


__all__ = ["PARSER_OPS", "for_tensorrt", "tensorrt_unsupported"]
