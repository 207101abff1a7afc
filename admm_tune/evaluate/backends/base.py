"""The protocol every inference backend follows.

A :class:`Backend` says whether it can run here (:meth:`Backend.available`,
with the reason when it cannot), what it offers (:class:`Capabilities`:
devices, precisions, which knobs it takes and whether it needs a graph of
standard ONNX operators) and compiles an ONNX model with deployment knobs
into a :class:`Session` whose :meth:`Session.run` maps input arrays to the
graph's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import onnx

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
"""Every precision a deployment space may name."""

__all__ = ["PRECISIONS", "Backend", "BackendError", "Capabilities", "Knob", "Session", "check_request", "lowered"]


@dataclass(frozen=True)
class Knob:
    """A deployment knob a backend accepts: its kind and admissible values.

    ``kind`` is ``int`` (with ``low``; ``high`` may be ``None`` for
    unbounded) or ``categorical`` (with ``choices``).
    """

    kind: str
    low: int | None = None
    high: int | None = None
    choices: tuple[Any, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers on this machine."""

    devices: tuple[str, ...]
    precisions: tuple[str, ...]
    knobs: Mapping[str, Knob] = field(default_factory=dict)
    standard_ops_only: bool = False


@runtime_checkable
class Session(Protocol):
    """A compiled model, ready to run."""

    size_bytes: int
    """Size of the graph the session runs (after precision transforms)."""
    native: Any
    """What the backend's ``open_session`` returned: ``infer(native, feeds)`` is the call ``load_model.py`` makes."""

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs of the graph for the input arrays ``feeds``, in graph order."""


@runtime_checkable
class Backend(Protocol):
    """An inference engine that can run exported pipelines."""

    name: str

    def available(self) -> tuple[bool, str]:
        """Whether the backend can run here, and why not when it cannot."""

    def capabilities(self) -> Capabilities:
        """Devices, precisions and knobs offered here."""

    def prepare(self, model: onnx.ModelProto, knobs: Mapping[str, Any]) -> onnx.ModelProto:
        """The graph :meth:`compile` really compiles for ``knobs`` (lowered where the backend needs it)."""

    def settings(self, knobs: Mapping[str, Any], precision: str = "fp32") -> dict[str, Any]:
        """The session's settings for ``knobs`` and ``precision`` as JSON-able data (:meth:`serving_functions`)."""

    def serving_functions(self) -> tuple[Callable[..., Any], Callable[[Any, Mapping[str, np.ndarray]], list[Any]]]:
        """``(open_session, infer)``: module-level functions that need nothing but the backend's own package.

        ``open_session(model_path_or_bytes, settings)`` applies :meth:`settings`
        and ``infer(session, feeds)`` runs the result; ``load_model.py`` holds
        both functions' source, and the search times its candidates through
        ``infer`` on the session's :attr:`Session.native`.
        """

    def compile(self, model: onnx.ModelProto, knobs: Mapping[str, Any], precision: str = "fp32") -> Session:
        """A session for ``model`` with the given knobs and precision.

        Precisions that are graph transforms (int8) are applied by the caller
        (:func:`~admm_tune.evaluate.export.for_precision`) before compiling;
        the others are runtime settings the backend applies.
        """


class BackendError(RuntimeError):
    """A backend could not compile or run a model."""


def check_request(backend: Backend, knobs: Mapping[str, Any], precision: str) -> None:
    """Raise :class:`BackendError` naming the first knob or the precision the backend does not take here."""
    caps = backend.capabilities()
    for name, value in knobs.items():
        knob = caps.knobs.get(name)
        if knob is None:
            raise BackendError(f"{backend.name} has no knob {name!r}; known: {sorted(caps.knobs)}")
        if knob.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise BackendError(f"{backend.name} knob {name!r} expects an integer, got {value!r}")
            if (knob.low is not None and value < knob.low) or (knob.high is not None and value > knob.high):
                raise BackendError(f"{backend.name} knob {name!r} must be in [{knob.low}, {knob.high}], got {value}")
        elif value not in knob.choices:
            raise BackendError(f"{backend.name} knob {name!r} must be one of {list(knob.choices)}, got {value!r}")
    if precision not in caps.precisions:
        raise BackendError(f"{backend.name} does not run {precision!r} here (runs {list(caps.precisions)})")


def lowered(model: onnx.ModelProto, tree_lowering: str, string_codes: bool = False) -> onnx.ModelProto:
    """The graph to compile for a ``tree_lowering`` knob (:func:`~admm_tune.evaluate.graph.prepared`).

    Raises
    ------
    BackendError
        When an operator of the graph has no standard-operator form.
    """
    from ..graph import LoweringError, prepared

    try:
        return prepared(model, tree_lowering, string_codes)
    except LoweringError as exc:
        raise BackendError(f"lowering ({tree_lowering}): {exc}") from None
