"""Scaling: evaluations per minute with n_jobs 1 and 2, and on a 2-worker Dask LocalCluster.

Two fit-dominated problems on digits (3-fold CV): ``mixed`` (forests,
boosting, SVC, MLP: fit times from 0.1 to 10 s) and ``forests`` (random
forests only: similar fit times).  Wall time counts everything a user waits
for: starting the workers, the search and the final refit.

Evaluations per minute depend on which candidates a run picks (an SVC on
digits costs 30× a small forest), and runs with different ``n_jobs`` take
different paths; so the table also gives the busy workers: evaluation
seconds per wall-clock second, which does not depend on the path.  Writes
``benchmarks/results/scaling.csv`` and ``scaling.md``.

Usage::

    python benchmarks/scaling.py [--evaluations 40] [--seeds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import admm_tune
from _results import save  # beside this script

PROBLEMS = {
    "mixed": {"name": "mixed", "data": "sklearn:digits", "objective": {"cv": 3},
              "restrict": {"estimator": ["random_forest", "extra_trees", "gradient_boosting", "svc", "mlp"],
                           "transformer": ["none", "pca"]}},
    "forests": {"name": "forests", "data": "sklearn:digits", "objective": {"cv": 3},
                "restrict": {"estimator": ["random_forest"], "transformer": ["none"], "scaler": ["none"]}},
}
MODES = {"processes, n_jobs=1": {"n_jobs": 1}, "processes, n_jobs=2": {"n_jobs": 2},
         "dask LocalCluster, 2 workers": {"n_jobs": 2, "backend": "dask"}}


def markdown(frame: pd.DataFrame) -> list[str]:
    """``scaling.md`` from the rows of ``scaling.csv``."""
    evaluations, seeds = int(frame["evaluations"].max()), int(frame["seed"].nunique())
    groups = frame.groupby(["problem", "mode"], sort=False)
    epm = groups["evaluations_per_minute"].agg(["mean", "std"])
    busy = groups["busy_workers"].agg(["mean", "std"])
    lines = ["# Scaling", "",
             f"digits, 3-fold CV, {evaluations} evaluations, seeds 0–{seeds - 1}, on this 2-core machine "
             "(wall time includes starting workers and the final refit).  `mixed`: forests, boosting, SVC, MLP; "
             "`forests`: random forests only.  Busy workers: evaluation seconds per wall-clock second.",
             f"Reproduce: `python benchmarks/scaling.py --evaluations {evaluations} --seeds {seeds}`.", "",
             "| problem | mode | evaluations per minute (mean ± sd) | speed-up | busy workers (mean ± sd) | speed-up |",
             "|---|---|---|---|---|---|"]
    for problem, mode in epm.index:
        e, b = epm.loc[(problem, mode)], busy.loc[(problem, mode)]
        e0, b0 = epm.loc[(problem, "processes, n_jobs=1"), "mean"], busy.loc[(problem, "processes, n_jobs=1"), "mean"]
        lines.append(f"| {problem} | {mode} | {e['mean']:.1f} ± {e['std']:.1f} | {e['mean'] / e0:.2f}× "
                     f"| {b['mean']:.2f} ± {b['std']:.2f} | {b['mean'] / b0:.2f}× |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for name, problem in PROBLEMS.items():
        for seed in range(args.seeds):
            for mode, options in MODES.items():
                tmp = Path(tempfile.mkdtemp())
                start = time.perf_counter()
                try:
                    result = admm_tune.fit({**problem, "budget": {"evaluations": args.evaluations}}, seed=seed,
                                           run_dir=tmp, progress=False, **options)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                seconds = time.perf_counter() - start
                busy = float(result.trials["duration_s"].sum())
                rows.append({"problem": name, "mode": mode, "seed": seed, "evaluations": len(result.trials),
                             "seconds": seconds, "evaluations_per_minute": 60 * len(result.trials) / seconds,
                             "evaluation_seconds": busy, "busy_workers": busy / seconds,
                             "best_loss": result.best.loss})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    lines = markdown(frame)
    save("scaling", frame, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
