"""Does re-scoring the finalists on fresh CV splits choose pipelines that score better on unseen rows?

For each data set of ``wall_time.py`` and seed: an admm_tune run under a
time budget (the wall-time protocol: 80/20 split, 3-fold CV on the training
part, one core), then both its candidates refit on the training part and
scored on the test part: the one the search's own CV picked
(``race["search_pick"]``) and the one the re-scoring chose (``race["chosen"]``,
the run's result).  The comparison is paired: same run, same finalists.

Writes ``benchmarks/results/rescore.csv`` (one row per data set and seed,
appended as each ends: a partial run resumes) and ``rescore.md``.

Usage::

    python benchmarks/rescore.py [--budget 30] [--seeds 3] [--jobs 2] [DATASET ...]
"""

from __future__ import annotations

import os

os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})  # one core a job

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from _results import RESULTS  # noqa: E402  (beside this script)
from wall_time import datasets, scorer, split  # noqa: E402

OUT = RESULTS / "rescore.csv"
KEY = ["dataset", "budget_s", "seed"]


def job(name: str, budget: float, seed: int) -> dict:
    """One run: the test scores of the search's pick and of the re-scoring's choice, each refit here the same way
    (``test_result``: the run's own pipeline, which is the choice's refit unless the refit ran out of time).  A
    classifier without ``predict_proba`` is calibrated as the estimator's runs calibrate it (the search scored it so)."""
    from admm_tune import AutoPipelineClassifier, AutoPipelineRegressor
    from admm_tune.evaluate.pipeline import build_pipeline

    task, (X_train, X_test, y_train, y_test) = split(name, seed)
    cls = AutoPipelineClassifier if task == "classification" else AutoPipelineRegressor
    start = time.monotonic()
    model = cls(time_budget=budget, cv=3, random_state=seed, storage="memory").fit(X_train, y_train)
    wall = time.monotonic() - start
    result = model.result_
    race, trials = result.race, result.trials.set_index("number")
    score = scorer(task)

    def test(trial: int) -> float:
        config = json.loads(trials.loc[trial, "config"])
        pipeline = build_pipeline(config, result.problem.space, result.problem.data, seed,  # calibrated as the run's
                                  getattr(result.problem.objective, "probabilities", False)).fit(X_train, y_train)
        return float(score(y_test, pipeline.predict(X_test)))

    pick, chosen = race["search_pick"], race["chosen"]
    return {"dataset": name, "task": task, "budget_s": budget, "seed": seed,
            "evaluations": int(result.n_evaluations), "rounds": int(race["rounds"]),
            "finalists": len(race["finalists"]), "search_pick": pick, "chosen": chosen,
            "changed": bool(pick != chosen), "test_search_pick": test(pick), "test_chosen": test(chosen),
            "test_result": float(score(y_test, model.predict(X_test))), "refit": result.refit,
            "wall_s": round(wall, 2), "note": race["note"]}


def markdown(frame: pd.DataFrame) -> list[str]:
    """Paired comparison: how often the choice changed, and the test scores of both picks."""
    lines = ["Re-scoring the finalists on fresh CV splits (`python benchmarks/rescore.py`, rows in "
             "`benchmarks/results/rescore.csv`).",
             f"Commit {', '.join(sorted(frame['commit'].astype(str).unique()))}; {frame['dataset'].nunique()} data "
             f"sets × seeds {', '.join(str(s) for s in sorted(frame['seed'].unique()))}, wall_time.py's split "
             "protocol; test score: balanced accuracy / R² of the refit pick on the 20 % test part.", "",
             "| budget | runs | re-scored | choice changed | test: search's pick | test: re-scored choice "
             "| changed runs: better / equal / worse | changed runs: mean change |", "|---|---|---|---|---|---|---|---|"]
    for budget, rows in frame.groupby("budget_s"):
        changed = rows[rows["changed"].astype(bool)]
        diff = changed["test_chosen"] - changed["test_search_pick"]
        lines.append(f"| {budget:g} s | {len(rows)} | {(rows['rounds'] > 0).sum()} | {len(changed)} "
                     f"| {rows['test_search_pick'].mean():.4f} | {rows['test_chosen'].mean():.4f} "
                     f"| {(diff > 1e-12).sum()} / {(diff.abs() <= 1e-12).sum()} / {(diff < -1e-12).sum()} "
                     f"| {diff.mean():+.4f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(datasets()))
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once, one core each")
    args = parser.parse_args(argv)
    done = pd.read_csv(OUT, dtype={"commit": str}) if OUT.exists() else pd.DataFrame(columns=KEY)
    finished = set(map(tuple, done[KEY].to_numpy().tolist()))
    todo = [(name, args.budget, seed) for seed in range(args.seeds) for name in args.datasets
            if (name, args.budget, seed) not in finished]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    rows = done.to_dict("records")
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(job, *zip(*todo)) if todo else []:
            rows.append({**row, "commit": commit, "jobs": args.jobs})
            print(f"{row['dataset']:18s} seed {row['seed']} changed {row['changed']!s:5s} "
                  f"test {row['test_search_pick']:.4f} -> {row['test_chosen']:.4f}", flush=True)
            pd.DataFrame(rows).to_csv(OUT, index=False)
    frame = pd.DataFrame(rows)
    if len(frame):
        (RESULTS / "rescore.md").write_text("\n".join(markdown(frame)) + "\n")
        print((RESULTS / "rescore.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
