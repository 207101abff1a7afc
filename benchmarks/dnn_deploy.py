"""Deploying the shipped digits CNN: backend x precision x batch, baselines, and admm_tune's choice.

For ``problems/models/digits_cnn.onnx`` on the split of
``problems/digits_cnn_deploy.yaml`` (179 calibration rows, 418 held-out
rows), at batch 1 and 64:

1. the grid: each backend x precision at the backend's default knobs
   (int8 static with its defaults: MinMax, per-tensor), measured by
   admm_tune's evaluator (held-out accuracy, the timing harness);
2. baselines: ONNX Runtime opened with its defaults and called by
   ``session.run``; OpenVINO with its ``LATENCY`` and ``THROUGHPUT`` hints
   alone; ``quantize_static`` with its defaults on ONNX Runtime's defaults;
   NNCF's ``nncf.quantize`` with its defaults on OpenVINO (its
   ``quantize_with_accuracy_control`` is not run: see docs/deploy-problems.md);
3. admm_tune: the problem with ``accuracy_drop <= 0.005`` and ``<= 0.01``,
   a latency-p50 objective, ``--evaluations`` per search and ``--seeds``
   seeds; its chosen configuration re-measured.

Every timing uses the same harness settings, on this machine, in one
process.  Writes ``benchmarks/results/dnn_deploy.csv`` and
``dnn_deploy.md``.

Usage::

    python benchmarks/dnn_deploy.py [--evaluations 40] [--seeds 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import admm_tune
from _results import save  # beside this script
from admm_tune import load_problem
from admm_tune.deploy_problem import structures
from admm_tune.evaluate.backends import get_backend
from admm_tune.evaluate.onnx_model import compress, run_rows, top1
from admm_tune.evaluate.timing import TimingSettings, measure
from admm_tune.space import describe

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = ROOT / "problems" / "digits_cnn_deploy.yaml"
TIMING = {"warmup": 20, "min_runs": 100, "max_runs": 2000, "seconds": 0.5}
BATCHES = (1, 64)
BOUNDS = (0.005, 0.01)


class _Plain:
    """A session called the library's plain way (``session.run`` / a compiled model's ``__call__``)."""

    def __init__(self, run, size_bytes: int) -> None:
        self.run, self.size_bytes = run, size_bytes


def _problem_file(tmp: Path, batch: int, bound: float) -> Path:
    raw = yaml.safe_load(PROBLEM.read_text())
    raw["model"], raw["data"]["path"] = str(PROBLEM.parent / raw["model"]), str(PROBLEM.parent / raw["data"]["path"])
    raw["deployment"] = {"space": "cpu", "batch_size": batch, "timing": TIMING}
    raw["constraints"] = [{"metric": "accuracy_drop", "max": bound}]
    file = tmp / f"b{batch}_{bound}.yaml"
    file.write_text(yaml.safe_dump(raw))
    return file


def _row(kind: str, name: str, batch: int, timing, accuracy: float, reference: float, **extra) -> dict:
    return {"kind": kind, "configuration": name, "batch": batch, "p50_us": timing.latency_p50_ms * 1e3,
            "p95_us": timing.latency_p95_ms * 1e3, "throughput_rps": timing.throughput_rps, "accuracy": accuracy,
            "accuracy_drop": reference - accuracy, **extra}


def run(evaluations: int, seeds: int) -> pd.DataFrame:
    """Every row of ``dnn_deploy.csv``."""
    import onnxruntime as ort
    import openvino as ov

    rows = []
    settings = TimingSettings(**TIMING)
    with tempfile.TemporaryDirectory() as tmp:
        for batch in BATCHES:
            problem = load_problem(_problem_file(Path(tmp), batch, 0.01))
            evaluator = problem.objective
            held = evaluator.data.rows(evaluator.data.split.held_out)
            calibration = evaluator.data.rows(evaluator.data.split.calibration)
            feeds = {k: v[np.arange(batch) % len(v)] for k, v in held.items()}
            ref = evaluator.reference
            for backend, precision in structures(problem.space):
                obs = evaluator(problem.space.complete({"backend": backend, "precision": precision}))
                m = obs.metrics
                rows.append({"kind": "grid", "configuration": f"{backend} {precision} (default knobs)",
                             "batch": batch, "p50_us": m["latency_p50_ms"] * 1e3, "p95_us": m["latency_p95_ms"] * 1e3,
                             "throughput_rps": m["throughput_rps"], "accuracy": m["accuracy"],
                             "accuracy_drop": m["accuracy_drop"]})

            def accuracy(session) -> float:
                return float(np.mean(top1(run_rows(session, held, batch)) == evaluator.truth))

            for name, model in [("ONNX Runtime defaults, fp32", evaluator.model),
                                ("quantize_static defaults on ONNX Runtime defaults",
                                 compress(evaluator.model, "int8_static", calibration))]:
                s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                session = _Plain(lambda f, s=s: s.run(None, dict(f)), 0)
                rows.append(_row("baseline", name, batch, measure(session, feeds, settings), accuracy(session), ref))
            core = ov.Core()
            nncf_model = compress(evaluator.model, "int8_nncf", calibration)
            for name, model, hint in [("OpenVINO LATENCY hint, fp32", evaluator.model, "LATENCY"),
                                      ("OpenVINO THROUGHPUT hint, fp32", evaluator.model, "THROUGHPUT"),
                                      ("nncf.quantize defaults on OpenVINO (LATENCY hint)", nncf_model, "LATENCY")]:
                compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                              {"PERFORMANCE_HINT": hint})
                session = _Plain(lambda f, c=compiled: list(c(dict(f)).to_tuple()), 0)
                rows.append(_row("baseline", name, batch, measure(session, feeds, settings), accuracy(session), ref))
            for bound in BOUNDS:
                file = _problem_file(Path(tmp), batch, bound)
                for seed in range(seeds):
                    start = time.perf_counter()
                    result = admm_tune.fit(file, budget=evaluations, seed=seed, progress=False, storage="memory")
                    seconds = time.perf_counter() - start
                    config = result.best.config
                    obs = evaluator(config)  # re-measured
                    m = obs.metrics
                    rows.append({"kind": f"admm_tune, accuracy_drop <= {bound}", "batch": batch, "seed": seed,
                                 "configuration": describe(config),
                                 "p50_us": m["latency_p50_ms"] * 1e3, "p95_us": m["latency_p95_ms"] * 1e3,
                                 "throughput_rps": m["throughput_rps"], "accuracy": m["accuracy"],
                                 "accuracy_drop": m["accuracy_drop"], "feasible": bool(result.feasible),
                                 "evaluations": len(result.trials), "search_s": seconds})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> list[str]:
    """``dnn_deploy.md`` from the rows of ``dnn_deploy.csv``."""
    lines = ["# Deploying the digits CNN (problems/models/digits_cnn.onnx)", "",
             "Generated by `benchmarks/dnn_deploy.py` from `dnn_deploy.csv`.  p50/p95: latency of one call (µs) "
             "at the batch; accuracy: top-1 on the 418 held-out rows (fp32: "
             f"{frame['accuracy'].iloc[0] + frame['accuracy_drop'].iloc[0]:.4f}); "
             "admm_tune rows: the chosen configuration re-measured, one row per seed.", ""]
    for batch, part in frame.groupby("batch", sort=True):
        lines += [f"## Batch {batch}", "", "| kind | configuration | p50 µs | p95 µs | rows/s | accuracy drop |"
                  " evaluations | search s |", "|---|---|---|---|---|---|---|---|"]
        for _, r in part.iterrows():
            evals = "" if pd.isna(r.get("evaluations")) else f"{int(r['evaluations'])}"
            secs = "" if pd.isna(r.get("search_s")) else f"{r['search_s']:.1f}"
            lines.append(f"| {r['kind']} | {r['configuration']} | {r['p50_us']:.1f} | {r['p95_us']:.1f} | "
                         f"{r['throughput_rps']:.0f} | {r['accuracy_drop']:.4f} | {evals} | {secs} |")
        base = part[part["kind"] == "baseline"]
        for bound in BOUNDS:
            ours = part[part["kind"] == f"admm_tune, accuracy_drop <= {bound}"]
            fair = base[base["accuracy_drop"] <= bound]
            if len(ours) and len(fair):
                best = fair.loc[fair["p50_us"].idxmin()]
                lines += ["", f"Bound {bound}: admm_tune's p50 {ours['p50_us'].min():.1f}–{ours['p50_us'].max():.1f} µs "
                              f"against the fastest baseline within the bound, {best['configuration']}, "
                              f"{best['p50_us']:.1f} µs."]
        lines.append("")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    save("dnn_deploy", run(args.evaluations, args.seeds), [])
    frame = pd.read_csv(Path(__file__).resolve().parent / "results" / "dnn_deploy.csv")
    save("dnn_deploy", frame, markdown(frame))
