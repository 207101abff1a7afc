"""A small Gaussian-process regressor in numpy/scipy: Matérn-5/2 with ARD length scales plus white noise.

The surrogate of :mod:`.gp` (the optimiser imports nothing of scikit-learn).
Targets are standardised (mean 0, standard deviation 1) before the fit and
predictions mapped back, as scikit-learn's ``normalize_y=True`` does.  The
kernel is ``c · M(r) + w · δ``, with ``M(r) = (1 + √5 r + 5r²/3) exp(−√5 r)``
and ``r² = Σ_i (x_i − x'_i)² / l_i²``; its log hyper-parameters
``(log c, log l_1..l_d, log w)`` maximise the log marginal likelihood by
L-BFGS-B with its analytic gradient, from the given start and from
``restarts`` starts drawn log-uniformly within the bounds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import LinAlgError, cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize

AMPLITUDE = (1e-3, 1e3)
LENGTH = (1e-2, 1e2)
NOISE = (1e-8, 1e-1)
"""Bounds of the kernel's amplitude ``c``, length scales ``l_i`` and white noise ``w`` (standardised targets)."""
SQRT5 = math.sqrt(5.0)


def initial_theta(d: int) -> np.ndarray:
    """The first start of the hyper-parameters: ``c = 1``, ``l_i = 0.3``, ``w = 1e-3`` (log scale), shape (d + 2,)."""
    return np.log(np.r_[1.0, np.full(d, 0.3), 1e-3])


def _bounds(d: int) -> np.ndarray:
    return np.log(np.array([AMPLITUDE] + [LENGTH] * d + [NOISE]))


class GaussianProcess:
    """GP regression with a Matérn-5/2 ARD kernel plus white noise.

    Parameters
    ----------
    theta : ndarray of shape (d + 2,)
        Log hyper-parameters ``(log c, log l_1..l_d, log w)``: kept as they
        are by :meth:`fit` with ``optimize=False``, the first start otherwise.

    Attributes
    ----------
    theta : ndarray of shape (d + 2,)
        The hyper-parameters after :meth:`fit`.
    """

    def __init__(self, theta: np.ndarray) -> None:
        self.theta = np.asarray(theta, dtype=float)

    def fit(self, X: np.ndarray, y: np.ndarray, optimize: bool = True, restarts: int = 0,
            seed: int = 0) -> GaussianProcess:
        """Condition on ``X`` (n, d) and ``y`` (n,); with ``optimize``, estimate the hyper-parameters first.

        The ``restarts`` extra starts are drawn by ``RandomState(seed)`` in the
        order scikit-learn's ``GaussianProcessRegressor`` draws them, so a
        seeded search that used it keeps its trajectory.

        Raises
        ------
        numpy.linalg.LinAlgError
            When the kernel matrix is not positive definite at any estimate.
        """
        self.X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        self.y = (y - self.mean) / self.scale
        if optimize:
            bounds = _bounds(self.X.shape[1])
            starts = [np.clip(self.theta, bounds[:, 0], bounds[:, 1])]
            rng = np.random.RandomState(seed)
            starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(restarts)]
            best = None
            for start in starts:
                result = minimize(self._negative_lml, start, jac=True, method="L-BFGS-B", bounds=bounds)
                if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                    best = result
            if best is not None:
                self.theta = best.x
        K = self._kernel(self.X, self.X, self.theta) + math.exp(self.theta[-1]) * np.eye(len(self.X))
        self.L = cholesky(K + 1e-10 * np.eye(len(K)), lower=True)
        self.alpha = cho_solve((self.L, True), self.y)
        return self

    def predict(self, Xq: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean at ``Xq`` (q, d), and its standard deviation (noise included) with ``return_std``."""
        Ks = self._kernel(np.asarray(Xq, dtype=float), self.X, self.theta)
        mean = Ks @ self.alpha * self.scale + self.mean
        if not return_std:
            return mean
        v = solve_triangular(self.L, Ks.T, lower=True)
        var = math.exp(self.theta[0]) + math.exp(self.theta[-1]) - np.einsum("ij,ij->j", v, v)
        return mean, np.sqrt(np.maximum(var, 0.0)) * self.scale

    @staticmethod
    def _kernel(A: np.ndarray, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``c · M(r)`` between the rows of ``A`` and ``B`` (no noise)."""
        scaled = np.exp(theta[1:-1])
        r = np.sqrt(np.maximum(_squared_distances(A / scaled, B / scaled), 0.0))
        return math.exp(theta[0]) * (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * np.exp(-SQRT5 * r)

    def _negative_lml(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Minus the log marginal likelihood of the standardised targets, and its gradient in ``theta``."""
        X, y, n = self.X, self.y, len(self.X)
        scaled = np.exp(theta[1:-1])
        diff2 = (X[:, None, :] - X[None, :, :]) ** 2 / scaled**2  # (n, n, d): each dimension's share of r²
        r = np.sqrt(diff2.sum(-1))
        e = np.exp(-SQRT5 * r)
        c, w = math.exp(theta[0]), math.exp(theta[-1])
        M = (1.0 + SQRT5 * r + 5.0 / 3.0 * r**2) * e
        K = c * M + (w + 1e-10) * np.eye(n)
        try:
            L = cholesky(K, lower=True)
        except LinAlgError:
            return math.inf, np.zeros_like(theta)
        alpha = cho_solve((L, True), y)
        lml = -0.5 * y @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * math.log(2.0 * math.pi)
        inner = np.outer(alpha, alpha) - cho_solve((L, True), np.eye(n))  # ααᵀ − K⁻¹
        # d lml / d θ = tr(inner · dK/dθ) / 2, with dK/d log c = c·M, dK/d log w = w·I and
        # dK/d log l_i = c · 5/3 (1 + √5 r) exp(−√5 r) · (x_i − x'_i)² / l_i²  (all symmetric)
        scales = np.einsum("ij,ijk->k", inner * (c * 5.0 / 3.0 * (1.0 + SQRT5 * r) * e), diff2)
        gradient = 0.5 * np.r_[np.sum(inner * (c * M)), scales, w * np.trace(inner)]
        return -float(lml), -gradient


def _squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * A @ B.T
