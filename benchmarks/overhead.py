"""Optimiser overhead: seconds the ADMM spends choosing each candidate, with a free objective.

A 3-algorithm synthetic problem (one module; each algorithm has two
continuous parameters, one integer and one categorical; the objective is a
cheap closed-form function), run with one evaluation slot through
:meth:`ADMM.run`.  The overhead of a proposal is the time between the
evaluation before it returning and the evaluation of it starting: every θ-,
z- and dual-step of the optimiser, nothing of the objective.  Reported at
100, 300 and 500 observations (mean over the 20 proposals ending there),
as wall time and as this process's CPU time (robust to a shared machine).
Writes ``benchmarks/results/overhead.csv`` (one row per seed and window)
and ``overhead.md``.

Usage::

    python benchmarks/overhead.py [--evaluations 500] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from admm_tune.observation import Observation
from admm_tune.optim import ADMM
from admm_tune.problem import Budget, OptimizerSettings
from admm_tune.space import SearchSpace
from _results import save  # beside this script

SPACE = {"modules": [{"name": "m", "algorithms": [
    {"name": name, "params": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "y": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
        "n": {"type": "int", "low": 1, "high": 50},
        "k": {"type": "categorical", "choices": ["p", "q", "r"]}}}
    for name in ("a", "b", "c")]}]}
OFFSET = {"a": 0.3, "b": 0.0, "c": 0.1}
CENTRE = {"a": 0.2, "b": 0.8, "c": 0.5}


def objective(config: dict) -> float:
    """A smooth bowl per algorithm, offset per algorithm and categorical value (minimum 0 at b)."""
    a = config["m"]
    x, y, n, k = (config[f"m.{a}.{p}"] for p in "xynk")
    return (OFFSET[a] + (x - CENTRE[a]) ** 2 + 0.1 * np.log10(y / 0.05) ** 2 + ((n - 20) / 50) ** 2
            + {"p": 0.0, "q": 0.05, "r": 0.1}[k])


def gaps(evaluations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU seconds spent before each evaluation (the optimiser's overhead), in order."""
    marks: list[tuple[float, float, float, float]] = []  # (wall in, cpu in, wall out, cpu out)

    def evaluate(batch):
        wall, cpu = time.perf_counter(), time.process_time()
        out = [Observation("complete", objective(c.config)) for c in batch]
        marks.append((wall, cpu, time.perf_counter(), time.process_time()))
        return out

    opt = ADMM(SearchSpace.from_dict(SPACE), [], OptimizerSettings(), Budget(evaluations=evaluations), seed=seed)
    start = (time.perf_counter(), time.process_time())
    opt.run(evaluate)
    ends = np.array([start] + [(m[2], m[3]) for m in marks[:-1]])
    begins = np.array([(m[0], m[1]) for m in marks])
    spent = begins - ends
    return spent[:, 0], spent[:, 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--note", default="", help="how the machine was shared, for the summary")
    args = parser.parse_args(argv)
    windows = [w for w in (100, 300, 500) if w <= args.evaluations]
    rows = []
    for seed in range(args.seeds):
        wall, cpu = gaps(args.evaluations, seed)
        for w in windows:
            rows.append({"seed": seed, "observations": w, "proposals": len(wall),
                         "wall_ms": 1e3 * float(wall[w - 20:w].mean()), "cpu_ms": 1e3 * float(cpu[w - 20:w].mean()),
                         "run_mean_wall_ms": 1e3 * float(wall[:w].mean())})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    lines = [f"Optimiser overhead per proposal (ms), 3-algorithm synthetic problem with a free objective, "
             f"{args.evaluations} evaluations, one slot, seeds 0–{args.seeds - 1}; at N observations: mean over "
             "proposals N−19…N; run mean: mean over proposals 1…N.",
             f"Reproduce: `python benchmarks/overhead.py --evaluations {args.evaluations} --seeds {args.seeds}`.",
             *([args.note] if args.note else []),
             "",
             "| observations | wall ms per proposal (mean, max over seeds) | CPU ms per proposal (mean) "
             "| run mean wall ms |",
             "|---|---|---|---|"]
    for w, group in frame.groupby("observations"):
        lines.append(f"| {w} | {group['wall_ms'].mean():.1f}, {group['wall_ms'].max():.1f} "
                     f"| {group['cpu_ms'].mean():.1f} | {group['run_mean_wall_ms'].mean():.1f} |")
    save("overhead", frame, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
