"""Solvers of the continuous sub-problem (the θ-step), one per module.

``gp`` (default) is GP-EI, ``tpe`` Optuna's TPE, ``random`` uniform search.
"""

from __future__ import annotations

from .base import ThetaSolver, ThetaTask
from .gp import GPSolver
from .random import RandomSolver
from .tpe import TPESolver

SOLVERS: dict[str, type[ThetaSolver]] = {cls.name: cls for cls in (GPSolver, TPESolver, RandomSolver)}


def make_solver(name: str) -> ThetaSolver:
    """Instantiate the solver called ``name`` (``gp``, ``tpe``, ``random``)."""
    return SOLVERS[name]()


__all__ = ["SOLVERS", "GPSolver", "RandomSolver", "TPESolver", "ThetaSolver", "ThetaTask", "make_solver"]
