"""Random search: uniform points in the unit cube."""

from __future__ import annotations

import numpy as np

from .base import ThetaSolver, ThetaTask, first_valid


class RandomSolver(ThetaSolver):
    """Uniform sampling, the baseline of the continuous sub-problem."""

    name = "random"

    def __init__(self, n_tries: int = 256) -> None:
        self.n_tries = n_tries

    def propose(self, task: ThetaTask, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw uniformly until ``n`` valid points are found."""
        candidates = rng.random((max(n, self.n_tries), task.dim))
        return np.array(first_valid(task, candidates, n, [])).reshape(-1, task.dim)
