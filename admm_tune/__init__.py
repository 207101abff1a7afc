"""admm_tune: configure an ML pipeline and its deployment together, under constraints, by ADMM.

Public API: :func:`fit`, :class:`Problem`, :func:`load_problem`,
:class:`Result`, :class:`SearchSpace`, :class:`ProblemError`,
:func:`backends` (which inference backends run on this machine),
:class:`AutoPipelineClassifier` and :class:`AutoPipelineRegressor`
(scikit-learn estimators).
"""

from .errors import InfeasibleWarning, ProblemError, RunError
from .estimator import AutoPipelineClassifier, AutoPipelineRegressor
from .evaluate.backends import backends
from .problem import Budget, Constraint, Objective, OptimizerSettings, Problem, load_problem
from .result import Best, Result
from .runner import fit
from .space import Categorical, Float, Int, SearchSpace

__version__ = "0.1.0"

__all__ = ["AutoPipelineClassifier", "AutoPipelineRegressor", "Best", "Budget", "Categorical", "Constraint", "Float",
           "InfeasibleWarning", "Int", "Objective", "OptimizerSettings", "Problem", "ProblemError", "Result", "RunError",
           "SearchSpace", "backends", "fit", "load_problem"]
