"""The outcome of evaluating one candidate: what the evaluator hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPLETE = "complete"
FAILED = "failed"


@dataclass
class Observation:
    """What one evaluation measured.

    Parameters
    ----------
    status : {"complete", "failed"}
        ``failed`` when the candidate raised, timed out or could not be built.
    loss : float or None
        The objective to minimise; ``None`` when failed.
    metrics : dict
        Every measured figure (``fit_time_s``, ``cv_score``, later latencies),
        usable as constraints.
    reason : str
        Why a failed candidate failed (``error: ValueError: ...``).
    duration_s : float
        Wall time the evaluation took.
    attrs : dict
        Extra facts for the journal (``cache_hit``...); the optimiser reads
        ``structural``, ``fidelity``, ``step_losses`` and ``first_result_s``
        (seconds to the first, lowest-fidelity result of an evaluation in
        steps).
    """

    status: str
    loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    duration_s: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def fidelity(self) -> float:
        """Share of the full evaluation done (``attrs["fidelity"]``): 1, or less for one stopped early."""
        return float(self.attrs.get("fidelity", 1.0))

    @property
    def step_losses(self) -> list[float]:
        """The loss of each step of an evaluator that scores in steps (CV folds); empty otherwise."""
        return [float(v) for v in self.attrs.get("step_losses", [])]

    @property
    def ok(self) -> bool:
        """Whether the evaluation completed."""
        return self.status == COMPLETE

    def replayed(self) -> Observation:
        """A copy for a repeated request of a cached evaluation (no time spent, ``cache_hit``)."""
        return Observation(self.status, self.loss, dict(self.metrics), self.reason, 0.0,
                           {**self.attrs, "cache_hit": True})

    @classmethod
    def failed(cls, reason: str, duration_s: float = 0.0, **attrs: Any) -> Observation:
        """A failed observation with its reason."""
        return cls(FAILED, None, {}, reason, duration_s, dict(attrs))
