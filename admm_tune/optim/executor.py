"""How the optimiser hands candidates out for evaluation: the :class:`Executor` protocol.

The optimiser starts a candidate whenever the executor has a free slot and
takes results back one at a time, in the order they finish.  With one slot
this is the plain sequential loop; with several, evaluations overlap and no
slot waits for the slowest member of a batch (see ``docs/optimiser.md``).
"""

from __future__ import annotations

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
