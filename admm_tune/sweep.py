"""Sweeps: every combination of problems × seeds × budgets, one results table, resumable.

Each combination runs in its own run directory ``OUT/<problem>-seed<S>-<budget>``;
a combination is complete when its row file ``sweep.json`` exists, so running the
same sweep again skips it and finishes only what is missing (a combination
cut off half-way is started again from scratch).  The table of all complete
combinations is written as ``OUT/results.csv`` and ``OUT/results.parquet``
after each one finishes (with ``n_jobs > 1``: when all have).  Its columns
(:data:`TYPES`): the budget as given (``budget``) and as numbers
(``budget_evaluations``, ``budget_seconds``), the best CV score and loss,
``feasible``, the test-split scores of the pipeline and of its deployed
graph (``test_score``, ``deployed_test_score``; empty without a test
split), the deployment's figures and the wall time (``wall_s``).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from joblib import Parallel, delayed

from .errors import ProblemError, RunError
from .problem import load_problem, parse_budget
from .runner import fit

ROW = "sweep.json"
"""A combination's row of the results table; its presence marks the combination complete."""


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → 0..4, ``"1,3,7"`` → those; mixed forms allowed (``"0-2,9"``)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ProblemError("--seeds", f"expected seeds like '0-4' or '1,3,7', got {text!r}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise ProblemError("--seeds", f"range {part.strip()!r} runs backwards")
        seeds += range(low, high + 1)
    return sorted(set(seeds))


FILE_BUDGET = "file"
"""Budget label of a combination that uses the problem file's own budget."""


def run_name(problem: str, seed: int, budget: str | None) -> str:
    """The run directory name of one combination."""
    return f"{problem}-seed{seed}-{(budget or FILE_BUDGET).strip()}"


def sweep(problems: Sequence[str | Path], seeds: Sequence[int], budgets: Sequence[str | None], out: str | Path,
          n_jobs: int = 1, progress: bool = True, storage: str | None = None) -> pd.DataFrame:
    """Run every missing combination and return the table of all complete ones.

    Parameters
    ----------
    problems : paths of problem files
    seeds : seeds
    budgets : budget strings (``"30s"``, ``"200"``); None: the problem file's budget
    out : the sweep directory
    n_jobs : combinations run in parallel (each run evaluates one candidate at a time;
        timings stay exclusive on the machine)
    progress : print a line per combination
    storage : SQLAlchemy URL of one database for every combination's journal (PostgreSQL, shared by the
        processes of ``n_jobs``), each run under its run directory's name; default: a ``journal.db`` per run

    Raises
    ------
    ProblemError
        A problem file or budget is malformed (checked before anything runs).
    """
    out = Path(out)
    names: dict[str, str] = {}
    for file in problems:
        name = load_problem(file).name  # validates every file before any run starts
        if name in names.values():  # their runs would share run directories
            raise ProblemError("problems", f"two problem files are named {name!r}; give each its own name")
        names[str(file)] = name
    for b in budgets:
        if b is not None:
            parse_budget(b, "--budgets")
    out.mkdir(parents=True, exist_ok=True)
    todo = [(str(file), seed, b) for file in problems for seed in seeds for b in budgets
            if not (out / run_name(names[str(file)], seed, b) / ROW).is_file()]
    if progress:
        total = len(problems) * len(seeds) * len(budgets)
        print(f"sweep: {total - len(todo)} of {total} combinations already complete in {out}, {len(todo)} to run",
              flush=True)
    if n_jobs == 1:
        for file, seed, b in todo:
            _one(file, names[file], seed, b, out, progress, storage)
            table(out)
    else:
        Parallel(n_jobs=n_jobs)(delayed(_one)(file, names[file], seed, b, out, progress, storage)
                                for file, seed, b in todo)
    return table(out)


def _one(file: str, name: str, seed: int, budget: str | None, out: Path, progress: bool,
         storage: str | None = None) -> None:
    run_dir = out / run_name(name, seed, budget)
    if run_dir.exists():  # cut off half-way earlier: start it again
        shutil.rmtree(run_dir)
        if storage is not None:  # and its journal in the shared storage
            import optuna

            if run_dir.name in optuna.get_all_study_names(storage):
                optuna.delete_study(study_name=run_dir.name, storage=storage)
    start = time.perf_counter()
    try:
        result = fit(file, budget=budget, seed=seed, run_dir=run_dir, progress=False, report=True, storage=storage,
                     study_name=run_dir.name)
    except RunError as exc:
        row = {"status": "failed", "reason": str(exc)}
    else:
        saved = result.to_dict()
        best, deployment = saved["best"], saved["deployment"]
        test = saved["test"] or {}
        row = {"status": "complete", "reason": "", "evaluations": saved["evaluations"], "best_loss": best["loss"],
               "best_score": best["metrics"].get("cv_score"), "feasible": saved["feasible"],
               "test_score": test.get("pipeline"), "deployed_test_score": test.get("deployed")}
        if deployment is not None:
            row.update({"backend": deployment["backend"], "precision": deployment["precision"],
                        "latency_p95_ms": deployment["measured"].get("latency_p95_ms"),
                        "model_size_kb": deployment["measured"].get("model_size_kb")})
    label = budget or FILE_BUDGET
    limit = parse_budget(budget, "--budgets") if budget is not None else load_problem(file).budget
    row.update({"problem": name, "file": file, "seed": seed, "budget": label,
                "budget_evaluations": limit.evaluations, "budget_seconds": limit.seconds,
                "wall_s": time.perf_counter() - start, "run_dir": str(run_dir)})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ROW).write_text(json.dumps(row, indent=2, default=str))
    if progress:
        shown = f"best loss {row['best_loss']:.4g}" if row["status"] == "complete" else row["reason"][:80]
        print(f"sweep: {name} seed {seed} budget {label}: {shown} ({row['wall_s']:.0f} s)", flush=True)


TYPES = {"budget": "string", "budget_evaluations": "Int64", "budget_seconds": "float64", "seed": "int64",
         "evaluations": "Int64", "wall_s": "float64", "best_loss": "float64", "best_score": "float64",
         "test_score": "float64", "deployed_test_score": "float64"}
"""Column types of the results table: a budget of ``"30s"`` has ``budget_seconds`` 30.0 and no evaluations."""


def table(out: str | Path) -> pd.DataFrame:
    """All complete combinations of a sweep directory; also written as results.csv and results.parquet."""
    out = Path(out)
    rows: list[dict[str, Any]] = [json.loads(p.read_text()) for p in sorted(out.glob(f"*/{ROW}"))]
    frame = pd.DataFrame(rows)
    for column, kind in TYPES.items():  # numbers as numbers (a missing one: NaN / <NA>), labels as text
        if column in frame:
            frame[column] = frame[column].astype(kind)
    if len(frame):
        first = ["problem", "seed", "budget", "status", "best_loss", "best_score", "test_score", "feasible",
                 "evaluations"]
        frame = frame[[c for c in first if c in frame] + [c for c in frame if c not in first]]
        frame = frame.sort_values(["problem", "budget", "seed"]).reset_index(drop=True)
    frame.to_csv(out / "results.csv", index=False)
    frame.to_parquet(out / "results.parquet", index=False)
    return frame
