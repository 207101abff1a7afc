"""What every measured constraint value says beyond the structure being tuned.

The θ-step models each constraint over the parameters of one structure; two
questions need more than that, and are answered here from every completed
evaluation:

- *Which other structure fixes a constraint the θ-step cannot?*
  :class:`ChoiceModel` is an additive model of each normalised violation
  (and of the loss) over the module choices: ``v ≈ a + Σ_module e[module,
  algorithm]``, fitted by ridge least squares.  A backend's fixed per-call
  cost is its effect ``e[backend, openvino]``, learned once from every
  structure run on it and applied to every other; a model's size is the
  estimator's and the precision's effects, known before the structure is
  timed.  The z-step uses it to move the block that can fix a constraint
  (:func:`directed_moves`) and to skip bandit draws that it predicts far
  infeasible.
- *Where is the nearest feasible point of this structure?*
  :func:`restoration_point` fits a local linear model of a violated
  constraint over the θ-step's continuous parameters and steps onto the
  bound (a Gauss-Newton feasibility-restoration step), so the θ-step tries
  the boundary point of a coupled constraint at once instead of waiting
  for the multiplier to grow.

Everything here is in the optimiser's units: violations ``ĝ − 1`` (0 on
the bound, positive when broken), parameters in the unit cube.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..space import Config, SearchSpace

RIDGE = 0.1
"""Ridge penalty of the additive model's effects: a module value seen once moves its effect only part way."""


@dataclass(frozen=True)
class ChoiceModel:
    """Additive main-effects model of some targets (violations, loss) over module choices.

    Attributes
    ----------
    levels : tuple of (module, algorithm)
        One effect per module value seen in the data.
    intercept : ndarray of shape (k,)
    effects : ndarray of shape (len(levels), k)
    counts : ndarray of shape (len(levels),)
        Evaluations of each module value.
    """

    levels: tuple[tuple[str, str], ...]
    intercept: np.ndarray
    effects: np.ndarray
    counts: np.ndarray

    @classmethod
    def fit(cls, space: SearchSpace, choices: Sequence[Config], targets: np.ndarray) -> ChoiceModel:
        """Fit ``targets`` (shape ``(n, k)``, one row per choice) on the module choices.

        Raises
        ------
        ValueError
            When ``choices`` and ``targets`` differ in length.
        """
        targets = np.asarray(targets, dtype=float).reshape(len(targets), -1)
        if len(choices) != len(targets):
            raise ValueError(f"choices: {len(choices)} rows, targets: {len(targets)}")
        levels = tuple(dict.fromkeys((m, str(c[m])) for c in choices for m in space.module_names))
        index = {level: i for i, level in enumerate(levels)}
        A = np.zeros((len(choices), len(levels)))
        for row, c in enumerate(choices):
            for m in space.module_names:
                A[row, index[(m, str(c[m]))]] = 1.0
        mean = targets.mean(axis=0) if len(targets) else np.zeros(targets.shape[1])
        if not levels:
            return cls(levels, mean, np.zeros((0, targets.shape[1])), np.zeros(0))
        effects = np.linalg.solve(A.T @ A + RIDGE * np.eye(len(levels)), A.T @ (targets - mean))
        return cls(levels, mean, effects, A.sum(axis=0))

    def effect(self, module: str, algorithm: str) -> np.ndarray | None:
        """The effect of one module value, ``None`` when it was never evaluated."""
        try:
            return self.effects[self.levels.index((module, str(algorithm)))]
        except ValueError:
            return None

    def predict(self, choice: Config) -> np.ndarray | None:
        """Predicted targets of a structure, ``None`` when one of its module values was never evaluated."""
        total = self.intercept.copy()
        for level in {lv[0] for lv in self.levels}:
            e = self.effect(level, choice[level]) if level in choice else None
            if e is None:
                return None
            total = total + e
        return total


def directed_moves(space: SearchSpace, model: ChoiceModel, z: Config, measured: np.ndarray
                   ) -> list[tuple[Config, np.ndarray]]:
    """The structures one module away from ``z``, with their predicted targets.

    The prediction is anchored at what ``z`` measured: ``measured + e[new] −
    e[old]`` (the change of one module's effect), so the model only has to
    be right about differences.  Only module values evaluated at least once
    are offered, and only allowed structures.

    Parameters
    ----------
    space : SearchSpace
    model : ChoiceModel
    z : dict
        The current structure.
    measured : ndarray of shape (k,)
        ``z``'s measured targets (its best point's).

    Returns
    -------
    list of (choice, predicted targets of shape (k,))
    """
    moves = []
    for module in space.modules:
        old = model.effect(module.name, z[module.name])
        if old is None:
            continue
        for algorithm in module.names:
            new = model.effect(module.name, algorithm)
            if algorithm == z[module.name] or new is None:
                continue
            choice = {k: v for k, v in z.items() if not k.startswith(f"{module.name}.")}
            choice[module.name] = algorithm
            if space.allowed(choice):
                moves.append((choice, measured + new - old))
    return moves


def restoration_point(X: np.ndarray, violations: np.ndarray, start: np.ndarray, movable: np.ndarray,
                      margin: float = 0.05) -> np.ndarray | None:
    """A Gauss-Newton step from ``start`` onto the bound of the violated constraints.

    Each violated constraint (at ``start``'s nearest observed point) gets a
    linear model fitted to the observations by least squares weighted by
    their closeness to ``start``; the point then moves along the models'
    gradients (the movable dimensions only) until each predicts ``−margin``,
    one constraint after the other.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Observed points in the unit cube.
    violations : ndarray of shape (n, k)
        Their normalised violations.
    start : ndarray of shape (d,)
        The point to restore (an observed infeasible one).
    movable : ndarray of bool, shape (d,)
        Dimensions the step may change (the continuous ones).
    margin : float
        How far inside the bound to aim, in units of the bound.

    Returns
    -------
    ndarray of shape (d,) or None
        ``None`` when nothing is violated at ``start``, too few points
        inform the models, or no movable dimension changes a constraint.
    """
    n, d = X.shape
    if n < d + 2 or not movable.any():
        return None
    near = int(np.argmin(np.sum((X - start) ** 2, axis=1)))
    violated = np.flatnonzero(violations[near] > 0)
    if violated.size == 0:
        return None
    w = np.exp(-np.sum((X - start) ** 2, axis=1) / (2 * 0.3**2))
    A = np.hstack([np.ones((n, 1)), X - start])  # every dimension informs the model; only the movable ones move
    sw = np.sqrt(w)[:, None]
    x = start.copy()
    for j in violated:
        coef, *_ = np.linalg.lstsq(A * sw, violations[:, j] * sw[:, 0], rcond=None)
        grad = coef[1:][movable]
        norm2 = float(grad @ grad)
        if norm2 < 1e-12:
            return None
        value = coef[0] + coef[1:] @ (x - start)
        if value > -margin:
            x[movable] = x[movable] - (value + margin) * grad / norm2
    x = np.clip(x, 0.0, 1.0)
    return None if np.allclose(x, start) else x
