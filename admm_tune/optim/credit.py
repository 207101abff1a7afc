"""How the z-step judges an algorithm: by the best value it reached, with optimism while it is untuned.

A structure evaluated at its defaults only says little about what its tuned
parameters reach (judged by it, the bandit locks onto the algorithm whose
default is best).  So each algorithm of a module is judged by the *best*
merit any evaluation with it reached, and while few θ-steps have tuned it,
that judgement is raised towards 1 (to 1 while untuned; the optimism halves
with each θ-step).  The arm is then set to ``Beta(1 + m·r, 1 + m·(1 − r))``
with ``m`` the algorithm's evaluations (at most :data:`MEMORY`, so a leader
never becomes certain and others keep a chance).

A value never evaluated is held where an untuned value evaluated once is,
:data:`UNTRIED` = ``Beta(2, 1)``: judged 1 on one evaluation's evidence
(the flat ``Beta(1, 1)`` would rank it below every algorithm tried once at
its defaults).  The same holds for the categorical values, which are
otherwise credited by each evaluation (Bernoulli): one never evaluated is
as promising as one whose single evaluation was a success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MEMORY = 10
"""Most evaluations an arm's evidence counts: the width of the leader's posterior never falls below Beta(11, 1)'s."""


@dataclass
class ValueStats:
    """What the evaluations with one value of one block reached."""

    best: float = float("inf")
    evaluations: int = 0
    steps: frozenset[int] = frozenset()

    @property
    def tuned(self) -> int:
        """Number of θ-steps (iterations) that evaluated this value."""
        return len(self.steps)


def value_stats(choices: Sequence[Mapping[str, Any]], merits: Sequence[float],
                theta_steps: Sequence[int | None]) -> dict[tuple[str, str], ValueStats]:
    """Per ``(block, str(value))``: best merit, evaluations and the θ-steps among them.

    Parameters
    ----------
    choices : sequence of mappings, length n
        Each evaluation's bandit blocks (``space.choice_of(config)``).
    merits : sequence of float, length n
        Each evaluation's merit (lower is better).
    theta_steps : sequence, length n
        The iteration of each evaluation made by a θ-step, None for the others.
    """
    stats: dict[tuple[str, str], ValueStats] = {}
    for choice, merit, step in zip(choices, merits, theta_steps):
        for block, value in choice.items():
            s = stats.setdefault((block, str(value)), ValueStats())
            s.best = min(s.best, merit)
            s.evaluations += 1
            if step is not None:
                s.steps = s.steps | {step}
    return stats


def optimistic(r: float, tuned: int) -> float:
    """Reward ``r`` of a value's best merit, raised to 1 while untuned (``tuned`` θ-steps: 0), then towards 1
    by half, a quarter… after 1, 2… θ-steps."""
    return r + (1.0 - r) / 2.0**tuned


def arm(r: float, evaluations: int) -> list[float]:
    """Beta parameters ``[α, β]`` of an arm judged ``r`` on ``evaluations`` (at most :data:`MEMORY`)."""
    m = min(evaluations, MEMORY)
    return [1.0 + m * r, 1.0 + m * (1.0 - r)]


UNTRIED = arm(optimistic(0.0, 0), 1)
"""The arm of a value never evaluated: ``Beta(2, 1)``, as optimistic as an untuned value evaluated once."""
