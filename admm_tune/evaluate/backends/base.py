"""The protocol every inference backend follows.

A :class:`Backend` says whether it can run here (:meth:`Backend.available`,
with the reason when it cannot), what it offers (:class:`Capabilities`:
devices, precisions, which knobs it takes and whether it needs a graph of
standard ONNX operators) and compiles an ONNX model with deployment knobs
into a :class:`Session` whose :meth:`Session.run` maps input arrays to the
graph's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import onnx

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
"""Every precision a deployment space may name."""

__all__ = ["PRECISIONS", "Backend", "BackendError", "Capabilities", "Knob", "Session", "check_knobs"]


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

    def compile(self, model: onnx.ModelProto, knobs: Mapping[str, Any], precision: str = "fp32") -> Session:
        """A session for ``model`` with the given knobs and precision."""


class BackendError(RuntimeError):
    """A backend could not compile or run a model."""


def check_knobs(backend: Backend, knobs: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first knob the backend does not accept."""
    spec = backend.capabilities().knobs
    for name, value in knobs.items():
        knob = spec.get(name)
        if knob is None:
            raise ValueError(f"{backend.name} has no knob {name!r}; known: {sorted(spec)}")
        if knob.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{backend.name} knob {name!r} expects an integer, got {value!r}")
            if (knob.low is not None and value < knob.low) or (knob.high is not None and value > knob.high):
                raise ValueError(f"{backend.name} knob {name!r} must be in [{knob.low}, {knob.high}], got {value}")
        elif value not in knob.choices:
            raise ValueError(f"{backend.name} knob {name!r} must be one of {list(knob.choices)}, got {value!r}")
