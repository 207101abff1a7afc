"""Scaling: evaluations per minute with n_jobs 1 and 2, and on a 2-worker Dask LocalCluster.

The problem is fit-dominated (digits, forests / boosting / SVC / MLP, 3-fold
CV), so parallel evaluation should pay.  Writes
``benchmarks/results/scaling.csv`` and ``scaling.md``.

Usage::

    python benchmarks/scaling.py [--evaluations 30] [--seeds 2]
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PROBLEM = {"name": "scaling", "data": "sklearn:digits", "objective": {"cv": 3},
           "restrict": {"estimator": ["random_forest", "extra_trees", "gradient_boosting", "svc", "mlp"],
                        "transformer": ["none", "pca"]}}
MODES = {"processes, n_jobs=1": {"n_jobs": 1}, "processes, n_jobs=2": {"n_jobs": 2},
         "dask LocalCluster, 2 workers": {"n_jobs": 2, "backend": "dask"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.seeds):
        for mode, options in MODES.items():
            tmp = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            try:
                result = admm_tune.fit({**PROBLEM, "budget": {"evaluations": args.evaluations}}, seed=seed,
                                       run_dir=tmp, progress=False, **options)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            seconds = time.perf_counter() - start
            rows.append({"mode": mode, "seed": seed, "evaluations": len(result.trials), "seconds": seconds,
                         "evaluations_per_minute": 60 * len(result.trials) / seconds,
                         "fit_seconds": float(result.trials["duration_s"].sum()), "best_loss": result.best.loss})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "scaling.csv", index=False)
    summary = frame.groupby("mode", sort=False)["evaluations_per_minute"].agg(["mean", "std"])
    base = summary.loc["processes, n_jobs=1", "mean"]
    lines = ["# Scaling", "",
             f"digits, 3-fold CV, tree ensembles / SVC / MLP, {args.evaluations} evaluations, seeds 0–{args.seeds - 1}, "
             "on this 2-core machine (wall time includes starting workers and the final refit).",
             "Reproduce: `python benchmarks/scaling.py`.", "",
             "| mode | evaluations per minute (mean ± sd) | speed-up |", "|---|---|---|"]
    for mode, row in summary.iterrows():
        lines.append(f"| {mode} | {row['mean']:.1f} ± {row['std']:.1f} | {row['mean'] / base:.2f}× |")
    (RESULTS / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
