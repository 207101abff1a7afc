"""ONNX Runtime: CPU execution provider (and CUDA where ``onnxruntime-gpu`` and a GPU exist).

Knobs: ``graph_optimization_level``, ``intra_op_num_threads``,
``inter_op_num_threads``, ``execution_mode``, ``allow_spinning`` and
``tree_lowering`` (``native`` keeps the ai.onnx.ml operators for ONNX
Runtime's own kernels; ``gemm`` / ``traversal`` / ``perfect`` compile the
graph lowered to standard operators, :mod:`admm_tune.evaluate.graph`).  On
small graphs measured here threads matter most, ``parallel`` execution never
helped and the graph levels were within noise; the search learns that
rather than having it hard-coded.  Precisions: ``fp32`` and dynamic ``int8``
(the caller hands over the graph quantised by
:func:`~admm_tune.evaluate.export.quantize_int8`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

from ...machine import cores
from ..graph.strategies import NATIVE, TREE_LOWERINGS
from .base import BackendError, Capabilities, Knob, check_request, lowered

LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}
MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OrtSession:
    """An ``onnxruntime.InferenceSession`` behind the :class:`~.base.Session` protocol.

    Numeric inputs go through one reused I/O binding (inputs bound in
    place, rebound only when another array comes; outputs allocated by ONNX
    Runtime), faster than ``run`` per call ("Calling paths" in
    ``benchmarks/results/lowering.md``).  Graphs with string inputs
    or outputs use ``run`` (copying string outputs out of a binding crashed
    ONNX Runtime 1.32).
    """

    def __init__(self, session: Any, size_bytes: int) -> None:
        self.session = self.native = session
        self.size_bytes = size_bytes
        self.output_names = [o.name for o in session.get_outputs()]
        self.numeric = all("string" not in v.type for v in [*session.get_inputs(), *session.get_outputs()])
        self.binding = session.io_binding() if self.numeric else None
        self.bound: dict[str, np.ndarray] = {}
        for name in self.output_names if self.binding is not None else ():
            self.binding.bind_output(name)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph."""
        if self.binding is None:
            return self.session.run(self.output_names, dict(feeds))
        for name, value in feeds.items():
            if self.bound.get(name) is not value:  # the binding reads the bound array's memory at each run
                array = np.ascontiguousarray(value)
                if name in self.bound and self.bound[name].shape != array.shape:  # outputs were sized for it
                    self.binding.clear_binding_outputs()
                    for out in self.output_names:
                        self.binding.bind_output(out)
                self.binding.bind_cpu_input(name, array)
                self.bound[name] = array  # kept alive while bound; a copy is never the caller's array: rebound
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()


class OnnxRuntimeBackend:
    """ONNX Runtime on one device (``cpu`` or ``cuda``).

    Parameters
    ----------
    device : {"cpu", "cuda"}
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.name = "onnxruntime" if device == "cpu" else f"onnxruntime_{device}"

    def available(self) -> tuple[bool, str]:
        """Whether onnxruntime imports and offers this device's execution provider."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return False, f"onnxruntime is not installed ({exc})"
        provider = PROVIDERS[self.device]
        if provider not in ort.get_available_providers():
            return False, (f"{provider} is not in this onnxruntime build's providers "
                           f"{ort.get_available_providers()} (needs onnxruntime-gpu and an NVIDIA GPU)")
        return True, f"onnxruntime {ort.__version__}, {provider}"

    def capabilities(self) -> Capabilities:
        """Knobs of a CPU session; fp32 and int8."""
        n = cores()
        knobs = {
            "graph_optimization_level": Knob("categorical", choices=tuple(LEVELS), doc="graph rewrites"),
            "intra_op_num_threads": Knob("int", 1, n, doc="threads inside one operator"),
            "inter_op_num_threads": Knob("int", 1, n, doc="threads across operators (parallel mode)"),
            "execution_mode": Knob("categorical", choices=tuple(MODES), doc="operator scheduling"),
            "allow_spinning": Knob("categorical", choices=(True, False), doc="busy-wait of idle threads"),
            "tree_lowering": Knob("categorical", choices=TREE_LOWERINGS, doc="ai.onnx.ml kernels or a lowered graph"),
        }
        return Capabilities((self.device,), ("fp32", "int8"), knobs)

    def prepare(self, model: onnx.ModelProto, knobs: Mapping[str, Any]) -> onnx.ModelProto:
        """The graph this backend compiles for ``knobs`` (lowered unless ``tree_lowering`` is ``native``)."""
        return lowered(model, knobs.get("tree_lowering", NATIVE))

    def settings(self, knobs: Mapping[str, Any], precision: str = "fp32") -> dict[str, Any]:
        """The session's settings as JSON-able data, which :func:`open_session` applies."""
        options: dict[str, Any] = {"log_severity_level": 3,
                                   "intra_op_num_threads": int(knobs.get("intra_op_num_threads", 1)),
                                   "inter_op_num_threads": int(knobs.get("inter_op_num_threads", 1))}
        if "graph_optimization_level" in knobs:
            options["graph_optimization_level"] = LEVELS[knobs["graph_optimization_level"]]
        if "execution_mode" in knobs:
            options["execution_mode"] = MODES[knobs["execution_mode"]]
        spin = {} if "allow_spinning" not in knobs else {
            f"session.{pool}_op.allow_spinning": "1" if knobs["allow_spinning"] else "0" for pool in ("intra", "inter")}
        return {"options": options, "entries": spin, "providers": [PROVIDERS[self.device]]}

    def serving_functions(self) -> tuple[Any, Any]:
        """:func:`open_session` and :func:`infer` (see :meth:`~.base.Backend.serving_functions`)."""
        return open_session, infer

    def compile(self, model: onnx.ModelProto, knobs: Mapping[str, Any], precision: str = "fp32") -> OrtSession:
        """An inference session with the knobs applied.

        Raises
        ------
        BackendError
            Where this device's execution provider is not in this onnxruntime build (ONNX Runtime itself would
            fall back to the CPU with a warning, and a CPU timing would pass for the device's), or for a knob or
            precision the backend does not take, or when ONNX Runtime cannot load the graph.
        """
        ok, reason = self.available()
        if not ok:
            raise BackendError(f"{self.name} is unavailable: {reason}")
        check_request(self, knobs, precision)
        data = self.prepare(model, knobs).SerializeToString()
        try:
            session = open_session(data, self.settings(knobs, precision))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime: {type(exc).__name__}: {exc}".splitlines()[0][:400]) from None
        return OrtSession(session, len(data))


def open_session(model: bytes | str, settings: Mapping[str, Any]) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (bytes or a path) with ``settings`` (see ``settings()``).

    It needs nothing but onnxruntime: the ``load_model.py`` written beside
    an exported graph holds this function's source.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    enums = {"graph_optimization_level": ort.GraphOptimizationLevel, "execution_mode": ort.ExecutionMode}
    for name, value in settings["options"].items():
        setattr(options, name, getattr(enums[name], value) if name in enums else value)
    for key, value in settings["entries"].items():
        options.add_session_config_entry(key, value)
    providers = [tuple(p) if isinstance(p, list) else p for p in settings["providers"]]  # (name, options) pairs
    return ort.InferenceSession(model, options, providers=providers)


def infer(session: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of ``session`` for ``feeds`` (the loader's call; :class:`OrtSession` binds I/O instead)."""
    return session.run(None, dict(feeds))
