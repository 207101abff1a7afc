"""Deployment benchmark: real latencies, knob tuning by admm_tune, and constrained vs filtered search.

Three parts, each written to ``benchmarks/results/`` (CSV + one markdown file):

1. **Latency** (``deployment.csv``): logistic regression, an MLP, a
   100-tree random forest and gradient boosting on breast_cancer and digits;
   p50/p95 of one call at batch 1 and 256 for scikit-learn ``predict_proba``,
   ONNX Runtime with its own defaults, ONNX Runtime as tuned by admm_tune and
   OpenVINO as tuned by admm_tune (standard-operator graphs only).  "Tuned"
   means :func:`admm_tune.fit` on the deployment space alone, with the
   measured p95 latency of the fixed fitted model as the objective.
2. **Stability** (``deployment_stability.csv``): the same session timed five
   times in a row; the spread (max/min − 1) of p50 and p95.
3. **scikit-learn's input** (``deployment_sklearn_input.csv``): part 1 feeds
   ``predict_proba`` a DataFrame built on every call (what a service holding
   rows gets); here the same models are also fed a NumPy array (fitted on
   one), with ONNX Runtime's defaults timed in the same session for the ratio.
4. **Constrained search vs "search, then filter"** (``deployment_search.csv``):
   on ``breast_cancer_latency`` and ``digits_size_latency``, ADMM with the
   constraints against the baseline of the ADMM paper: the same search
   without the constraints, whose evaluations are then filtered by them; best
   feasible CV score and share of feasible evaluations at equal budgets.

Usage::

    python benchmarks/deployment.py [--parts latency stability inputs search lowering] [--seeds 3] [--evaluations 40]

Part ``lowering`` (``benchmarks/deployment_lowering.py``, ``results/lowering.md``): tree strategies x
backend x batch, the scaler-folding pass, and each backend's calling path.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import admm_tune
from admm_tune.data import load_dataset
from admm_tune.deployment import Deployment, load_deployment
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.backends.onnxruntime import OrtSession
from admm_tune.evaluate.export import export, feeds, is_standard
from admm_tune.evaluate.timing import TimingSettings, batch_rows, measure
from admm_tune.problem import Budget, Problem, load_problem
from _results import RESULTS  # beside this script

ROOT = Path(__file__).resolve().parent.parent
TIMING = TimingSettings(warmup=20, min_runs=50, max_runs=2000, seconds=1.0)
MODELS = {
    "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=300, random_state=0)),
    "random_forest_100": lambda: make_pipeline(RandomForestClassifier(100, random_state=0)),
    "gradient_boosting": lambda: make_pipeline(GradientBoostingClassifier(random_state=0)),
}
DATASETS = ["breast_cancer", "digits"]
BATCHES = [1, 256]


class SklearnSession:
    """``predict_proba`` of a scikit-learn pipeline behind the Session protocol, for the same harness.

    With ``columns``, each call builds a DataFrame of the rows (the pipeline was fitted on one); without, the
    pipeline (fitted on a NumPy array) gets the array itself.
    """

    size_bytes = 0

    def __init__(self, pipeline, columns=None) -> None:
        self.pipeline = pipeline
        self.columns = columns

    def run(self, inputs):
        X = next(iter(inputs.values()))
        return [self.pipeline.predict_proba(X if self.columns is None else pd.DataFrame(X, columns=self.columns))]


SKLEARN = "sklearn predict_proba"
"""The runtime label of scikit-learn fed a DataFrame per call in ``deployment.csv``."""
INPUTS = {"DataFrame": f"{SKLEARN}, DataFrame", "NumPy": f"{SKLEARN}, NumPy", "ORT": "onnxruntime, 1 thread"}
ONE_THREAD = {"intra_op_num_threads": 1, "inter_op_num_threads": 1}


def tuned_knobs(model, X, backend: str, batch: int, evaluations: int, seed: int) -> dict:
    """admm_tune searching the deployment space of one backend, minimising the measured p95 latency."""
    deployment = load_deployment({"space": "cpu"})
    space = deployment.space.restricted({"backend": [backend], "precision": ["fp32"]})
    inputs = feeds(model, X.iloc[batch_rows(len(X), batch)])
    settings = TimingSettings(warmup=10, min_runs=30, max_runs=500, seconds=0.2)

    def p95(config):
        session = get_backend(backend).compile(model, Deployment.knobs(config), "fp32")
        return measure(session, inputs, settings).latency_p95_ms

    tmp = Path(tempfile.mkdtemp())
    try:
        result = admm_tune.fit(Problem(space, p95, budget=Budget(evaluations=evaluations), name=f"tune-{backend}"),
                               seed=seed, run_dir=tmp, progress=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Deployment.knobs(result.best.config)


def fitted(on_array: bool = False):
    """Yield ``(data name, model name, X, pipeline fitted on the DataFrame, one fitted on its NumPy array (or
    None), the first one's ONNX graph)`` for every data set and model."""
    for data_name in DATASETS:
        data = load_dataset(f"sklearn:{data_name}", seed=0)
        X, y = data.X, data.y
        for model_name, make in MODELS.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                on_frame = make().fit(X, y)
                array_fit = make().fit(X.to_numpy(), y) if on_array else None
            yield data_name, model_name, X, on_frame, array_fit, export(on_frame, X.iloc[:5])


def latency(evaluations: int) -> pd.DataFrame:
    rows = []
    for data_name, model_name, X, pipeline, _, model in fitted():
        for batch in BATCHES:
            inputs = feeds(model, X.iloc[batch_rows(len(X), batch)])
            sessions = {"sklearn predict_proba": (SklearnSession(pipeline, X.columns), {}),
                        "onnxruntime default": (OrtSession(ort.InferenceSession(model.SerializeToString()), 0),
                                                {})}
            for backend in ("onnxruntime", "openvino"):
                if backend == "openvino" and not is_standard(model):
                    continue
                knobs = tuned_knobs(model, X, backend, batch, evaluations, seed=0)
                sessions[f"{backend} tuned"] = (get_backend(backend).compile(model, knobs, "fp32"), knobs)
            for label, (session, knobs) in sessions.items():
                timing = measure(session, inputs, TIMING)
                rows.append({"data": data_name, "model": model_name, "batch": batch, "runtime": label,
                             "p50_ms": timing.latency_p50_ms, "p95_ms": timing.latency_p95_ms,
                             "throughput_rps": timing.throughput_rps, "runs": timing.runs,
                             "knobs": " ".join(f"{k}={v}" for k, v in knobs.items())})
                print(f"{data_name:13s} {model_name:19s} b={batch:<3d} {label:22s} "
                      f"p50 {timing.latency_p50_ms * 1e3:9.1f} us  p95 {timing.latency_p95_ms * 1e3:9.1f} us",
                      flush=True)
    return pd.DataFrame(rows)


def inputs(rounds: int = 7) -> pd.DataFrame:
    """scikit-learn fed a DataFrame per call and fed a NumPy array, and ONNX Runtime, timed in one session.

    Everything on one thread, and the three timed in turn ``rounds`` times (median of the rounds), so that
    other work on the machine weighs on all three alike.
    """
    rows = []
    settings = replace(TIMING, seconds=0.2, max_runs=500)
    for data_name, model_name, X, on_frame, on_array, model in fitted(on_array=True):
        for batch in BATCHES:  # an ORT session binds its outputs for one batch size
            sessions = {INPUTS["DataFrame"]: SklearnSession(on_frame, X.columns),
                        INPUTS["NumPy"]: SklearnSession(on_array),
                        INPUTS["ORT"]: get_backend("onnxruntime").compile(model, ONE_THREAD, "fp32")}
            feed = feeds(model, X.iloc[batch_rows(len(X), batch)])
            times: dict[str, list] = {label: [] for label in sessions}
            with threadpool_limits(1):
                for _ in range(rounds):
                    for label, session in sessions.items():
                        times[label].append(measure(session, feed, settings))
            for label, timings in times.items():
                rows.append({"data": data_name, "model": model_name, "batch": batch, "runtime": label,
                             "p50_ms": float(np.median([t.latency_p50_ms for t in timings])),
                             "p95_ms": float(np.median([t.latency_p95_ms for t in timings])), "rounds": rounds})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def speedups(frame: pd.DataFrame, slow: str, fast: str) -> pd.Series:
    """p50 of ``slow`` over p50 of ``fast``, per data × model × batch."""
    p50 = frame.pivot_table(index=["data", "model", "batch"], columns="runtime", values="p50_ms", sort=False)
    return p50[slow] / p50[fast]


def stability(repeats: int = 5) -> pd.DataFrame:
    rows = []
    data = load_dataset("sklearn:breast_cancer", seed=0)
    for model_name in ("logistic_regression", "random_forest_100"):
        pipeline = MODELS[model_name]().fit(data.X, data.y)
        model = export(pipeline, data.X.iloc[:5])
        for backend in ("onnxruntime", "openvino"):
            if backend == "openvino" and not is_standard(model):
                continue
            session = get_backend(backend).compile(model, {}, "fp32")
            for batch in BATCHES:
                inputs = feeds(model, data.X.iloc[batch_rows(len(data.X), batch)])
                timings = [measure(session, inputs, TimingSettings()) for _ in range(repeats)]
                p50 = np.array([t.latency_p50_ms for t in timings])
                p95 = np.array([t.latency_p95_ms for t in timings])
                rows.append({"model": model_name, "backend": backend, "batch": batch, "repeats": repeats,
                             "p50_ms_median": float(np.median(p50)), "p50_spread": float(p50.max() / p50.min() - 1),
                             "p95_ms_median": float(np.median(p95)), "p95_spread": float(p95.max() / p95.min() - 1)})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def search(seeds: int, evaluations: int) -> pd.DataFrame:
    rows = []
    for name in ("breast_cancer_latency", "digits_size_latency"):
        constrained = load_problem(ROOT / "problems" / f"{name}.yaml")
        kept = tuple(c for c in constrained.constraints if c.metric == "output_mismatch")
        for seed in range(seeds):
            for mode, problem in (("constrained", constrained), ("search then filter",
                                                                  replace(constrained, constraints=kept))):
                tmp = Path(tempfile.mkdtemp())
                start = time.perf_counter()
                try:
                    result = admm_tune.fit(problem, budget=evaluations, seed=seed, run_dir=tmp, progress=False)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                trials = result.trials[result.trials["state"] == "complete"]
                ok = np.ones(len(trials), dtype=bool)
                for c in constrained.constraints:
                    values = trials[f"metric:{c.metric}"].to_numpy(dtype=float)
                    ok &= values <= c.bound if c.sense == "max" else values >= c.bound
                feasible = trials[ok]
                best = float(feasible["metric:cv_score"].max()) if len(feasible) else float("nan")
                rows.append({"problem": name, "mode": mode, "seed": seed, "evaluations": len(result.trials),
                             "feasible_share": float(ok.sum()) / len(result.trials), "best_feasible_cv": best,
                             "seconds": time.perf_counter() - start})
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def table_md(frame: pd.DataFrame) -> str:
    """A markdown table (floats to 4 significant digits)."""
    cells = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per data × model × batch, one "p50 / p95" column (µs) per runtime."""
    table = frame.assign(cell=lambda f: [f"{a * 1e3:.1f} / {b * 1e3:.1f}" for a, b in zip(f.p50_ms, f.p95_ms)])
    return table.pivot_table(index=["data", "model", "batch"], columns="runtime", values="cell", aggfunc="first",
                             sort=False)


def span(ratios: pd.Series) -> str:
    """``"2.1–661×"``: the range of ``ratios`` (one decimal below 10)."""
    return "–".join(f"{x:.1f}" if x < 10 else f"{x:.0f}" for x in (ratios.min(), ratios.max())) + "×"


def markdown(lat: pd.DataFrame | None, stab: pd.DataFrame | None, srch: pd.DataFrame | None,
             inp: pd.DataFrame | None = None) -> str:
    out = ["# Deployment benchmark", "",
           "Reproduce: `python benchmarks/deployment.py` (CSV files beside this one hold every figure).", ""]
    if lat is not None:
        out += ["## Latency of one call (µs), p50 / p95", "",
                "Tuned: admm_tune searching the backend's knobs for the lowest measured p95 latency "
                "of the fixed model.  scikit-learn is fed a DataFrame built on every call (see the next "
                "section for a NumPy array).", ""]
        wide = cells(lat).fillna("n/a (ai.onnx.ml graph)").rename(columns={SKLEARN: f"{SKLEARN} (DataFrame)"})
        out += [table_md(wide.reset_index()), "",
                f"p50 of scikit-learn (DataFrame) over ONNX Runtime's default: "
                f"{span(speedups(lat, SKLEARN, 'onnxruntime default'))}.", ""]
    if inp is not None:
        out += ["## scikit-learn fed a DataFrame per call or a NumPy array, and ONNX Runtime, in one session "
                "(µs, p50 / p95)", "",
                "Each model is fitted twice (on the DataFrame, on its NumPy array) so neither input warns.  "
                "All on one thread, the three timed in turn (median of the rounds), while other work shared the "
                "2-core machine: compare within this table, not with the one above.", ""]
        wide = cells(inp).reindex(columns=list(INPUTS.values()))
        out += [table_md(wide.reset_index()), "",
                f"p50 over ONNX Runtime's: scikit-learn fed a DataFrame "
                f"{span(speedups(inp, INPUTS['DataFrame'], INPUTS['ORT']))}, fed a NumPy array "
                f"{span(speedups(inp, INPUTS['NumPy'], INPUTS['ORT']))}; "
                f"the DataFrame costs {span(speedups(inp, INPUTS['DataFrame'], INPUTS['NumPy']))} the NumPy "
                "array's time.", ""]
    if stab is not None:
        out += ["## Stability: the same session timed 5 times (spread = max/min − 1)", "",
                table_md(stab), "",
                f"Largest spread: {stab['p50_spread'].max():.1%} in p50, {stab['p95_spread'].max():.1%} in p95.", ""]
    if srch is not None:
        out += ["## Constrained search vs unconstrained search then filter (equal budgets)", ""]
        summary = srch.groupby(["problem", "mode"], sort=False).agg(
            seeds=("seed", "count"), evaluations=("evaluations", "first"),
            feasible_share=("feasible_share", "mean"), best_feasible_cv_mean=("best_feasible_cv", "mean"),
            best_feasible_cv_sd=("best_feasible_cv", "std"), runs_with_a_feasible=("best_feasible_cv", "count"))
        share = srch.pivot_table(index=["problem", "seed"], columns="mode", values="feasible_share", sort=False)
        wins = (share["constrained"] > share["search then filter"]).groupby(level="problem", sort=False)
        out += [table_md(summary.reset_index()), "",
                "Seeds where the constrained search had the larger feasible share: "
                + ", ".join(f"{name} {int(w.sum())} of {len(w)}" for name, w in wins) + ".", ""]
    return "\n".join(out)


PARTS = {"latency": RESULTS / "deployment.csv", "stability": RESULTS / "deployment_stability.csv",
         "inputs": RESULTS / "deployment_sklearn_input.csv", "search": RESULTS / "deployment_search.csv"}


def from_results() -> str:
    """``deployment.md`` as the committed CSV files give it."""
    frames = {part: pd.read_csv(path) if path.exists() else None for part, path in PARTS.items()}
    return markdown(frames["latency"], frames["stability"], frames["search"], frames["inputs"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=[*PARTS, "lowering"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evaluations", type=int, default=40, help="budget of each search")
    parser.add_argument("--tune-evaluations", type=int, default=16, help="budget of each knob tuning")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for part, path in PARTS.items():
        if part in args.parts:
            frame = {"latency": lambda: latency(args.tune_evaluations), "stability": stability, "inputs": inputs,
                     "search": lambda: search(args.seeds, args.evaluations)}[part]()
            frame.to_csv(path, index=False)
    text = from_results()
    (RESULTS / "deployment.md").write_text(text)
    print(text)
    if "lowering" in args.parts:  # tree strategies, passes, calling paths: results/lowering.md
        import deployment_lowering

        deployment_lowering.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
