"""The contract of a θ-step solver (:class:`~admm_tune.optim.bayes.base.ThetaSolver`), as checks.

A solver is given as a factory (a class, or any callable returning a fresh
solver), because a solver may carry what it learnt between calls::

    from admm_tune.testing.theta_solvers import check_theta_solver
    check_theta_solver(MySolver)

The contract, which the optimiser relies on:

- ``propose(task, n, rng)`` returns an array of shape ``(k, d)``, ``k <= n``,
  of points in the unit cube ``[0, 1]^d``, each one ``task.valid`` accepts,
  none twice and none of ``task.pending`` (the points being evaluated);
- fewer than ``n`` (none at all) only when no more valid points are found;
  an empty proposal still has ``d`` columns;
- the same task and a generator in the same state give the same points;
- it works at every stage of a run: no observation yet, one, a constant
  objective, no completed point (``ok`` all false), one dimension, integer
  dimensions (``steps > 0``), a cost model, ``n`` larger than the valid
  points left.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..optim.bayes.base import ThetaSolver, ThetaTask
from . import run_checks

SolverFactory = Callable[[], ThetaSolver]

__all__ = ["CHECKS", "SolverFactory", "check_theta_solver", "make_task"]


def make_task(d: int = 3, m: int = 8, seed: int = 0, valid: Callable[[np.ndarray], bool] | None = None,
              pending: int = 0, integer_dims: int = 0, ok: bool = True, constant: bool = False,
              cost: bool = False) -> ThetaTask:
    """A θ-step task of ``d`` dimensions with ``m`` observed points (one constraint column).

    The objective is a quadratic bowl at 0.3 (``constant``: 1.0 everywhere);
    the constraint ``x_0 <= 0.5`` is observed as ``G = x_0 / 0.5 - 1``.
    ``integer_dims`` of the dimensions get an integer step of 0.1;
    ``pending`` points are being evaluated and ``valid`` refuses them.
    """
    rng = np.random.default_rng(seed)
    X = rng.random((m, d))
    f = np.ones(m) if constant else ((X - 0.3) ** 2).sum(axis=1)
    G = (X[:, :1] / 0.5 - 1.0) if m else np.empty((0, 1))
    center = np.full(d, 0.5)
    steps = np.zeros(d)
    steps[:integer_dims] = 0.1
    running = rng.random((pending, d))
    accept = valid if valid is not None else (lambda x: True)

    def allowed(x: np.ndarray) -> bool:
        return bool(accept(x)) and not any(np.allclose(x, p) for p in running)

    return ThetaTask(X=X, f=f, G=G, ok=np.full(m, ok),
                     merit=lambda f_, G_: f_ + 10.0 * np.maximum(G_, 0.0).sum(axis=1),
                     penalty=lambda Q: 0.5 * ((np.atleast_2d(Q) - center) ** 2).sum(axis=1),
                     valid=allowed, center=center, steps=steps,
                     pending=running if pending else np.empty((0, 0)), key="conformance",
                     cost=(lambda Q: 1.0 + np.atleast_2d(Q)[:, 0]) if cost else None)


def _proposed(factory: SolverFactory, task: ThetaTask, n: int, seed: int = 0) -> np.ndarray:
    solver = factory()
    points = solver.propose(task, n, np.random.default_rng(seed))
    name = getattr(solver, "name", "") or type(solver).__name__
    assert isinstance(points, np.ndarray), f"{name}: propose returned {type(points).__name__}, not an ndarray"
    assert points.ndim == 2 and points.shape[1] == task.dim and len(points) <= n, \
        f"{name}: {points.shape} for n={n}, d={task.dim}"
    assert np.isfinite(points).all() and (points >= 0.0).all() and (points <= 1.0).all(), \
        f"{name}: points outside the unit cube: {points}"
    assert all(task.valid(x) for x in points), f"{name}: proposed a point the task refuses"
    for i in range(len(points)):
        for j in range(i):
            assert not np.allclose(points[i], points[j]), f"{name}: proposed {points[i]} twice"
    return points


def check_shape_and_bounds(factory: SolverFactory) -> None:
    """``n`` points of the cube, each valid and distinct, for ``n`` in 1, 2, 5."""
    for n in (1, 2, 5):
        points = _proposed(factory, make_task(), n)
        assert len(points) == n, f"{n} points asked on an unconstrained cube, {len(points)} proposed"


def check_only_valid_points(factory: SolverFactory) -> None:
    """Points the task refuses (here half of the cube, ``x_1 < 0.5``) are never proposed."""
    points = _proposed(factory, make_task(valid=lambda x: x[1] < 0.5), 4)
    assert len(points) == 4 and (points[:, 1] < 0.5).all(), points


def check_no_pending_point_again(factory: SolverFactory) -> None:
    """With points being evaluated, none of them is proposed again (and the solver takes them)."""
    task = make_task(pending=3)
    points = _proposed(factory, task, 4)
    assert len(points) == 4
    assert not any(np.allclose(x, p) for x in points for p in task.pending)


def check_deterministic_given_the_generator(factory: SolverFactory) -> None:
    """Two fresh solvers, the same task and generators in the same state: the same points."""
    first = _proposed(factory, make_task(seed=1), 3, seed=7)
    again = _proposed(factory, make_task(seed=1), 3, seed=7)
    assert np.array_equal(first, again), (first, again)


def check_empty_when_nothing_is_valid(factory: SolverFactory) -> None:
    """No valid point left: an empty ``(0, d)`` array, not an error and not an invalid point."""
    points = _proposed(factory, make_task(valid=lambda x: False), 3)
    assert points.shape == (0, 3), points.shape


def check_every_stage_of_a_run(factory: SolverFactory) -> None:
    """No observation, one, a constant objective, nothing completed, one dimension, integer dimensions, a cost
    model, and more points asked than the valid ones left (a quarter of a one-dimensional cube)."""
    cases = {"no observation": make_task(m=0), "one observation": make_task(m=1),
             "constant objective": make_task(constant=True), "nothing completed": make_task(ok=False),
             "one dimension": make_task(d=1), "integer dimensions": make_task(integer_dims=2),
             "a cost model": make_task(cost=True), "many observations": make_task(m=60)}
    for what, task in cases.items():
        try:
            points = _proposed(factory, task, 2)
        except AssertionError as exc:
            raise AssertionError(f"{what}: {exc}") from None
        assert len(points) == 2, f"{what}: {len(points)} of 2 points"
    scarce = make_task(d=1, valid=lambda x: x[0] > 0.75)
    points = _proposed(factory, scarce, 50)
    assert 1 <= len(points) <= 50 and (points[:, 0] > 0.75).all(), points


CHECKS: tuple[Callable[[SolverFactory], None], ...] = (
    check_shape_and_bounds, check_only_valid_points, check_no_pending_point_again,
    check_deterministic_given_the_generator, check_empty_when_nothing_is_valid, check_every_stage_of_a_run)
"""Every check of the contract, in the order :func:`check_theta_solver` runs them."""


def check_theta_solver(factory: SolverFactory) -> None:
    """Run :data:`CHECKS` on the solvers ``factory`` builds; the first failure raises ``AssertionError`` with
    the check's name."""
    run_checks(CHECKS, factory)
