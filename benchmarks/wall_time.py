"""Equal wall time: admm_tune vs random search vs flat Optuna TPE vs FLAML, on public data that ships offline.

Every job (data set × budget × seed × method) runs in its own process with
one thread (``OMP_NUM_THREADS=1`` and friends), so each gets one core.
Protocol (issue 14): 80/20 stratified split of each data set (seeded), the
method searches for ``budget`` seconds with 3-fold CV on the training part
(balanced accuracy / R²), the winner is refit on the training part and
scored on the test part.  admm_tune runs :class:`AutoPipelineClassifier` /
``Regressor`` with ``time_budget``; random search and TPE draw from the same
bundled search space and score candidates with the same evaluator
(:class:`MLEvaluator`), starting candidates until the budget is spent; FLAML
runs ``AutoML.fit(time_budget=...)`` in its own space (the ``bench`` extra).

Rows go to ``benchmarks/results/wall_time.csv`` as each job ends, and jobs
already there are skipped, so a run can be stopped and resumed, and
``--max-minutes`` stops starting jobs after that long; ``--jobs`` runs that
many jobs at once (each still one process on one core: at most the cores).
Each row records the commit it ran, the number of jobs at once and the
1-minute load average as it ended.  The summary
(``wall_time.md``) covers the (data set, budget, seed) cells that every
method finished.

Usage::

    python benchmarks/wall_time.py [--budgets 30 120] [--seeds 3] [--jobs 2] [--max-minutes 50]
                                   [DATASET ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import _results as results  # beside this script
import numpy as np
import pandas as pd
from _results import RESULTS
from scipy import stats

METHODS = ("admm", "random", "tpe", "flaml")
KEY = ["dataset", "budget_s", "seed", "method"]
TIE = 1e-9  # test scores closer than this are a tie
"""What names a job (a row of the CSV)."""
SINGLE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def datasets() -> dict[str, tuple[str, callable]]:
    """name → (task, loader returning X, y); every set ships with scikit-learn or is generated."""
    from sklearn import datasets as d

    def bundled(loader):
        return lambda seed: loader(return_X_y=True, as_frame=True)

    def generated(make, **kw):
        def load(seed):
            X, y = make(random_state=0, **kw)
            return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]), y
        return load

    def mixed(seed):  # a numeric table with two string columns (one-hot front)
        X, y = d.make_classification(n_samples=800, n_features=8, n_informative=5, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
        frame["grade"] = pd.cut(frame.pop("x0"), 4, labels=list("abcd")).astype(str)
        frame["site"] = np.where(frame.pop("x1") > 0, "north", "south")
        return frame, y

    c, r = "classification", "regression"
    return {
        "breast_cancer": (c, bundled(d.load_breast_cancer)),
        "wine": (c, bundled(d.load_wine)),
        "iris": (c, bundled(d.load_iris)),
        "digits": (c, bundled(d.load_digits)),
        "imbalanced": (c, generated(d.make_classification, n_samples=1000, n_features=20, n_informative=6,
                                    weights=[0.9, 0.1])),
        "three_class": (c, generated(d.make_classification, n_samples=600, n_features=15, n_informative=8,
                                     n_classes=3)),
        "noisy_labels": (c, generated(d.make_classification, n_samples=800, n_features=12, flip_y=0.2)),
        "moons": (c, generated(d.make_moons, n_samples=800, noise=0.3)),
        "circles": (c, generated(d.make_circles, n_samples=800, noise=0.2, factor=0.5)),
        "hastie": (c, generated(d.make_hastie_10_2, n_samples=1200)),
        "quantiles": (c, generated(d.make_gaussian_quantiles, n_samples=800, n_features=4, n_classes=3)),
        "mixed_types": (c, mixed),
        "diabetes": (r, bundled(d.load_diabetes)),
        "friedman1": (r, generated(d.make_friedman1, n_samples=600, noise=1.0)),
        "friedman2": (r, generated(d.make_friedman2, n_samples=600, noise=10.0)),
        "friedman3": (r, generated(d.make_friedman3, n_samples=600, noise=0.1)),
        "sparse_regression": (r, generated(d.make_regression, n_samples=500, n_features=30, n_informative=8,
                                           noise=10.0)),
    }


def split(name: str, seed: int):
    from sklearn.model_selection import train_test_split

    task, load = datasets()[name]
    X, y = load(seed)
    y = np.asarray(y)
    return task, train_test_split(X, y, test_size=0.2, random_state=seed,
                                  stratify=y if task == "classification" else None)


def scorer(task: str):
    from sklearn.metrics import balanced_accuracy_score, r2_score

    return balanced_accuracy_score if task == "classification" else r2_score


def run_admm(task, X, y, budget, seed):
    from admm_tune import AutoPipelineClassifier, AutoPipelineRegressor

    cls = AutoPipelineClassifier if task == "classification" else AutoPipelineRegressor
    model = cls(time_budget=budget, cv=3, random_state=seed, storage="memory").fit(X, y)
    return model, float(model.best_score_), int(model.result_.n_evaluations)


def run_peer(task, X, y, budget, seed, method):
    """Random search or flat TPE over the bundled space, scored by the same evaluator, until ``budget`` s."""
    import optuna
    from search_quality import suggest_config  # beside this script

    from admm_tune.data import load_dataset
    from admm_tune.evaluate.pipeline import MLEvaluator, build_pipeline
    from admm_tune.problem import Objective
    from admm_tune.space import SearchSpace

    start = time.monotonic()
    space = SearchSpace.load(task)
    data = load_dataset({"X": X, "y": y}, task=task)
    evaluator = MLEvaluator(space, data, Objective("balanced_accuracy" if task == "classification" else "r2", 3),
                            seed)
    best: tuple[float, dict] = (np.inf, {})
    count = 0
    rng = np.random.default_rng(seed)

    def evaluate(config):
        nonlocal best, count
        obs = evaluator(config)
        count += 1
        loss = float(obs.loss) if obs.ok else np.inf
        if loss < best[0]:
            best = (loss, config)
        return loss

    if method == "random":
        while time.monotonic() - start < budget:
            evaluate(space.sample(rng))
    else:
        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial):
            config = suggest_config(trial, space)
            if not space.allowed(config):
                raise optuna.TrialPruned()
            loss = evaluate(config)
            return loss if np.isfinite(loss) else 1e9

        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        while time.monotonic() - start < budget:
            study.optimize(objective, n_trials=1)
    pipeline = build_pipeline(best[1], space, data, seed).fit(X, y)
    return pipeline, 1.0 - best[0], count  # the loss is 1 − score for both metrics


def run_flaml(task, X, y, budget, seed):
    """FLAML in its own space, 3-fold CV on the same metric (balanced accuracy through a custom metric / R²)."""
    from flaml import AutoML
    from sklearn.metrics import balanced_accuracy_score

    def balanced_error(X_val, y_val, estimator, *args, **kwargs):
        return 1.0 - balanced_accuracy_score(y_val, estimator.predict(X_val)), {}

    automl = AutoML()
    automl.fit(X, y, task=task, time_budget=budget, metric=balanced_error if task == "classification" else "r2",
               eval_method="cv", n_splits=3, seed=seed, n_jobs=1, verbose=0)
    # every trial counts (``config_history`` keeps only the improving ones)
    return automl, 1.0 - float(automl.best_loss), int(sum(automl._iter_per_learner.values()))


def job(name: str, budget: float, seed: int, method: str) -> dict:
    """One job in this process: search, refit, test score, wall time."""
    task, (X_train, X_test, y_train, y_test) = split(name, seed)
    start = time.monotonic()
    if method == "admm":
        model, cv, n = run_admm(task, X_train, y_train, budget, seed)
    elif method == "flaml":
        model, cv, n = run_flaml(task, X_train, y_train, budget, seed)
    else:
        model, cv, n = run_peer(task, X_train, y_train, budget, seed, method)
    wall = time.monotonic() - start
    test = float(scorer(task)(y_test, model.predict(X_test)))
    return {"dataset": name, "task": task, "budget_s": budget, "seed": seed, "method": method, "test_score": test,
            "cv_score": cv, "evaluations": n, "wall_s": wall, "rows": len(y_train) + len(y_test)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(datasets()))
    parser.add_argument("--budgets", type=float, nargs="+", default=[30.0, 120.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--max-minutes", type=float, default=None, help="start no job after this long")
    parser.add_argument("--jobs", type=int, default=1, help="jobs at once, one core each (at most the cores)")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: run one job (JSON) and print its row
    args = parser.parse_args(argv)
    if args.job:
        spec = json.loads(args.job)
        print(json.dumps(job(spec["dataset"], spec["budget_s"], spec["seed"], spec["method"])))
        return 0
    out, finished = results.finished("wall_time", KEY)
    todo = [(name, budget, seed, method) for budget in args.budgets  # the shorter budget first: a partial run
            for seed in range(args.seeds) for name in args.datasets for method in args.methods  # covers it whole
            if (name, budget, seed, method) not in finished]
    commit = results.commit()
    start, lock = time.monotonic(), threading.Lock()

    def one(job: tuple[str, float, int, str]) -> None:
        if args.max_minutes is not None and time.monotonic() - start > 60 * args.max_minutes:
            return  # start no job after that long
        row = {**run_job(*job), "commit": commit, "jobs": args.jobs, "load_1min": round(os.getloadavg()[0], 2)}
        print(row, flush=True)
        with lock:  # rows are appended as each job ends: a stopped run resumes
            results.append(out, row)

    with ThreadPoolExecutor(args.jobs) as pool:  # each job is its own single-threaded process
        list(pool.map(one, todo))
    (RESULTS / "wall_time.md").write_text("\n".join(markdown(pd.read_csv(out, dtype={"commit": str}))) + "\n")
    return 0


def run_job(name: str, budget: float, seed: int, method: str) -> dict:
    """One job in a fresh single-threaded process; a job that fails or hangs is a row with its error."""
    spec = json.dumps({"dataset": name, "budget_s": budget, "seed": seed, "method": method})
    env = {**os.environ, **SINGLE_THREAD}
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, __file__, "--job", spec], capture_output=True, text=True, env=env,
                              timeout=3 * budget + 120)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode == 0 and lines:
            return json.loads(lines[-1])
        error = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    except subprocess.TimeoutExpired:
        error = "timed out"
    return {"dataset": name, "task": datasets()[name][0], "budget_s": budget, "seed": seed, "method": method,
            "test_score": np.nan, "cv_score": np.nan, "evaluations": 0, "wall_s": time.monotonic() - start,
            "error": error}


def conditions(frame: pd.DataFrame) -> list[str]:
    """The commits, jobs at once and load the rows ran under (rows from before the load was recorded: unknown)."""
    line = (f"Commits {', '.join(sorted(frame['commit'].astype(str).unique()))}; "
            f"{', '.join(str(int(j)) for j in sorted(frame['jobs'].dropna().unique()))} job(s) at once per run of "
            "the script")
    load = frame["load_1min"].dropna() if "load_1min" in frame else pd.Series(dtype=float)
    if len(load):
        line += (f"; 1-minute load average {load.min():.1f}–{load.max():.1f} (median {load.median():.1f}) as "
                 f"{len(load)} of {len(frame)} jobs ended")
    return [line + "."]


def paired(diff: pd.Series) -> str:
    """Mean of paired differences over the cells, its normal 95 % interval and the two-sided Wilcoxon signed-rank
    p-value (Wilcoxon 1945; ``scipy.stats.wilcoxon``, ties at zero dropped as Wilcoxon's original test does)."""
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
    nonzero = diff[diff.abs() > TIE]
    p = stats.wilcoxon(nonzero).pvalue if len(nonzero) else 1.0
    return f"{diff.mean():+.4f} (±{half:.4f}; p = {p:.2f})"


def markdown(frame: pd.DataFrame) -> list[str]:
    """Mean rank, pairwise wins, mean scores, evaluations and wall / budget over the cells every method finished."""
    lines = ["Equal wall time on public data that ships offline (scikit-learn's bundled and generated sets): "
             "80/20 split, 3-fold CV on the training part (balanced accuracy / R²), test score of the refit "
             "winner; one core per job.",
             "Reproduce: `python benchmarks/wall_time.py --budgets 30 120 --seeds 3` (resumes from "
             "results/wall_time.csv; every row is one job).",
             "The CV score is each method's own estimate for the pipeline it chose, on its search's folds (FLAML's "
             "folds are its own): optimistic by the selection, the more so the more candidates a run scored.",
             *conditions(frame), ""]
    for budget, rows in frame.groupby("budget_s"):
        methods = sorted(rows["method"].unique(), key=list(METHODS).index)
        cells = rows.pivot_table(index=["dataset", "seed"], columns="method", values="test_score")
        cells = cells.dropna() if set(cells.columns) == set(methods) else cells.iloc[0:0]
        if cells.empty:
            continue
        n_sets = cells.index.get_level_values(0).nunique()
        lines += [f"### {budget:g} s budget: {len(cells)} cells ({n_sets} data sets × seeds) finished by every "
                  f"method ({', '.join(methods)})", "",
                  "| | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        ranks = cells.rank(axis=1, ascending=False).mean()
        lines.append("| mean rank of test score (1 = best) | " + " | ".join(f"{ranks[m]:.2f}" for m in methods) + " |")
        cv = rows.pivot_table(index=["dataset", "seed"], columns="method", values="cv_score").loc[cells.index]
        cv_ranks = cv.rank(axis=1, ascending=False).mean()  # what the searches maximise, before the test's noise
        lines.append("| mean rank of CV score | " + " | ".join(f"{cv_ranks[m]:.2f}" for m in methods) + " |")
        if "admm" in methods:
            peers = [m for m in methods if m != "admm"]
            diffs = {m: cells["admm"] - cells[m] for m in peers}
            won = {m: int((d > TIE).sum()) for m, d in diffs.items()}
            tied = {m: int((d.abs() <= TIE).sum()) for m, d in diffs.items()}
            for label, value in (
                    ("admm_tune's test score wins/ties/losses vs the peer",
                     lambda m: f"{won[m]}/{tied[m]}/{len(cells) - won[m] - tied[m]}"),
                    ("admm_tune's wins, share of the cells (target ≥ 60 %)", lambda m: f"{won[m] / len(cells):.0%}"),
                    ("admm_tune's wins, share of the cells not tied",
                     lambda m: f"{won[m] / max(1, len(cells) - tied[m]):.0%}"),
                    ("admm_tune − peer, mean test score (95 % CI; Wilcoxon signed-rank p)", lambda m: paired(diffs[m])),
                    ("correlation over the cells of admm_tune − peer in CV score and in test score",
                     lambda m: f"{np.corrcoef(cv['admm'] - cv[m], diffs[m])[0, 1]:.2f}")):
                lines.append(f"| {label} | " + " | ".join("—" if m == "admm" else value(m) for m in methods) + " |")
        keep = rows.set_index(["dataset", "seed"]).index.isin(cells.index)
        sub = rows[keep]
        for label, column, fmt in (("mean test score", "test_score", "{:.4f}"), ("mean CV score", "cv_score", "{:.4f}"),
                                   ("evaluations (median)", "evaluations", "{:.0f}")):
            agg = sub.groupby("method")[column].median() if "median" in label else sub.groupby("method")[column].mean()
            lines.append(f"| {label} | " + " | ".join(fmt.format(agg[m]) for m in methods) + " |")
        ratio = sub.assign(r=sub["wall_s"] / sub["budget_s"]).groupby("method")["r"]
        lines.append("| wall / budget, median | " + " | ".join(f"{ratio.median()[m]:.2f}" for m in methods) + " |")
        lines.append("| wall / budget, max | " + " | ".join(f"{ratio.max()[m]:.2f}" for m in methods) + " |")
        over = sub[sub["wall_s"] > 1.1 * sub["budget_s"] + 5].groupby("method").size()
        lines.append("| runs over 1.1 × budget + 5 s | " + " | ".join(str(over.get(m, 0)) for m in methods) + " |")
        per_set = cells.groupby(level="dataset").mean()
        lines += ["", f"Mean test score per data set over its seeds ({budget:g} s):", "",
                  "| data set | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        lines += [f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in methods) + " |"
                  for name, row in per_set.iterrows()]
        lines.append("")
    failed = frame[frame["test_score"].isna()]
    if len(failed):
        lines.append(f"Jobs without a score: {len(failed)} ("
                     + "; ".join(f"{r.dataset}/{r.method}/{r.seed}: {r.error}" for r in failed.itertuples()) + ").")
    return lines


if __name__ == "__main__":
    sys.exit(main())
