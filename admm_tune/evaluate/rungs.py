"""Row rungs: the nested subsamples a tall table's candidates are scored on before its full rows.

A table of ``N`` training rows is scored on rungs of ``N / 4^K, ...,
N / 4, N`` rows, ``K`` the largest with ``N / 4^K`` at least
:data:`FIRST_RUNG_ROWS` (so a table under ``4 ×`` that many rows, 20,000, has one
rung: all of it).  Each rung is a prefix of one seeded permutation of the
rows (:func:`nested_order`), so the rungs are nested, the same for every
candidate (their losses are paired), and, for classification, every prefix
keeps the classes' shares.  How an evaluator climbs them (when it stops, how
it predicts the next rung's time) is :class:`~admm_tune.evaluate.pipeline.MLEvaluator`'s;
the rule is in ``docs/optimiser.md``, "Tall tables".
"""

from __future__ import annotations

import math

import numpy as np

FIRST_RUNG_ROWS = 5_000
"""Rows of a tall table's smallest rung (at least; at most ``RUNG_FACTOR`` times as many)."""
RUNG_FACTOR = 4
"""Rows grow by this factor from one rung to the next."""
GROWTH = (0.7, 2.0, 1.0)
"""A fit's seconds grow as ``rows ** a``: ``a`` measured on the last two rungs, kept within the first two bounds
(the third: before two rungs are done).  Predicts whether the next rung fits in the time left."""


def rung_sizes(n_rows: int) -> tuple[int, ...]:
    """The rungs' row counts, smallest first, the last ``n_rows``.

    Parameters
    ----------
    n_rows : int
        Training rows of the table.

    Returns
    -------
    tuple of int
        ``(n_rows,)`` for a table under ``RUNG_FACTOR * FIRST_RUNG_ROWS`` rows.
    """
    k = 0
    while n_rows / RUNG_FACTOR ** (k + 1) >= FIRST_RUNG_ROWS:
        k += 1
    return tuple(int(n_rows // RUNG_FACTOR ** j) for j in range(k, 0, -1)) + (int(n_rows),)


def nested_order(y: np.ndarray, stratified: bool, seed: int | None) -> np.ndarray:
    """A seeded permutation of the rows whose every prefix keeps each class's share (``stratified``).

    Each class's rows get evenly spaced keys in ``[0, 1)`` (a random offset,
    then one step per row, in a random order), and the rows are sorted by
    key: a prefix of ``n`` rows holds ``n * share`` of each class, within two
    rows (systematic sampling per class).

    Parameters
    ----------
    y : ndarray of shape (n_rows,)
    stratified : bool
        Keep the classes' shares (classification); else a plain permutation.
    seed : int or None

    Returns
    -------
    ndarray of int, shape (n_rows,)
    """
    rng = np.random.default_rng(seed)
    if not stratified:
        return rng.permutation(len(y))
    keys = np.empty(len(y))
    for value in np.unique(y):
        rows = np.flatnonzero(y == value)
        keys[rows] = (rng.permutation(len(rows)) + rng.random()) / len(rows)
    return np.argsort(keys, kind="stable")


def predicted_seconds(rows: list[int], seconds: list[float], next_rows: int) -> float:
    """Seconds the next rung is expected to take, from the rungs done (``rows`` and their ``seconds``).

    Raises
    ------
    ValueError
        When no rung is done.
    """
    if not rows:
        raise ValueError("no rung done to predict from")
    low, high, default = GROWTH
    growth = default
    if len(rows) >= 2 and seconds[-2] > 0 and seconds[-1] > 0:
        growth = min(high, max(low, math.log(seconds[-1] / seconds[-2]) / math.log(rows[-1] / rows[-2])))
    return seconds[-1] * (next_rows / rows[-1]) ** growth
