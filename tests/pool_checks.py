"""Candidates shared by the tests of the pools (the pools' contract is admm_tune/testing/pools.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def sleepy(config):
    """Sleeps ``s`` seconds or, given ``until``, until that file exists (60 s at most)."""
    if "until" in config:
        deadline = time.monotonic() + 60
        while not os.path.exists(config["until"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        return 1.0
    time.sleep(config.get("s", 0.05))
    return 1.0


def _ended(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def meanwhile(log: str, config) -> float:
    """A fast candidate (``m == "fast"``) sleeps 0.05 s and logs its end to ``log``; a slow one runs until five
    more fast ones have ended (10 s at most): only a search that goes on while it runs ends it early.

    Five, for three that both started after it and were recorded before it: with two workers, one of the five
    may have been running when the slow one started, and the last may reach the journal after it."""
    path = Path(log)
    if config["m"] == "slow":
        target, deadline = _ended(path) + 5, time.monotonic() + 10
        while _ended(path) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        return 1.0
    time.sleep(0.05)
    with path.open("a") as f:
        f.write("ended\n")
    return 1.0


def fit_in_a_pool_worker(seed: int) -> tuple[float, list[str]]:
    """An estimator fitted inside a ``multiprocessing.Pool`` worker (a daemonic process): its score and warnings."""
    import warnings

    from sklearn.datasets import load_iris

    from admm_tune import AutoPipelineClassifier

    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AutoPipelineClassifier(max_evals=3, cv=3, random_state=seed, time_limit=60).fit(X, y)
    return float(model.score(X, y)), [str(w.message) for w in caught if "daemonic" in str(w.message)]
