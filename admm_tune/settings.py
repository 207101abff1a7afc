"""The vocabulary the problem and the optimiser share: constraints, budgets and the optimiser's settings.

A leaf module (it imports nothing of admm_tune), so that :mod:`admm_tune.optim`
depends on no evaluator, backend or machine-learning library; the problem
layer (:mod:`admm_tune.problem`) reads these from files and hands them over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

UNITS = (("_ms", "ms"), ("_kb", "kB"), ("_rps", "rows/s"), ("_mb", "MiB"), ("_s", "s"))
"""Metric names end in their unit (``latency_p95_ms``, ``model_size_kb``, ``fit_time_s``): suffix → unit."""


def unit(metric: str) -> str:
    """`` ms``, `` kB``, `` rows/s``... for a metric named with its unit's suffix (:data:`UNITS`), else nothing."""
    return next((f" {name}" for end, name in UNITS if metric.endswith(end)), "")


TIE_BREAK = "latency_p95_ms"
"""The metric that orders evaluations of equal loss (deployments of one pipeline): the fastest first."""


def best_key(loss: float, violation: float, fidelity: float = 1.0, tie_break: float | None = None
             ) -> tuple[float, bool, float, float, float]:
    """Sort key of a run's one "best" rule, lowest first: the optimiser's incumbent, the progress line's leader
    and the result's choice all take the evaluation with the lowest key.

    Evaluations at the highest fidelity come first (a loss on fewer folds or rows is not comparable with one in
    full); then the feasible ones (``violation`` 0) by ``loss`` and, among equal losses, by ``tie_break`` (the
    evaluation's :data:`TIE_BREAK`; missing: last); then the others by violation, then loss.
    """
    try:
        tie = float(tie_break)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # None, or a missing value of pandas (pd.NA)
        tie = math.nan
    tie = math.inf if math.isnan(tie) else tie
    return -round(min(fidelity, 1.0), 9), violation > 0, float(violation), float(loss), tie


THETA_SOLVERS = ("gp", "tpe", "random")
"""Solvers of the continuous sub-problem (see :mod:`admm_tune.optim.bayes`)."""


@dataclass(frozen=True)
class Constraint:
    """A black-box constraint ``metric <= bound`` (``max``) or ``>= bound`` (``min``).

    Values are normalised so that constraints in ms and kB are comparable:
    :meth:`violation` is ``(value - bound) / scale`` for ``max`` (and the
    mirror for ``min``), with ``scale = |bound|`` (1 when the bound is 0);
    a candidate satisfies the constraint when it is ``<= 0``.
    """

    metric: str
    bound: float
    sense: str = "max"

    @property
    def scale(self) -> float:
        """Unit of the normalised violation."""
        return abs(self.bound) or 1.0

    def violation(self, value: float) -> float:
        """Normalised violation (positive when the constraint is broken)."""
        if value is None or not math.isfinite(value):
            return math.inf
        signed = value - self.bound if self.sense == "max" else self.bound - value
        return signed / self.scale

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.sense == 'max' else '>='} {self.bound:g}{unit(self.metric)}"

    def broken_by(self, value: float) -> str:
        """``value`` against the bound it breaks, with units: ``latency_p95_ms 1.276 ms > 1 ms``."""
        sign = ">" if self.sense == "max" else "<"
        return f"{self.metric} {value:.4g}{unit(self.metric)} {sign} {self.bound:g}{unit(self.metric)}"


@dataclass(frozen=True)
class Budget:
    """When a run stops: evaluations, seconds, or a stall of ``patience`` iterations."""

    evaluations: int | None = None
    seconds: float | None = None
    patience: int | None = None

    def __str__(self) -> str:
        parts = []
        if self.evaluations is not None:
            parts.append(f"{self.evaluations} evaluations")
        if self.seconds is not None:
            parts.append(f"{self.seconds:g} s")
        return " / ".join(parts) or "unbounded"


@dataclass(frozen=True)
class OptimizerSettings:
    """Knobs of the ADMM optimiser (see ``docs/problem-format.md``).

    Parameters
    ----------
    theta_solver : {"gp", "tpe", "random"}
        Solver of the continuous sub-problem.
    rho, rho_growth, rho_max : float
        Initial augmented-Lagrangian penalty, its growth factor (applied when
        the constraint violation did not halve in an iteration), cap.
    inner_budget, inner_growth, inner_max : int
        Evaluations of the first θ-step, growth per iteration, cap (AdADMM).
    z_pulls : int
        Bandit pulls (evaluations) of each z-step.
    initial_pulls : int
        Distinct bandit draws evaluated at their defaults before the first
        iteration (the best one becomes z⁰).
    initial_share : float
        Largest share of an evaluation budget those draws may take, in (0, 1].
    warm_start : bool
        An unconstrained ML problem without a deployment starts from the
        portfolio of pipelines good across many data sets
        (``search_spaces/portfolio.json``, see :mod:`admm_tune.portfolio`)
        instead of bandit draws at their defaults.
    shared_algorithms : int
        In each module, this many algorithms (the best) share the θ-steps by
        rank, about 1/2, 1/4, ... of them (``docs/optimiser.md``, "Sharing
        the θ-steps"); 1: every θ-step goes where the best merit is.
    early_stop : bool
        An evaluator that scores in steps (cross-validation folds) may stop a
        candidate after a step when it is clearly worse than the best fully
        evaluated one so far (under constraints: the best feasible one, and
        the stopped candidate is not deployed; see ``docs/optimiser.md``,
        "Cheap evaluations first").
    """

    _parameter_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "theta_solver": {"type": str, "choices": THETA_SOLVERS},
        **{k: {"type": float, "minimum": 0, "exclusive": True} for k in ("rho", "rho_max")},
        "rho_growth": {"type": float, "minimum": 1},
        **{k: {"type": int, "minimum": 1} for k in ("inner_budget", "inner_max", "z_pulls", "initial_pulls",
                                                     "shared_algorithms")},
        "inner_growth": {"type": int, "minimum": 0},
        "initial_share": {"type": float, "minimum": 0, "exclusive": True, "maximum": 1,
                          "why": " (a share of the evaluation budget)"},
        **{k: {"type": bool} for k in ("warm_start", "early_stop")},
    }
    """What each field accepts (read by the problem loader); ``inner_max >= inner_budget`` and ``rho_max >= rho``
    are checked there."""

    theta_solver: str = "gp"
    rho: float = 1.0
    rho_growth: float = 2.0
    rho_max: float = 1e4
    inner_budget: int = 2
    inner_growth: int = 1
    inner_max: int = 5
    z_pulls: int = 2
    initial_pulls: int = 8
    initial_share: float = 0.25
    warm_start: bool = True
    shared_algorithms: int = 4
    early_stop: bool = True
