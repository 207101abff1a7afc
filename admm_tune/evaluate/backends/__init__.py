"""Inference backends behind one protocol (:class:`~.base.Backend`).

:data:`BACKENDS` holds every backend admm_tune knows; :func:`get_backend`
returns one by name and :func:`list_backends` tells which run on this machine and
why the others do not.
"""

from __future__ import annotations

import pandas as pd

from .base import PRECISIONS, Backend, BackendError, Capabilities, Knob, Session
from .onnxruntime import OnnxRuntimeBackend
from .openvino import OpenVinoBackend
from .tensorrt import TensorRtBackend

BACKENDS: dict[str, Backend] = {b.name: b for b in (OnnxRuntimeBackend("cpu"), OnnxRuntimeBackend("cuda"),
                                                   OpenVinoBackend(), TensorRtBackend())}
"""Every backend, by name."""


def get_backend(name: str) -> Backend:
    """The backend called ``name``.

    Raises
    ------
    KeyError
        With the known names, when there is none.
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None


class BackendTable(pd.DataFrame):
    """The table :func:`list_backends` returns: a DataFrame that prints its reasons whole (pandas cuts cells at 50
    characters by default)."""

    @property
    def _constructor(self) -> type[BackendTable]:
        return BackendTable

    def __repr__(self) -> str:
        return self.to_string(max_colwidth=None)


def list_backends() -> pd.DataFrame:
    """One row per backend: whether it runs here, why (not), devices and precisions; printed whole."""
    rows = []
    for name, backend in BACKENDS.items():
        ok, reason = backend.available()
        caps = backend.capabilities() if ok else None
        rows.append({"backend": name, "available": ok, "reason": reason,
                     "devices": ",".join(caps.devices) if caps else "",
                     "precisions": ",".join(caps.precisions) if caps else "",
                     "standard_ops_only": bool(caps.standard_ops_only) if caps else None})
    return BackendTable(rows)


__all__ = ["BACKENDS", "PRECISIONS", "Backend", "BackendError", "Capabilities", "Knob", "Session", "get_backend",
           "list_backends"]
