"""Deploying the shipped networks: backend x precision x batch, baselines, and admm_tune's choice.

For each shipped model (``problems/models/digits_cnn.onnx``, 46 kB;
``digits_wide_cnn.onnx``, 4.6 MB; ``digits_mlp.onnx``, 8.4 MB, where
compression pays at batch 1), on the split of its problem file (179
calibration rows, 418 held-out rows), at batch 1 and 64:

1. the grid: each backend x precision at the backend's default knobs
   (int8 static with its defaults: MinMax, per-tensor), measured by
   admm_tune's evaluator (held-out accuracy, the timing harness);
2. baselines, each what a user gets from the libraries' own settings:
   ONNX Runtime opened with its defaults, and with one intra-op thread (the
   thread setting its tuning guide suggests trying for small models);
   ``quantize_static`` and ``quantize_dynamic`` with their defaults on ONNX
   Runtime's defaults; OpenVINO with its ``LATENCY`` and ``THROUGHPUT``
   hints alone (its inference precision left at the plugin's default, which
   the row names: bf16 on CPUs with AMX); NNCF's ``nncf.quantize`` with its
   defaults, and its ``quantize_with_accuracy_control`` with the bound as
   ``max_drop`` (validated on the calibration rows), both on OpenVINO's
   LATENCY hint.  Every baseline is called through the same calling path as
   admm_tune's candidates (its ``OrtSession``: one reused I/O binding; its
   ``OvSession``: one reused infer request with shared input tensors), so
   that only the configuration differs; the two defaults are also timed
   called the plain way (``session.run(dict)``, ``compiled(dict)``), rows
   of kind ``plain call``, which show what the calling path alone gains;
3. admm_tune: the problem with ``accuracy_drop <= 0.005`` and ``<= 0.01``,
   a latency-p50 objective, ``--evaluations`` per search and ``--seeds``
   seeds; its choice is the one its final race picked (the best finalists
   re-measured in interleaved rounds, ``admm_tune.deploy_problem.race``).

The machine is shared, so the final figures of every baseline and every
chosen configuration are measured in ``--rounds`` interleaved rounds (each
round measures all of them once, in turn) and the median of the rounds is
reported: load hits every method alike.  The grid is measured once.
Writes ``benchmarks/results/dnn_deploy.csv`` and ``dnn_deploy.md``.

Usage::

    python benchmarks/dnn_deploy.py [--evaluations 40] [--seeds 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
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
from admm_tune.evaluate.backends.onnxruntime import OrtSession
from admm_tune.evaluate.backends.openvino import OvSession
from admm_tune.evaluate.onnx_model import compress, run_rows
from admm_tune.evaluate.timing import TimingSettings, measure
from admm_tune.space import describe

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = {"digits_cnn": ROOT / "problems" / "digits_cnn_deploy.yaml",
            "digits_wide_cnn": ROOT / "problems" / "digits_wide_cnn_deploy.yaml",
            "digits_mlp": ROOT / "problems" / "digits_mlp_deploy.yaml"}
TIMING = {"warmup": 20, "min_runs": 30, "max_runs": 2000, "seconds": 0.5}
BATCHES = (1, 64)
BOUNDS = (0.005, 0.01)
PLAIN = "plain"
"""Marks the baselines timed through the libraries' plain call, shown beside the same configuration called as
admm_tune calls it; the verdicts compare admm_tune's choices with the baselines called the same way only."""


class _Plain:
    """A session called the library's plain way (``session.run`` / a compiled model's ``__call__``)."""

    def __init__(self, run, size_bytes: int) -> None:
        self.run, self.size_bytes = run, size_bytes


def _problem_file(tmp: Path, model: str, batch: int, bound: float) -> Path:
    source = PROBLEMS[model]
    raw = yaml.safe_load(source.read_text())
    raw["model"], raw["data"]["path"] = str(source.parent / raw["model"]), str(source.parent / raw["data"]["path"])
    raw["deployment"] = {"space": "cpu", "batch_size": batch, "timing": TIMING}
    raw["constraints"] = [{"metric": "accuracy_drop", "max": bound}]
    file = tmp / f"{model}_b{batch}_{bound}.yaml"
    file.write_text(yaml.safe_dump(raw))
    return file


def _figures(m: dict) -> dict:
    return {"p50_us": m["latency_p50_ms"] * 1e3, "p95_us": m["latency_p95_ms"] * 1e3,
            "throughput_rps": m["throughput_rps"]}


def run(evaluations: int, seeds: int, rounds: int) -> pd.DataFrame:
    """Every row of ``dnn_deploy.csv``."""
    import onnxruntime as ort
    import openvino as ov

    rows = []
    started = time.monotonic()

    def add(row: dict) -> None:  # with the run's conditions, which the .md quotes
        row.update(cores=os.cpu_count(), load_1min=os.getloadavg()[0])
        rows.append(row)

    settings = TimingSettings(**TIMING)
    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in PROBLEMS:
            for batch in BATCHES:
                problem = load_problem(_problem_file(Path(tmp), model_name, batch, 0.01))
                evaluator = problem.objective
                held = evaluator.data.rows(evaluator.data.split.held_out)
                calibration = evaluator.data.rows(evaluator.data.split.calibration)
                feeds = {k: v[np.arange(batch) % len(v)] for k, v in held.items()}
                ref = evaluator.reference
                key = {"model": model_name, "batch": batch}
                for backend, precision in structures(problem.space):
                    obs = evaluator(problem.space.complete({"backend": backend, "precision": precision}))
                    if obs.ok:
                        add({**key, "kind": "grid", "configuration": f"{backend} {precision} (default knobs)",
                                     **_figures(obs.metrics), "accuracy": obs.metrics["accuracy"],
                                     "accuracy_drop": obs.metrics["accuracy_drop"]})
                timed = []  # (row, how to measure it once): re-measured in interleaved rounds

                def ort_session(model, threads: int = 0, plain: bool = False):
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default
                    s = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
                    return _Plain(lambda f, s=s: s.run(None, dict(f)), 0) if plain else OrtSession(s, 0)

                def ov_session(model, hint, plain: bool = False):
                    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                                  {"PERFORMANCE_HINT": hint})
                    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
                    session = _Plain(lambda f, c=compiled: list(c(dict(f)).to_tuple()), 0) if plain else \
                        OvSession(compiled, 0)
                    return session, f"{hint} hint, inference precision {precision}"

                fp32 = evaluator.model
                latency, latency_name = ov_session(fp32, "LATENCY")
                throughput, throughput_name = ov_session(fp32, "THROUGHPUT")
                nncf, _ = ov_session(compress(fp32, "int8_nncf", calibration), "LATENCY")
                plain_ov, _ = ov_session(fp32, "LATENCY", plain=True)
                baselines = [("ONNX Runtime defaults, fp32", ort_session(fp32), None),
                             ("ONNX Runtime, intra_op_num_threads=1, fp32", ort_session(fp32, threads=1), None),
                             ("quantize_static defaults on ONNX Runtime defaults",
                              ort_session(compress(fp32, "int8_static", calibration)), None),
                             ("quantize_dynamic defaults on ONNX Runtime defaults",
                              ort_session(compress(fp32, "int8_dynamic")), None),
                             (f"OpenVINO {latency_name}", latency, None),
                             (f"OpenVINO {throughput_name}", throughput, None),
                             ("nncf.quantize defaults on OpenVINO (LATENCY hint)", nncf, None),
                             ("ONNX Runtime defaults, fp32, called by session.run(dict)",
                              ort_session(fp32, plain=True), PLAIN),
                             (f"OpenVINO {latency_name}, called by compiled(dict)", plain_ov, PLAIN)]
                for bound in BOUNDS:
                    evaluator.max_drop = bound
                    start = time.perf_counter()
                    model = compress(evaluator.model, "int8_nncf_accuracy_control", calibration,
                                     control=evaluator.control())
                    baselines.append((f"nncf.quantize_with_accuracy_control, max_drop {bound}, on OpenVINO "
                                      "(LATENCY hint)", ov_session(model, "LATENCY")[0], bound))
                    baselines[-1] += (time.perf_counter() - start,)
                for entry in baselines:
                    name, session, bound = entry[:3]
                    score = float(evaluator.score(run_rows(session, held, batch), evaluator.truth))
                    plain = bound is PLAIN
                    row = {**key, "kind": "plain call" if plain else "baseline", "configuration": name,
                           "accuracy": score, "accuracy_drop": ref - score, "bound": None if plain else bound,
                           "search_s": entry[3] if len(entry) > 3 else np.nan}
                    add(row)
                    timed.append((row, lambda s=session: _figures(measure(s, feeds, settings).metrics())))
                for bound in BOUNDS:
                    file = _problem_file(Path(tmp), model_name, batch, bound)
                    bounded = load_problem(file).objective  # its accuracy-control graph is the one of this bound
                    for seed in range(seeds):
                        start = time.perf_counter()
                        result = admm_tune.fit(file, budget=evaluations, seed=seed, progress=False, storage="memory")
                        seconds = time.perf_counter() - start
                        config = result.best.config
                        obs = bounded(config)
                        row = {**key, "kind": f"admm_tune, accuracy_drop <= {bound}", "seed": seed, "bound": bound,
                               "configuration": describe(config), "accuracy": obs.metrics["accuracy"],
                               "accuracy_drop": obs.metrics["accuracy_drop"], "feasible": bool(result.feasible),
                               "evaluations": len(result.trials), "search_s": seconds,
                               "race": result.race["note"], "race_s": result.race["seconds"],
                               "race_changed": result.race["chosen"] != result.race["search_pick"]}
                        add(row)
                        timed.append((row, lambda c=config, e=bounded: _figures(e(c).metrics)))
                measured = [[] for _ in timed]
                for _ in range(rounds):  # interleaved: each round measures every final configuration once
                    for i, (_, once) in enumerate(timed):
                        measured[i].append(once())
                for (row, _), figures in zip(timed, measured):
                    row.update({k: float(np.median([f[k] for f in figures])) for k in figures[0]})
                    row["rounds"] = rounds
    frame = pd.DataFrame(rows)
    frame["run_minutes"] = (time.monotonic() - started) / 60
    return frame


def _conditions(frame: pd.DataFrame) -> str:
    """The run's machine, load and length, from the columns ``run`` wrote."""
    load = frame["load_1min"]
    return (f"on a {int(frame['cores'].max())}-core machine (1-minute load average {load.min():.1f}-{load.max():.1f} "
            f"when the rows were written, {frame['run_minutes'].max():.0f} minutes in all)")


def markdown(frame: pd.DataFrame) -> list[str]:
    """``dnn_deploy.md`` from the rows of ``dnn_deploy.csv``."""
    lines = ["# Deploying the shipped networks", "",
             "Generated by `benchmarks/dnn_deploy.py` from `dnn_deploy.csv`.  p50/p95: latency of one call (µs) at the"
             " batch; rows/s: rows per second of calls in a row at that batch; accuracy: top-1 on the 418 held-out "
             "rows.  Baselines are called through admm_tune's own calling path (one reused I/O binding or infer "
             "request), as its choices are, so that only the configuration differs; `plain call` rows time two "
             "defaults called the libraries' plain way (`session.run(dict)`, `compiled(dict)`), to show what the "
             "calling path alone gains, and take no part in the verdicts.  Baselines and admm_tune rows: the median of"
             " interleaved rounds (every final configuration measured once per round, in turn), so that load on the "
             "shared machine hits every method alike; grid rows: one measurement.  admm_tune rows: the chosen "
             "configuration, one row per seed, the one admm_tune's final race chose (its finalists re-measured in "
             "interleaved rounds, the median deciding); search s: the whole search, race included (and, for NNCF's "
             "accuracy control, its quantisation).  A bound's target is met when every seed's choice is at least as "
             "fast as the fastest baseline within that bound (p50 not above it).", "",
             "Run as `cd benchmarks && nice -n 5 python dnn_deploy.py --evaluations 30 --seeds 2 --rounds 5` "
             f"{_conditions(frame)}: absolute figures carry that load; the interleaved rounds keep the comparison "
             "between methods fair.", ""]
    verdicts, met = [], []
    for (model, batch), part in frame.groupby(["model", "batch"], sort=True):
        fp32 = part["accuracy"].iloc[0] + part["accuracy_drop"].iloc[0]
        lines += [f"## {model}, batch {batch} (fp32 accuracy {fp32:.4f})", "",
                  "| kind | configuration | p50 µs | p95 µs | rows/s | accuracy drop | evaluations | search s |",
                  "|---|---|---|---|---|---|---|---|"]
        for _, r in part.iterrows():
            evals = "" if pd.isna(r.get("evaluations")) else f"{int(r['evaluations'])}"
            secs = "" if pd.isna(r.get("search_s")) else f"{r['search_s']:.1f}"
            lines.append(f"| {r['kind']} | {r['configuration']} | {r['p50_us']:.1f} | {r['p95_us']:.1f} | "
                         f"{r['throughput_rps']:.0f} | {r['accuracy_drop']:.4f} | {evals} | {secs} |")
        base = part[part["kind"] == "baseline"]
        lines.append("")
        for bound in BOUNDS:
            ours = part[part["kind"] == f"admm_tune, accuracy_drop <= {bound}"]
            fair = base[(base["accuracy_drop"] <= bound) & (base["bound"].isna() | (base["bound"] == bound))]
            if len(ours) and len(fair):
                best = fair.loc[fair["p50_us"].idxmin()]
                faster = int((ours["p50_us"] < best["p50_us"]).sum())
                verdicts.append((faster, len(ours)))
                met.append((f"{model} batch {batch} bound {bound}", bool((ours["p50_us"] <= best["p50_us"]).all())))
                low, high = ours["p50_us"].min(), ours["p50_us"].max()
                changed = int(ours["race_changed"].astype(bool).sum())
                lines.append(f"- Bound {bound}: admm_tune's p50 {low:.1f}–{high:.1f} "
                             f"µs ({faster} of {len(ours)} seeds faster) against the fastest baseline within the "
                             f"bound, {best['configuration']}, {best['p50_us']:.1f} µs; target "
                             f"{'met' if met[-1][1] else 'missed'}; the race changed the search's pick in {changed} "
                             f"of {len(ours)}.")
        lines.append("")
    faster, total = sum(v[0] for v in verdicts), sum(v[1] for v in verdicts)
    missed = [name for name, ok in met if not ok]
    lines += ["## Summary", "", f"admm_tune's choice was faster than the fastest baseline within the same bound in "
              f"{faster} of {total} searches (models x batches x bounds x seeds); the target (every seed at least "
              f"as fast) was met in {len(met) - len(missed)} of {len(met)} model x batch x bound rows"
              + (f", missed in: {'; '.join(missed)}." if missed else "."), ""]
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    save("dnn_deploy", run(args.evaluations, args.seeds, args.rounds), [])
    frame = pd.read_csv(Path(__file__).resolve().parent / "results" / "dnn_deploy.csv")
    save("dnn_deploy", frame, markdown(frame))
