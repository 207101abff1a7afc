"""The latency/throughput harness.

:func:`measure_call` times one inference call, the way a service makes it
(:meth:`admm_tune.serving.Model.predict` on raw records) or the graph call
alone (:func:`measure`), on a fixed batch: warm-up runs first, then timed
runs until ``max_runs`` or ``seconds`` (whichever comes first, but at least
``min_runs``).  It reports p50/p95/p99 latency of
one call, the mean, and throughput in rows per second.  Session creation
(compile) time is measured by the caller and reported apart.

Only one timing runs at a time on a machine: :func:`exclusive` holds an
advisory file lock for the duration, so parallel workers (processes, Dask
workers on one host) queue their timings instead of disturbing each other.
Five repeated measurements of one session spread by at most 3 % in p50
and 13 % in p95 on this machine (``benchmarks/results/deployment.md``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .backends.base import Session

LOCK_FILE = Path(tempfile.gettempdir()) / "admm_tune-timing.lock"


@dataclass(frozen=True)
class TimingSettings:
    """How long to time one candidate.

    Parameters
    ----------
    warmup : int
        Untimed runs first (allocations, lazy initialisation, caches).
    min_runs, max_runs : int
        Bounds on the number of timed runs.
    seconds : float
        Time budget of the timed runs (stops early once ``min_runs`` are done).
    """

    _parameter_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "warmup": {"type": int, "minimum": 0}, "min_runs": {"type": int, "minimum": 1},
        "max_runs": {"type": int, "minimum": 1}, "seconds": {"type": float, "minimum": 0, "exclusive": True}}
    """What each field accepts (read by the problem loader)."""

    warmup: int = 10
    min_runs: int = 30
    max_runs: int = 500
    seconds: float = 0.3


@dataclass(frozen=True)
class Timing:
    """Measured figures of one session at one batch size."""

    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_mean_ms: float
    throughput_rps: float
    runs: int
    batch_size: int

    def metrics(self) -> dict[str, float]:
        """The figures as constraint metrics."""
        return {k: float(v) for k, v in asdict(self).items()}


@contextlib.contextmanager
def exclusive(lock_file: Path = LOCK_FILE) -> Iterator[None]:
    """Hold the machine-wide timing lock (blocks while another timing runs)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def batch_rows(n_rows: int, batch_size: int) -> np.ndarray:
    """Row indices of a timing batch: the first rows, cycled when there are fewer than the batch."""
    return np.arange(batch_size) % n_rows


def measure(session: Session, feeds: Mapping[str, np.ndarray], settings: TimingSettings = TimingSettings()
            ) -> Timing:
    """Time ``session.run(feeds)`` (the graph call alone) under the machine-wide lock.

    Parameters
    ----------
    session : Session
    feeds : mapping
        One batch of inputs (its first dimension is the batch size).
    settings : TimingSettings
    """
    return measure_call(lambda: session.run(feeds), int(next(iter(feeds.values())).shape[0]), settings)


def measure_call(call: Callable[[], object], batch: int, settings: TimingSettings = TimingSettings()) -> Timing:
    """Time ``call()``, which handles ``batch`` rows, under the machine-wide lock: warm-up, then timed runs.

    Parameters
    ----------
    call : callable
        One inference as it is timed: the graph alone, or a service's whole
        call (:meth:`admm_tune.serving.Model.predict` on raw records).
    batch : int
        Rows per call, for ``throughput_rps``.
    settings : TimingSettings
    """
    with exclusive():
        for _ in range(settings.warmup):
            call()
        times: list[int] = []
        deadline = time.perf_counter() + settings.seconds
        while len(times) < settings.max_runs and (len(times) < settings.min_runs or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - start)
    ms = np.asarray(times, dtype=float) / 1e6
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    mean = float(ms.mean())
    return Timing(float(p50), float(p95), float(p99), mean, batch / (mean / 1e3), len(times), batch)
