"""Gaussian-process Bayesian optimisation with expected improvement (the default).

The surrogates are scikit-learn's ``GaussianProcessRegressor`` with a
Matérn-5/2 kernel with one length scale per dimension (ARD) plus a white
noise term: one for the objective and one per black-box constraint.  The
known parts (the constraint terms of the augmented Lagrangian, the integer
consensus penalty) are applied to the models' predictions analytically, so
expected improvement is taken over the whole θ-step objective.  A batch is
built by kriging believer: each chosen point joins the data at its
predicted mean before the next is chosen; the task's pending points (still
being evaluated) join the data the same way before the first is chosen.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits

from .base import ThetaSolver, ThetaTask, first_valid, lattice_candidates, local_candidates


class GPSolver(ThetaSolver):
    """GP-EI solver of the continuous sub-problem.

    Parameters
    ----------
    n_candidates : int
        Uniform candidates scored by the acquisition (plus local ones around
        the best points and the ADMM iterate).
    xi : float
        Exploration margin of expected improvement, in units of the
        standardised objective.
    min_points : int
        Below this many observations the solver perturbs the iterate instead.
    n_samples : int
        Monte Carlo draws of expected improvement when constraints are
        modelled (the objective and each constraint get their own GP, as in
        ALBO, Gramacy et al. 2016; the augmented Lagrangian of the draws is
        compared with the best observed value).
    """

    name = "gp"

    def __init__(self, n_candidates: int = 1024, xi: float = 0.01, min_points: int = 2,
                 n_samples: int = 64) -> None:
        self.n_candidates = n_candidates
        self.xi = xi
        self.min_points = min_points
        self.n_samples = n_samples

    def propose(self, task: ThetaTask, n: int, rng: np.random.Generator) -> np.ndarray:
        """Maximise expected improvement over random and local candidates."""
        # One BLAS thread: these matrices are small, and a second busy core
        # (a parallel evaluation) makes multi-threaded BLAS spin for ms per call.
        with threadpool_limits(1):
            return self._propose(task, n, rng)

    def _propose(self, task: ThetaTask, n: int, rng: np.random.Generator) -> np.ndarray:
        d = task.dim
        if len(task.f) < self.min_points:
            candidates = np.vstack([local_candidates(rng, task.center, 64, 0.15), rng.random((256, d))])
            return np.array(first_valid(task, candidates, n, [])).reshape(-1, d)
        observed = task.objective()
        order = np.argsort(observed)
        candidates = np.vstack([
            rng.random((self.n_candidates, d)),
            local_candidates(rng, task.X[order[:3]], 64, 0.05),
            local_candidates(rng, task.X[order[:3]], 64, 0.15),
            local_candidates(rng, task.center, 64, 0.1),
            lattice_candidates(rng, task.X[order[:3]], task.steps, 16, 0.05),
        ])
        candidates = candidates[np.array([task.valid(x) for x in candidates])]
        X, f = task.X, _clip_outliers(task.f)
        G = task.G[task.ok]
        data = [(X, f)] + ([(task.X[task.ok], G[:, j]) for j in range(G.shape[1])] if task.ok.sum() >= 2 else [])
        models = [self._fit(Xm, ym, rng) for Xm, ym in data]
        if len(task.pending):
            data, models = _believe(data, models, task.pending)
        z = rng.standard_normal((self.n_samples, 1 + G.shape[1]))
        best = float(np.min(observed))
        chosen: list[np.ndarray] = []
        for _ in range(n):
            if len(candidates) == 0:
                break
            score = self._acquisition(task, models, candidates, z, best)
            i = int(np.argmax(score))
            chosen.append(candidates[i])
            candidates = np.delete(candidates, i, axis=0)
            if len(chosen) < n:
                data, models = _believe(data, models, chosen[-1][None, :])
        return np.array(chosen).reshape(-1, d)

    def _acquisition(self, task: ThetaTask, models: list[GaussianProcessRegressor], candidates: np.ndarray,
                     z: np.ndarray, best: float) -> np.ndarray:
        """Expected improvement of the augmented Lagrangian, by Monte Carlo over the models."""
        preds = [m.predict(candidates, return_std=True) for m in models]
        pen = task.penalty(candidates)
        k = task.G.shape[1]
        if k == 0:  # the merit is then affine in f: closed-form EI in merit units
            mu, sigma = preds[0]
            zero = np.zeros((len(mu), 0))
            offset = task.merit(np.zeros(len(mu)), zero)
            slope = task.merit(np.ones(len(mu)), zero) - offset
            spread = max(float(np.std(task.objective())), 1e-9)
            return _expected_improvement(task.merit(mu, zero) + pen, sigma * slope, best, self.xi * spread)
        q, s = len(candidates), z.shape[0]
        f = preds[0][0][:, None] + preds[0][1][:, None] * z[None, :, 0]
        if len(preds) > 1:
            G = np.stack([p[0][:, None] + p[1][:, None] * z[None, :, j + 1] for j, p in enumerate(preds[1:])], -1)
        else:
            G = np.zeros((q, s, k))
        values = task.merit(f.reshape(-1), G.reshape(-1, k)).reshape(q, s) + pen[:, None]
        return np.maximum(best - values, 0.0).mean(axis=1)

    @staticmethod
    def _fit(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> GaussianProcessRegressor:
        d = X.shape[1]
        kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                  * Matern(length_scale=np.full(d, 0.3), length_scale_bounds=(1e-2, 1e2), nu=2.5)
                  + WhiteKernel(1e-3, (1e-8, 1e-1)))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=2,
                                      random_state=int(rng.integers(2**31 - 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X, y)
        return gp


def _believe(data: list[tuple[np.ndarray, np.ndarray]], models: list[GaussianProcessRegressor], X: np.ndarray
             ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[GaussianProcessRegressor]]:
    """Kriging believer: pretend the points ``X`` returned the models' predicted means (kernels kept)."""
    data = [(np.vstack([Xm, X]), np.append(ym, m.predict(X))) for (Xm, ym), m in zip(data, models)]
    models = [GaussianProcessRegressor(kernel=m.kernel_, optimizer=None, normalize_y=True).fit(Xm, ym)
              for (Xm, ym), m in zip(data, models)]
    return data, models


def _expected_improvement(mean: np.ndarray, sigma: np.ndarray, best: float, xi: float) -> np.ndarray:
    sigma = np.maximum(sigma, 1e-12)
    gain = best - mean - xi
    z = gain / sigma
    return gain * norm.cdf(z) + sigma * norm.pdf(z)


def _clip_outliers(y: np.ndarray) -> np.ndarray:
    """Cap values above the 90th percentile so one disaster does not flatten the model."""
    if len(y) < 5:
        return y
    return np.minimum(y, np.quantile(y, 0.9))

