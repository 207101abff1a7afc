"""How the optimiser hands candidates out for evaluation: the :class:`Executor` protocol.

The optimiser starts a candidate whenever the executor has a free slot and
takes results back one at a time, in the order they finish.  With one slot
this is the plain sequential loop; with several, evaluations overlap and no
slot waits for the slowest member of a batch (see ``docs/optimiser.md``).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..observation import Observation
from ..space import Config


@dataclass
class Candidate:
    """A point the optimiser asks to evaluate."""

    config: Config
    step: str
    iteration: int
    relaxed: dict[str, float] = field(default_factory=dict)
    incumbent: tuple[float, ...] = ()
    """The step losses (``Observation.step_losses``) of the best candidate (see ``best_record``) when this one started:
    an evaluator that scores in the same steps may stop this one once it is clearly worse.  Empty: evaluate in full."""


@runtime_checkable
class Executor(Protocol):
    """Evaluates candidates asynchronously.

    Attributes
    ----------
    capacity : int
        How many candidates may be evaluated at once; the optimiser never
        has more than this many submitted and not yet returned.
    """

    capacity: int

    def submit(self, candidate: Candidate) -> None:
        """Start evaluating ``candidate``."""

    def next(self) -> tuple[Candidate, Observation]:
        """Block until a submitted candidate finishes; return it (the same object) and its observation."""


EvaluateFn = Callable[[list[Candidate]], list[Observation]]


class SerialExecutor:
    """An :class:`Executor` over a batch callable, one candidate at a time.

    Parameters
    ----------
    evaluate : callable
        ``[candidate] -> [observation]``.
    """

    capacity = 1

    def __init__(self, evaluate: EvaluateFn) -> None:
        self.evaluate = evaluate
        self.queue: list[Candidate] = []

    def submit(self, candidate: Candidate) -> None:
        """Queue ``candidate``; :meth:`next` evaluates it."""
        self.queue.append(candidate)

    def next(self) -> tuple[Candidate, Observation]:
        """Evaluate the oldest queued candidate."""
        candidate = self.queue.pop(0)
        (observation,) = self.evaluate([candidate])
        return candidate, observation


class SimulatedExecutor:
    """An :class:`Executor` with ``capacity`` slots on a simulated clock.

    Each candidate takes ``duration(config)`` units of simulated time and
    :meth:`next` returns the first to finish, so the optimiser's
    asynchronous loop can be studied (tests, ``benchmarks/async_quality.py``)
    deterministically and without real workers.

    Parameters
    ----------
    capacity : int
    duration : callable
        ``config -> float``, the simulated time a candidate takes.
    evaluate : callable
        ``config -> Observation``.

    Attributes
    ----------
    now : float
        The simulated time.
    log : list of (start, end)
        Every evaluation, in submission order.
    """

    def __init__(self, capacity: int, duration: Callable[[Config], float],
                 evaluate: Callable[[Config], Observation]) -> None:
        self.capacity = capacity
        self.duration = duration
        self.evaluate = evaluate
        self.now = 0.0
        self.running: list[tuple[float, int, Candidate]] = []
        self.log: list[tuple[float, float]] = []

    def submit(self, candidate: Candidate) -> None:
        """Start ``candidate`` now; it ends ``duration`` later."""
        if len(self.running) >= self.capacity:
            raise RuntimeError(f"more than {self.capacity} candidates submitted at once")
        end = self.now + float(self.duration(candidate.config))
        heapq.heappush(self.running, (end, len(self.log), candidate))
        self.log.append((self.now, end))

    def next(self) -> tuple[Candidate, Observation]:
        """Advance the clock to the first candidate to finish and evaluate it."""
        end, _, candidate = heapq.heappop(self.running)
        self.now = end
        return candidate, self.evaluate(candidate.config)

    def idle_share(self) -> float:
        """Share of slot-time left idle between the first and the last start."""
        last_start = max(start for start, _ in self.log)
        if last_start == 0:
            return 0.0
        busy = sum(min(end, last_start) - start for start, end in self.log)
        return max(0.0, 1.0 - busy / (self.capacity * last_start))
