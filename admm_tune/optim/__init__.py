"""The optimiser: ADMM over the search space with black-box constraints.

It sees only the space, the constraints and a black-box ``evaluate``
callable; it never imports :mod:`admm_tune.evaluate`.
"""

from .admm import ADMM, ADMMState, Candidate, Record, best_record

__all__ = ["ADMM", "ADMMState", "Candidate", "Record", "best_record"]
