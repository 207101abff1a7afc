"""Build the warm-start portfolio: pipelines good across many data sets that no test or benchmark scores.

Greedy portfolio construction after auto-sklearn 2.0 (Feurer et al., JMLR
2022, §4): a candidate pool (every estimator of the bundled space at its
defaults behind the standard scaler, the classifiers also with
``class_weight="balanced"``, and ``--random`` uniform draws of the whole
space) is scored on every training set (3-fold CV, balanced accuracy /
R², as the benchmarks do); each candidate's *normalised regret* on a set is
``(loss - best) / (chance - best)``, clipped to [0, 1], where ``best`` is
the pool's lowest loss there and ``chance`` a constant predictor's
(``1 - 1/classes`` for balanced accuracy, 1 for R²); a failure or a
time-out counts 1.  The portfolio starts empty and adds, ``--size`` times,
the candidate that most lowers the mean over the sets of the regret of the
portfolio's best member.  A candidate whose evaluation took more than
``--slow`` seconds on any set is left out of the choice: the portfolio
supplies a run's first evaluations, which a time budget must afford.

The training sets are generated here with shapes and ``random_state`` values
(101-110 classification, 201-208 regression) that no test, no benchmark
(``benchmarks/wall_time.py``'s ``datasets()`` use ``random_state=0``) and no
bundled problem uses.

Rows (candidate × set: loss, seconds) go to ``benchmarks/results/portfolio.csv``
as they are measured and are skipped when already there, so a run resumes;
the portfolio goes to ``search_spaces/portfolio.json`` with how it was built.

Usage::

    python benchmarks/portfolio.py [--random 48] [--size 8] [--slow 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from _results import RESULTS  # beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from admm_tune.data import load_dataset  # noqa: E402
from admm_tune.evaluate.pipeline import MLEvaluator  # noqa: E402
from admm_tune.observation import Observation  # noqa: E402
from admm_tune.problem import DEFAULT_SCORING, Objective  # noqa: E402
from admm_tune.space import SearchSpace  # noqa: E402

OUT = ROOT / "search_spaces" / "portfolio.json"
CSV = RESULTS / "portfolio.csv"
LIMIT_S = 10.0
"""An evaluation still running after this many seconds is stopped and counts as a failure."""


def training_sets() -> dict[str, tuple[str, callable]]:
    """name → (task, ``() -> (X, y)``); generated, with parameters and seeds nothing else here uses."""
    from sklearn import datasets as d

    def generated(make, noise_columns=0, scales=None, **kw):
        def load():
            X, y = make(**kw)
            if noise_columns:
                rng = np.random.default_rng(kw["random_state"])
                X = np.hstack([X, rng.normal(size=(len(X), noise_columns))])
            return (X * scales if scales is not None else X), y
        return load

    def board(seed, cells, noise_columns):  # a checkerboard on two features
        def load():
            rng = np.random.default_rng(seed)
            X = rng.uniform(0, 1, size=(400, 2 + noise_columns))
            return X, ((np.floor(cells * X[:, 0]) + np.floor(cells * X[:, 1])) % 2).astype(int)
        return load

    def smooth(seed, n_features):  # a smooth non-linear target
        def load():
            rng = np.random.default_rng(seed)
            X = rng.uniform(-1, 1, size=(400, n_features))
            return X, np.sin(3 * X[:, 0]) + X[:, 1] ** 2 - X[:, 2] * X[:, 3] + rng.normal(0, 0.1, 400)
        return load

    def steps(seed):  # a piecewise-constant target (what trees are for)
        def load():
            rng = np.random.default_rng(seed)
            X = rng.uniform(0, 1, size=(400, 8))
            return X, np.floor(4 * X[:, 0]) + 2 * (X[:, 1] > 0.5) * (X[:, 2] > 0.3) + rng.normal(0, 0.2, 400)
        return load

    mc, c, r = d.make_classification, "classification", "regression"
    sets = {
        "cls_redundant": generated(mc, n_samples=400, n_features=10, n_informative=3, n_redundant=2, random_state=101),
        "cls_four_class": generated(mc, n_samples=500, n_features=30, n_informative=10, n_classes=4,
                                    random_state=102),
        "cls_hard": generated(mc, n_samples=300, n_features=6, n_informative=6, n_redundant=0, class_sep=0.5,
                              random_state=103),
        "cls_skewed": generated(mc, n_samples=600, n_features=20, n_informative=5, weights=[0.8, 0.2], flip_y=0.05,
                                random_state=104),
        "cls_blobs": generated(d.make_blobs, n_samples=400, centers=5, n_features=6, cluster_std=3.0,
                               random_state=105),
        "cls_checkerboard": board(106, 3, 4),
        "cls_moons_noise": generated(d.make_moons, 6, n_samples=400, noise=0.35, random_state=107),
        "cls_quantiles": generated(d.make_gaussian_quantiles, n_samples=500, n_features=6, n_classes=2,
                                   random_state=108),
        "cls_three_skewed": generated(mc, n_samples=600, n_features=10, n_informative=5, n_classes=3,
                                      weights=[0.7, 0.2, 0.1], random_state=109),
        "cls_scaled": generated(mc, scales=np.logspace(-3, 4, 12), n_samples=400, n_features=12, n_informative=6,
                                random_state=110),
        "cls_one_cluster": generated(mc, n_samples=400, n_features=8, n_informative=4, n_clusters_per_class=1,
                                     random_state=111),
        "cls_no_hypercube": generated(mc, n_samples=400, n_features=10, n_informative=6, hypercube=False,
                                      random_state=112),
        "cls_wide": generated(mc, n_samples=250, n_features=60, n_informative=8, random_state=113),
        "cls_blobs_tight": generated(d.make_blobs, n_samples=300, centers=3, n_features=4, cluster_std=1.5,
                                     random_state=114),
        "cls_board_fine": board(115, 4, 2),
        "cls_circles_noise": generated(d.make_circles, 4, n_samples=400, noise=0.15, factor=0.6, random_state=116),
        "cls_quantiles_three": generated(d.make_gaussian_quantiles, n_samples=450, n_features=3, n_classes=3,
                                         random_state=117),
        "cls_flipped": generated(mc, n_samples=500, n_features=15, n_informative=10, flip_y=0.3, random_state=118),
        "cls_many_classes": generated(mc, n_samples=600, n_features=16, n_informative=10, n_classes=6,
                                      random_state=119),
        "cls_rare": generated(mc, n_samples=700, n_features=12, n_informative=4, weights=[0.95, 0.05],
                              random_state=120),
        "reg_friedman1": generated(d.make_friedman1, n_samples=400, n_features=8, noise=0.5, random_state=201),
        "reg_friedman2": generated(d.make_friedman2, n_samples=400, noise=30.0, random_state=202),
        "reg_friedman3": generated(d.make_friedman3, n_samples=400, noise=0.3, random_state=203),
        "reg_linear": generated(d.make_regression, n_samples=400, n_features=15, n_informative=5, noise=20.0,
                                random_state=204),
        "reg_low_rank": generated(d.make_regression, n_samples=400, n_features=20, effective_rank=5, noise=1.0,
                                  random_state=205),
        "reg_sparse": generated(d.make_sparse_uncorrelated, n_samples=400, n_features=10, random_state=206),
        "reg_smooth": smooth(207, 6),
        "reg_wide": generated(d.make_regression, n_samples=300, n_features=50, n_informative=10, noise=5.0,
                              random_state=208),
        "reg_friedman1_noisy": generated(d.make_friedman1, 5, n_samples=300, n_features=5, noise=3.0,
                                         random_state=209),
        "reg_smooth_wide": smooth(210, 12),
        "reg_steps": steps(211),
        "reg_scaled": generated(d.make_regression, scales=np.logspace(-2, 3, 10), n_samples=400, n_features=10,
                                n_informative=6, noise=10.0, random_state=212),
        "reg_friedman2_small": generated(d.make_friedman2, n_samples=200, noise=100.0, random_state=213),
        "reg_bias": generated(d.make_regression, n_samples=400, n_features=8, n_informative=8, bias=50.0,
                              noise=40.0, random_state=214),
    }
    return {name: (c if name.startswith("cls_") else r, load) for name, load in sets.items()}


def pool(space: SearchSpace, n_random: int, seed: int) -> list[dict]:
    """Every estimator at its defaults behind the standard scaler (classifiers also balanced), then random draws."""
    candidates = []
    for algo in space.module("estimator").algorithms:
        choice = {"scaler": "standard", "transformer": "none", "estimator": algo.name}
        candidates.append(space.complete(choice))
        if any(p.name == "class_weight" for p in algo.params):
            candidates.append(space.complete({**choice, f"estimator.{algo.name}.class_weight": "balanced"}))
    rng = np.random.default_rng(seed)
    candidates += [space.sample(rng) for _ in range(n_random)]
    return [c for i, c in enumerate(candidates) if c not in candidates[:i]]


class _Late(BaseException):
    """An evaluation past :data:`LIMIT_S` (not an Exception: the evaluator must not catch it)."""


def _late(signum, frame):
    raise _Late


def measure(task: str, sets: dict, candidates: list[dict], done: pd.DataFrame) -> pd.DataFrame:
    """Score every candidate on every set of ``task`` not in ``done``; append each row to the CSV."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGALRM, _late)
    space = SearchSpace.load(task)
    seen = set(zip(done["set"], done["config"])) if len(done) else set()
    for name, (kind, load) in sets.items():
        if kind != task:
            continue
        X, y = load()
        data = load_dataset({"X": X, "y": y}, task=task)
        evaluator = MLEvaluator(space, data, Objective(DEFAULT_SCORING[task], cv=3), seed=0)
        chance = 1.0 - 1.0 / len(np.unique(y)) if task == "classification" else 1.0
        for i, config in enumerate(candidates):
            text = json.dumps(config, sort_keys=True)
            if (name, text) in seen:
                continue
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
            try:
                with threadpool_limits(1):
                    obs = evaluator(config)
            except _Late:
                obs = Observation.failed(f"timeout: over {LIMIT_S:g} s")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            row = {"task": task, "set": name, "candidate": i, "config": text,
                   "loss": obs.loss if obs.ok else math.nan, "chance": chance,
                   "seconds": time.perf_counter() - start, "reason": obs.reason[:200]}
            pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            print(f"{name} #{i} loss={row['loss']:.4f} {row['seconds']:.2f}s", flush=True)
    return done


def regret(rows: pd.DataFrame) -> pd.DataFrame:
    """Normalised regret, sets × candidates (their config JSON): ``(loss - best) / (chance - best)`` in [0, 1];
    failures 1."""
    table = rows.pivot_table(index="set", columns="config", values="loss", aggfunc="first")
    table = table.reindex(columns=sorted(rows["config"].unique()))
    best = table.min(axis=1)
    chance = rows.groupby("set")["chance"].first().reindex(table.index)
    spread = (chance - best).clip(lower=1e-9)
    return table.sub(best, axis=0).div(spread, axis=0).clip(0.0, 1.0).fillna(1.0)


def greedy(table: pd.DataFrame, size: int) -> list[tuple[str, float]]:
    """Candidates in the order greedy construction adds them, with the portfolio's mean regret after each.

    Ties (once every set has a member at regret 0, all further picks tie) go
    to the candidate with the lowest mean regret on its own.
    """
    chosen: list[tuple[str, float]] = []
    current = np.ones(len(table))
    alone = table.mean(axis=0)
    for _ in range(min(size, table.shape[1])):
        scores = {c: float(np.minimum(current, table[c].to_numpy()).mean())
                  for c in table.columns if c not in {k for k, _ in chosen}}
        pick = min(scores, key=lambda c: (round(scores[c], 9), alone[c], c))
        chosen.append((pick, scores[pick]))
        current = np.minimum(current, table[pick].to_numpy())
    return chosen


def held_out(table: pd.DataFrame, defaults: list[str], size: int) -> pd.DataFrame:
    """Leave one set out: the regret there of the first k entries of the portfolio built on the others, against
    the expected best of k distinct estimators at their defaults drawn at random (what a cold start draws),
    k = 1..size."""
    rows = []
    for name in table.index:
        order = [c for c, _ in greedy(table.drop(index=name), size)]
        for k in range(1, size + 1):
            rows.append({"set": name, "k": k, "portfolio": float(table.loc[name, order[:k]].min()),
                         "cold": expected_min(table.loc[name, defaults].to_numpy(), k)})
    return pd.DataFrame(rows)


def expected_min(values: np.ndarray, k: int) -> float:
    """Expected minimum of ``k`` of ``values`` drawn without replacement: the i-th smallest of n is the minimum
    with probability C(n - i, k - 1) / C(n, k)."""
    v, n = np.sort(values), len(values)
    return float(sum(v[i - 1] * math.comb(n - i, k - 1) for i in range(1, n + 1)) / math.comb(n, k))


def build(frame: pd.DataFrame, task: str, size: int = 8, slow: float = 5.0) -> dict:
    """The portfolio of ``task`` from the measured rows: its entries, and the tables that say how it was chosen."""
    rows = frame[frame["task"] == task]
    table = regret(rows)
    too_slow = set(rows.loc[rows["seconds"] > slow, "config"])
    usable = table[[c for c in table.columns if c not in too_slow]]
    chosen = greedy(usable, size)
    defaults = [json.dumps(c, sort_keys=True) for c in pool(SearchSpace.load(task), 0, 0)
                if all(v != "balanced" for v in c.values())]
    return {"task": task, "table": table, "slow": too_slow, "chosen": chosen, "seconds": float(rows["seconds"].sum()),
            "held_out": held_out(usable, [c for c in defaults if c in usable], size).groupby("k")[
                ["portfolio", "cold"]].mean()}


def markdown(frame: pd.DataFrame, size: int = 8, slow: float = 5.0) -> list[str]:
    """The summary ``portfolio.md``: each task's entries and the leave-one-set-out comparison."""
    lines = ["# Warm-start portfolio", "", f"`python benchmarks/portfolio.py` (rows: `{CSV.relative_to(ROOT)}`; "
             "one process, one thread, on a shared 2-core machine)."]
    for task in ("classification", "regression"):
        b = build(frame, task, size, slow)
        table = b["table"]
        lines += ["", f"## {task}", "", f"{len(table)} training sets, pool of {table.shape[1]} candidates "
                  f"({len(b['slow'])} left out: slower than {slow:g} s on a set), "
                  f"{int(b['seconds'])} s of evaluations.", "",
                  "| entry | pipeline | mean regret of the portfolio so far | its own mean regret |", "|---|---|---|---|"]
        for i, (c, after) in enumerate(b["chosen"]):
            config = json.loads(c)
            lines.append(f"| {i + 1} | {config['scaler']} → {config['transformer']} → {config['estimator']} | "
                         f"{after:.4f} | {table[c].mean():.4f} |")
        lines += ["", "Leave one training set out (portfolio built on the others; regret on the left-out set, "
                  "mean over sets), against the best of k distinct estimators at their defaults drawn at random:",
                  "", "| k | portfolio's first k | k random defaults |", "|---|---|---|"]
        lines += [f"| {k} | {row.portfolio:.4f} | {row.cold:.4f} |" for k, row in b["held_out"].iterrows()]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=48, help="random draws of the space in each task's pool")
    parser.add_argument("--size", type=int, default=8, help="portfolio entries per task")
    parser.add_argument("--slow", type=float, default=5.0, help="leave out candidates slower than this (s) on a set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pool's random draws")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame()
    sets = training_sets()
    portfolio = {"built": {"script": "benchmarks/portfolio.py", "date": date.today().isoformat(),
                           "command": " ".join(["python benchmarks/portfolio.py", *(sys.argv[1:] if argv is None
                                                                                      else argv)]),
                           "cv": 3, "method": "greedy, mean normalised regret (auto-sklearn 2.0, Feurer et al. "
                                              "2022, §4)",
                           "rows": str(CSV.relative_to(ROOT)), "summary": "benchmarks/results/portfolio.md"}}
    for task in ("classification", "regression"):
        candidates = pool(SearchSpace.load(task), args.random, args.seed)
        done = measure(task, sets, candidates, done)
    frame = pd.read_csv(CSV)
    for task in ("classification", "regression"):
        b = build(frame, task, args.size, args.slow)
        portfolio[task] = {"sets": sorted(b["table"].index), "pool": b["table"].shape[1],
                           "left_out_slow": len(b["slow"]),
                           "entries": [{"config": json.loads(c), "mean_regret_after": round(after, 4),
                                        "mean_regret_alone": round(float(b["table"][c].mean()), 4)}
                                       for c, after in b["chosen"]]}
    OUT.write_text(json.dumps(portfolio, indent=1) + "\n")
    lines = markdown(frame, args.size, args.slow)
    (RESULTS / "portfolio.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
