"""Evaluation of a plain Python objective over the space (synthetic problems)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from numbers import Real

from ..observation import COMPLETE, Observation
from ..problem import ObjectiveFn
from ..space import Config


class FunctionEvaluator:
    """Calls a user objective; an exception becomes a failed observation.

    The callable takes a config and returns a loss, a ``(loss, metrics)``
    pair, or a mapping holding ``loss`` and any metrics.
    """

    def __init__(self, fn: ObjectiveFn) -> None:
        self.fn = fn

    def __call__(self, config: Config) -> Observation:
        """Evaluate one config."""
        start = time.perf_counter()
        try:
            out = self.fn(dict(config))
            loss, metrics = _split(out)
        except Exception as exc:  # a failing candidate is recorded, never fatal
            return Observation.failed(f"error: {type(exc).__name__}: {exc}"[:500], time.perf_counter() - start)
        if not math.isfinite(loss):
            return Observation.failed("error: non-finite loss", time.perf_counter() - start)
        return Observation(COMPLETE, loss, metrics, duration_s=time.perf_counter() - start)


def _split(out: object) -> tuple[float, dict[str, float]]:
    if isinstance(out, Mapping):
        metrics = {str(k): float(v) for k, v in out.items() if k != "loss"}
        return float(out["loss"]), metrics
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping):
        return float(out[0]), {str(k): float(v) for k, v in out[1].items()}
    if isinstance(out, Real):
        return float(out), {}
    raise TypeError(f"the objective returned {type(out).__name__}; expected a number, (loss, metrics) or a mapping")
