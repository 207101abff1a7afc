"""Gaussian-process Bayesian optimisation with expected improvement (the default).

The surrogates are Gaussian processes (:class:`~.kernel.GaussianProcess`,
numpy/scipy) with a Matérn-5/2 kernel with one length scale per dimension
(ARD) plus a white noise term: one for the objective and one per black-box
constraint.  The
known parts (the constraint terms of the augmented Lagrangian, the integer
consensus penalty) are applied to the models' predictions analytically, so
expected improvement is taken over the whole θ-step objective.  A batch is
built by kriging believer: each chosen point joins the data at its
predicted mean before the next is chosen; the task's pending points (still
being evaluated) join the data the same way before the first is chosen.

Overhead is bounded (``docs/optimiser.md``, "Overhead"): a model sees at
most ``max_points`` observations (the best half and the most recent), and
its kernel hyper-parameters are re-estimated only when the sub-problem's
observations have grown by ``refit_growth`` since the last estimate (from
that estimate, without restarts); in between the GP is conditioned on the
new data with the kept kernel, one Cholesky factorisation.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from .base import ThetaSolver, ThetaTask, first_valid, lattice_candidates, local_candidates
from .kernel import GaussianProcess, initial_theta


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
    max_points : int
        Most observations a model is fitted to: the best half by the θ-step
        objective and the most recent ones.
    refit_growth : float
        Kernel hyper-parameters of a sub-problem (``ThetaTask.key``) are
        re-estimated once its observations number ``refit_growth`` times
        those of the last estimate; in between the kernel is kept.
    fresh_below : int
        Below this many observations of a sub-problem, every call estimates
        the kernel afresh (with restarts): cheap there, and where the
        estimate still moves most.
    """

    name = "gp"

    def __init__(self, n_candidates: int = 1024, xi: float = 0.01, min_points: int = 2,
                 n_samples: int = 64, max_points: int = 128, refit_growth: float = 1.1,
                 fresh_below: int = 30) -> None:
        self.n_candidates = n_candidates
        self.xi = xi
        self.min_points = min_points
        self.n_samples = n_samples
        self.max_points = max_points
        self.refit_growth = refit_growth
        self.fresh_below = fresh_below
        self._kernels: dict[tuple[str, int], tuple[int, np.ndarray]] = {}  # (task key, model) → (n, log params)

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
        rows = self._window(observed)
        X, f, ok = task.X[rows], _clip_outliers(task.f[rows]), task.ok[rows]
        G = task.G[rows][ok]
        data = [(X, f)] + ([(X[ok], G[:, j]) for j in range(G.shape[1])] if ok.sum() >= 2 else [])
        models = [self._fit(Xm, ym, rng, (task.key, j), len(task.f)) for j, (Xm, ym) in enumerate(data)]
        if len(task.pending):
            data, models = _believe(data, models, task.pending)
        z = rng.standard_normal((self.n_samples, 1 + G.shape[1]))
        best = float(np.min(observed))
        chosen: list[np.ndarray] = []
        valid: dict[int, bool] = {}  # validity is checked lazily, best score first: it costs more than scoring
        for _ in range(n):
            score = self._acquisition(task, models, candidates, z, best)
            if task.cost is not None:  # improvement per predicted second
                score = score / np.maximum(task.cost(candidates), 1e-6)
            i = next((int(i) for i in np.argsort(-score, kind="stable")
                      if valid.setdefault(int(i), bool(task.valid(candidates[i])))), None)
            if i is None:
                break
            chosen.append(candidates[i])
            valid[i] = False
            if len(chosen) < n:
                data, models = _believe(data, models, chosen[-1][None, :])
        return np.array(chosen).reshape(-1, d)

    def _acquisition(self, task: ThetaTask, models: list[GaussianProcess], candidates: np.ndarray,
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

    def _window(self, observed: np.ndarray) -> np.ndarray:
        """Indices of the observations the models see: all, or the best half and the most recent."""
        m = len(observed)
        if m <= self.max_points:
            return np.arange(m)
        best = np.argsort(observed, kind="stable")[: self.max_points // 2]
        recent = np.setdiff1d(np.arange(m), best)[-(self.max_points - len(best)):]
        return np.sort(np.concatenate([best, recent]))

    def _fit(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, slot: tuple[str, int],
             n_seen: int) -> GaussianProcess:
        """A GP on ``(X, y)``; ``slot`` (task key, model) and ``n_seen`` decide whether its kernel is re-estimated."""
        seed = int(rng.integers(2**31 - 1))
        cached = self._kernels.get(slot) if slot[0] and n_seen >= self.fresh_below else None
        if cached is not None and n_seen < cached[0] * self.refit_growth:
            return GaussianProcess(cached[1]).fit(X, y, optimize=False)
        start = cached[1] if cached is not None else initial_theta(X.shape[1])
        gp = GaussianProcess(start).fit(X, y, restarts=0 if cached is not None else 2, seed=seed)
        if slot[0]:
            self._kernels[slot] = (n_seen, gp.theta)
        return gp


def _believe(data: list[tuple[np.ndarray, np.ndarray]], models: list[GaussianProcess], X: np.ndarray
             ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[GaussianProcess]]:
    """Kriging believer: pretend the points ``X`` returned the models' predicted means (kernels kept)."""
    data = [(np.vstack([Xm, X]), np.append(ym, m.predict(X))) for (Xm, ym), m in zip(data, models)]
    models = [GaussianProcess(m.theta).fit(Xm, ym, optimize=False) for (Xm, ym), m in zip(data, models)]
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

