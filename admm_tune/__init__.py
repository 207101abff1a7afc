"""admm_tune: configure an ML pipeline and its deployment together, under constraints, by ADMM.

Public API: :func:`fit`, :func:`resume`, :class:`Problem`, :func:`load_problem`,
:class:`Result`, :class:`SearchSpace`, :class:`ProblemError`,
:func:`list_backends` (which inference backends run on this machine), :func:`deploy_problem`,
:class:`AutoPipelineClassifier` and :class:`AutoPipelineRegressor`
(scikit-learn estimators), and what a :class:`Problem` is built from
(:class:`Dataset`, :class:`Deployment`, :class:`Limits`, :class:`Budget`,
:class:`Constraint`, :class:`Objective`, :class:`OptimizerSettings`).

Names are imported on first use (PEP 562), so ``import admm_tune`` loads no
machine-learning library; ``admm_tune.optim`` imports none of scikit-learn,
ONNX or a backend (``tests/test_layers.py`` checks the whole import closure).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "AutoPipelineClassifier": "estimator", "AutoPipelineRegressor": "estimator",
    "Best": "result", "Result": "result",
    "Budget": "settings", "Constraint": "settings", "OptimizerSettings": "settings",
    "Categorical": "space", "Float": "space", "Int": "space", "SearchSpace": "space",
    "Dataset": "data", "Deployment": "deployment",
    "InfeasibleWarning": "errors", "ProblemError": "errors", "RunError": "errors",
    "Limits": "problem", "Objective": "problem", "Problem": "problem", "load_problem": "problem",
    "list_backends": "evaluate.backends", "deploy_problem": "deploy_problem", "fit": "runner",
    "resume": "runner",
}
"""Public name → the module (under admm_tune) that defines it."""

__all__ = ["AutoPipelineClassifier", "AutoPipelineRegressor", "Best", "Budget", "Categorical", "Constraint",
           "Dataset", "Deployment", "Float", "InfeasibleWarning", "Int", "Limits", "Objective", "OptimizerSettings",
           "Problem", "ProblemError", "Result", "RunError", "SearchSpace", "deploy_problem", "fit",
           "list_backends", "load_problem", "resume"]

if TYPE_CHECKING:
    from .data import Dataset
    from .deploy_problem import deploy_problem
    from .deployment import Deployment
    from .errors import InfeasibleWarning, ProblemError, RunError
    from .estimator import AutoPipelineClassifier, AutoPipelineRegressor
    from .evaluate.backends import list_backends
    from .problem import Limits, Objective, Problem, load_problem
    from .result import Best, Result
    from .runner import fit, resume
    from .settings import Budget, Constraint, OptimizerSettings
    from .space import Categorical, Float, Int, SearchSpace


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'admm_tune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
