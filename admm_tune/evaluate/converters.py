"""skl2onnx converters of our own, registered when :mod:`.export` is imported.

``LinearDiscriminantAnalysis``: skl2onnx 1.20's converter gives binary
probabilities up to 0.15 away from scikit-learn's.  scikit-learn computes
``d = X @ coef_.T + intercept_`` and then ``[1 − σ(d), σ(d)]`` for two
classes or ``softmax(d)`` for more; this converter writes exactly that in
standard operators (MatMul, Add, Sigmoid/Softmax, ArgMax, Gather), so the
graph also runs on OpenVINO.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skl2onnx import update_registered_converter
from skl2onnx.algebra.onnx_ops import (
    OnnxAdd,
    OnnxArgMax,
    OnnxConcat,
    OnnxGather,
    OnnxIdentity,
    OnnxMatMul,
    OnnxSigmoid,
    OnnxSoftmax,
    OnnxSub,
)
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis


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


def register() -> None:
    """Register the converters above with skl2onnx (idempotent)."""
    update_registered_converter(LinearDiscriminantAnalysis, "SklearnLinearDiscriminantAnalysis",
                                calculate_linear_classifier_output_shapes, convert_lda,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
