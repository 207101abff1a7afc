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
import os
import resource
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing import forkserver, popen_forkserver, spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerProcess
from typing import Any

import cloudpickle

from . import registry
from .observation import Observation
from .problem import Limits
from .space import Config

PRELOAD = ["admm_tune.evaluate.deploy", "admm_tune.evaluate.function", "admm_tune.evaluate.pipeline",
           "sklearn.ensemble", "sklearn.linear_model", "sklearn.svm", "sklearn.neural_network", "skl2onnx"]
"""Modules the forkserver imports once, so that each worker starts in milliseconds.  skl2onnx (0.7-2.8 s to
import, at every worker's first export) starts no thread; the backends are imported by the workers, since
ONNX Runtime's import starts one (a forked child inherits no threads but may inherit their locks)."""

DASK_KEPT = 2
"""Evaluators (with their caches) a Dask worker keeps: those of the runs that used it last."""

GRACE_S = 10.0
"""How long past its time limit a worker may stay silent before it is killed."""


MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
"""What multiprocessing tells a child about the parent's main module (see :class:`_NoMainPopen`)."""

_LAUNCH = threading.Lock()


class _NoMainPopen(popen_forkserver.Popen):
    """The forkserver's ``Popen``, except that the child is not told of the parent's ``__main__``.

    multiprocessing sends each child the path (or module name) of the
    parent's main module, and the child runs it as ``__mp_main__`` before
    anything else: a user's script without an ``if __name__ == "__main__":``
    guard then starts its search again in every worker, and a script read
    from standard input (``'<stdin>'``) cannot be found at all.  A worker
    needs nothing from ``__main__``: the evaluator, with the user's
    functions and classes, reaches it pickled by value (cloudpickle), as
    joblib's loky workers get theirs.
    """

    def _launch(self, process_obj: Any) -> None:
        with _LAUNCH:  # get_preparation_data is looked up on the spawn module: swap it for this launch only
            original = spawn.get_preparation_data
            spawn.get_preparation_data = lambda name: {k: v for k, v in original(name).items() if k not in MAIN_KEYS}
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_preparation_data = original


class _WorkerProcess(ForkServerProcess):
    """A process forked by the forkserver that never runs the parent's main module."""

    @staticmethod
    def _Popen(process_obj: Any) -> _NoMainPopen:
        return _NoMainPopen(process_obj)


class _Timeout(BaseException):
    """Raised in a worker when a candidate's time is up (not an Exception: evaluators must not catch it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout


EVALUATE, FINAL = "__call__", "final"
"""What a worker is asked to do with a config: evaluate it, or refit and deploy the chosen one."""


def _serve(conn: Connection, payload: bytes, path: list[str], allowed: tuple[str, ...], memory_mb: int | None
           ) -> None:
    """A worker's loop: receive ``(method, config, seconds, incumbent)``, answer; ``None`` ends it.

    ``EVALUATE`` answers an :class:`Observation` (``evaluator(config, incumbent)``
    when the optimiser gave an incumbent's step losses, see :class:`~admm_tune.optim.Candidate`).  ``FINAL`` answers
    ``evaluator.final(config)``, or, when that does not finish within
    ``seconds`` (or runs out of memory), ``evaluator.fallback(config, reason)``:
    what the search already verified for that config.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes the pool
    sys.path[:] = path  # the parent's, so that objectives defined in its modules unpickle
    registry.ALLOWED_PREFIXES = allowed  # and the packages it allowed (registry.allow)
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
        conn.send(_answer(evaluator, *message, memory_mb))


def peak_memory_mb() -> float:
    """This process's peak resident memory, in MiB (``getrusage``'s ``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def _answer(evaluator: Any, method: str, config: Config, seconds: float | None, incumbent: Sequence[float],
            memory_mb: int | None) -> Any:
    """``evaluator.<method>(config[, incumbent])`` within ``seconds`` (an interval timer; SIGALRM must be
    handled by :func:`_on_alarm`): a time-out or a memory error makes a failed observation, or for ``FINAL``
    the evaluator's fallback.  An evaluator that scores in steps may answer a time-out with what it had scored
    (``evaluator.interrupted(config, reason)``: an observation at a fidelity under 1, or None)."""
    start = time.perf_counter()
    reason = ""
    try:
        if seconds:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        answer = getattr(evaluator, method)(config, *((incumbent,) if incumbent else ()))
    except _Timeout:
        reason = f"timeout: over the {seconds:g} s limit"
    except MemoryError:
        reason = f"memory: over the {memory_mb} MiB limit" if memory_mb else "memory: out of memory"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if method == FINAL:
        return evaluator.fallback(config, reason) if reason else answer
    if reason:  # what the evaluation had scored before its time was up (an evaluator in steps), else a failure
        partial = getattr(evaluator, "interrupted", None)
        return (partial and partial(config, reason)) or Observation.failed(reason, time.perf_counter() - start)
    if answer.reason.startswith("error: MemoryError"):  # caught by the evaluator itself
        return Observation.failed(f"memory: over the {memory_mb} MiB limit ({answer.reason[7:]})",
                                  answer.duration_s)
    answer.attrs["peak_memory_mb"] = peak_memory_mb()  # the worker's, so far
    return answer


def _start_forkserver() -> None:
    """Start the forkserver with Ctrl-C ignored from its first instruction.

    It ignores SIGINT itself only once it has imported :data:`PRELOAD`
    (seconds); a Ctrl-C in between would print its traceback.  The ignored
    disposition is inherited through its exec, and by the workers it forks.
    """
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


class _CtrlC:
    """Ctrl-C while a pool is open: noted by the signal handler, raised as ``KeyboardInterrupt`` by the pool.

    Python raises ``KeyboardInterrupt`` in whatever code the main thread runs when SIGINT arrives.  In a
    weakref callback or a finaliser it is printed ("Exception ignored in ...") and lost, and the run went on
    (4 of 150 presses during runs of small evaluations); in SQLAlchemy it also logged a traceback.  While a pool
    is open, the handler only notes the press and wakes the pool's wait through a pipe; the pool raises in its
    own code, at its next call or as its wait returns.  Installed only in the main thread over Python's
    default handler (a handler of the caller's own is left alone).
    """

    def __init__(self) -> None:
        self.pressed = False
        self.previous: Any = None
        self.wake: tuple[int, int] | None = None  # (read, write) ends of the pipe the handler writes to
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.wake = os.pipe()
            for fd in self.wake:
                os.set_blocking(fd, False)
            self.previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        self.pressed = True
        try:
            os.write(self.wake[1], b"\0")  # type: ignore[index]
        except OSError:  # the pipe is full: the pool is woken already
            pass

    @property
    def fds(self) -> list[int]:
        """What a wait of the pool also watches: the pipe the handler writes to."""
        return [self.wake[0]] if self.wake is not None else []

    def check(self, ready: Sequence[Any] = ()) -> list[Any]:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (once per press); else ``ready`` less the pipe."""
        if self.wake is not None:
            try:
                os.read(self.wake[0], 4096)
            except BlockingIOError:
                pass
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt
        return [r for r in ready if r not in self.fds]

    def close(self) -> None:
        """Give SIGINT back to the handler before; raise a press not raised yet."""
        if self.wake is not None:
            signal.signal(signal.SIGINT, self.previous)
            for fd in self.wake:
                os.close(fd)
            self.wake = None
        self.check()


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, ctx: Any, payload: bytes, memory_mb: int | None) -> None:
        self.conn, child = ctx.Pipe()
        self.process = _WorkerProcess(target=_serve, args=(child, payload, list(sys.path), registry.ALLOWED_PREFIXES,
                                                           memory_mb), daemon=True)
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


def _affinity(evaluator: Any) -> Callable[[Config], str]:
    """The evaluator's ``affinity(config)``, else one key per config (no two configs share a worker's state)."""
    return getattr(evaluator, "affinity", lambda config: repr(sorted(config.items())))


class Pool(ABC):
    """Where candidates run: :meth:`submit` starts one, :meth:`next` returns whichever finishes first.

    Attributes
    ----------
    grace_s : float
        How long past its time limit a candidate may stay silent before its
        worker is killed (:data:`GRACE_S`; a time budget shortens it).
    isolates : frozenset of str
        What a candidate cannot do to the others or to the run here, each
        recorded as its own failure: ``timeout`` (it overruns its time
        limit), ``crash`` (it kills its process), ``memory`` (it exceeds
        ``Limits.memory_mb``).  ``admm_tune.testing.pools`` checks each.
    """

    limits: Limits
    grace_s: float
    isolates: frozenset[str] = frozenset()

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many configs run at once."""

    @abstractmethod
    def submit(self, config: Config, seconds: float | None = None, incumbent: Sequence[float] = ()) -> int:
        """Start evaluating ``config`` within ``seconds`` (default the limits'); return its ticket.

        ``incumbent``: the step losses the evaluator may stop ``config`` against
        (``evaluator(config, incumbent)``); empty: ``evaluator(config)``.
        """

    @abstractmethod
    def next(self) -> tuple[int, Observation]:
        """Block until a submitted config finishes; return its ticket and observation."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def final(self, config: Config, seconds: float | None) -> tuple[Any, str]:
        """``evaluator.final(config)`` run isolated within ``seconds`` (None: no limit).

        Nothing else may be running.  Returns ``(answer, "")``, where the
        answer is the evaluator's fallback when the final step ran out of
        time inside the worker, or ``(None, reason)`` when the worker had to
        be killed or died.
        """

    def evaluate(self, configs: Sequence[Config]) -> list[Observation]:
        """Evaluate ``configs`` (nothing else may be running); observations in their order."""
        tickets = [self.submit(config) for config in configs]
        results: dict[int, Observation] = {}
        while len(results) < len(tickets):
            ticket, obs = self.next()
            results[ticket] = obs
        return [results[t] for t in tickets]


class WorkerPool(Pool):
    """``n`` isolated workers evaluating candidates under :class:`Limits`.

    Candidates are evaluated asynchronously: :meth:`submit` starts one (or
    queues it while every worker is busy) and :meth:`next` returns whichever
    finishes first.

    Parameters
    ----------
    evaluator : callable
        ``config -> Observation``; it is pickled (cloudpickle) into each worker.
        An ``affinity(config) -> str`` method, when it has one, routes configs
        that share it to the same worker.
    n_workers : int
    limits : Limits
    """

    isolates = frozenset({"timeout", "crash", "memory"})

    def __init__(self, evaluator: Any, n_workers: int = 1, limits: Limits = Limits()) -> None:
        self.payload = cloudpickle.dumps(evaluator)
        self.affinity = _affinity(evaluator)
        self.limits = limits
        self.workers: list[_Worker | None] = [None] * max(1, n_workers)
        self.home: dict[str, int] = {}  # affinity → the worker that last evaluated it
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(PRELOAD)
        _start_forkserver()
        self.grace_s = GRACE_S
        self.queue: list[tuple[int, Config, float | None, tuple[float, ...]]] = []  # waiting for a worker
        self.running: dict[int, tuple[int, float, float | None]] = {}  # worker → (ticket, start, seconds)
        self.finished: list[tuple[int, Observation]] = []
        self.tickets = 0
        self.ctrl_c = _CtrlC()

    @property
    def capacity(self) -> int:
        """Number of workers."""
        return len(self.workers)

    def close(self) -> None:
        """Stop every worker; raise ``KeyboardInterrupt`` for a Ctrl-C not raised yet."""
        try:
            for i, worker in enumerate(self.workers):
                if worker is not None:
                    worker.stop()
                    self.workers[i] = None
        finally:
            self.ctrl_c.close()

    def submit(self, config: Config, seconds: float | None = None, incumbent: Sequence[float] = ()) -> int:
        """Start evaluating ``config`` on a free worker (queued while none is free); return its ticket.

        ``seconds`` (default ``limits.seconds``) bounds this evaluation; see :meth:`Pool.submit`.
        """
        self.ctrl_c.check()
        ticket = self.tickets
        self.tickets += 1
        self.queue.append((ticket, config, self.limits.seconds if seconds is None else seconds, tuple(incumbent)))
        self._dispatch()
        return ticket

    def next(self) -> tuple[int, Observation]:
        """Block until a submitted config finishes; return its ticket and observation."""
        self.ctrl_c.check()
        self._dispatch()
        while not self.finished:
            if not self.running:
                raise RuntimeError("nothing was submitted")
            self._collect()
            self._dispatch()
        return self.finished.pop(0)

    def _dispatch(self) -> None:
        """Send queued configs to free workers: the one that last evaluated the affinity when free, else any."""
        free = [w for w in range(len(self.workers)) if w not in self.running]
        if not free or not self.queue:
            return
        keys = [self.affinity(config) for _, config, _, _ in self.queue]
        assigned: dict[int, int] = {}  # queue slot → worker
        for slot, key in enumerate(keys):
            preferred = self.home.get(key, hash(key) % len(self.workers))
            if preferred in free:
                assigned[slot] = preferred
                free.remove(preferred)
        for slot in range(len(self.queue)):
            if slot not in assigned and free:
                assigned[slot] = free.pop(0)
        for slot, w in sorted(assigned.items()):
            ticket, config, seconds, incumbent = self.queue[slot]
            self.home[keys[slot]] = w  # where this affinity's state now lives
            worker = self._worker(w)
            try:
                worker.conn.send((EVALUATE, config, seconds, incumbent))
            except (BrokenPipeError, OSError):
                self.finished.append((ticket, Observation.failed(worker.death())))
                self.workers[w] = None
                continue
            self.running[w] = (ticket, time.perf_counter(), seconds)
        self.queue = [item for slot, item in enumerate(self.queue) if slot not in assigned]

    def _worker(self, index: int) -> _Worker:
        worker = self.workers[index]
        if worker is None or not worker.alive():
            worker = self.workers[index] = _Worker(self.ctx, self.payload, self.limits.memory_mb)
        return worker

    def _collect(self) -> None:
        """Wait until a running worker answers or dies, or one is past its time (killed); note the results."""
        conns = {self.workers[w].conn: w for w in self.running}  # type: ignore[union-attr]
        kill_at = {w: start + seconds + self.grace_s for w, (_, start, seconds) in self.running.items()
                   if seconds is not None}
        timeout = max(0.0, min(kill_at.values()) - time.perf_counter()) if kill_at else None
        for conn in self.ctrl_c.check(wait([*conns, *self.ctrl_c.fds], timeout=timeout)):
            w = conns[conn]
            ticket, start, _ = self.running.pop(w)
            try:
                self.finished.append((ticket, conn.recv()))
            except (EOFError, OSError):
                self.finished.append((ticket, Observation.failed(self.workers[w].death(),  # type: ignore[union-attr]
                                                                 time.perf_counter() - start)))
                self.workers[w] = None
        for w, (ticket, start, seconds) in list(self.running.items()):
            if w in kill_at and time.perf_counter() >= kill_at[w]:
                self.workers[w].stop(kill=True)  # type: ignore[union-attr]
                self.workers[w] = None
                self.finished.append((ticket, Observation.failed(
                    f"timeout: over the {seconds:g} s limit (killed)", time.perf_counter() - start)))
                del self.running[w]

    def final(self, config: Config, seconds: float | None) -> tuple[Any, str]:
        """See :meth:`Pool.final`; runs on the worker that evaluated ``config`` (it holds its fitted pipeline)."""
        if self.running or self.queue:
            raise RuntimeError("final() while candidates are running")
        self.ctrl_c.check()
        key = self.affinity(config)
        w = self.home.get(key, 0)
        worker = self._worker(w)
        start = time.perf_counter()
        try:
            worker.conn.send((FINAL, config, seconds, ()))
            if self.ctrl_c.check(wait([worker.conn, *self.ctrl_c.fds],
                                      timeout=None if seconds is None else seconds + self.grace_s)):
                return worker.conn.recv(), ""
        except (EOFError, OSError):
            self.workers[w] = None
            return None, worker.death()
        worker.stop(kill=True)
        self.workers[w] = None
        return None, f"timeout: over the {seconds:g} s left (killed after {time.perf_counter() - start:.1f} s)"


class InProcessPool(Pool):
    """Candidates evaluated one at a time in this process, where no worker process can be started.

    A daemonic process (a ``multiprocessing.Pool`` worker) may not have
    children.  There, a run evaluates its candidates itself: time limits
    hold (an interval timer, when this is the main thread), but there is no
    memory limit and no isolation from a crash, and one candidate runs at a
    time.  The evaluator is a copy, as a worker's would be.

    Parameters
    ----------
    evaluator : callable
    limits : Limits
        ``seconds`` is enforced; ``memory_mb`` cannot be, in the caller's own process.
    """


    def __init__(self, evaluator: Any, limits: Limits = Limits()) -> None:
        self.evaluator = cloudpickle.loads(cloudpickle.dumps(evaluator))
        self.limits = limits
        self.grace_s = GRACE_S
        self.finished: list[tuple[int, Observation]] = []
        self.tickets = 0
        self.timed = threading.current_thread() is threading.main_thread()  # signals reach the main thread only
        self.isolates = frozenset({"timeout"}) if self.timed else frozenset()

    @property
    def capacity(self) -> int:
        """One candidate at a time."""
        return 1

    def close(self) -> None:
        """Nothing to release."""

    def submit(self, config: Config, seconds: float | None = None, incumbent: Sequence[float] = ()) -> int:
        """Evaluate ``config`` now; :meth:`next` hands over the observation."""
        ticket = self.tickets
        self.tickets += 1
        seconds = self.limits.seconds if seconds is None else seconds
        self.finished.append((ticket, self._run(EVALUATE, config, seconds, tuple(incumbent))))
        return ticket

    def next(self) -> tuple[int, Observation]:
        """The oldest evaluation not handed over yet."""
        if not self.finished:
            raise RuntimeError("nothing was submitted")
        return self.finished.pop(0)

    def final(self, config: Config, seconds: float | None) -> tuple[Any, str]:
        """See :meth:`Pool.final`; run here."""
        return self._run(FINAL, config, seconds, ()), ""

    def _run(self, method: str, config: Config, seconds: float | None, incumbent: tuple[float, ...]) -> Any:
        if not self.timed:
            return _answer(self.evaluator, method, config, None, incumbent, None)
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        try:
            return _answer(self.evaluator, method, config, seconds, incumbent, None)
        finally:
            signal.signal(signal.SIGALRM, previous)


def in_daemonic_process() -> bool:
    """Whether this process may not start children (a ``multiprocessing.Pool`` worker is daemonic)."""
    return bool(mp.current_process().daemon)


class DaskPool(Pool):
    """Candidates evaluated on a Dask cluster, the same interface as :class:`WorkerPool`.

    The evaluator is sent to every worker once; each Dask worker keeps its
    copy (and so its caches) across evaluations.  A config goes to the
    worker that last evaluated its ``affinity`` when that one is idle, else
    to the least busy one, and :meth:`next` returns whichever finishes
    first.  Each evaluation runs sequentially inside its worker (no nested
    process pool).

    Limits: a Dask worker runs tasks in threads, where no timer can
    interrupt them, so ``seconds`` is enforced by waiting: past it (plus the
    grace period) the candidate is recorded as ``timeout``, its task
    cancelled and its worker restarted through its nanny (a thread cannot be
    stopped; without a nanny the thread runs on).  A worker that dies
    (segfault, memory) is reported as ``crash`` and restarted by its nanny (a
    local cluster of this pool's own does not retry such a task on the other
    workers; the scheduler's ``allowed-failures`` decides on other clusters);
    memory is bounded by the workers' own ``memory_limit``.

    Parameters
    ----------
    evaluator : callable
    scheduler : str, distributed.Client or None
        A scheduler address, a client, or None for a ``LocalCluster`` of
        ``n_workers`` single-threaded worker processes on this machine.
    n_workers : int
        Candidates evaluated at once (-1: one per thread of the cluster).
    limits : Limits
    """

    isolates = frozenset({"timeout", "crash"})  # memory: the workers' own memory_limit, not Limits

    def __init__(self, evaluator: Any, scheduler: Any = None, n_workers: int = 1, limits: Limits = Limits()) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.limits = limits
        self.affinity = _affinity(evaluator)
        self.cluster = None
        if isinstance(scheduler, Client):
            self.client, self.own = scheduler, False
        else:
            try:
                if scheduler is None:  # a candidate that kills its worker is not retried on the others
                    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                        self.cluster = LocalCluster(n_workers=n_workers if n_workers > 0 else os.cpu_count(),
                                                    threads_per_worker=1, processes=True, dashboard_address=None)
                    scheduler = self.cluster
                self.client, self.own = Client(scheduler), True
            except RuntimeError as exc:
                # The workers' own error (multiprocessing's "bootstrapping phase") stays in their logs; the client
                # sees that a worker process did not start.
                if _caused_by(exc, "bootstrapping phase") or _caused_by(exc, "failed to start worker process"):
                    raise RuntimeError("the Dask LocalCluster's worker processes did not start: they run your script "
                                       "again, so a script that calls admm_tune.fit outside `if __name__ == "
                                       "\"__main__\":` starts again in each of them; put it under that guard, or use "
                                       "backend='processes' (n_jobs), which needs none") from exc
                raise
        self.client.wait_for_workers(1, timeout=GRACE_S * 12)
        threads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values())
        self._capacity = n_workers if n_workers > 0 else max(1, threads)
        self.bytes = cloudpickle.dumps(evaluator)
        # hash=False: a key of this pool's own; keyed by content, another pool of the same evaluator shared it and,
        # released just as this one scattered, took the data away from under this pool's tasks
        self.payload = self.client.scatter(self.bytes, broadcast=True, hash=False)
        self.grace_s = GRACE_S
        self.running: dict[int, tuple[Any, float, str, float | None]] = {}  # ticket → (future, start, address, s)
        self.home: dict[str, str] = {}  # affinity → the worker that last evaluated it
        self.tickets = 0

    @property
    def capacity(self) -> int:
        """Candidates evaluated at once."""
        return self._capacity

    def close(self) -> None:
        """Close the client (and the local cluster) this pool started."""
        if self.own:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()

    def submit(self, config: Config, seconds: float | None = None, incumbent: Sequence[float] = ()) -> int:
        """Send ``config`` to a worker: the one that last evaluated its affinity when idle, else the least busy.

        ``seconds`` (default ``limits.seconds``) bounds this evaluation; see :meth:`Pool.submit`.
        """
        self.client.wait_for_workers(1, timeout=GRACE_S * 12)  # a nanny may be restarting a dead worker
        if self.payload.status != "finished":  # every worker holding it died: send the evaluator again
            self.payload = self.client.scatter(self.bytes, broadcast=True, hash=False)
        workers = sorted(self.client.scheduler_info()["workers"])
        busy = Counter(address for _, _, address, _ in self.running.values())
        key = self.affinity(config)
        home = self.home.get(key)
        address = home if home in workers and busy[home] == 0 else min(workers, key=lambda a: (busy[a], a != home))
        self.home[key] = address
        future = self.client.submit(_dask_evaluate, self.payload.key, self.payload, config, registry.ALLOWED_PREFIXES,
                                    tuple(incumbent), pure=False, workers=[address], allow_other_workers=True)
        ticket = self.tickets
        self.tickets += 1
        self.running[ticket] = (future, time.perf_counter(), address,
                                 self.limits.seconds if seconds is None else seconds)
        return ticket

    def next(self) -> tuple[int, Observation]:
        """Block until a submitted config finishes (or is past its time); return its ticket and observation."""
        from distributed import wait as wait_futures

        if not self.running:
            raise RuntimeError("nothing was submitted")
        while True:
            for ticket, (future, *_) in self.running.items():
                if future.done():  # finished, failed, or cancelled by the scheduler (a lost worker)
                    del self.running[ticket]
                    return ticket, _outcome(future)
            kill_at = {t: start + seconds + self.grace_s for t, (_, start, _, seconds) in self.running.items()
                       if seconds is not None}
            first = min(kill_at, key=kill_at.__getitem__) if kill_at else None
            timeout = None if first is None else max(0.0, kill_at[first] - time.perf_counter())
            try:
                wait_futures([f for f, *_ in self.running.values()], timeout=timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                future, start, address, seconds = self.running.pop(first)  # type: ignore[arg-type]
                future.cancel()
                self._restart(address)
                return first, Observation.failed(f"timeout: over the {seconds:g} s limit",  # type: ignore[return-value]
                                                 time.perf_counter() - start)
            except Exception:  # a future was cancelled meanwhile: the loop above reports it
                if not any(f.done() for f, *_ in self.running.values()):
                    raise

    def final(self, config: Config, seconds: float | None) -> tuple[Any, str]:
        """See :meth:`Pool.final`; runs in a worker process of this machine (a Dask thread cannot be interrupted)."""
        with WorkerPool(cloudpickle.loads(self.bytes), 1, self.limits) as local:
            local.grace_s = self.grace_s
            return local.final(config, seconds)

    def _restart(self, address: str) -> None:
        """Restart a worker whose thread is stuck in a timed-out evaluation, so nothing queues behind it."""
        try:
            self.client.restart_workers([address], timeout=GRACE_S * 6, raise_for_error=False)
        except Exception:  # no nanny to restart it: the thread runs on until the evaluation returns
            pass


def _caused_by(exc: BaseException | None, text: str) -> bool:
    """Whether ``text`` is in the message of ``exc`` or of an exception it was raised from or while handling."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if text in str(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _outcome(future: Any) -> Observation:
    """The observation of a finished Dask future, or why it has none."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    try:
        return future.result()
    except (KilledWorker, FutureCancelledError) as exc:  # its worker died (and the task with it)
        return Observation.failed(f"crash: the Dask worker died ({type(exc).__name__})")
    except Exception as exc:  # the task raised outside the evaluator (e.g. unpickling it)
        return Observation.failed(f"error: {type(exc).__name__}: {exc}"[:500])


def _dask_evaluate(key: str, payload: bytes, config: Config, allowed: tuple[str, ...],
                   incumbent: tuple[float, ...] = ()) -> Observation:
    """Run on a Dask worker: the evaluator it keeps for this run (unpickled once) evaluates ``config``.

    A worker keeps the evaluators of the last :data:`DASK_KEPT` runs (pools) that used it, with their caches;
    older ones are dropped, so a long-lived cluster serving run after run does not grow without bound.
    """
    from distributed import get_worker

    registry.ALLOWED_PREFIXES = tuple(dict.fromkeys(registry.ALLOWED_PREFIXES + allowed))
    worker = get_worker()
    evaluators = worker.__dict__.setdefault("_admm_tune_evaluators", {})
    if key not in evaluators:
        evaluators[key] = cloudpickle.loads(payload)
        for old in list(evaluators)[:-DASK_KEPT]:
            evaluators.pop(old, None)
    return evaluators[key](config, *((incumbent,) if incumbent else ()))


__all__ = ["DaskPool", "Limits", "Pool", "WorkerPool"]
