"""Problems of kind ``deploy``: tune how one trained ONNX model runs, under an accuracy-drop bound.

::

    kind: deploy
    model: models/digits_cnn.onnx          # relative to the problem file
    data:
      path: models/digits_cnn_eval.npz     # one array per model input (named after it), and `labels`
      calibration: 0.3                     # share (or count) of rows for int8 calibration; the rest is held out
    objective: latency_p50_ms              # or latency_p95_ms, or throughput_rps (maximised)
    deployment: {space: cpu, batch_size: 1}
    constraints:
      - {metric: accuracy_drop, max: 0.01}
    budget: {evaluations: 30}
    metric: scorers:f1                     # optional: a user scorer, module:function (default top-1 / agreement)

There is no ML block: the space is the deployment space's ``backend``
module (its knobs: threads, streams, graph level, execution mode; the ML
``tree_lowering`` knob left out; ONNX Runtime's intra-op and OpenVINO's
inference threads default to every core, as the libraries do) and a ``precision`` module of
:data:`~admm_tune.evaluate.onnx_model.DEPLOY_PRECISIONS`, where
``int8_static`` carries ``calibration`` and ``per_channel`` as categorical
parameters, and the NNCF precisions carry ``preset``;
``int8_nncf_accuracy_control`` is offered only under an ``accuracy_drop``
bound, which it is given as ``max_drop``.  With a ``throughput_rps``
objective every backend also carries ``throughput_batch`` (rows per call)
and OpenVINO ``infer_requests`` (requests in flight).  Each backend is kept
away from the precisions it cannot run here by construction.
:func:`deploy_problem` builds the same problem from Python objects.

After the search, :func:`race` re-measures the best few feasible
candidates in interleaved rounds and the median chooses (the runner's final
step for this kind; ``docs/deploy-problems.md``, "The final race").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _fields as F
from .deployment import BACKEND, GROUP, PRECISION, TREE_KNOBS, load_deployment
from .errors import ProblemError
from .evaluate.backends import get_backend
from .evaluate.onnx_model import (CALIBRATIONS, DEPLOY_PRECISIONS, HINT_PRECISIONS, METRICS, NNCF_PRECISIONS,
                                  NNCF_PRESETS, OBJECTIVES, THROUGHPUT_BATCHES, EvalData, ModelError,
                                  OnnxModelEvaluator, Scorer, check_data, fixed_batch, load_model, load_scorer,
                                  read_arrays, runs_on, split_rows)
from .evaluate.race import REFERENCE, faster, plain
from .machine import cores
from .problem_base import (Problem, check_contradictions, constraint_list, parse_budget, parse_constraint,
                           parse_isolation, parse_optimizer)
from .settings import unit
from .space import Algorithm, Categorical, Forbidden, Int, Module, SearchSpace, describe

KIND = "deploy"

FIELDS = ("kind", "name", "description", "model", "data", "objective", "metric", "deployment", "restrict",
          "constraints", "budget", "optimizer", "seed", "isolation")

NOT_KNOBS = TREE_KNOBS
"""Backend knobs of the ML deployment space that mean nothing for a trained network's graph."""

LIBRARY_DEFAULT_THREADS = ("intra_op_num_threads", "inference_num_threads")
"""Thread knobs whose default in a deploy space is every core, as ONNX Runtime and OpenVINO default (the ML
space starts them at 1 thread, fastest for small pipelines at batch 1): the first draws then run as a user's
library defaults would, and at batch 64 one thread was half as fast as two on this 2-core machine
(``benchmarks/results/dnn_deploy.md``)."""

def deploy_problem(model: Any, data: Any, *, objective: str = "latency_p50_ms", constraints: Any = None,
                   budget: Any = None, deployment: Any = None, restrict: Mapping[str, Any] | None = None,
                   seed: int | None = 0, name: str = "deploy", calibration: float | int = 0.3,
                   metric: Scorer | str | None = None) -> Any:
    """A deploy :class:`~admm_tune.problem.Problem` from Python objects.

    Parameters
    ----------
    model : str, Path, bytes or onnx.ModelProto
        The trained model.
    data : str, Path or mapping
        An ``.npz`` path, or ``{"inputs": array or {input: array}, "labels": array}``.
    objective : {"latency_p50_ms", "latency_p95_ms", "throughput_rps"}
    constraints : list or mapping, optional
        As in a problem file (``{"accuracy_drop": 0.01}`` is a ``max`` bound).
    budget : optional
        As in a problem file (default 30 evaluations).
    deployment : str or mapping, optional
        ``cpu`` (default) or ``{"space": ..., "batch_size": ..., "timing": ...}``.
    restrict : mapping, optional
        ``{"backend": [...], "precision": [...]}``.
    seed : int, optional
    name : str
    calibration : float or int
        Share or count of the rows used for int8 calibration.
    metric : callable or str, optional
        The preserved metric: a :data:`~admm_tune.evaluate.onnx_model.Scorer`
        ``scorer(outputs, truth) -> float`` (higher is better), or
        ``"module:function"``; by default top-1 accuracy (agreement with the
        fp32 model without labels).  A callable is not journaled: such a run
        cannot be resumed from the command line.

    Returns
    -------
    Problem

    Raises
    ------
    ProblemError
        Naming the field (a model input the data does not fit names that input).
    """
    data = {"path": str(data)} if isinstance(data, (str, Path)) else dict(F.mapping(data, "data"))
    data.setdefault("calibration", calibration)
    raw = {"kind": KIND, "name": name, "model": model, "data": data, "objective": objective,
           "constraints": constraints or [], "budget": budget or {"evaluations": 30}, "seed": seed,
           "deployment": deployment or "cpu"}
    if restrict is not None:
        raw["restrict"] = restrict
    if metric is not None:
        raw["metric"] = metric
    return from_dict(raw, None)


def from_dict(raw: Mapping[str, Any], base_dir: Path | None) -> Any:
    """The deploy problem of a problem file's fields (``kind: deploy``).

    Raises
    ------
    ProblemError
        Naming the first malformed field.
    """
    F.only_keys(raw, FIELDS, "")
    name = F.string(raw.get("name", "deploy"), "name")
    seed = None if raw.get("seed") is None else F.integer(raw["seed"], "seed", minimum=0)
    if raw.get("model") is None:
        raise ProblemError("model", "missing: the path of the trained ONNX model")
    model_src = raw["model"]
    if isinstance(model_src, str) and base_dir is not None and not Path(model_src).is_absolute():
        model_src = base_dir / model_src
    model = load_model(model_src)
    data = _data(raw.get("data"), model, base_dir, seed)
    objective = _objective(raw.get("objective", "latency_p50_ms"))
    restrict = F.mapping(raw.get("restrict") or {}, "restrict")
    F.only_keys(restrict, (BACKEND, PRECISION), "restrict")
    deployment = load_deployment(raw.get("deployment", "cpu"), "deployment", base_dir=base_dir,
                                 restrict={k: v for k, v in restrict.items() if k == BACKEND})
    batch = deployment.batch_size
    fixed = fixed_batch(model)
    if fixed is not None and fixed != batch:
        raise ProblemError("deployment.batch_size", f"the model fixes its batch dimension to {fixed}; "
                                                    f"got batch_size {batch}")
    measurable = METRICS
    constraints = tuple(parse_constraint(c, f"constraints[{i}]", measurable)
                        for i, c in enumerate(constraint_list(raw.get("constraints"))))
    check_contradictions(constraints)
    bounds = [c.bound for c in constraints if c.metric == "accuracy_drop" and c.sense == "max"]
    max_drop = min(bounds) if bounds else None
    space, notes = deploy_space(deployment.space, restrict.get(PRECISION), max_drop=max_drop,
                                concurrency=objective == "throughput_rps" and fixed_batch(model) is None)
    budget = parse_budget(raw.get("budget", {"evaluations": 30}), "budget")
    optimizer = parse_optimizer(raw.get("optimizer", {}) or {}, "optimizer")
    given = raw.get("optimizer") or {}
    if "initial_pulls" not in given:  # every backend x precision tried once at its defaults
        optimizer = replace(optimizer, initial_pulls=max(optimizer.initial_pulls, len(structures(space))))
    if "initial_share" not in given:  # the pairs differ far more than their knobs: up to half the budget for them
        optimizer = replace(optimizer, initial_share=0.5)
    isolation = parse_isolation(raw.get("isolation"))
    scorer = None if raw.get("metric") is None else load_scorer(raw["metric"], base_dir, "metric")
    evaluator = OnnxModelEvaluator(model, data, objective, batch, deployment.timing, scorer, max_drop)
    rows = f"{len(data.split.calibration)} calibration rows, {len(data.split.held_out)} held-out rows"
    notes = (tuple(n for n in deployment.notes if not n.startswith("precision ")) + notes
             + (f"{rows} ({evaluator.metric_name})",))
    source = {k: str(v) if isinstance(v, Path) else v for k, v in raw.items()}  # journaled: paths as text
    if not isinstance(raw["model"], (str, Path)):
        source["model"] = f"<{type(raw['model']).__name__}>"
    if callable(raw.get("metric")):
        source["metric"] = "<function>"
    return Problem(space, evaluator, None, constraints, budget, optimizer, seed, name, source,
                   replace(deployment, space=space), notes, isolation, kind=KIND)



def _data(raw: Any, model: Any, base_dir: Path | None, seed: int | None) -> EvalData:
    if raw is None:
        raise ProblemError("data", "missing: an .npz path, or a mapping with path (or inputs) and labels")
    if isinstance(raw, (str, Path)):
        raw = {"path": raw}
    raw = dict(F.mapping(raw, "data"))
    F.only_keys(raw, ("path", "inputs", "labels", "calibration"), "data")
    calibration = raw.pop("calibration", 0.3)
    if isinstance(calibration, bool) or not isinstance(calibration, (int, float)) or calibration <= 0:
        raise ProblemError("data.calibration", f"expected a share in (0, 1) or a row count, got {calibration!r}")
    if "path" in raw:
        path = Path(raw["path"])
        source: Any = base_dir / path if base_dir is not None and not path.is_absolute() else path
    else:
        source = raw
    inputs, labels = read_arrays(source, model, "data")
    n = check_data(model, inputs, labels, "data")
    split = split_rows(n, float(calibration) if calibration < 1 else int(calibration), seed)
    return EvalData(inputs, labels, split)


def _objective(raw: Any) -> str:
    if isinstance(raw, Mapping):
        F.only_keys(raw, ("metric",), "objective")
        raw = raw.get("metric")
    return F.string(raw, "objective", choices=tuple(OBJECTIVES))


RACE_TOP = 2
"""The race's finalists: the search's best this many feasible configs by their (single) measurement..."""

RACE_FINALISTS = 6
"""...then the best config of each other backend x precision, up to this many in all."""

RACE_ROUNDS = 5
"""Interleaved rounds of the race (fewer when the time budget runs out)."""

RACE_SHARE = 0.6
"""Each timing in a race lasts this share of ``timing.seconds`` (five rounds: three evaluations' worth)."""

TIMED = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "throughput_rps")
"""The harness's figures, which the race re-measures (the others, accuracy included, are the search's)."""


def race_seconds(problem: Any, leader: Any) -> float:
    """Expected seconds of a deploy run's final step, for the time left on the progress line and the search's
    budget: the race's compiles and rounds of up to :data:`RACE_FINALISTS` finalists at the cost of the search's
    best so far (``leader``, an observation), then the export of the choice (what that evaluation cost)."""
    compile_s = float(leader.metrics.get("compile_time_s", 0.0))
    timing = problem.objective.timing.seconds
    return leader.duration_s + RACE_FINALISTS * (compile_s + RACE_ROUNDS * RACE_SHARE * timing)


def chosen_text(race: Mapping[str, Any]) -> str:
    """The progress line's last words on a deploy run's choice: the search's best figure and the race's choice with
    its re-measured median (empty when the race did not run)."""
    won = next((f for f in race.get("finalists", []) if f["trial"] == race.get("chosen") and "remeasured" in f), None)
    if won is None:
        return ""
    metric = race["objective"]
    pick = next((f for f in race["finalists"] if f["trial"] == race["search_pick"]), won)
    return (f"search best {pick['search']:.4g}{unit(metric)} | chosen trial {won['trial']}, re-measured "
            f"{won['remeasured']:.4g}{unit(metric)}")


def finalists(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a deploy run races: feasible and complete, distinct configs, the search's pick first.

    The best :data:`RACE_TOP` by the search's loss, then the best of each
    other structure (backend x precision) by loss, up to
    :data:`RACE_FINALISTS` rows: a structure whose single measurement was
    unlucky still gets its re-measurement.
    """
    done = trials[(trials["state"] == "complete") & trials["feasible"].astype(bool)]
    ranked = done.sort_values(["loss", "number"]).drop_duplicates("config")
    per_structure = ranked.drop_duplicates("structure")
    chosen = list(dict.fromkeys([*ranked["number"][:RACE_TOP], *per_structure["number"]]))[:RACE_FINALISTS]
    return ranked.set_index("number", drop=False).loc[chosen]


def race(pool: Any, trials: pd.DataFrame, problem: Any, seconds: float | None) -> dict[str, Any]:
    """The final step of a deploy run: re-measure the finalists in interleaved rounds; the median chooses.

    A single timing of each candidate under load mis-ranks close ones, so
    the :func:`finalists` are compiled once in one worker (``Pool.final``,
    :meth:`~admm_tune.evaluate.onnx_model.OnnxModelEvaluator.final`) and
    timed in up to :data:`RACE_ROUNDS` rounds, each timing every finalist
    once in turn; the objective's median over the rounds ranks them.  A
    finalist whose re-measured figures break a latency or throughput
    constraint drops out; the others keep the search's accuracy figures.

    Parameters
    ----------
    pool : Pool
        The run's pool (nothing running).
    trials : DataFrame
        The journal's trials (``Journal.trials``).
    problem : Problem
        A deploy problem.
    seconds : float, optional
        Time left for the final step (None: no time budget).  The export of
        the choice that follows is expected to cost what the search's pick
        cost to evaluate (compile, run the held-out rows), so the race gets
        the rest; no round starts that would end past it, and when even the
        compiles and one round would not fit, the race is skipped with a note.

    Returns
    -------
    dict
        JSON-able: ``objective``, ``search_pick`` and ``chosen`` (trial
        numbers), ``rounds`` (run) and ``of_rounds`` (:data:`RACE_ROUNDS`), ``seconds``,
        ``finalists`` (per finalist: ``trial``, ``configuration``, the
        ``search`` figure, the ``remeasured`` median, the ``rounds``' values,
        every timed figure's median in ``metrics``, ``feasible``; or its
        ``error``) and a ``note`` for people.
    """
    evaluator = problem.objective
    metric = evaluator.objective
    sense = 1.0 if OBJECTIVES[metric] == "min" else -1.0
    entries = finalists(trials)
    record: dict[str, Any] = {"objective": metric, "rounds": 0, "of_rounds": RACE_ROUNDS, "seconds": 0.0,
                              "finalists": [], "search_pick": None, "chosen": None}
    if not len(entries):
        return {**record, "note": "not re-measured: no feasible candidate"}
    record["search_pick"] = record["chosen"] = int(entries["number"].iloc[0])
    if len(entries) < 2:
        return {**record, "note": "not re-measured: one feasible candidate, nothing to race"}
    one_round = float(entries.get("metric:compile_time_s", pd.Series(0.0)).fillna(0.0).sum()
                      + len(entries) * (RACE_SHARE * evaluator.timing.seconds))
    if seconds is not None:
        seconds -= float(entries["duration_s"].iloc[0])  # kept for the export
        if seconds < one_round:
            return {**record, "note": f"not re-measured: {max(seconds, 0.0):.1f} s left, the race needs about "
                                      f"{one_round:.1f} s"}
    configs = [json.loads(c) for c in entries["config"]]
    reference = _reference(problem.space, configs)
    answer, why = pool.final({"finalists": configs + ([reference] if reference else []), "rounds": RACE_ROUNDS,
                              "share": RACE_SHARE, "seconds": seconds}, seconds)
    if answer is None or answer.get("error") or not answer["rounds"]:
        reason = why or (answer or {}).get("error") or "no round fitted in the time left"
        return {**record, "note": f"not re-measured: {reason}"}
    best: tuple[float, int] | None = None
    for (_, row), config, figures in zip(entries.iterrows(), configs, answer["figures"]):
        entry: dict[str, Any] = {"trial": int(row["number"]), "configuration": describe(config),
                                 "search": float(row[f"metric:{metric}"])}
        if isinstance(figures, str):
            record["finalists"].append({**entry, "error": figures})
            continue
        medians = {k: float(np.median([f[k] for f in figures])) for k in TIMED}
        measured = {**{k[len("metric:"):]: v for k, v in row.items() if k.startswith("metric:")}, **medians}
        feasible = all(c.violation(measured.get(c.metric, math.nan)) <= 0 for c in problem.constraints)
        record["finalists"].append({**entry, "remeasured": medians[metric], "rounds": [f[metric] for f in figures],
                                    "metrics": medians, "feasible": feasible})
        if feasible and (best is None or sense * medians[metric] < best[0]):
            best = (sense * medians[metric], entry["trial"])
    record.update(rounds=int(answer["rounds"]), seconds=float(answer["seconds"]))
    if best is None:
        return {**record, "note": "re-measured: no finalist met the constraints again, the search's pick stays"}
    record["chosen"] = best[1]
    won = next(f for f in record["finalists"] if f["trial"] == best[1])
    kept = "the search's pick" if best[1] == record["search_pick"] else f"not the search's pick (trial " \
                                                                        f"{record['search_pick']})"
    record["note"] = (f"re-measured: {len(entries)} finalists in {record['rounds']} interleaved rounds; trial "
                      f"{best[1]}, {kept}, has the best median {metric} {won['remeasured']:.4g}{unit(metric)} "
                      f"(its search figure {won['search']:.4g})")
    figures = answer["figures"][len(configs):]
    if reference and figures and not isinstance(figures[0], str) and figures[0]:
        plain = float(np.median([f[metric] for f in figures[0]]))
        record["reference"] = {"configuration": describe(reference), "remeasured": plain}
        gain = plain / won["remeasured"] if sense > 0 else won["remeasured"] / plain
        broken = _reference_breaks(trials, problem)
        record["note"] += (f"; ONNX Runtime fp32 at its own defaults, in the same rounds: {plain:.4g}{unit(metric)} "
                           f"(the choice {faster(gain)}" + (f"; the fp32 graph broke {broken} in the search, so "
                                                            "it cannot be chosen)" if broken else ")"))
    return record


def _reference_breaks(trials: pd.DataFrame, problem: Problem) -> str:
    """The constraints on figures other than timings (model size, accuracy) that the fp32 graph broke in the search
    (on ONNX Runtime if it was tried there, else on another backend: the fp32 graph's size and outputs do not depend
    on the knobs), with the figure measured; empty if none or never measured."""
    backend, precision = REFERENCE
    if not {"backend", "precision"} <= set(trials):
        return ""
    done = trials[(trials["state"] == "complete") & (trials["precision"] == precision)]
    done = done.sort_values("backend", key=lambda b: b != backend, kind="stable")
    if not len(done):
        return ""
    row = done.iloc[0]
    out = []
    for c in problem.constraints:
        value = row.get(f"metric:{c.metric}")
        if c.metric not in TIMED and value is not None and pd.notna(value) and c.violation(float(value)) > 0:
            out.append(c.broken_by(float(value)))
    return "; ".join(out)


def _reference(space: SearchSpace, configs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The plain deployment a deploy run's gain is told against (:func:`~admm_tune.evaluate.race.plain`, ONNX
    Runtime at fp32 with its own defaults), when the space has it and no finalist is it."""
    config = plain(space)
    return None if config is None or config in configs else config



def structures(space: SearchSpace) -> list[tuple[str, str]]:
    """The allowed ``(backend, precision)`` pairs of a deploy space."""
    return [(b, p) for b in space.module(BACKEND).names for p in space.module(PRECISION).names
            if space.allowed(space.complete({BACKEND: b, PRECISION: p}))]


def deploy_space(deployment_space: SearchSpace, precisions: Any = None, *, max_drop: float | None = None,
                 concurrency: bool = False) -> tuple[SearchSpace, tuple[str, ...]]:
    """The search space of a deploy problem: the fitted ``backend`` module, and deploy precisions.

    Parameters
    ----------
    deployment_space : SearchSpace
        A loaded deployment space (its ``backend`` module, fitted to this machine).
    precisions : list of str, optional
        Keep only these precisions (``restrict.precision``).
    max_drop : float, optional
        The problem's ``accuracy_drop`` bound; without one ``int8_nncf_accuracy_control`` is left out.
    concurrency : bool
        Add ``throughput_batch`` to every backend and ``infer_requests`` to
        OpenVINO (a throughput objective on a model with a dynamic batch).

    Returns
    -------
    (SearchSpace, notes)
    """
    backends = deployment_space.module(BACKEND)
    extra = {b: (Categorical("throughput_batch", THROUGHPUT_BATCHES, THROUGHPUT_BATCHES[-1]),)
             + ((Int("infer_requests", 1, 2 * cores(), default=cores()),) if b == "openvino" else ())
             for b in backends.names} if concurrency else {}
    backends = replace(backends, algorithms=tuple(
        replace(a, params=tuple(replace(p, default=p.high) if p.name in LIBRARY_DEFAULT_THREADS else p
                                for p in a.params if p.name not in NOT_KNOBS) + extra.get(a.name, ()))
        for a in backends.algorithms))
    names = list(DEPLOY_PRECISIONS)
    if precisions is not None:
        names = F.sequence(precisions, "restrict.precision")
        bad = [n for n in names if n not in DEPLOY_PRECISIONS]
        if bad or not names:
            raise ProblemError("restrict.precision", f"{bad[0]!r} is not a deploy precision; expected some of "
                                                     f"{list(DEPLOY_PRECISIONS)}" if bad else "keeps no precision")
    hints = {b: tuple(p for p in get_backend(b).capabilities().precisions if p in HINT_PRECISIONS.get(b, ()))
             for b in backends.names}
    notes = []
    kept = []
    for p in names:
        if p == "int8_nncf_accuracy_control" and max_drop is None:
            notes.append(f"precision {p} left out: it needs an accuracy_drop bound (its max_drop)")
        elif any(runs_on(b, p, hints[b]) for b in backends.names):
            kept.append(p)
        else:
            notes.append(f"precision {p} left out: none of {list(backends.names)} runs it here")
    if not kept:
        raise ProblemError("restrict.precision", f"none of these precisions runs on {list(backends.names)} here")
    params = {"int8_static": (Categorical("calibration", CALIBRATIONS, "minmax"),
                              Categorical("per_channel", (False, True), False)),
              **{p: (Categorical("preset", NNCF_PRESETS, "performance"),) for p in NNCF_PRECISIONS}}
    algorithms = tuple(Algorithm(p, None, params.get(p, ())) for p in kept)
    precision = Module(PRECISION, algorithms, GROUP)
    forbidden = tuple(Forbidden({BACKEND: frozenset([b]), PRECISION: frozenset(p for p in kept
                                                                                if not runs_on(b, p, hints[b]))},
                                f"{b} does not run these precisions here")
                      for b in backends.names if any(not runs_on(b, p, hints[b]) for p in kept))
    space = SearchSpace((replace(backends, group=GROUP), precision), forbidden, f"deploy_{deployment_space.name}",
                        deployment_space.limits)
    return space, tuple(notes)


__all__ = ["KIND", "RACE_FINALISTS", "RACE_ROUNDS", "ModelError", "deploy_problem", "deploy_space", "finalists",
           "from_dict", "race", "structures"]
