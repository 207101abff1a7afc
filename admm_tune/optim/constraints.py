"""Constraint terms of the augmented Lagrangian: normalisation, slacks, multipliers.

Each black-box constraint ``g_m <= ε_m`` is normalised to ``ĝ_m = g_m / ε_m``
(see :meth:`admm_tune.problem.Constraint.violation`), so the bound becomes
``ĝ_m <= 1``.  The terms of ``docs/architecture.md`` §2 then read::

    L_m = μ_m (ĝ_m − 1 + u_m) + ρ/2 (ĝ_m − 1 + u_m)²
    u-step:  u_m = max(1 − ĝ_m − μ_m/ρ, 0)
    dual:    μ_m ← μ_m + ρ (ĝ_m − 1 + u_m)          (stays >= 0)

DESIGN bounds the slack by ``ε_m`` (1 here).  That bound assumes ``g_m >= 0``;
a ``min`` constraint (throughput ≥ 100) normalises to ``ĝ < 0`` for values
well above the bound, and a capped slack would then penalise candidates for
being *too* feasible and drive μ negative.  The slack is therefore only
bounded below, which is the classic augmented Lagrangian
``ρ/2 max(0, ĝ − 1 + μ/ρ)²`` of an inequality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from ..settings import Constraint

MAX_VIOLATION = 10.0
"""Cap on a normalised violation (a missing or infinite metric counts as this)."""


class ConstraintTerms:
    """The constraint block of the ADMM problem.

    Parameters
    ----------
    constraints : sequence of Constraint
    """

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        self.constraints = tuple(constraints)

    def __len__(self) -> int:
        return len(self.constraints)

    @property
    def metrics(self) -> list[str]:
        """Metric names, one per constraint."""
        return [c.metric for c in self.constraints]

    def violations(self, metrics: Mapping[str, float]) -> np.ndarray:
        """Normalised violations ``ĝ − 1`` (positive when broken), capped."""
        out = np.empty(len(self.constraints))
        for i, c in enumerate(self.constraints):
            v = c.violation(metrics.get(c.metric, math.nan))
            out[i] = MAX_VIOLATION if not math.isfinite(v) else min(v, MAX_VIOLATION)
        return out

    def miss(self, metrics: Mapping[str, float]) -> float:
        """The worst normalised violation, uncapped (inf when a constrained metric is missing), 0 when every
        constraint holds: what a run journals, so that among infeasible candidates the one that missed least is
        chosen (capped, every far miss ties at :data:`MAX_VIOLATION`)."""
        worst = 0.0
        for c in self.constraints:
            v = c.violation(metrics.get(c.metric, math.nan))
            worst = max(worst, v if not math.isnan(v) else math.inf)
        return worst

    @staticmethod
    def violation(metrics_violations: np.ndarray) -> float:
        """Worst violation, 0 when every constraint holds."""
        return float(max(0.0, metrics_violations.max())) if metrics_violations.size else 0.0

    @staticmethod
    def slack(g_hat: np.ndarray, mu: np.ndarray, rho: float) -> np.ndarray:
        """The u-step: ``u = max(1 − ĝ − μ/ρ, 0)``."""
        return np.maximum(1.0 - g_hat - mu / rho, 0.0)

    def penalty(self, g_hat: np.ndarray, mu: np.ndarray, rho: float) -> np.ndarray | float:
        """``ρ/2 Σ (ĝ − 1 + u + μ/ρ)²`` at the slack the u-step would choose for ``ĝ``.

        For a fixed candidate the slack has the closed form of the u-step, so
        each candidate is scored at its own optimal slack (a joint
        minimisation over θ and u, which the u-step then confirms).  ``g_hat``
        is one candidate's vector or an ``(m, k)`` array of candidates.
        """
        g_hat = np.asarray(g_hat, dtype=float)
        if not len(self.constraints):
            return np.zeros(g_hat.shape[:-1]) if g_hat.ndim > 1 else 0.0
        u = self.slack(g_hat, mu, rho)
        total = rho / 2.0 * np.sum((g_hat - 1.0 + u + mu / rho) ** 2, axis=-1)
        return float(total) if g_hat.ndim == 1 else total

    @staticmethod
    def dual_update(mu: np.ndarray, g_hat: np.ndarray, u: np.ndarray, rho: float) -> np.ndarray:
        """``μ ← μ + ρ (ĝ − 1 + u)``."""
        return mu + rho * (g_hat - 1.0 + u)
