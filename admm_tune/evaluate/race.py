"""The deployment race: the chosen pipeline, refit, run on every deployment worth trying, and the fastest kept.

Deployment knobs do not change a candidate's loss, so among the search's
feasible deployments of one pipeline its choice is as good as arbitrary.
After the refit, :func:`race` compiles and verifies the refit pipeline's
graph on each contender (:func:`contenders`: the search's choice, every
backend × precision of the space at its default knobs, ONNX Runtime at fp32
with its own defaults (:func:`plain`), and for tree graphs every tree
lowering at fp32), then times them all end to end from raw
records, as a service calls them, in :data:`ROUNDS` interleaved rounds (a
round times every contender once, so a burst of load hits them alike); the
median of each figure over the rounds decides:

1. a contender is admissible when its graph agrees with the Python
   pipeline (verification) and it meets every constraint whose metric a
   deployment measures;
2. the admissible one with the lowest median p95 wins, except that fp32
   (lossless) is kept unless a reduced precision is faster than the best
   fp32 contender by more than :data:`NOISE` and more than the two
   contenders' spread over the rounds;
3. with none admissible, the search's choice stands.

The race is journaled (``deployment_race``) and summarised: the chosen
deployment, the fastest alternative, and ONNX Runtime at fp32 with its
own defaults (what ``onnxruntime.InferenceSession(path)`` gives a user).
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import onnx

from ..deployment import BACKEND, PRECISION, TREE_KNOBS, Deployment
from ..serving import Model
from ..space import Config
from .timing import TimingSettings, batch_rows, measure_call

ROUNDS = 3
"""Interleaved timing rounds; the median over them decides."""

NOISE = 0.10
"""Least share by which a reduced precision's median p95 must beat fp32's to replace it."""

TREE_OPERATORS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble")
"""Operators whose lowering strategy changes the compiled graph (``tree_lowering``)."""

REFERENCE = ("onnxruntime", "fp32")
"""The plain deployment every race reports: ONNX Runtime at fp32 with its own defaults (:func:`plain`)."""

PLAIN_THREADS = "intra_op_num_threads"
"""The one knob whose ONNX Runtime default differs from the search space's: a session made without options uses
every core for its intra-op pool, the space starts at one thread."""


def plain(space: Any, values: Config | None = None) -> Config | None:
    """:data:`REFERENCE` as a user gets it from ``onnxruntime.InferenceSession(path)``: fp32, every knob at
    ONNX Runtime's default (the intra-op pool on every core the space allows), ``values`` for the rest (the ML
    part); None when the space has no such deployment or forbids it."""
    backend, precision = REFERENCE
    if backend not in space.module(BACKEND).names or precision not in space.module(PRECISION).names:
        return None
    choice = {m: (values or {}).get(m) for m in space.module_names if m not in (BACKEND, PRECISION)}
    config = space.complete({**choice, BACKEND: backend, PRECISION: precision}, values or {})
    key = f"{BACKEND}.{backend}.{PLAIN_THREADS}"
    if key in config:
        config[key] = space.module(BACKEND).algorithm(backend).param(PLAIN_THREADS).high
    return config if space.allowed(config) else None


@dataclass
class Contender:
    """One deployment of the refit pipeline in the race."""

    config: Config
    label: str
    served: Model | None = None
    model: onnx.ModelProto | None = None
    session: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    verification: str = ""
    error: str = ""
    rounds: list[dict[str, float]] = field(default_factory=list)
    trees: bool = True
    """Whether the graph has tree ensembles: without, ``tree_lowering`` means nothing and is not told."""
    why_not: str = ""
    """Why it may not win, once timed: its graph disagrees, or the constraints it breaks (empty: admissible)."""

    @property
    def precision(self) -> str:
        return str(self.config[PRECISION])

    def median(self, figure: str) -> float:
        """The median of ``figure`` over the rounds timed (inf when none was)."""
        values = [r[figure] for r in self.rounds if figure in r]
        return float(statistics.median(values)) if values else float("inf")

    def spread(self) -> float:
        """Relative spread of the p95 over the rounds: max / min - 1."""
        values = [r["latency_p95_ms"] for r in self.rounds]
        return max(values) / min(values) - 1.0 if values and min(values) > 0 else 0.0

    def describe(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in Deployment.knobs(self.config).items()
                          if self.trees or k not in TREE_KNOBS)
        return f"{self.config[BACKEND]} {self.precision}" + (f" ({knobs})" if knobs else " (default knobs)")

    def record(self, chosen: bool) -> dict[str, Any]:
        """The contender as the journal and ``result.json`` keep it."""
        return {"label": self.label, "backend": self.config[BACKEND], "precision": self.precision,
                "knobs": Deployment.knobs(self.config), "latency_p50_ms": self.median("latency_p50_ms"),
                "latency_p95_ms": self.median("latency_p95_ms"), "p95_spread": self.spread(),
                "verification": self.verification or self.error,
                "admissible": self.metrics.get("_admissible") == 1.0, "chosen": chosen}


def contenders(space: Any, config: Config, model: onnx.ModelProto) -> list[Contender]:
    """The searched deployment of ``config``, then each backend × precision of ``space`` at default knobs, ONNX
    Runtime's own defaults (:func:`plain`), then (for a graph with tree ensembles) each ``tree_lowering`` at fp32;
    forbidden and duplicate ones left out."""
    ml = {k: v for k, v in config.items() if k.split(".")[0] not in (BACKEND, PRECISION)}
    choice = {m: config[m] for m in space.module_names}
    out = [Contender(dict(config), "searched")]
    for backend in space.module(BACKEND).names:
        for precision in space.module(PRECISION).names:
            out.append(Contender(space.complete({**choice, BACKEND: backend, PRECISION: precision}, ml), "default"))
    reference = plain(space, {**choice, **ml})
    if reference is not None:
        out.append(Contender(reference, "plain"))
    trees = any(n.op_type in TREE_OPERATORS for n in model.graph.node)
    for c in out:
        c.trees = trees
    if trees:
        for backend in space.module(BACKEND).names:
            key = f"{BACKEND}.{backend}.tree_lowering"
            algo = next(a for a in space.module(BACKEND).algorithms if a.name == backend)
            lowering = next((p for p in algo.params if p.name == "tree_lowering"), None)
            for strategy in getattr(lowering, "choices", ()):
                default = space.complete({**choice, BACKEND: backend, PRECISION: "fp32"}, ml)
                out.append(Contender({**default, key: strategy}, f"tree_lowering={strategy}", trees=True))
    kept: dict[tuple[Any, ...], Contender] = {}
    for c in out:
        key = (c.config[BACKEND], c.precision, tuple(sorted(Deployment.knobs(c.config).items())))
        if key in kept:
            kept[key].label += f" = {c.label}"  # the search chose a default: one contender, both names
        elif space.allowed(c.config):
            kept[key] = c
    return list(kept.values())


def pairs(space: Any) -> int:
    """How many backend × precision pairs of ``space`` a race times at default knobs (its least size, besides the
    search's choice)."""
    return sum(space.allowed({BACKEND: b, PRECISION: p}) for b in space.module(BACKEND).names
               for p in space.module(PRECISION).names)


def race(prepare: Callable[[Contender], None], field_: Sequence[Contender], records: list[dict[str, Any]],
         batch: int, settings: TimingSettings, broken: Callable[[dict[str, float]], list[str]]
         ) -> tuple[Contender, dict[str, Any]]:
    """Compile, verify and time ``field_``; return the winner and the race as JSON-able data.

    Parameters
    ----------
    prepare : callable
        Compiles and verifies one contender in place (sets ``served``,
        ``model``, ``session``, ``metrics``, ``verification``), raising on failure.
    field_ : sequence of Contender
        The first is the search's choice (kept when none is admissible).
    records : list of dict
        Raw records a call is timed on (``batch`` of them).
    batch : int
    settings : TimingSettings
        One round's timing of one contender.
    broken : callable
        The constraints a deployment measures that a contender's metrics break, described (empty: none).
    """
    for contender in field_:
        try:
            prepare(contender)
        except Exception as exc:  # a contender that cannot run is recorded, never fatal
            contender.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    running = [c for c in field_ if not c.error]
    rows = [records[i] for i in batch_rows(len(records), batch)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(ROUNDS):
            for contender in running:
                served = contender.served
                contender.rounds.append(measure_call(lambda s=served: s.predict(rows), batch, settings).metrics())
    for contender in running:
        contender.metrics.update({k: contender.median(k) for k in contender.rounds[0]})
        agrees = contender.verification.startswith("agrees")
        contender.why_not = "; ".join(broken(contender.metrics)) if agrees else "its graph disagrees with the pipeline"
        contender.metrics["_admissible"] = float(not contender.why_not)
    winner = choose(running) or field_[0]
    return winner, summary(field_, winner)


def choose(running: Sequence[Contender]) -> Contender | None:
    """The admissible contender with the lowest median p95, fp32 kept unless clearly slower (module docstring)."""
    ok = [c for c in running if c.metrics.get("_admissible") == 1.0]
    if not ok:
        return None
    fastest = min(ok, key=lambda c: c.median("latency_p95_ms"))
    full = [c for c in ok if c.precision == "fp32"]
    if fastest.precision == "fp32" or not full:
        return fastest
    best_full = min(full, key=lambda c: c.median("latency_p95_ms"))
    margin = max(NOISE, fastest.spread(), best_full.spread())
    return fastest if fastest.median("latency_p95_ms") < best_full.median("latency_p95_ms") * (1 - margin) \
        else best_full


def summary(field_: Sequence[Contender], winner: Contender) -> dict[str, Any]:
    """The race as the journal keeps it, with a one-line ``note``."""
    timed = [c for c in field_ if c.rounds]
    others = [c for c in timed if c is not winner and c.metrics.get("_admissible") == 1.0]
    alternative = min(others, key=lambda c: c.median("latency_p95_ms"), default=None)
    reference = next((c for c in timed if "plain" in c.label), None)
    note = f"chosen: {winner.describe()}" + (", ONNX Runtime fp32 at its own defaults," if reference is winner
                                               else "") + f" p95 {_ms(winner)}"
    if alternative is not None and alternative is not reference:
        note += f"; fastest alternative {alternative.describe()} {_ms(alternative)}"
    if reference is not None and reference is not winner:
        note += ("; fastest alternative" if alternative is reference else ";")
        note += (f" ONNX Runtime fp32 at its own defaults {_ms(reference)} (the choice "
                 f"{faster(reference.median('latency_p95_ms') / winner.median('latency_p95_ms'))}"
                 + (f"; it may not win: {reference.why_not})" if reference.why_not else ")"))
    note += f" ({len(timed)} deployments, {ROUNDS} interleaved rounds, end to end from raw records)"
    return {"note": note, "rounds": ROUNDS,
            "contenders": [c.record(c is winner) for c in field_]}


def _ms(contender: Contender) -> str:
    """A contender's median p95, in ms as the rest of a run's summary gives it."""
    return f"{contender.median('latency_p95_ms'):.4g} ms"


def faster(ratio: float) -> str:
    """``2.10x faster`` for a reference's time over the choice's of 2.1, ``1.19x slower`` for 0.84."""
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def race_settings(settings: TimingSettings) -> TimingSettings:
    """One round's timing of one contender: a third of a candidate's timing."""
    return replace(settings, seconds=settings.seconds / 3)

