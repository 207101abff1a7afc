"""Conformance suites: what every implementation of an admm_tune interface must do.

As Optuna ships ``optuna.testing``, admm_tune ships the checks its own
implementations pass, so that a new one (a θ-solver in
``admm_tune/optim/bayes/``, a backend in ``admm_tune/evaluate/backends/``)
is held to the same contract by running one function:

- :mod:`.theta_solvers`: :func:`~.theta_solvers.check_theta_solver` for a
  :class:`~admm_tune.optim.bayes.base.ThetaSolver` factory;
- :mod:`.backends`: :func:`~.backends.check_backend` for a
  :class:`~admm_tune.evaluate.backends.base.Backend`;
- :mod:`.pools`: :func:`~.pools.check_pool` for a factory of
  :class:`~admm_tune.parallel.Pool`.

Each module lists its checks (``CHECKS``), so that a test suite can
parametrise over them; ``tests/test_conformance.py`` runs every check on
every registered implementation.  A failed check raises ``AssertionError``
naming the implementation and what it did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def run_checks(checks: Iterable[Callable[[Any], None]], subject: Any) -> None:
    """Run each check on ``subject``, in order.

    Raises
    ------
    AssertionError
        The first failure, prefixed with its check's name.
    """
    for check in checks:
        try:
            check(subject)
        except AssertionError as exc:
            raise AssertionError(f"{check.__name__}: {exc}") from None
