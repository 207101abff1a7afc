"""Optuna's Tree-structured Parzen Estimator through its ask/tell interface."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from .base import ThetaSolver, ThetaTask, first_valid

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TPESolver(ThetaSolver):
    """Multivariate TPE on the unit cube, rebuilt from the task's history each call.

    The history is re-told with its current augmented-Lagrangian values, since
    the multipliers and the penalty change between iterations.
    """

    name = "tpe"

    def __init__(self, n_startup_trials: int = 3, n_tries: int = 32) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_tries = n_tries

    def propose(self, task: ThetaTask, n: int, rng: np.random.Generator) -> np.ndarray:
        """Ask TPE for ``n`` valid points; where ``n_tries`` asks per point find too few, uniform draws fill in."""
        d = task.dim
        names = [f"x{i}" for i in range(d)]
        dists = {name: FloatDistribution(0.0, 1.0) for name in names}
        sampler = optuna.samplers.TPESampler(n_startup_trials=self.n_startup_trials, multivariate=True,
                                             constant_liar=True, seed=int(rng.integers(2**31 - 1)))
        study = optuna.create_study(sampler=sampler)
        for x, v in zip(task.X, task.objective()):
            study.add_trial(optuna.trial.create_trial(params=dict(zip(names, map(float, x))),
                                                      distributions=dists, value=float(v)))
        for x in task.pending:  # left running, like the batch's own points below
            study.enqueue_trial(dict(zip(names, map(float, x))))
            study.ask(dists)
        chosen: list[np.ndarray] = []
        for _ in range(n * self.n_tries):
            if len(chosen) == n:
                break
            trial = study.ask(dists)
            x = np.array([trial.params[name] for name in names])
            if task.valid(x) and not any(np.allclose(x, c) for c in chosen):
                chosen.append(x)  # left running: TPE's constant liar spreads the batch
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if len(chosen) < n:  # TPE keeps sampling where the good points are, which the task may refuse: fill uniformly
            chosen += first_valid(task, rng.random((256, d)), n - len(chosen), chosen)
        return np.array(chosen).reshape(-1, d)
