"""The contract of a worker pool (:class:`~admm_tune.parallel.Pool`), as checks.

A pool is given as a factory ``make(evaluator, limits) -> Pool``, since each
check needs its own evaluator and limits::

    from admm_tune.testing.pools import check_pool
    check_pool(lambda evaluator, limits: MyPool(evaluator, limits))

What every pool does:

- every submitted config comes back once, under its own ticket, with the
  evaluator's observation;
- an exception in a candidate is that candidate's failure, with its
  reason; the next candidate runs;
- with room for two candidates at once, results come back as they finish,
  and a freed slot takes the next candidate at once.

What a pool does for each kind of isolation it declares
(:attr:`~admm_tune.parallel.Pool.isolates`): a candidate over its time
limit fails with ``timeout``, one that kills its process with ``crash``,
one over the memory limit with ``memory``; each time the pool goes on.
The candidates here are functions of this module, so that a pool's
workers import them by name.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..evaluate.function import FunctionEvaluator
from ..parallel import Pool
from ..problem_base import Limits
from . import run_checks

PoolFactory = Callable[[Any, Limits], Pool]

__all__ = ["CHECKS", "PoolFactory", "candidate", "check_pool"]

HANG_S = 60.0
"""How long a hanging candidate sleeps: far beyond every limit the checks set."""

GRACE_S = 1.0
"""The grace period the checks give a pool past a time limit (a pool's default is longer)."""


def candidate(config: dict[str, Any]) -> float:
    """What ``config["m"]`` says: ``fine`` returns ``config["i"]``; ``raises``, ``exits`` (the process),
    ``segfault``, ``hangs`` (:data:`HANG_S`), ``hogs`` (4 GiB); ``sleep`` sleeps ``config["s"]`` seconds, and
    ``until`` waits for the file ``config["path"]`` (60 s at most)."""
    kind = config["m"]
    if kind == "raises":
        raise ValueError("bad candidate")
    if kind == "exits":
        os._exit(3)
    if kind == "segfault":
        ctypes.string_at(0)
    if kind == "hangs":
        time.sleep(HANG_S)
    if kind == "hogs":
        import numpy as np

        return float(np.ones(4 << 30, dtype=np.uint8).sum())
    if kind == "sleep":
        time.sleep(config["s"])
    if kind == "until":
        deadline = time.monotonic() + 60
        while not os.path.exists(config["path"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return float(config.get("i", 1.0))


def _pool(make: PoolFactory, limits: Limits | None = None) -> Pool:
    pool = make(FunctionEvaluator(candidate), Limits(seconds=30.0) if limits is None else limits)
    pool.grace_s = GRACE_S
    return pool


def _name(pool: Pool) -> str:
    return type(pool).__name__


def check_every_config_comes_back_once(make: PoolFactory) -> None:
    """Five configs, five tickets, each observation the evaluator's for its config."""
    with _pool(make) as pool:
        tickets = {pool.submit({"m": "fine", "i": float(i)}): float(i) for i in range(5)}
        back = dict(pool.next() for _ in tickets)
    assert set(back) == set(tickets) and len(tickets) == 5, f"{_name(pool)}: tickets {sorted(back)}"
    for ticket, obs in back.items():
        assert obs.ok and obs.loss == tickets[ticket], f"{_name(pool)}: ticket {ticket} gave {obs}"


def check_an_exception_fails_its_candidate_only(make: PoolFactory) -> None:
    """A candidate raising ``ValueError`` fails with that reason; the next one runs."""
    with _pool(make) as pool:
        bad, good = pool.evaluate([{"m": "raises"}, {"m": "fine", "i": 2.0}])
    assert not bad.ok and bad.reason.startswith("error: ValueError: bad candidate"), f"{_name(pool)}: {bad}"
    assert good.ok and good.loss == 2.0, f"{_name(pool)}: {good}"


def check_results_come_as_they_finish(make: PoolFactory, folder: Path | None = None) -> None:
    """With two slots: a slow candidate, held until the others came back, comes back last, and a third one
    submitted after the first result runs in the freed slot meanwhile (no sleep races another)."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=folder) as tmp, _pool(make) as pool:
        if pool.capacity < 2:
            return
        release = Path(tmp) / "release"
        slow = pool.submit({"m": "until", "path": str(release)})
        fast = pool.submit({"m": "sleep", "s": 0.1})
        order = [pool.next()[0]]
        third = pool.submit({"m": "sleep", "s": 0.1})
        order.append(pool.next()[0])
        release.touch()
        order.append(pool.next()[0])
    assert order == [fast, third, slow], f"{_name(pool)}: came back as {order}, not [{fast}, {third}, {slow}]"


def _fails_then_goes_on(make: PoolFactory, isolation: str, kind: str, limits: Limits) -> None:
    """Where the pool declares ``isolation``: the candidate ``kind`` fails with that reason, and the next runs."""
    with _pool(make, limits) as pool:
        if isolation not in pool.isolates:
            return
        start = time.monotonic()
        (bad,) = pool.evaluate([{"m": kind}])
        waited = time.monotonic() - start
        (good,) = pool.evaluate([{"m": "fine", "i": 3.0}])
    assert not bad.ok and bad.reason.startswith(isolation), f"{_name(pool)}: {kind} gave {bad}"
    assert waited < HANG_S / 2, f"{_name(pool)}: {kind} took {waited:.0f} s"
    assert good.ok and good.loss == 3.0, f"{_name(pool)}: after {kind}, {good}"


def check_a_candidate_over_its_time_limit_fails_with_timeout(make: PoolFactory) -> None:
    """Where the pool isolates time: a hanging candidate fails with ``timeout`` long before it would end."""
    _fails_then_goes_on(make, "timeout", "hangs", Limits(seconds=0.5))


def check_a_candidate_that_kills_its_process_fails_with_crash(make: PoolFactory) -> None:
    """Where the pool isolates crashes: ``os._exit`` fails its candidate with ``crash``; the next one runs."""
    _fails_then_goes_on(make, "crash", "exits", Limits(seconds=30.0))


def check_a_candidate_over_the_memory_limit_fails_with_memory(make: PoolFactory) -> None:
    """Where the pool isolates memory: 4 GiB under a 2 GiB limit fails with ``memory``; the next one runs."""
    _fails_then_goes_on(make, "memory", "hogs", Limits(seconds=30.0, memory_mb=2048))


CHECKS: tuple[Callable[[PoolFactory], None], ...] = (
    check_every_config_comes_back_once, check_an_exception_fails_its_candidate_only,
    check_results_come_as_they_finish, check_a_candidate_over_its_time_limit_fails_with_timeout,
    check_a_candidate_that_kills_its_process_fails_with_crash,
    check_a_candidate_over_the_memory_limit_fails_with_memory)
"""Every check of the contract, in the order :func:`check_pool` runs them."""


def check_pool(make: PoolFactory) -> None:
    """Run :data:`CHECKS` on the pools ``make`` builds: an ``AssertionError`` names the first check it fails."""
    run_checks(CHECKS, make)
