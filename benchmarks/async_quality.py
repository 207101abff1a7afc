"""What asynchronous evaluation costs and buys in search quality, on a simulated clock.

The constrained quadratic of the tests (optimum 1.5; ``tests/synthetic.py``)
is searched with 1, 2 and 4 evaluation slots
(:class:`admm_tune.optim.SimulatedExecutor`); each candidate takes an
exponentially distributed time (mean 1), so results come back out of order
as on real workers.  Each run gets ``--evaluations`` per slot, so all runs
take about the same simulated time.  Reported per number of slots: the best
feasible loss after the first ``--evaluations`` results (equal evaluations:
what asynchrony costs) and at the end (equal time: what the extra slots
buy), and the slots' idle share.  Writes ``benchmarks/results/async_quality.{csv,md}``.

Usage::

    python benchmarks/async_quality.py [--evaluations 40] [--seeds 8]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from admm_tune import SearchSpace
from admm_tune.observation import Observation
from admm_tune.optim import ADMM, SimulatedExecutor
from admm_tune.problem import Budget, Constraint, OptimizerSettings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _results import save  # noqa: E402  (beside this script)
from synthetic import QUADRATIC_OPTIMUM, QUADRATIC_SPACE, quadratic  # noqa: E402

SETTINGS = OptimizerSettings(z_pulls=1, inner_max=8, initial_pulls=3)
"""As the tests' single-structure quadratic: the θ-step does the work."""


def best_feasible(records: list) -> float:
    """Lowest loss among feasible records (inf when none)."""
    return min((r.observation.loss for r in records if r.feasible), default=math.inf)


def markdown(frame: pd.DataFrame) -> list[str]:
    """``async_quality.md`` from the rows of ``async_quality.csv``."""
    per_slot, seeds = int((frame["evaluations"] / frame["slots"]).min()), int(frame["seed"].nunique())
    summary = frame.groupby("slots").agg(["mean", "std", "max"])
    lines = ["# Asynchronous evaluation: search quality", "",
             f"Constrained quadratic (optimum {QUADRATIC_OPTIMUM}), {per_slot} evaluations per slot, "
             f"seeds 0–{seeds - 1}, exponential evaluation times on a simulated clock.  Best feasible loss, "
             "mean ± sd (lower is better).",
             f"Reproduce: `python benchmarks/async_quality.py --evaluations {per_slot} --seeds {seeds}`.",
             "", f"| slots | after {per_slot} evaluations | at equal time (end of run) | simulated time "
             "| idle share (mean, max) |", "|---|---|---|---|---|"]
    for slots, row in summary.iterrows():
        lines.append(f"| {slots} | {row[('best_equal_evaluations', 'mean')]:.3f} ± "
                     f"{row[('best_equal_evaluations', 'std')]:.3f} | {row[('best_equal_time', 'mean')]:.3f} ± "
                     f"{row[('best_equal_time', 'std')]:.3f} | {row[('simulated_time', 'mean')]:.1f} "
                     f"| {row[('idle_share', 'mean')]:.3f}, {row[('idle_share', 'max')]:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args(argv)
    rows = []
    for slots in (1, 2, 4):
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            executor = SimulatedExecutor(slots, lambda config: float(rng.exponential(1.0)),
                                         lambda config: Observation("complete", *quadratic(config)))
            opt = ADMM(SearchSpace.from_dict(QUADRATIC_SPACE), [Constraint("g", 2.0, "max")], SETTINGS,
                       Budget(evaluations=args.evaluations * slots), seed=seed)
            opt.run(executor)
            rows.append({"slots": slots, "seed": seed, "evaluations": len(opt.records),
                         "simulated_time": executor.now, "idle_share": executor.idle_share(),
                         "best_equal_evaluations": best_feasible(opt.records[:args.evaluations]),
                         "best_equal_time": best_feasible(opt.records)})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    lines = markdown(frame)
    save("async_quality", frame, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
