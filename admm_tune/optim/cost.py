"""What an evaluation costs: a surrogate of its seconds, learnt from the evaluations so far.

Under a time budget the optimiser uses it twice (``docs/optimiser.md``,
"Cost under a time budget"): the θ-step takes expected improvement *per
predicted second*, and no candidate starts whose predicted seconds exceed
the time left.  The model is log-linear per structure: ``log seconds`` is a
ridge regression on the structure's numeric parameters in unit coordinates
(with :data:`MIN_POINTS` evaluations or more; their mean before), and a
structure never evaluated is predicted from the most expensive of its
modules' algorithms (the mean log seconds of the evaluations that used it).
It knows nothing of what the evaluations are.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ..space import Config, SearchSpace

MIN_POINTS = 4
"""Evaluations of a structure before its cost depends on its parameters (below: their mean)."""
RIDGE = 0.1
"""Ridge penalty of the per-structure regression, in units of the log-seconds' squared error."""


class CostModel:
    """Predicted seconds of an evaluation, per structure and hyper-parameters.

    Parameters
    ----------
    space : SearchSpace
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._points: dict[str, list[tuple[np.ndarray, float]]] = defaultdict(list)
        self._by_value: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._fits: dict[str, np.ndarray] = {}

    def observe(self, config: Config, seconds: float) -> None:
        """Learn that ``config`` took ``seconds`` (wall time of its evaluation; ignored unless > 0)."""
        if not seconds > 0 or not math.isfinite(seconds):
            return
        key = self._structure(config)
        self._points[key].append((self.unit(config), math.log(seconds)))
        self._fits.pop(key, None)
        for name, _, algo in self.space.active(config):
            self._by_value[(name, algo.name)].append(math.log(seconds))

    def predict(self, config: Config) -> float | None:
        """Predicted seconds of ``config``; None while nothing about its structure or algorithms is known."""
        points = self._points.get(self._structure(config))
        if points:
            return float(math.exp(self._log_predict(config, points, self.unit(config)[None, :])[0]))
        known = [np.mean(self._by_value[(name, algo.name)]) for name, _, algo in self.space.active(config)
                 if (name, algo.name) in self._by_value]
        return float(math.exp(max(known))) if known else None

    def upper(self, config: Config) -> float | None:
        """A cautious prediction for deciding whether ``config`` fits: its structure's slowest evaluation so far
        while the structure has fewer than :data:`MIN_POINTS`, else the prediction times the fit's typical error."""
        points = self._points.get(self._structure(config))
        if not points:
            return self.predict(config)
        y = np.array([v for _, v in points])
        if len(points) < MIN_POINTS:
            return float(math.exp(y.max()))
        X = np.array([x for x, _ in points])
        spread = float(np.sqrt(np.mean((self._log_predict(config, points, X) - y) ** 2)))
        return float(math.exp(self._log_predict(config, points, self.unit(config)[None, :])[0] + spread))

    def predict_unit(self, config: Config, X: np.ndarray) -> np.ndarray | None:
        """Predicted seconds of ``config``'s structure at full unit vectors ``X`` (q, p); None if unknown."""
        points = self._points.get(self._structure(config))
        if not points:
            return None
        return np.exp(self._log_predict(config, points, X))

    def unit(self, config: Config) -> np.ndarray:
        """``config``'s numeric parameters in unit coordinates, in :meth:`SearchSpace.numeric_params` order."""
        return np.array([p.to_unit(config[k]) for k, p in self.space.numeric_params(config)], dtype=float)

    def _log_predict(self, config: Config, points: list[tuple[np.ndarray, float]], X: np.ndarray) -> np.ndarray:
        y = np.array([v for _, v in points])
        if len(points) < MIN_POINTS or X.shape[1] == 0:
            return np.full(len(X), float(y.mean()))
        key = self._structure(config)
        if key not in self._fits:
            A = np.hstack([np.ones((len(points), 1)), np.array([x for x, _ in points])])
            penalty = RIDGE * np.eye(A.shape[1])
            penalty[0, 0] = 0.0  # the intercept is not shrunk
            self._fits[key] = np.linalg.solve(A.T @ A + penalty, A.T @ y)
        w = self._fits[key]
        return w[0] + X @ w[1:]

    def _structure(self, config: Config) -> str:
        """The algorithms of ``config`` (categorical values are not told apart: they would thin the data)."""
        return "/".join(self.space.structure_of(config))
