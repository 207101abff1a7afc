"""TensorRT, through ONNX Runtime's TensorRT execution provider.

Graphs are lowered to standard operators first
(:mod:`admm_tune.evaluate.graph`), which TensorRT's ONNX parser needs, and
checked against the parser's support matrix
(:func:`~admm_tune.evaluate.graph.tensorrt.tensorrt_unsupported`).
Available only where an NVIDIA GPU, the ``tensorrt`` package and an
``onnxruntime-gpu`` build with ``TensorrtExecutionProvider`` all exist; on
any other machine :meth:`TensorRtBackend.available` says which part is
missing.  It is never simulated.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import graph
from ..graph.strategies import STRATEGIES
from .base import BackendError, Capabilities, Knob, check_request, lowered
from .onnxruntime import OrtSession, infer, open_session

if TYPE_CHECKING:
    import onnx

PROVIDER = "TensorrtExecutionProvider"


def gpu_names() -> list[str]:
    """NVIDIA GPUs that ``nvidia-smi`` lists (empty without a driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


class TensorRtBackend:
    """TensorRT engines built by ONNX Runtime's TensorRT execution provider."""

    name = "tensorrt"

    def available(self) -> tuple[bool, str]:
        """Whether a GPU, the tensorrt package and the TensorRT provider all exist."""
        gpus = gpu_names()
        if not gpus:
            return False, "no NVIDIA GPU (nvidia-smi is missing or lists none)"
        try:
            import tensorrt
        except ImportError:
            return False, f"GPU {gpus[0]} found, but the tensorrt package is not installed"
        import onnxruntime as ort

        if PROVIDER not in ort.get_available_providers():
            return False, (f"GPU {gpus[0]} and tensorrt {tensorrt.__version__} found, but this onnxruntime build "
                           f"has no {PROVIDER} (install onnxruntime-gpu)")
        return True, f"tensorrt {tensorrt.__version__} on {gpus[0]}"

    def capabilities(self) -> Capabilities:
        """fp32 and fp16 engines; the workspace size is the knob."""
        knobs = {"workspace_mb": Knob("int", 16, None, doc="trt_max_workspace_size in MiB"),
                 "tree_lowering": Knob("categorical", choices=STRATEGIES, doc="tree strategy of the lowered graph")}
        return Capabilities(("cuda",), ("fp32", "fp16"), knobs, standard_ops_only=True)

    def prepare(self, model: onnx.ModelProto, knobs: Mapping[str, Any]) -> onnx.ModelProto:
        """The graph this backend compiles: lowered to standard operators (TensorRT's parser needs them),
        ``Reciprocal`` as ``Div`` (:func:`~admm_tune.evaluate.graph.tensorrt.for_tensorrt`)."""
        return graph.for_tensorrt(lowered(model, knobs.get("tree_lowering", "gemm")))

    def settings(self, knobs: Mapping[str, Any], precision: str = "fp32") -> dict[str, Any]:
        """An ONNX Runtime session on the TensorRT provider, as data (see :func:`.onnxruntime.open_session`)."""
        options = {"trt_fp16_enable": precision == "fp16",
                   "trt_max_workspace_size": int(knobs.get("workspace_mb", 256)) << 20}
        return {"options": {}, "entries": {}, "providers": [[PROVIDER, options], "CUDAExecutionProvider"]}

    def serving_functions(self) -> tuple[Any, Any]:
        """ONNX Runtime's :func:`~.onnxruntime.open_session` and :func:`~.onnxruntime.infer` (a session on the
        TensorRT provider)."""
        return open_session, infer

    def compile(self, model: onnx.ModelProto, knobs: Mapping[str, Any], precision: str = "fp32") -> OrtSession:
        """Build a TensorRT engine for the graph (ONNX Runtime falls back to CUDA for unsupported nodes)."""
        ok, reason = self.available()
        if not ok:
            raise BackendError(f"tensorrt is unavailable: {reason}")
        check_request(self, knobs, precision)
        model = self.prepare(model, knobs)
        unsupported = graph.tensorrt_unsupported(model)
        if unsupported:
            raise BackendError(f"tensorrt's ONNX parser does not support {', '.join(unsupported)}")
        data = model.SerializeToString()
        try:
            session = open_session(data, self.settings(knobs, precision))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"tensorrt: {type(exc).__name__}: {exc}".splitlines()[0][:400]) from None
        return OrtSession(session, len(data))
