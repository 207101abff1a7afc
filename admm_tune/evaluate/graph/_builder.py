"""A small emitter of ONNX nodes and constants, shared by the rewrites.

A :class:`Builder` collects the nodes and initialisers that replace one
operator; names are prefixed by the replaced node's name so that rewrites of
several operators in one graph never collide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT, INT64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
BOOL, STRING = onnx.TensorProto.BOOL, onnx.TensorProto.STRING
ML_DOMAIN = "ai.onnx.ml"


class LoweringError(ValueError):
    """An operator (or an attribute combination of it) has no standard-operator form here."""


class CapacityError(LoweringError):
    """A tree strategy cannot hold this model (its matrices or slots exceed their limit); another strategy can."""


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as Python values (strings decoded, tensors as arrays)."""
    out: dict[str, Any] = {}
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        elif isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        out[attr.name] = value
    return out


class Builder:
    """Emits the nodes and initialisers that replace one node.

    Parameters
    ----------
    prefix : str
        Prefix of every name made here (unique per replaced node).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.opset = 18
        self._count = 0

    def name(self, hint: str) -> str:
        """A fresh name."""
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: Any, hint: str = "c", dtype: Any = None) -> str:
        """An initialiser holding ``value`` (float64 becomes float32 unless ``dtype`` says)."""
        array = np.asarray(value, dtype=dtype)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype.kind in "UO":
            tensor = helper.make_tensor(self.name(hint), STRING, array.shape,
                                        [str(v).encode() for v in array.reshape(-1)])
        else:
            tensor = numpy_helper.from_array(array, self.name(hint))
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op_type: str, *inputs: str, out: str | None = None, n_out: int = 1, **attrs: Any) -> Any:
        """Append ``op_type(inputs)``; returns its output name (a list when ``n_out > 1``)."""
        outputs = [out] if out is not None else [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=self.name(op_type), **attrs))
        return outputs[0] if n_out == 1 else outputs

    def cast(self, x: str, to: int) -> str:
        """``Cast(x, to)``."""
        return self.op("Cast", x, to=to)

    def rename(self, x: str, out: str) -> None:
        """Make ``out`` an alias of ``x`` (an ``Identity``)."""
        self.op("Identity", x, out=out)

    def argmax(self, x: str) -> str:
        """Index of the first largest value of each row (``[N]``, int64)."""
        return self.op("ArgMax", x, axis=1, keepdims=0)

    def labels(self, index: str, classes: list[Any], out: str) -> None:
        """``classes[index]`` into ``out`` (int64 or string labels)."""
        dtype = np.int64 if all(isinstance(c, (int, np.integer)) for c in classes) else object
        self.op("Gather", self.const(np.asarray(classes, dtype=dtype), "classes"), index, out=out, axis=0)

    def concat_columns(self, *columns: str) -> str:
        """Columns ``[N, 1]`` side by side."""
        return self.op("Concat", *columns, axis=1)

    def post_transform(self, scores: str, kind: str) -> str:
        """The ``post_transform`` of ai.onnx.ml classifiers over the last axis of ``[N, C]`` scores.

        Raises
        ------
        LoweringError
            For ``PROBIT`` (an inverse error function, which no standard operator computes).
        """
        if kind in ("", "NONE"):
            return scores
        if kind == "LOGISTIC":
            return self.op("Sigmoid", scores)
        if kind == "SOFTMAX":
            return self.op("Softmax", scores, axis=-1)
        if kind == "SOFTMAX_ZERO":
            # exp(v - max) for |v| > 1e-7, v * exp(-max) otherwise, then normalised (ONNX Runtime's definition)
            top = self.op("ReduceMax", scores, self.const(np.array([-1], dtype=np.int64)), keepdims=1)
            shifted = self.op("Exp", self.op("Sub", scores, top))
            small = self.op("Mul", scores, self.op("Exp", self.op("Neg", top)))
            big = self.op("Greater", self.op("Abs", scores), self.const(np.float32(1e-7)))
            values = self.op("Where", big, shifted, small)
            masked = self.op("Where", big, shifted, self.const(np.float32(0.0)))
            total = self.op("ReduceSum", masked, self.const(np.array([-1], dtype=np.int64)), keepdims=1)
            return self.op("Div", values, total)
        raise LoweringError(f"post_transform {kind} has no standard-operator form (it needs an inverse erf)")
