"""The optimiser: ADMM over the search space with black-box constraints.

It sees only the space, the constraints and a black-box
:class:`~.executor.Executor` (or ``evaluate`` callable); it never imports
:mod:`admm_tune.evaluate`.
"""

from .admm import ADMM, ADMMState, Record, best_record
from .executor import Candidate, Executor, SerialExecutor, SimulatedExecutor

__all__ = ["ADMM", "ADMMState", "Candidate", "Executor", "Record", "SerialExecutor", "SimulatedExecutor",
           "best_record"]
