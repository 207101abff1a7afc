"""The ML kind's last look before the refit: the best few candidates re-scored on fresh CV splits.

A search that compares hundreds of candidates by one k-fold CV estimate
each picks the one whose estimate is best, and so, among near-ties, the
one whose folds happened to favour it: its CV score is biased upwards
and the choice is partly noise (the "winner's curse" of model selection;
Cawley & Talbot, JMLR 11, 2010).  Re-scoring the finalists on fresh
splits, which the search never saw, and choosing by the mean over all
their folds takes most of that noise out of the choice.  Measured in
``benchmarks/results/rescore.md``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .space import describe

FINALISTS = 5
"""Candidates re-scored: the best this many distinct, fully evaluated, feasible configs by the search's loss."""

ROUNDS = 2
"""Fresh CV splits per finalist (fewer when the time budget runs out)."""

MIN_EVALUATIONS = 30
"""Runs with fewer completed evaluations skip the re-scoring: the best of a few CV estimates is little biased."""


def finalists(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a run re-scores: complete, fully evaluated, feasible, distinct configs, best :data:`FINALISTS`
    by loss (the search's pick first)."""
    done = trials[(trials["state"] == "complete") & trials["feasible"].astype(bool)]
    if "fidelity" in done:
        done = done[done["fidelity"].fillna(1.0) >= 1.0]
    return done.sort_values(["loss", "number"]).drop_duplicates("config").head(FINALISTS)


def expected_seconds(fit_s: float, score_s: float, cv: int) -> float:
    """Expected seconds of the re-scoring when each finalist fits in ``fit_s`` and scores in ``score_s`` per fold."""
    return ROUNDS * FINALISTS * cv * (fit_s + score_s)


def rescore(pool: Any, trials: pd.DataFrame, cv: int, seconds: float | None, fixed_splits: bool = False) -> dict[str, Any]:
    """Re-score the :func:`finalists` on :data:`ROUNDS` fresh CV splits; the mean over all their folds chooses.

    Each finalist's search loss (the mean of ``cv`` folds) counts as one
    round, so with two fresh rounds a finalist is judged on ``3 × cv``
    folds.  The rounds run in one worker (``Pool.final``,
    :meth:`~admm_tune.evaluate.pipeline.MLEvaluator.rescore`), interleaved.
    A finalist that fails on a fresh split drops out.

    Parameters
    ----------
    pool : Pool
        The run's pool (nothing running).
    trials : DataFrame
        The journal's trials (``Journal.trials``).
    cv : int
        Folds per split.
    seconds : float, optional
        Time the re-scoring may take (None: no limit); when even one round
        is expected to take longer (from the finalists' fold times in the
        search), it is skipped with a note.
    fixed_splits : bool
        The problem's CV splits are the user's (groups, a splitter, given
        folds): there are no fresh splits to draw, so nothing is re-scored.

    Returns
    -------
    dict
        JSON-able, in the form of a deploy run's race
        (:func:`admm_tune.deploy_problem.race`): ``objective`` ("loss"),
        ``search_pick`` and ``chosen`` (trial numbers), ``rounds`` and
        ``of_rounds``, ``seconds``, ``finalists`` (per finalist: ``trial``,
        ``configuration``, its ``search`` loss, the fresh ``rounds``' mean
        losses, ``remeasured``: the mean over all rounds; or its ``error``)
        and a ``note`` for people.
    """
    record: dict[str, Any] = {"objective": "loss", "rounds": 0, "of_rounds": ROUNDS, "seconds": 0.0,
                              "finalists": [], "search_pick": None, "chosen": None}
    entries = finalists(trials)
    done = int((trials["state"] == "complete").sum())
    if not len(entries):
        return {**record, "note": "not re-scored: no feasible candidate evaluated in full"}
    record["search_pick"] = record["chosen"] = int(entries["number"].iloc[0])
    if fixed_splits:
        return {**record, "note": "not re-scored: the CV splits are the problem's own (groups or a splitter), "
                                  "there are no fresh ones to draw"}
    if done < MIN_EVALUATIONS:
        return {**record, "note": f"not re-scored: {done} evaluations, fewer than the {MIN_EVALUATIONS} it needs: "
                                  "the best of so few CV estimates is little biased"}
    if len(entries) < 2:
        return {**record, "note": "not re-scored: one feasible candidate, nothing to compare"}
    fold_s = entries.get("metric:fit_time_s", pd.Series(0.0)).fillna(0.0) + \
        entries.get("metric:score_time_s", pd.Series(0.0)).fillna(0.0)
    one_round = cv * float(fold_s.sum())
    if seconds is not None and seconds < one_round:
        return {**record, "note": f"not re-scored: {max(seconds, 0.0):.1f} s left, a round needs about "
                                  f"{one_round:.1f} s"}
    configs = [json.loads(c) for c in entries["config"]]
    answer, why = pool.final({"finalists": configs, "rounds": ROUNDS, "seconds": seconds}, seconds)
    if answer is None or answer.get("error") or not answer["rounds"]:
        reason = why or (answer or {}).get("error") or "no round fitted in the time left"
        return {**record, "note": f"not re-scored: {reason}"}
    best: tuple[float, int] | None = None
    for (_, row), config, losses in zip(entries.iterrows(), configs, answer["losses"]):
        entry: dict[str, Any] = {"trial": int(row["number"]), "configuration": describe(config),
                                 "search": float(row["loss"])}
        if isinstance(losses, str) or not np.all(np.isfinite(losses)):
            record["finalists"].append({**entry, "error": losses if isinstance(losses, str) else
                                        "error: non-finite CV score on a fresh split"})
            continue
        rounds = [float(np.mean(fold)) for fold in losses]
        mean = float(np.mean([entry["search"], *rounds]))
        record["finalists"].append({**entry, "rounds": rounds, "remeasured": mean})
        if best is None or mean < best[0]:
            best = (mean, entry["trial"])
    record.update(rounds=int(answer["rounds"]), seconds=float(answer["seconds"]))
    if best is None:
        return {**record, "note": "re-scored: every finalist failed on a fresh split, the search's pick stays"}
    record["chosen"] = best[1]
    won = next(f for f in record["finalists"] if f["trial"] == best[1])
    kept = "the search's pick" if best[1] == record["search_pick"] else \
        f"not the search's pick (trial {record['search_pick']})"
    record["note"] = (f"re-scored: {len(entries)} finalists on {record['rounds']} fresh CV splits; trial {best[1]}, "
                      f"{kept}, has the lowest mean loss {won['remeasured']:.4g} over {record['rounds'] + 1} splits "
                      f"(its search loss {won['search']:.4g})")
    return record
