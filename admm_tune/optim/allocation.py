"""How the z-step shares the θ-steps among the best algorithms, so that tuning one never starves the others.

Following the best merit alone, the z-step gives every θ-step to the
structure tuned most: a structure tuned once reaches less than one tuned for
many iterations, so it never gets the θ-steps that would show what it can do
(one structure then takes most iterations, and every other estimator stays
near its defaults).  Rising bandits (Li et al.,
"Efficient Automatic CASH via Rising Bandits", AAAI 2020) name the cause: an
arm's reward rises with the tuning it gets, so comparing arms tuned unequally
judges the tuning, not the arm.

So in each module, the algorithms are ranked by their *projected* merit
(:func:`projected`: the best merit, less the gain of their last θ-step, as
rising bandits extrapolate an arm's curve), and the best ``top`` share the
θ-steps in successive halving's geometric proportions by rank, ``1/2, 1/4,
1/8, …`` normalised (:func:`shares`), shares of what the θ-steps spend of
the budget: evaluations, or seconds under a time budget, so an algorithm ten
times as slow gets a tenth of the θ-steps for its share (improvement per
second).  The next θ-step goes to the algorithm furthest
behind its share once that step is paid for (:func:`behind`).  The leader keeps about half of
all θ-steps, the runner-up a quarter, and so on; each count grows with the
budget, and an algorithm that rises in rank as it is tuned gets more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TOP = 4
"""Algorithms of a module that share the θ-steps by default (``OptimizerSettings.shared_algorithms``)."""


def shares(k: int) -> list[float]:
    """Share of the θ-steps of the algorithms ranked ``0 … k − 1``: ``2^-rank``, normalised to sum 1."""
    weights = [0.5**rank for rank in range(k)]
    return [w / sum(weights) for w in weights]


def behind(ranked: Sequence[str], spent: Mapping[str, float], current: str, top: int = TOP,
           cost: Mapping[str, float] | None = None) -> tuple[str, float]:
    """The algorithm the next θ-step should go to instead of ``current``, and by how much it lags.

    Parameters
    ----------
    ranked : sequence of str, length ≥ 1
        Algorithms, best projected merit first; the first ``top`` share the θ-steps.
    spent : mapping
        What each algorithm's θ-steps took so far (missing: 0), in the
        budget's unit: evaluations, or seconds under a time budget.
    current : str
        Where the z-step would put the next θ-step.
    top : int
        How many share the θ-steps.
    cost : mapping, optional
        What one more θ-step of each would take, in the same unit (missing: 1).

    Returns
    -------
    (str, float)
        Of the first ``top``, the one with the lowest ``(spent + cost) / share``
        (a tie goes to the better rank), and ``current``'s value of that
        ratio over the chosen one's (above 1: the chosen one lags).  When
        ``current`` is not among the first ``top``: ``(current, 1.0)``.
    """
    shared = list(ranked[:top])
    if current not in shared:
        return current, 1.0
    weight = dict(zip(shared, shares(len(shared))))
    cost = cost or {}

    def need(name: str) -> float:
        return (spent.get(name, 0.0) + cost.get(name, 1.0)) / weight[name]

    chosen = min(shared, key=lambda name: (need(name), shared.index(name)))
    return chosen, need(current) / need(chosen)


def projected(history: Sequence[tuple[Any, float, bool]]) -> float:
    """An algorithm's best merit less the gain of its last θ-step (inf when none of its evaluations counts).

    Parameters
    ----------
    history : sequence of (record, merit, counts)
        The algorithm's evaluations in the order they came in; ``record``
        has ``candidate.step`` and ``candidate.iteration``; only those that
        ``count`` (full, feasible) enter a best merit.
    """
    now = [m for _, m, ok in history if ok]
    if not now:
        return float("inf")
    theta = [i for i, (r, _, _) in enumerate(history) if r.candidate.step == "theta"]
    if not theta:
        return min(now)
    last = max(history[i][0].candidate.iteration for i in theta)
    first = min(i for i in theta if history[i][0].candidate.iteration == last)
    before = [m for _, m, ok in history[:first] if ok]
    return min(now) - (max(0.0, min(before) - min(now)) if before else 0.0)
