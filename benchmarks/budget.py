"""Budget adherence: wall time of a whole ``fit`` call (search, final refit, deployment, result) against its
time budget, on varied tables, with and without a deployment.

The promise (``runner.Clock``): every call ends within ``max(1.1 × budget, budget + 5 s)``.  The tables are the
cases that overran before: a 240-row table with a 143-value ID column (one-hot × polynomial features took 164 s
of a 30 s budget), a 200 × 120 table (polynomial features, still running at 280 s of 20 s), and scikit-learn's
digits and diabetes.

Usage: ``python benchmarks/budget.py [--budgets 10,30] [--seeds 0]`` → ``benchmarks/results/budget.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from _results import save

import admm_tune


def id_column() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"id": [f"c{i}" for i in rng.integers(0, 143, 240)], "a": rng.normal(size=240),
                      "b": rng.normal(size=240)})
    return X, (X["a"] + rng.normal(size=240) > 0).astype(int).to_numpy()


def wide() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 120)), columns=[f"f{i}" for i in range(120)])
    return X, (X["f0"] - X["f1"] > 0).astype(int).to_numpy()


def bundled(name: str):
    def load() -> tuple[pd.DataFrame, np.ndarray]:
        return admm_tune.load_problem({"data": f"sklearn:{name}"}).data.X, \
            admm_tune.load_problem({"data": f"sklearn:{name}"}).data.y
    return load


TABLES = {"id_column": id_column, "wide_120": wide, "digits": bundled("digits"), "diabetes": bundled("diabetes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="10,30", help="seconds, comma-separated")
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    rows = []
    for name, load in TABLES.items():
        X, y = load()
        for seconds in [float(b) for b in args.budgets.split(",")]:
            for deployment in (None, "cpu"):
                for seed in range(args.seeds):
                    problem = {"name": name, "data": {"X": X, "y": y}, "objective": {"cv": 3},
                               "budget": {"seconds": seconds}, "seed": seed}
                    if deployment:
                        problem["deployment"] = deployment
                    start = time.monotonic()
                    error = ""
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            result = admm_tune.fit(problem, progress=False, storage="memory")
                        evaluations, pipeline = result.n_evaluations, result.refit
                    except admm_tune.RunError as exc:
                        evaluations, pipeline, error = 0, "", str(exc)[:120]
                    wall = time.monotonic() - start
                    rows.append({"table": name, "deployment": deployment or "none", "seed": seed, "budget_s": seconds,
                                 "wall_s": round(wall, 2), "overrun": round(wall / seconds, 3),
                                 "bound_s": max(1.1 * seconds, seconds + 5), "within": wall <= max(1.1 * seconds,
                                                                                                 seconds + 5),
                                 "evaluations": evaluations, "pipeline": pipeline, "error": error})
                    print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    save("budget", frame, markdown(frame))


def markdown(frame: pd.DataFrame) -> list[str]:
    """The results table of the runs in ``frame`` (also rebuilt from the committed CSV by the tests)."""
    budgets = ",".join(f"{b:g}" for b in sorted(frame.budget_s.unique()))
    lines = ["# Budget adherence", "", f"`python benchmarks/budget.py --budgets {budgets}` on a 2-core machine; wall "
             "time of the whole `fit` call (search, final refit and deployment, result).", "",
             "| table | deployment | budget (s) | wall (s) | wall / budget | bound (s) | within | evaluations | "
             "pipeline |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        source = r.pipeline if isinstance(r.pipeline, str) else ""
        kind = "refit" if source.startswith("refit") else "first-fold fallback" if source else str(r.error)
        lines.append(f"| {r.table} | {r.deployment} | {r.budget_s:g} | {r.wall_s:.1f} | {r.overrun:.2f} | "
                     f"{r.bound_s:g} | {'yes' if r.within else 'NO'} | {r.evaluations} | {kind} |")
    lines += ["", f"Within the bound in {int(frame.within.sum())} of {len(frame)} runs; wall / budget: median "
              f"{frame.overrun.median():.2f}, max {frame.overrun.max():.2f}."]
    return lines


if __name__ == "__main__":
    main()
