"""The protocol of continuous sub-problem solvers.

The θ-step hands a solver a :class:`ThetaTask`: points already evaluated in
the unit cube (continuous parameters and relaxed integers, log-scaled where
the space says so), their observed augmented-Lagrangian values, the known
analytic part of the objective (the integer consensus term
``ρ/2 ‖θ̃ᵈ − δ + λ/ρ‖²``) and a validity mask (white-box constraints,
already-evaluated candidates).  The solver proposes the next points.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ThetaTask:
    """One θ-step problem in the unit cube ``[0, 1]^d``.

    Attributes
    ----------
    X : ndarray of shape (m, d)
        Points evaluated so far for the active algorithms.
    f : ndarray of shape (m,)
        Their observed objective (failures at the worst value seen).
    G : ndarray of shape (m, k)
        Their normalised constraint violations ``ĝ − 1`` (k constraints).
    ok : ndarray of shape (m,)
        Which points completed (only those inform constraint models).
    merit : callable
        ``(f, G) -> values``: objective plus the constraint terms of the
        augmented Lagrangian, row-wise.
    penalty : callable
        ``(q, d) -> (q,)``: the analytic consensus term at points.
    valid : callable
        ``(d,) -> bool``: whether a point may be proposed.
    center : ndarray of shape (d,)
        The current ADMM iterate.
    steps : ndarray of shape (d,)
        For integer dimensions, the unit-cube distance of one integer step
        near the iterate; 0 for continuous dimensions.
    pending : ndarray of shape (p, d)
        Points being evaluated now (asynchronous evaluation): not valid
        again, and a model-based solver should spread away from them.
    cost : callable or None
        ``(q, d) -> (q,)``: predicted seconds of evaluating points, under a
        time budget once the structure's cost is known; a solver then
        prefers improvement per second.  None: cost is not a concern.
    key : str
        Names the sub-problem (structure and moved parameters), so that a
        solver may carry what it learnt (a model's hyper-parameters) from
        one call to the next on the same sub-problem; empty: nothing carried.
    """

    X: np.ndarray
    f: np.ndarray
    G: np.ndarray
    ok: np.ndarray
    merit: Callable[[np.ndarray, np.ndarray], np.ndarray]
    penalty: Callable[[np.ndarray], np.ndarray]
    valid: Callable[[np.ndarray], bool]
    center: np.ndarray
    steps: np.ndarray
    pending: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    key: str = ""
    cost: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def dim(self) -> int:
        """Number of dimensions."""
        return int(self.center.shape[0])

    def objective(self) -> np.ndarray:
        """The θ-step objective at the observed points (all terms)."""
        if len(self.f) == 0:
            return self.f
        return self.merit(self.f, self.G) + self.penalty(self.X)


class ThetaSolver(ABC):
    """Base class of θ-step solvers: propose ``n`` points for a task."""

    name: str = ""

    @abstractmethod
    def propose(self, task: ThetaTask, n: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``n`` valid points of shape ``(n, d)`` (fewer if none are left)."""


def first_valid(task: ThetaTask, candidates: np.ndarray, n: int, taken: list[np.ndarray]) -> list[np.ndarray]:
    """Up to ``n`` candidates, in order, that are valid and not already taken."""
    chosen: list[np.ndarray] = []
    for x in candidates:
        if len(chosen) == n:
            break
        if task.valid(x) and not any(np.allclose(x, t) for t in taken + chosen):
            chosen.append(x)
    return chosen


def local_candidates(rng: np.random.Generator, centers: np.ndarray, k: int, scale: float) -> np.ndarray:
    """``k`` Gaussian perturbations of each center, clipped to the cube."""
    centers = np.atleast_2d(centers)
    noise = rng.normal(0.0, scale, size=(centers.shape[0], k, centers.shape[1]))
    return np.clip(centers[:, None, :] + noise, 0.0, 1.0).reshape(-1, centers.shape[1])


def lattice_candidates(rng: np.random.Generator, centers: np.ndarray, steps: np.ndarray, k: int,
                       scale: float) -> np.ndarray:
    """Integer neighbours of each center (one integer ±1 step) with the continuous dimensions jittered.

    Moving one integer often pays only together with a continuous move (a
    constraint that couples them), which plain Gaussian jitter rarely finds.
    """
    centers = np.atleast_2d(centers)
    ints = np.flatnonzero(steps > 0)
    if ints.size == 0:
        return np.empty((0, centers.shape[1]))
    out = []
    for c in centers:
        for i in ints:
            for sign in (-1.0, 1.0):
                moved = np.repeat(c[None, :], k, axis=0)
                noise = rng.normal(0.0, scale, size=moved.shape)
                noise[:, ints] = 0.0
                moved += noise
                moved[:, i] = c[i] + sign * steps[i]
                out.append(moved)
    return np.clip(np.vstack(out), 0.0, 1.0)
