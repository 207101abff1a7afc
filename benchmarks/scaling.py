"""Scaling: evaluations per minute with n_jobs 1 and 2, and on a 2-worker Dask LocalCluster.

Two fit-dominated problems on digits (3-fold CV): ``mixed`` (forests,
boosting, SVC, MLP: fit times from 0.1 to 10 s) and ``forests`` (random
forests only: similar fit times).  Candidates are evaluated in synchronous
batches of ``n_jobs``, so a batch lasts as long as its slowest member: the
speed-up depends on how even the fit times are.  Writes
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
PROBLEMS = {
    "mixed": {"name": "mixed", "data": "sklearn:digits", "objective": {"cv": 3},
              "restrict": {"estimator": ["random_forest", "extra_trees", "gradient_boosting", "svc", "mlp"],
                           "transformer": ["none", "pca"]}},
    "forests": {"name": "forests", "data": "sklearn:digits", "objective": {"cv": 3},
                "restrict": {"estimator": ["random_forest"], "transformer": ["none"], "scaler": ["none"]}},
}
MODES = {"processes, n_jobs=1": {"n_jobs": 1}, "processes, n_jobs=2": {"n_jobs": 2},
         "dask LocalCluster, 2 workers": {"n_jobs": 2, "backend": "dask"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=2)
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
                rows.append({"problem": name, "mode": mode, "seed": seed, "evaluations": len(result.trials),
                             "seconds": seconds, "evaluations_per_minute": 60 * len(result.trials) / seconds,
                             "evaluation_seconds": float(result.trials["duration_s"].sum()),
                             "best_loss": result.best.loss})
                print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / "scaling.csv", index=False)
    summary = frame.groupby(["problem", "mode"], sort=False)["evaluations_per_minute"].agg(["mean", "std"])
    lines = ["# Scaling", "",
             f"digits, 3-fold CV, {args.evaluations} evaluations, seeds 0–{args.seeds - 1}, on this 2-core machine "
             "(wall time includes starting workers and the final refit).  `mixed`: forests, boosting, SVC, MLP; "
             "`forests`: random forests only.",
             "Reproduce: `python benchmarks/scaling.py`.", "",
             "| problem | mode | evaluations per minute (mean ± sd) | speed-up |", "|---|---|---|---|"]
    for (problem, mode), row in summary.iterrows():
        base = summary.loc[(problem, "processes, n_jobs=1"), "mean"]
        lines.append(f"| {problem} | {mode} | {row['mean']:.1f} ± {row['std']:.1f} | {row['mean'] / base:.2f}× |")
    (RESULTS / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
