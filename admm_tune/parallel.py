"""Where evaluations run: isolated worker processes, one candidate at a time each.

:class:`WorkerPool` keeps ``n`` worker processes, each holding its own copy
of the evaluator (so its caches, fitted pipelines and ONNX graphs, live
there across evaluations).  A candidate goes to the worker its evaluator's
``affinity`` names (the ML part of a config), so a deployment-only move
reaches the worker that already fitted that pipeline.  Each candidate runs
under :class:`Limits`, enforced inside the worker:

- ``seconds``: an interval timer interrupts the evaluation (reason
  ``timeout``); the pool kills a worker that does not answer within a grace
  period after that (native code that never returns to Python);
- ``memory_mb``: the worker's address space is capped (``RLIMIT_AS``), so an
  allocation beyond it fails with ``MemoryError`` (reason ``memory``) instead
  of taking the machine down;
- a worker that dies (a segfault in a native library, ``os._exit``, the
  kernel's OOM killer) is reported as ``crash: SIGSEGV`` / ``crash: exit code
  3`` and replaced by a fresh one for the next candidate.

Workers are forked from a forkserver that has imported admm_tune, scikit-learn
and the backends once, so starting one takes milliseconds and never inherits
the threads (OpenMP, ONNX Runtime pools) of the process that runs the search.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import cloudpickle

from .observation import Observation
from .space import Config

PRELOAD = ["admm_tune.evaluate.deploy", "admm_tune.evaluate.function", "admm_tune.evaluate.pipeline",
           "sklearn.ensemble", "sklearn.linear_model", "sklearn.svm", "sklearn.neural_network"]
"""Modules the forkserver imports once, so that each worker starts in milliseconds."""

GRACE_S = 10.0
"""How long past its time limit a worker may stay silent before it is killed."""


@dataclass(frozen=True)
class Limits:
    """Per-candidate limits.

    Parameters
    ----------
    seconds : float, optional
        Wall-clock limit of one evaluation (None: none).
    memory_mb : int, optional
        Address-space limit of a worker process in MiB (None: none).  It
        covers the libraries a worker loads (about 0.8 GiB with ONNX Runtime
        and OpenVINO), so give a few GiB.
    """

    seconds: float | None = 600.0
    memory_mb: int | None = None


class _Timeout(BaseException):
    """Raised in a worker when a candidate's time is up (not an Exception: evaluators must not catch it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def _serve(conn: Connection, payload: bytes, path: list[str], memory_mb: int | None) -> None:
    """A worker's loop: receive ``(config, seconds)``, answer an :class:`Observation`; ``None`` ends it."""
    sys.path[:] = path  # the parent's, so that objectives defined in its modules unpickle
    if memory_mb:
        limit = int(memory_mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    evaluator = cloudpickle.loads(payload)
    signal.signal(signal.SIGALRM, _on_alarm)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        config, seconds = message
        start = time.perf_counter()
        try:
            if seconds:
                signal.setitimer(signal.ITIMER_REAL, seconds)
            obs = evaluator(config)
        except _Timeout:
            obs = Observation.failed(f"timeout: over the {seconds:g} s limit", time.perf_counter() - start)
        except MemoryError:
            obs = Observation.failed(f"memory: over the {memory_mb} MiB limit", time.perf_counter() - start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if obs.reason.startswith("error: MemoryError"):  # caught by the evaluator itself
            obs = Observation.failed(f"memory: over the {memory_mb} MiB limit ({obs.reason[7:]})", obs.duration_s)
        conn.send(obs)


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, ctx: Any, payload: bytes, memory_mb: int | None) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, payload, list(sys.path), memory_mb), daemon=True)
        self.process.start()
        child.close()

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()

    def death(self) -> str:
        """Why the process ended: ``crash: SIGSEGV`` or ``crash: exit code N``."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is not None and code < 0:
            try:
                return f"crash: {signal.Signals(-code).name}"
            except ValueError:
                return f"crash: signal {-code}"
        return f"crash: exit code {code}"


class WorkerPool:
    """``n`` isolated workers evaluating candidates under :class:`Limits`.

    Parameters
    ----------
    evaluator : callable
        ``config -> Observation``; it is pickled (cloudpickle) into each worker.
        An ``affinity(config) -> str`` method, when it has one, routes configs
        that share it to the same worker.
    n_workers : int
    limits : Limits
    """

    def __init__(self, evaluator: Any, n_workers: int = 1, limits: Limits = Limits()) -> None:
        self.payload = cloudpickle.dumps(evaluator)
        self.affinity = getattr(evaluator, "affinity", lambda config: repr(sorted(config.items())))
        self.limits = limits
        self.workers: list[_Worker | None] = [None] * max(1, n_workers)
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker."""
        for i, worker in enumerate(self.workers):
            if worker is not None:
                worker.stop()
                self.workers[i] = None

    def evaluate(self, configs: Sequence[Config]) -> list[Observation]:
        """Evaluate ``configs`` (at most one per worker at a time), in their order."""
        results: list[Observation | None] = [None] * len(configs)
        queue = list(range(len(configs)))
        while queue:
            assigned = self._assign([configs[i] for i in queue])
            running: dict[int, tuple[int, float]] = {}  # worker → (config index, start)
            for slot, worker_index in assigned.items():
                index = queue[slot]
                worker = self._worker(worker_index)
                try:
                    worker.conn.send((configs[index], self.limits.seconds))
                except (BrokenPipeError, OSError):
                    results[index] = Observation.failed(worker.death())
                    self.workers[worker_index] = None
                    continue
                running[worker_index] = (index, time.perf_counter())
            queue = [queue[s] for s in range(len(queue)) if s not in assigned]
            self._collect(running, results)
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _assign(self, configs: Sequence[Config]) -> dict[int, int]:
        """Slot of ``configs`` → worker: the affinity's worker when free, else any free one."""
        n = len(self.workers)
        free = list(range(n))
        assigned: dict[int, int] = {}
        for slot, config in enumerate(configs):
            preferred = hash(self.affinity(config)) % n
            if preferred in free:
                assigned[slot] = preferred
                free.remove(preferred)
        for slot in range(len(configs)):
            if slot not in assigned and free:
                assigned[slot] = free.pop(0)
        return assigned

    def _worker(self, index: int) -> _Worker:
        worker = self.workers[index]
        if worker is None or not worker.alive():
            worker = self.workers[index] = _Worker(self.ctx, self.payload, self.limits.memory_mb)
        return worker

    def _collect(self, running: dict[int, tuple[int, float]], results: list[Observation | None]) -> None:
        """Wait for the running workers' answers; kill those past their time and report the dead."""
        limit = None if self.limits.seconds is None else self.limits.seconds + GRACE_S
        while running:
            conns = {self.workers[w].conn: w for w in running}  # type: ignore[union-attr]
            timeout = None
            if limit is not None:
                oldest = min(start for _, start in running.values())
                timeout = max(0.0, oldest + limit - time.perf_counter())
            for conn in wait(list(conns), timeout=timeout):
                w = conns[conn]
                index, start = running.pop(w)
                try:
                    results[index] = conn.recv()
                except (EOFError, OSError):
                    results[index] = Observation.failed(self.workers[w].death(),  # type: ignore[union-attr]
                                                        time.perf_counter() - start)
                    self.workers[w] = None
            if limit is not None:
                for w, (index, start) in list(running.items()):
                    if time.perf_counter() - start >= limit:
                        self.workers[w].stop(kill=True)  # type: ignore[union-attr]
                        self.workers[w] = None
                        results[index] = Observation.failed(
                            f"timeout: over the {self.limits.seconds:g} s limit (killed)", time.perf_counter() - start)
                        del running[w]


__all__ = ["Limits", "WorkerPool"]
