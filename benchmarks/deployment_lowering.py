"""Lowering benchmark (part ``lowering`` of ``benchmarks/deployment.py``): tree strategies, passes, calling paths.

Three tables, written to ``benchmarks/results/lowering.csv`` / ``lowering.md``:

1. **Strategies**: a decision tree, 10/100/300-tree random forests
   (``max_depth=10``, so that ``perfect`` trees stay within their limit),
   gradient boosting and an RBF SVC on breast_cancer, and a one-hot +
   logistic regression pipeline on categorical data; each ``tree_lowering``
   (``native`` on ONNX Runtime only) on ONNX Runtime and OpenVINO, at batch 1
   and 1024, one thread: p50 / p95 of one call with the project's timing
   harness.
2. **Passes**, on ONNX Runtime (native kernels): a standard scaler +
   100-tree forest with the scaler folded into the thresholds, and standard
   scaler + PCA + logistic regression with its affine chain merged, each
   against the exported graph.
3. **Calling paths**: a 30-feature MatMul + Softmax graph at batch 1, one
   thread: OpenVINO ``infer(dict)`` with copies (the session before),
   ``share_inputs/share_outputs``, and the bound shared-memory tensor of
   :class:`~admm_tune.evaluate.backends.openvino.OvSession`; ONNX Runtime
   ``run`` and the I/O binding of
   :class:`~admm_tune.evaluate.backends.onnxruntime.OrtSession`.
4. **Families at scale on OpenVINO**: every estimator of the default
   classification and regression spaces, behind a standard scaler, fitted on
   4,000 rows of a generated 5,000 x 60 table (3 classes; a regression
   target), forests with 100 trees of unbounded depth (a decision tree
   unbounded too; the other estimators at the space's defaults), compiled by
   OpenVINO with each ``tree_lowering`` it may be given and checked on the
   1,000 other rows against scikit-learn by the deployment's fp32 rule
   (``TOLERANCES["fp32"]``): the strategy that really ran (a fallback when the
   forest rules the asked one out), the rows off, p50 at batch 1.

Usage::

    python benchmarks/deployment_lowering.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from _results import save  # beside this script
from admm_tune.data import load_dataset
from admm_tune.evaluate.backends import BackendError, get_backend
from admm_tune.evaluate.deploy import TOLERANCES
from admm_tune.evaluate.export import export, feeds, restore
from admm_tune.evaluate.graph import NATIVE, STRATEGIES, fold_scalers_into_trees
from admm_tune.evaluate.graph.lowering import APPLIED_KEY
from admm_tune.evaluate.pipeline import build_pipeline
from admm_tune.evaluate.timing import TimingSettings, batch_rows, measure
from admm_tune.space import SearchSpace

SETTINGS = TimingSettings(warmup=20, min_runs=50, max_runs=2000, seconds=0.5)
BATCHES = (1, 1024)
NO_TREES = ("SVC (rbf)", "one-hot + logistic")
FAMILY_ROWS, FAMILY_COLUMNS, FAMILY_FIT_ROWS = 5000, 60, 4000
UNBOUNDED = {"random_forest": {"n_estimators": 100, "max_depth": None},
             "extra_trees": {"n_estimators": 100, "max_depth": None}, "decision_tree": {"max_depth": None}}
"""Forests of 100 trees of unbounded depth and an unbounded tree, the largest the lowering is asked to hold; the
boosted ensembles keep the space's shallow trees (their depth is what they are searched on)."""
ONE_THREAD = {"onnxruntime": {"intra_op_num_threads": 1, "inter_op_num_threads": 1},
              "openvino": {"inference_num_threads": 1, "num_streams": 1, "performance_hint": "LATENCY"}}


def models() -> dict[str, tuple[object, pd.DataFrame]]:
    """The fitted pipelines and the rows they are timed on."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    out: dict[str, tuple[object, pd.DataFrame]] = {
        "decision tree": (DecisionTreeClassifier(random_state=0), X),
        "forest 10": (RandomForestClassifier(10, max_depth=10, random_state=0), X),
        "forest 100": (RandomForestClassifier(100, max_depth=10, random_state=0), X),
        "forest 300": (RandomForestClassifier(300, max_depth=10, random_state=0), X),
        "gradient boosting": (GradientBoostingClassifier(random_state=0), X),
        "SVC (rbf)": (make_pipeline(StandardScaler(), SVC()), X),
    }
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=600), "colour": rng.choice(["red", "green", "blue", "grey"], 600),
                          "size": rng.choice(["s", "m", "l"], 600)})
    target = ((frame["x"] > 0) ^ (frame["colour"] == "red")).astype(int)
    front = ColumnTransformer([("numeric", "passthrough", ["x"]),
                               ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                ["colour", "size"])])
    out["one-hot + logistic"] = (make_pipeline(front, LogisticRegression()), frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, rows) in out.items():
            model.fit(rows, y if rows is X else target)
    return out


def strategies() -> pd.DataFrame:
    rows = []
    for name, (pipeline, X) in models().items():
        model = export(pipeline, X.iloc[:5])
        for backend, choices in (("onnxruntime", (NATIVE, *STRATEGIES)), ("openvino", STRATEGIES)):
            for strategy in choices:
                try:
                    session = get_backend(backend).compile(model, {**ONE_THREAD[backend], "tree_lowering": strategy})
                except BackendError as exc:
                    rows.append({"model": name, "backend": backend, "strategy": strategy, "note": str(exc)[:80]})
                    continue
                for batch in BATCHES:
                    t = measure(session, feeds(model, X.iloc[batch_rows(len(X), batch)]), SETTINGS)
                    rows.append({"model": name, "backend": backend, "strategy": strategy, "batch": batch,
                                 "p50_ms": t.latency_p50_ms, "p95_ms": t.latency_p95_ms})
    return pd.DataFrame(rows)


def passes() -> pd.DataFrame:
    from sklearn.decomposition import PCA

    from admm_tune.evaluate.graph import merge_linear_chains

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(100, max_depth=10, random_state=0)).fit(X, y)
    linear = make_pipeline(StandardScaler(), PCA(10), LogisticRegression()).fit(X, y)
    cases = [("fold scaler into trees", forest, fold_scalers_into_trees),
             ("merge affine chain (standard + PCA + logistic)", linear, merge_linear_chains)]
    rows = []
    for name, pipeline, rewrite in cases:
        model = export(pipeline, X.iloc[:5])
        for label, graph in (("exported", model), ("after the pass", rewrite(model))):
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = ort.InferenceSession(graph.SerializeToString(), options)
            names = [o.name for o in session.get_outputs()]
            runner = type("Run", (), {"run": lambda self, f, s=session, n=names: s.run(n, f)})()
            for batch in BATCHES:
                t = measure(runner, feeds(graph, X.iloc[batch_rows(len(X), batch)]), SETTINGS)
                rows.append({"pass": name, "graph": label, "nodes": len(graph.graph.node), "batch": batch,
                             "p50_ms": t.latency_p50_ms, "p95_ms": t.latency_p95_ms})
    return pd.DataFrame(rows)


def calling_paths() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(30, 2)).astype(np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Z"]),
                               helper.make_node("Softmax", ["Z"], ["P"], axis=1)], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 30])],
                              [helper.make_tensor_value_info("P", TensorProto.FLOAT, [None, 2])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.normal(size=(1, 30)).astype(np.float32)
    ov_session = get_backend("openvino").compile(model, ONE_THREAD["openvino"])
    ort_session = get_backend("onnxruntime").compile(model, ONE_THREAD["onnxruntime"])
    request = ov_session.compiled.create_infer_request()
    out = ov_session.compiled.outputs[0]
    calls = {
        "openvino infer(dict), copies (before)": lambda: np.asarray(request.infer({"X": x})[out]),
        "openvino share_inputs/share_outputs": lambda: np.asarray(
            request.infer({"X": x}, share_inputs=True, share_outputs=True)[out]).copy(),
        "openvino bound shared tensor (OvSession)": lambda: ov_session.run({"X": x}),
        "onnxruntime run": lambda: ort_session.session.run(["P"], {"X": x}),
        "onnxruntime I/O binding (OrtSession)": lambda: ort_session.run({"X": x}),
    }
    rows = []
    for name, call in calls.items():
        for _ in range(500):
            call()
        times = []
        for _ in range(5000):
            start = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - start)
        rows.append({"call": name, "p50_us": float(np.percentile(times, 50)) / 1e3,
                     "p95_us": float(np.percentile(times, 95)) / 1e3})
    return pd.DataFrame(rows)


def _final(pipeline, fitted: bool):
    """The pipeline's estimator (a regressor's, inside its target scaling)."""
    step = pipeline.steps[-1][1]
    return getattr(step, "regressor_" if fitted else "regressor", step)


def families() -> pd.DataFrame:
    from sklearn.datasets import make_classification, make_regression

    tables = {"classification": make_classification(FAMILY_ROWS, FAMILY_COLUMNS, n_informative=20, n_classes=3,
                                                     random_state=0),
              "regression": make_regression(FAMILY_ROWS, FAMILY_COLUMNS, n_informative=20, noise=5.0, random_state=0)}
    rows = []
    for space_name, (X, y) in tables.items():
        frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(FAMILY_COLUMNS)])
        data = load_dataset({"X": frame, "y": y}, seed=0, task=space_name)
        fit, check = slice(0, FAMILY_FIT_ROWS), slice(FAMILY_FIT_ROWS, None)
        space = SearchSpace.load(space_name)
        for algo in space.module("estimator").algorithms:
            row = {"space": space_name, "estimator": algo.name}
            if not algo.exportable:
                rows.append({**row, "note": "not exportable"})
                continue
            pipeline = build_pipeline(space.complete({"scaler": "standard", "transformer": "none",
                                                      "estimator": algo.name}), space, data, 0)
            _final(pipeline, fitted=False).set_params(**UNBOUNDED.get(algo.name, {}))
            start = time.perf_counter()
            pipeline.fit(frame.iloc[fit], y[fit])
            row["fit_s"] = time.perf_counter() - start
            model = export(pipeline, frame.iloc[:5])
            fitted = _final(pipeline, fitted=True)
            trees = [e for e in np.ravel(getattr(fitted, "estimators_", [fitted])) if hasattr(e, "tree_")]
            row["max_tree_depth"] = max((e.tree_.max_depth for e in trees), default=None)
            held = frame.iloc[check]
            expected = pipeline.predict(held)
            proba = pipeline.predict_proba(held) if hasattr(pipeline, "predict_proba") else None
            for strategy in STRATEGIES:
                start = time.perf_counter()
                try:
                    session = get_backend("openvino").compile(model, {**ONE_THREAD["openvino"],
                                                                      "tree_lowering": strategy})
                except BackendError as exc:
                    rows.append({**row, "strategy": strategy, "note": str(exc)[:120]})
                    continue
                compile_s = time.perf_counter() - start
                graph = get_backend("openvino").prepare(model, {"tree_lowering": strategy})
                applied = next((p.value.split(" ")[0] for p in graph.metadata_props if p.key == APPLIED_KEY),
                               strategy)
                out = session.run(feeds(model, held))
                tolerance = TOLERANCES["fp32"].outputs
                if space_name == "regression":
                    off = np.abs(restore(model, out[0]).ravel() - expected) / float(np.std(y)) > tolerance
                else:  # labels, and the probabilities where the pipeline has them
                    off = np.asarray(out[0]).ravel() != expected
                    if proba is not None:
                        off |= np.abs(np.asarray(out[1]).reshape(proba.shape) - proba).max(axis=1) > tolerance
                timed = measure(session, feeds(model, held.iloc[:1]), SETTINGS)
                rows.append({**row, "strategy": strategy, "applied": applied, "rows_off": int(off.sum()),
                             "checked": len(held), "deployed": bool(off.mean() <= TOLERANCES["fp32"].labels),
                             "compile_s": compile_s,
                             "p50_ms": timed.latency_p50_ms})
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + " |")
    return lines


def markdown(frame: pd.DataFrame) -> list[str]:
    """The lines of ``lowering.md`` from the rows of ``lowering.csv`` (its three tables, told apart by ``part``)."""
    s, p, c, f = (frame[frame["part"] == part].dropna(axis=1, how="all").drop(columns="part")
                  for part in ("strategies", "passes", "calling paths", "families"))
    s, p = s.astype({"batch": int}), p.astype({"batch": int, "nodes": int})  # CSV floats where the rows had ints
    timed = s.dropna(subset=["p50_ms"])
    best = timed.loc[timed.groupby(["model", "batch"])["p50_ms"].idxmin()]
    wide = timed.pivot_table(index=["model", "batch"], columns=["backend", "strategy"], values="p50_ms")
    wide.columns = [f"{b}/{s}" for b, s in wide.columns]
    wide = wide.reset_index()
    refused = s[s.get("note", pd.Series(dtype=str)).notna()] if "note" in s else s.iloc[:0]
    lines = ["# Lowering: tree strategies, passes, calling paths", "",
             "Produced by `python benchmarks/deployment_lowering.py` (one thread; p50 of one call in ms, the "
             "project's timing harness).", "", "## p50 (ms) per model, batch, backend/strategy", "",
             *table(wide, list(wide.columns)), "", "## Fastest per model and batch", "",
             *table(best, ["model", "batch", "backend", "strategy", "p50_ms", "p95_ms"]), ""]
    lowered = timed[timed["strategy"] != NATIVE]
    winners = lowered.loc[lowered.groupby(["model", "batch", "backend"])["p50_ms"].idxmin()]
    lines += ["## Fastest lowered strategy per backend", "",
              *table(winners, ["model", "batch", "backend", "strategy", "p50_ms"]), ""]
    trees = winners[~winners["model"].isin(NO_TREES)]
    counts = trees.groupby(["backend", "batch"])["strategy"].value_counts().unstack(fill_value=0)
    before = c.set_index("call")["p50_us"]
    ratio = before["openvino infer(dict), copies (before)"] / before["openvino bound shared tensor (OvSession)"]
    native_wins = int((best["strategy"] == NATIVE).sum())
    lines += ["## Note", "",
              f"- ONNX Runtime's native ai.onnx.ml kernels are the fastest in {native_wins} of {len(best)} "
              "model x batch cases: on one CPU thread the lowering buys portability (OpenVINO, TensorRT's "
              "parser), not speed; `tree_lowering` lets the search measure it per candidate.",
              "- Lowered strategy wins among the tree models (count) per backend and batch: "
              + "; ".join(f"{b} batch {n}: " + ", ".join(f"{k} {v}" for k, v in row.items() if v)
                          for (b, n), row in counts.iterrows()) + ".",
              "- The SVC and one-hot + logistic graphs have no trees: their strategies give the same graph, and "
              "the differences between them are timing noise (this machine is shared).",
              *[f"- {name}: p50 {g.iloc[0]['p50_ms'] * 1e3:.1f} -> {g.iloc[1]['p50_ms'] * 1e3:.1f} us at batch "
                f"{batch} ({g.iloc[0]['p50_ms'] / g.iloc[1]['p50_ms']:.2f}x)."
                for (name, batch), g in p.groupby(["pass", "batch"], sort=False)],
              f"- OpenVINO's per-call overhead: {before['openvino infer(dict), copies (before)']:.1f} us with "
              f"infer(dict) and copies (the session before), {before['openvino bound shared tensor (OvSession)']:.1f}"
              f" us with the bound shared tensor: {ratio:.1f}x less.", ""]
    if len(refused):
        lines += ["Refused: " + "; ".join(f"{r.model} {r.backend}/{r.strategy}: {r.note}"
                                          for r in refused.itertuples()), ""]
    lines += ["## Passes (ONNX Runtime, native kernels, all its own optimisations on)", "",
              *table(p, ["pass", "graph", "nodes", "batch", "p50_ms", "p95_ms"]),
              "", "## Calling paths (30-feature MatMul + Softmax, batch 1, one thread; us)", "",
              *table(c, ["call", "p50_us", "p95_us"]), "", *families_section(f)]
    return lines


def families_section(f: pd.DataFrame) -> list[str]:
    """The fourth table of ``lowering.md``: every estimator of the default spaces at scale on OpenVINO."""
    f = f.assign(**{c: f[c] if c in f else "" for c in ("applied", "note")})  # absent: no row had one
    f = f.astype({"deployed": "boolean"}).fillna({"applied": "", "note": ""})
    f["depth"] = f["max_tree_depth"].map(lambda d: "" if pd.isna(d) else f"{int(d)}")
    f["off"] = [("" if pd.isna(o) else f"{int(o)}/{int(n)}") for o, n in zip(f["rows_off"], f["checked"])]
    exportable = f[f["note"] != "not exportable"]
    per_estimator = exportable.groupby(["space", "estimator"])["deployed"].agg(lambda d: bool(d.fillna(False).all()))
    fell_back = exportable[(exportable["applied"] != "") & (exportable["applied"] != exportable["strategy"])]
    return ["## Families at scale on OpenVINO", "",
            f"Every estimator of the default spaces behind a standard scaler, fitted on {FAMILY_FIT_ROWS:,} rows of "
            f"a generated {FAMILY_ROWS:,} x {FAMILY_COLUMNS} table (3 classes; a regression target); random forest "
            "and extra trees with 100 trees of unbounded depth, the decision tree unbounded; checked on the other "
            f"{FAMILY_ROWS - FAMILY_FIT_ROWS:,} rows against scikit-learn with the deployment's fp32 rule (rows "
            f"off: label differs or a probability by more than {TOLERANCES['fp32'].outputs:g}; regression: a value "
            f"by more than {TOLERANCES['fp32'].outputs:g} target sd; deployed when at most "
            f"{TOLERANCES['fp32'].labels:.0%} are off); one thread; `applied`: the strategy that really ran.", "",
            f"- {int(per_estimator.sum())} of {len(per_estimator)} exportable estimators deployed with every strategy "
            "asked of them" + ("" if per_estimator.all() else ", not: " + ", ".join(
                f"{sp}.{e}" for (sp, e), ok in per_estimator.items() if not ok)) + "; "
            f"{len(fell_back)} requests fell back to another strategy inside the same compile"
            + (" (" + ", ".join(sorted({f"{r.estimator} {r.strategy}" for r in fell_back.itertuples()})) + ")"
               if len(fell_back) else "") + "; not exportable: "
            + (", ".join(f"{r.space}.{r.estimator}" for r in f[f["note"] == "not exportable"].itertuples()) or "none")
            + ".", "",
            *table(exportable, ["space", "estimator", "depth", "strategy", "applied", "off", "deployed", "fit_s",
                                "compile_s", "p50_ms"]), ""]


def main() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s, p, c, f = strategies(), passes(), calling_paths(), families()
    frame = pd.concat([s.assign(part="strategies"), p.assign(part="passes"), c.assign(part="calling paths"),
                       f.assign(part="families")])
    save("lowering", frame, markdown(frame))


if __name__ == "__main__":
    main()
