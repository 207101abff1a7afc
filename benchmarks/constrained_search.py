"""Constrained joint search: admm_tune against "search, then filter", Optuna TPE with constraints and random search.

Six constrained problems over the joint space (a small ML space and the
CPU deployment space), each at equal evaluation budgets for four methods:

- ``admm``: admm_tune with the constraints (joint, constrained);
- ``admm_filter``: admm_tune without them (the deployment still measured),
  its evaluations filtered by the constraints afterwards;
- ``tpe``: Optuna's TPE over the same conditional space, told each
  evaluation's constraint values (Optuna 5's ``Trial.set_constraint``);
- ``random``: uniform random search over the space, then filtered.

Every method scores candidates with the same evaluator (admm_tune's
:class:`~admm_tune.evaluate.deploy.DeploymentEvaluator`, seeded like the
run), so only the choice of candidates differs.  Each problem's bound lies
between the metric of a fast (or small) and a slow (or large) pipeline that
this evaluator measures first, so the constraint bites on this machine; the
bound is stored with every row and reused when the script resumes.

Writes ``benchmarks/results/constrained_search.csv`` (one row per problem ×
method × budget × seed, appended as each run ends: an interrupted or partial
run resumes where it stopped) and ``constrained_search.md``.

Usage::

    python benchmarks/constrained_search.py [--budgets 40 100] [--seeds 10] [--hours 0.75] [PROBLEM ...]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

import admm_tune
from admm_tune.errors import RunError
from admm_tune.problem import Constraint, load_problem
from admm_tune.runner import _evaluator
from _results import RESULTS  # beside this script
from search_quality import suggest_config

OUT = RESULTS / "constrained_search.csv"
COMMIT = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                        cwd=Path(__file__).parent).stdout.strip()
TIMING = {"warmup": 3, "min_runs": 20, "max_runs": 200, "seconds": 0.03}
CLASSIFIERS = ["logistic_regression", "gaussian_nb", "lda", "decision_tree", "random_forest", "knn"]
REGRESSORS = ["ridge", "lasso", "knn", "decision_tree", "random_forest", "extra_trees"]
RESTRICT = {"scaler": ["none", "standard", "minmax"]}
TRANSFORMERS = {"classification": ["none", "pca", "select_k_best"], "regression": ["none", "pca", "truncated_svd"]}


def _friedman1() -> dict[str, Any]:
    """Friedman's #1 regression (500 rows, 10 features of which 5 matter, noise 1): non-linear, so the large
    models fit it better than the linear ones and a size or latency bound costs accuracy."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    return {"X": pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), "y": y}


DATA = {"friedman1": _friedman1}
"""Data sets built here (as arrays) rather than loaded from scikit-learn."""


def _problem(data: str, task: str, metric: str, batch: int, precisions: list[str] | None = None,
             bound: float | None = None) -> dict[str, Any]:
    restrict = {**RESTRICT, "transformer": TRANSFORMERS[task],
                "estimator": CLASSIFIERS if task == "classification" else REGRESSORS}
    if precisions:
        restrict["precision"] = precisions
    return {"data": DATA[data]() if data in DATA else f"sklearn:{data}",
            "objective": {"scoring": "balanced_accuracy" if task == "classification" else "r2", "cv": 3},
            "search_space": task, "restrict": restrict,
            "deployment": {"space": "cpu", "batch_size": batch, "timing": TIMING},
            "metric": metric, "bound": bound}


PROBLEMS = {
    "bc_latency_b1": _problem("breast_cancer", "classification", "latency_p95_ms", 1),
    "bc_latency_b256": _problem("breast_cancer", "classification", "latency_p95_ms", 256),
    "bc_fit_time": _problem("breast_cancer", "classification", "fit_time_s", 1),
    "bc_int8_drop": _problem("breast_cancer", "classification", "accuracy_drop", 64, ["int8"], bound=0.0),
    "friedman1_size": _problem("friedman1", "regression", "model_size_kb", 1),
    "friedman1_latency_b256": _problem("friedman1", "regression", "latency_p95_ms", 256),
}
"""Name → problem (without its bound, measured unless given: between a fast and a slow reference)."""
REFERENCES = {"classification": ("logistic_regression", "random_forest"), "regression": ("ridge", "random_forest")}
"""Fast/small and slow/large reference estimators (defaults, no scaler or transformer, ONNX Runtime fp32)."""


def problem_dict(name: str, bound: float, seed: int, budget: int, constrained: bool = True) -> dict[str, Any]:
    """The admm_tune problem of ``name`` with its bound."""
    spec = dict(PROBLEMS[name])
    metric = spec.pop("metric")
    spec.pop("bound")
    return {**spec, "name": name, "seed": seed, "budget": {"evaluations": budget},
            "constraints": [{"metric": metric, "max": bound}] if constrained else []}


def measure_bound(name: str) -> float:
    """Geometric mean of the metric of the fast and the slow reference pipeline (the evaluator's own figures)."""
    spec = PROBLEMS[name]
    if spec["bound"] is not None:
        return float(spec["bound"])
    problem = load_problem(problem_dict(name, 1.0, 0, 1, constrained=False))
    evaluate = _evaluator(problem)
    values = []
    for estimator in REFERENCES[spec["search_space"]]:
        choice = {"scaler": "none", "transformer": "none", "estimator": estimator, "backend": "onnxruntime",
                  "precision": "fp32"}
        obs = evaluate(problem.space.complete(choice))
        if not obs.ok:
            raise RuntimeError(f"{name}: reference {estimator} failed: {obs.reason}")
        values.append(float(obs.metrics[spec["metric"]]))
    return float(math.sqrt(values[0] * values[1]))


def feasible(metrics: dict[str, float], constraints: list[Constraint]) -> bool:
    """Every constraint holds and the deployed outputs agree with the Python pipeline's."""
    checks = [*constraints, Constraint("output_mismatch", 1.0, "max")]
    return all(math.isfinite(metrics.get(c.metric, math.nan)) and c.violation(metrics[c.metric]) <= 0
               for c in checks)


Outcome = list[tuple[float, bool, bool]]
"""Per evaluation, in order: (loss, feasible, failed)."""


def run_admm(name: str, bound: float, seed: int, budget: int, constrained: bool) -> Outcome:
    """admm_tune, with the constraints or without (its evaluations filtered afterwards)."""
    try:
        result = admm_tune.fit(problem_dict(name, bound, seed, budget, constrained), seed=seed, progress=False)
    except RunError:  # every candidate failed: the run found nothing, like a peer whose every evaluation failed
        return [(math.nan, False, True)] * budget
    trials = result.trials.sort_values("number")
    constraints = [Constraint(PROBLEMS[name]["metric"], bound, "max")]
    out = []
    for _, row in trials.iterrows():
        metrics = {k.split(":", 1)[1]: float(v) for k, v in row.items() if str(k).startswith("metric:")
                   and v is not None and not pd.isna(v)}
        ok = row["state"] == "complete"
        out.append((float(row["loss"]) if ok else math.nan, ok and feasible(metrics, constraints), not ok))
    return out


def run_tpe(name: str, bound: float, seed: int, budget: int) -> Outcome:
    """Optuna TPE over the joint space, told each evaluation's violations (``Trial.set_constraint``).

    A forbidden configuration or a failed evaluation counts as a failure and as every constraint broken."""
    problem = load_problem(problem_dict(name, bound, seed, budget))
    evaluate, constraints = _evaluator(problem), problem.constraints
    out: Outcome = []

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, problem.space)
        violations = [1.0] * len(constraints)  # the problem's own include the output check
        if not problem.space.allowed(config):
            out.append((math.nan, False, True))
        else:
            obs = evaluate(config)
            if obs.ok:
                violations = [c.violation(obs.metrics.get(c.metric, math.inf)) for c in constraints]
                violations = [v if math.isfinite(v) else 10.0 for v in violations]
            out.append((obs.loss if obs.ok else math.nan, obs.ok and feasible(obs.metrics, constraints), not obs.ok))
        for c, v in zip(constraints, violations):
            trial.set_constraint(c.metric, v)
        return out[-1][0] if math.isfinite(out[-1][0]) else 10.0

    optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed)).optimize(objective, n_trials=budget)
    return out


def run_random(name: str, bound: float, seed: int, budget: int) -> Outcome:
    """Uniform random search over the joint space, then filtered."""
    problem = load_problem(problem_dict(name, bound, seed, budget))
    evaluate, rng = _evaluator(problem), np.random.default_rng(seed)
    out: Outcome = []
    for _ in range(budget):
        obs = evaluate(problem.space.sample(rng))
        out.append((obs.loss if obs.ok else math.nan, obs.ok and feasible(obs.metrics, problem.constraints),
                    not obs.ok))
    return out


METHODS = {"admm": lambda *a: run_admm(*a, constrained=True), "admm_filter": lambda *a: run_admm(*a, constrained=False),
           "tpe": run_tpe, "random": run_random}


def summary_row(name: str, method: str, seed: int, budget: int, bound: float, outcome: Outcome,
                seconds: float) -> dict[str, Any]:
    """One CSV row: best feasible loss, evaluations to the first feasible one, failures."""
    losses = np.array([loss if ok else np.inf for loss, ok, _ in outcome])
    first = next((i + 1 for i, (_, ok, _) in enumerate(outcome) if ok), None)
    return {"problem": name, "method": method, "seed": seed, "evaluations": budget, "bound": bound,
            "metric": PROBLEMS[name]["metric"], "feasible_found": first is not None,
            "best_feasible_loss": float(losses.min()) if first else math.nan,
            "first_feasible": first if first else math.nan, "failed": sum(f for _, _, f in outcome),
            "feasible_share": float(np.mean([ok for _, ok, _ in outcome])), "seconds": round(seconds, 1),
            "commit": COMMIT, "cores": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="*", default=list(PROBLEMS))
    parser.add_argument("--budgets", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--hours", type=float, default=0.75, help="stop starting runs after this long")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = args.out
    rows = pd.read_csv(out, dtype={"commit": str}).to_dict("records") if out.exists() else []
    stop = time.monotonic() + 3600 * args.hours
    for budget in args.budgets:
        for seed in range(args.seeds):
            for name in args.problems:
                known = [r["bound"] for r in rows if r["problem"] == name]
                bound = known[0] if known else None
                for method, run in METHODS.items():
                    if any((r["problem"], r["method"], r["seed"], r["evaluations"]) == (name, method, seed, budget)
                           for r in rows):
                        continue
                    if time.monotonic() > stop:
                        return finish(rows, out)
                    if bound is None:
                        bound = measure_bound(name)
                    start = time.perf_counter()
                    row = summary_row(name, method, seed, budget, bound, run(name, bound, seed, budget),
                                      time.perf_counter() - start)
                    rows.append(row)
                    print(f"{name:22s} {method:11s} budget {budget:3d} seed {seed} best {row['best_feasible_loss']:.4f} "
                          f"first {row['first_feasible']} ({row['seconds']:.0f}s)", flush=True)
                    pd.DataFrame(rows).to_csv(out, index=False)
    return finish(rows, out)


def finish(rows: list[dict[str, Any]], out: Path) -> int:
    """Write the markdown table of everything in the CSV beside it."""
    if rows:
        out.with_suffix(".md").write_text("\n".join(markdown(pd.DataFrame(rows))) + "\n")
        print(out.with_suffix(".md").read_text())
    return 0


def markdown(frame: pd.DataFrame) -> list[str]:
    """Per problem, budget and method: feasible share, best feasible loss, first feasible, failures; then the targets."""
    seeds = sorted(frame["seed"].unique())
    budgets = sorted(frame["evaluations"].unique())
    load = frame["load_1min"]
    lines = ["Constrained joint search at equal evaluation budgets (`python benchmarks/constrained_search.py`, "
             "rows in `benchmarks/results/constrained_search.csv`).",
             f"Seeds run: {', '.join(str(s) for s in seeds)}; budgets run: {', '.join(str(b) for b in budgets)}; "
             f"{len(frame)} runs of the full grid's {len(PROBLEMS) * len(METHODS) * 2 * 10} (6 problems × 4 methods "
             "× budgets 40 and 100 × seeds 0–9).  "
             f"Commit {', '.join(sorted(frame['commit'].astype(str).unique()))}, {int(frame['cores'].max())} cores, "
             f"1-minute load average {load.min():.1f}–{load.max():.1f} (median {load.median():.1f}) as runs ended.",
             "Loss: 1 − balanced accuracy (breast_cancer), 1 − R² (friedman1), 3-fold CV.  Feasible: every "
             "constraint holds and the deployed outputs agree with the Python pipeline's.  Failed: evaluations "
             "without a result (TPE's include configurations the space's rules forbid, which count against "
             "its budget).", "",
             "| problem | bound | budget | method | runs | feasible result | best feasible loss (mean ± sd) "
             "| first feasible (median evals) | failed (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, budget), group in frame.groupby(["problem", "evaluations"], sort=False):
        bound = f"{group['metric'].iloc[0]} ≤ {group['bound'].iloc[0]:.4g}"
        for method, rows in group.groupby("method", sort=False):
            best = rows["best_feasible_loss"].dropna()
            loss = f"{best.mean():.4f} ± {best.std():.4f}" if len(best) > 1 else (
                f"{best.mean():.4f}" if len(best) else "—")
            first = rows["first_feasible"].dropna()
            lines.append(f"| {name} | {bound} | {budget} | {method} | {len(rows)} "
                         f"| {rows['feasible_found'].astype(bool).mean():.0%} | {loss} "
                         f"| {f'{first.median():.0f}' if len(first) else '—'} | {rows['failed'].mean():.1f} |")
    return lines + ["", *targets(frame)]


def targets(frame: pd.DataFrame) -> list[str]:
    """The issue's targets per problem and budget: admm's rank, its lead over the filter, its first feasible."""
    lines = ["Targets.  Rank: admm_tune's place among the four methods by mean best feasible loss (runs without a "
             "feasible result left out, their share shown above; 1 = best).  vs filter: admm's mean minus "
             "admm_filter's (negative = admm better).  First feasible: admm's median against the best peer's.", "",
             "| problem | budget | admm feasible in | rank | vs filter | first feasible: admm / best peer |",
             "|---|---|---|---|---|---|"]
    for (name, budget), group in frame.groupby(["problem", "evaluations"], sort=False):
        means = group.groupby("method")["best_feasible_loss"].mean().dropna()
        firsts = group.groupby("method")["first_feasible"].median()
        admm = group[group["method"] == "admm"]
        found = f"{admm['feasible_found'].astype(bool).sum()}/{len(admm)}"
        if "admm" not in means:
            lines.append(f"| {name} | {budget} | {found} | — | — | — / {firsts.drop('admm').min():.0f} |")
            continue
        rank = int((means < means["admm"]).sum()) + 1
        lead = means["admm"] - means.get("admm_filter", math.nan)
        lines.append(f"| {name} | {budget} | {found} | {rank} | {lead:+.4f} "
                     f"| {firsts['admm']:.0f} / {firsts.drop('admm').min():.0f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
