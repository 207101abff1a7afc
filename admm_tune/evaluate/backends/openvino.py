"""OpenVINO on the CPU device.

Knobs: ``performance_hint`` (LATENCY/THROUGHPUT), ``num_streams``,
``inference_num_threads`` and ``tree_lowering`` (the tree strategy of the
lowered graph: ``gemm``, ``traversal`` or ``perfect``).  Precisions: ``fp32`` always, and ``bf16`` /
``fp16`` where the CPU plugin reports them (``OPTIMIZATION_CAPABILITIES``),
through ``INFERENCE_PRECISION_HINT``.  The plugin defaults to bf16 on CPUs
that have it, so an fp32 candidate sets ``f32`` explicitly.

OpenVINO reads ONNX but not the ``ai.onnx.ml`` operators
(:attr:`Capabilities.standard_ops_only`), nor string tensors in
comparisons: :meth:`OpenVinoBackend.compile` compiles the graph lowered to
standard operators (:mod:`admm_tune.evaluate.graph`), with string inputs as
integer codes that the session computes from the strings it is given.  It
returned wrong results at batch >= 2 for some graphs that were right at
batch 1; the evaluator therefore verifies agreement at the batch size it
times.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

from ...machine import cores
from .. import graph
from ..graph.strategies import STRATEGIES
from .base import BackendError, Capabilities, Knob, check_request, lowered

HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
DEFAULT_TREES = "gemm"
"""Tree strategy when the knob is not given."""


@lru_cache(maxsize=1)
def _core() -> Any:
    import openvino as ov

    return ov.Core()


class OvSession:
    """A compiled OpenVINO model behind the :class:`~.base.Session` protocol.

    Called the fastest documented way: one infer request, reused; each
    input bound as a tensor sharing the caller's array (rebound only when
    another array comes), then a synchronous ``infer()`` without arguments:
    the fastest of the calls ``benchmarks/results/lowering.md`` times (the
    "Calling paths" table).
    Outputs are copied out of the request's buffers, which the next call
    overwrites.
    """

    def __init__(self, compiled: Any, size_bytes: int, codes: dict[str, dict[str, int]] | None = None) -> None:
        self.compiled = self.native = compiled
        self.request = compiled.create_infer_request()
        self.size_bytes = size_bytes
        self.codes = codes or {}
        self.n_outputs = len(compiled.outputs)
        self.bound: dict[str, np.ndarray] = {}

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one synchronous inference (string inputs turned into the graph's integer codes)."""
        import openvino as ov

        for name, value in feeds.items():
            if self.bound.get(name) is value:
                continue  # bound already: the tensor shares this array's memory, whatever it holds now
            array = graph.encode_strings(value, self.codes[name]) if name in self.codes else np.ascontiguousarray(value)
            if not array.flags.writeable:  # OpenVINO shares only writeable memory
                array = array.copy()
            self.request.set_tensor(name, ov.Tensor(array, shared_memory=True))
            self.bound[name] = array  # kept alive while bound; a copy is never the caller's array: rebound
        self.request.infer()
        return [self._output(i) for i in range(self.n_outputs)]

    def _output(self, i: int) -> np.ndarray:
        """Output ``i`` copied out of the request (string labels as ``str`` objects, like ONNX Runtime's)."""
        tensor = self.request.get_output_tensor(i)
        if tensor.element_type.get_type_name() == "string":
            return np.asarray(tensor.str_data, dtype=object).reshape(tuple(tensor.shape))
        return tensor.data.copy()


class OpenVinoBackend:
    """OpenVINO's CPU plugin."""

    name = "openvino"

    def available(self) -> tuple[bool, str]:
        """Whether openvino imports and has a CPU device."""
        try:
            import openvino as ov
        except ImportError as exc:
            return False, f"openvino is not installed ({exc})"
        if "CPU" not in _core().available_devices:
            return False, f"OpenVINO sees no CPU device (devices: {_core().available_devices})"
        cpu = _core().get_property("CPU", "FULL_DEVICE_NAME")
        return True, f"openvino {ov.get_version().split('-')[0]}, CPU: {cpu}"

    def capabilities(self) -> Capabilities:
        """Knobs of the CPU plugin; fp32 plus bf16/fp16 where the CPU has them."""
        caps = set(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")) if self.available()[0] else set()
        precisions = ("fp32",) + tuple(p for p in ("bf16", "fp16") if p.upper() in caps)
        n = cores()
        knobs = {
            "performance_hint": Knob("categorical", choices=("LATENCY", "THROUGHPUT"), doc="PERFORMANCE_HINT"),
            "num_streams": Knob("int", 1, n, doc="NUM_STREAMS: parallel inference streams"),
            "inference_num_threads": Knob("int", 1, n, doc="INFERENCE_NUM_THREADS"),
            "tree_lowering": Knob("categorical", choices=STRATEGIES, doc="tree strategy of the lowered graph"),
        }
        return Capabilities(("cpu",), precisions, knobs, standard_ops_only=True)

    def prepare(self, model: onnx.ModelProto, knobs: Mapping[str, Any]) -> onnx.ModelProto:
        """The graph this backend compiles: lowered to standard operators, string inputs as integer codes."""
        return lowered(model, knobs.get("tree_lowering", DEFAULT_TREES), string_codes=True)

    def settings(self, knobs: Mapping[str, Any], precision: str = "fp32") -> dict[str, Any]:
        """The compiled model's device and configuration as JSON-able data, which :func:`open_session` applies."""
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": HINTS[precision]}
        if "performance_hint" in knobs:
            config["PERFORMANCE_HINT"] = str(knobs["performance_hint"])
        if "num_streams" in knobs:
            config["NUM_STREAMS"] = str(int(knobs["num_streams"]))
        if "inference_num_threads" in knobs:
            config["INFERENCE_NUM_THREADS"] = int(knobs["inference_num_threads"])
        return {"device": "CPU", "config": config}

    def serving_functions(self) -> tuple[Any, Any]:
        """:func:`open_session` and :func:`infer` (see :meth:`~.base.Backend.serving_functions`)."""
        return open_session, infer

    def compile(self, model: onnx.ModelProto, knobs: Mapping[str, Any], precision: str = "fp32") -> OvSession:
        """Lower the ONNX graph to standard operators, read it and compile it for the CPU with the knobs."""
        check_request(self, knobs, precision)
        model = self.prepare(model, knobs)
        data = model.SerializeToString()
        try:
            compiled = open_session(data, self.settings(knobs, precision), _core())
        except Exception as exc:  # OpenVINO raises RuntimeError/Exception with multi-line text
            raise BackendError("openvino: " + " ".join(str(exc).split())[:400]) from None
        return OvSession(compiled, len(data), graph.string_codes(model))


def open_session(model: bytes | str, settings: Mapping[str, Any], core: Any = None) -> Any:
    """An OpenVINO compiled model of ``model`` (bytes or a path) with ``settings`` (see ``settings()``).

    It needs nothing but openvino: the ``load_model.py`` written beside an
    exported graph holds this function's source.
    """
    import openvino as ov

    core = core or ov.Core()
    read = core.read_model(model, b"") if isinstance(model, bytes) else core.read_model(model)
    return core.compile_model(read, settings["device"], settings["config"])


def infer(session: Any, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Every output of the compiled model for ``feeds`` (the loader's call; :class:`OvSession` reuses a request)."""
    return [np.asarray(v) for v in session(dict(feeds)).to_tuple()]
