"""Every θ-solver, backend and worker pool passes its conformance suite (``admm_tune/testing``).

The suites are the contract; these tests only enumerate the implementations, so that one added to
:data:`~admm_tune.optim.bayes.SOLVERS` or :data:`~admm_tune.evaluate.backends.BACKENDS` is checked without a new
test.  A backend that does not run here (TensorRT, ONNX Runtime's CUDA provider without a GPU) is checked for its
refusal; the checks of a running backend return at once for it.
"""

from __future__ import annotations

import numpy as np
import pytest

from admm_tune.evaluate.backends import BACKENDS
from admm_tune.optim.bayes import SOLVERS
from admm_tune.parallel import InProcessPool, WorkerPool
from admm_tune.testing import backends, pools, theta_solvers


@pytest.mark.parametrize("check", theta_solvers.CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_theta_solver_keeps_the_contract(name, check):
    check(SOLVERS[name])


@pytest.mark.parametrize("check", backends.CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_keeps_the_contract(name, check):
    check(BACKENDS[name])


class _Careless:
    """A θ-solver that breaks the contract in the ways the suite looks for: it ignores validity, proposes one
    point twice and draws from its own unseeded generator."""

    name = "careless"

    def propose(self, task, n, rng):
        point = np.random.default_rng().random(task.dim)
        return np.vstack([point] * n)


def test_the_theta_solver_suite_fails_a_solver_that_breaks_the_contract():
    for check in theta_solvers.CHECKS:
        with pytest.raises(AssertionError):
            check(_Careless)
    with pytest.raises(AssertionError, match="check_shape_and_bounds"):
        theta_solvers.check_theta_solver(_Careless)


class _Fallback:
    """A backend that says it cannot run here, then compiles anyway on another engine (ONNX Runtime's CPU)."""

    name = "fallback"

    def __init__(self):
        self.cpu = BACKENDS["onnxruntime"]

    def available(self):
        return False, "no such device here"

    def compile(self, model, knobs, precision="fp32"):
        return self.cpu.compile(model, knobs, precision)


def test_the_backend_suite_fails_a_backend_that_falls_back_where_it_cannot_run():
    with pytest.raises(AssertionError, match="yet compile"):
        backends.check_refuses_to_compile_where_it_cannot_run(_Fallback())


POOLS = {"WorkerPool": lambda evaluator, limits: WorkerPool(evaluator, 2, limits),
         "InProcessPool": lambda evaluator, limits: InProcessPool(evaluator, limits)}
"""The pools this machine runs without a cluster; the Dask pool runs the suite in tests/test_distributed.py."""


@pytest.mark.parametrize("check", pools.CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(POOLS))
def test_every_pool_keeps_the_contract(name, check):
    check(POOLS[name])


def test_each_pool_declares_what_it_isolates():
    with WorkerPool(lambda config: 1.0, 1) as worker:
        assert worker.isolates == {"timeout", "crash", "memory"}
    assert InProcessPool(lambda config: 1.0).isolates == {"timeout"}  # the main thread: an interval timer


class _Swapping(InProcessPool):
    """A pool that hands back each observation under another config's ticket (the last one's for the first)."""

    def next(self):
        ticket, obs = self.finished.pop(0)
        return self.tickets - 1 - ticket, obs


def test_the_pool_suite_fails_a_pool_that_mixes_up_its_tickets():
    with pytest.raises(AssertionError, match="ticket"):
        pools.check_every_config_comes_back_once(lambda evaluator, limits: _Swapping(evaluator, limits))
