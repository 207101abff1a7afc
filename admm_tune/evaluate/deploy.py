"""A candidate's deployment, really run: export, compile, verify, time.

:class:`DeploymentEvaluator` scores the ML part of a config by
cross-validation (:class:`~.pipeline.MLEvaluator`, cached by the ML config)
and deploys the pipeline fitted on the first CV fold's training rows:

1. export it to ONNX, and quantise it for int8 (cached by the ML config and
   precision: a deployment-only move reuses the fitted pipeline and its
   graph, and the journal says ``reused_fit``);
2. compile the graph on the chosen backend with its knobs and precision;
3. verify the deployed outputs against the Python pipeline on that fold's
   held-out rows, run at the batch size being timed (``label_agreement``,
   ``max_proba_diff``, ``accuracy_drop`` and ``output_mismatch``, which is
   <= 1 within tolerance: the problem constrains it, so a candidate beyond
   tolerance is infeasible, never silently accepted);
4. time it with the harness (:mod:`.timing`) as a service calls it: the
   shipped :meth:`~admm_tune.serving.Model.predict` on raw JSON records of
   the training table (:attr:`~admm_tune.data.Dataset.examples`), through
   the backend's ``infer`` (``latency_*``, ``throughput_rps``), and the graph
   call alone, for diagnosis (``graph_latency_*``, ``graph_throughput_rps``).

:meth:`DeploymentEvaluator.finalize` runs the same steps on the pipeline
refit on all training data (verified on the test split, else on training
rows), so the files :func:`write_deployment` writes are a graph that was
itself verified and timed; :meth:`DeploymentEvaluator.final` then races that
pipeline over the deployment space (:mod:`.race`) and keeps the fastest
deployment that meets every constraint.

Tolerances (:data:`TOLERANCES`): at fp32 at most 1 % of the held-out rows
(at least one row) may disagree, i.e. get another label or probabilities
more than 1e-3 away (regression: values more than 1e-3 of the target's
standard deviation away); at a reduced precision (int8, bf16, fp16) 5 % of
the rows and 0.1.  Float32 arithmetic in front of a tree ensemble (a
scaler) moves some rows across split thresholds: such candidates disagree
on a few per cent of rows and are rejected at fp32, while the same trees
without the scaler agree to 1e-6.
"""

from __future__ import annotations

import json
import math
import re
import signal
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import threadpool_limits

from ..data import CLASSIFICATION
from ..deployment import BACKEND, DEPLOY_METRICS, MODULES, PRECISION, Deployment
from ..observation import COMPLETE, Observation
from ..problem import FP16_MAX, Constraint
from ..serving import Model
from ..space import Config, SearchSpace
from . import loader
from .backends import BackendError, Session, get_backend
from .export import (
    ExportError,
    columns,
    export,
    feeds,
    for_precision,
    is_standard,
    matching_column,
    restore,
    scores,
    target_scaling,
)
from .pipeline import STOPPED_WORSE, Final, MLEvaluator
from .race import Contender, contenders, race_settings
from .race import race as run_race
from .scoring import score_outputs
from .timing import TimingSettings, batch_rows, measure, measure_call


@dataclass(frozen=True)
class Tolerance:
    """How far deployed outputs may stray from the Python pipeline's."""

    labels: float
    """Share of held-out rows allowed to disagree (at least one row)."""
    outputs: float
    """Probability difference beyond which a row disagrees (regression: in target sd)."""


TOLERANCES = {"fp32": Tolerance(0.01, 1e-3), "reduced": Tolerance(0.05, 0.1)}

SCORED_ATTRS = ("fidelity", "folds_done", "rows", "step_losses", "first_result_s", "stopped")
"""What a deployment's observation keeps of its ML part's (:meth:`MLEvaluator._observation`): how much of the
cross-validation was done, its step losses (what a later candidate may be stopped against) and why it stopped."""

DEPLOY_SHARE = 0.5
"""Under a time limit, a candidate's ML scoring, or the final refit, may take this share of it (on a tall table it
stops climbing the row rungs earlier, :mod:`.rungs`, or refits fewer rows); the rest is its deployment's: export,
compile, verify, time."""

STRUCTURAL_SCOPES = {"graph": (), "precision": (PRECISION,), "backend": (BACKEND, PRECISION)}
"""Deployment modules a structural failure (:class:`~.export.ExportError`'s ``structural``) depends on, besides
every ML module."""

UNSUPPORTED = re.compile(r"does not support the following|Could not find an implementation|NOT_IMPLEMENTED|"
                         r"not supported|unsupported operat", re.IGNORECASE)
"""How ONNX Runtime and OpenVINO say that they cannot run an operator of a graph."""


@dataclass
class Graph:
    """A graph ready for a backend (or why there is none)."""

    model: onnx.ModelProto | None
    error: ExportError | None = None


@dataclass
class Deployed:
    """A graph compiled, verified and timed: its metrics and the verification verdict."""

    model: onnx.ModelProto
    metrics: dict[str, float]
    verification: str


class DeploymentEvaluator:
    """Evaluates full configs: CV of the ML part, then the deployment really run.

    Parameters
    ----------
    space : SearchSpace
        The joint space (ML modules, then ``backend`` and ``precision``).
    data : Dataset
    objective : Objective
    deployment : Deployment
    seed : int, optional
    constraints : sequence of Constraint
        The problem's constraints: the deployment race admits only
        deployments that meet those a deployment measures.
    """

    def __init__(self, space: SearchSpace, data: Any, objective: Any, deployment: Deployment,
                 seed: int | None = None, constraints: Sequence[Constraint] = ()) -> None:
        self.space = space
        self.constraints = tuple(constraints)
        self._final: tuple[str, Final] | None = None  # the last refit deployed, kept for the fallback
        self.deployment = deployment
        ml_space = replace(space, modules=tuple(m for m in space.modules if m.name not in MODULES))
        self.ml = MLEvaluator(ml_space, data, objective, seed, keep_fitted=True)
        self.graphs: dict[tuple[str, str], Graph] = {}
        self.cache: dict[str, Observation] = {}

    @property
    def data(self) -> Any:
        """The training data."""
        return self.ml.data

    def affinity(self, config: Config) -> str:
        """The ML part's key: configs that only differ in deployment go to the worker holding its fit."""
        return MLEvaluator.key(Deployment.split(config)[0])

    def __call__(self, config: Config, incumbent: Sequence[float] = ()) -> Observation:
        """Evaluate one full config; failures become failed observations with their reason.

        ``incumbent``: the step losses of the best feasible evaluation (see
        :meth:`MLEvaluator.__call__`). A config whose cross-validation is
        stopped as clearly worse than it cannot become the best whatever its
        deployment measures, so its deployment is not measured: the
        observation has the ML part's loss and fidelity, no deployment metric,
        and ``attrs["stopped"]`` says why.
        """
        key = MLEvaluator.key(config)
        if key in self.cache:
            return self.cache[key].replayed()
        start = time.perf_counter()
        ml_config, _ = Deployment.split(config)
        ml_key = MLEvaluator.key(ml_config)
        reused = ml_key in self.ml.cache
        left = signal.getitimer(signal.ITIMER_REAL)[0]  # the worker's limit: half of it is the deployment's
        ml_obs = self.ml(ml_config, incumbent, seconds=DEPLOY_SHARE * left if left else None)
        attrs = {"cache_hit": False, "reused_fit": reused, "backend": config[BACKEND], "precision": config[PRECISION]}
        scored = {k: v for k, v in ml_obs.attrs.items() if k in SCORED_ATTRS}
        if not ml_obs.ok:
            obs = Observation.failed(ml_obs.reason, time.perf_counter() - start, **attrs,
                                     **{k: v for k, v in ml_obs.attrs.items() if k == "structural"})
        elif ml_obs.attrs.get("stopped") == STOPPED_WORSE:
            return Observation(COMPLETE, ml_obs.loss, dict(ml_obs.metrics), duration_s=time.perf_counter() - start,
                               attrs={**scored, **attrs, "stopped": STOPPED_WORSE})
        else:
            holdout = self.ml.holdouts[ml_key]
            try:
                if config[PRECISION] == "fp16":
                    self._check_half_range(holdout.pipeline, self.data.X.iloc[holdout.rows])
                model = self.graph(ml_key, config[PRECISION])
                rows = self.data.X.iloc[holdout.rows]
                weights = self.data.sample_weight
                done = self.deploy(model, config, holdout.pipeline, rows, self.data.y[holdout.rows],
                                   None if weights is None else weights[holdout.rows])
            except (ExportError, BackendError) as exc:
                obs = Observation.failed(f"deploy: {exc}"[:500], time.perf_counter() - start, **attrs,
                                         **self._structural(exc))
            except Exception as exc:  # a crash of a backend on one candidate is recorded, never fatal
                obs = Observation.failed(f"deploy: {type(exc).__name__}: {exc}"[:500], time.perf_counter() - start,
                                         **attrs)
            else:
                obs = Observation(COMPLETE, ml_obs.loss, {**ml_obs.metrics, **done.metrics},
                                  duration_s=time.perf_counter() - start,
                                  attrs={**scored, **attrs, "verification": done.verification,
                                         "onnx_ops": "standard" if is_standard(model) else "ml"})
        self.cache[key] = obs
        return obs

    @staticmethod
    def _check_half_range(pipeline: Any, X: Any) -> None:
        """Raise :class:`ExportError` when a value entering the final estimator of ``pipeline`` on rows ``X``
        exceeds float16's range: an fp16 graph would compute infinities (decided before compiling or timing)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.asarray(pipeline[:-1].transform(X), dtype=np.float64)
        largest = float(np.nanmax(np.abs(values), initial=0.0))
        if largest > FP16_MAX:
            raise ExportError(f"fp16: values entering the estimator reach {largest:.3g}, beyond float16's range "
                              f"({FP16_MAX:g})")

    def _structural(self, exc: Exception) -> dict[str, str]:
        """``{"structural": "scaler,...,precision"}``: the modules whose choices made ``exc`` certain, if any."""
        scope = getattr(exc, "structural", None)
        if scope is None:
            return {}
        return {"structural": ",".join(self.ml.space.module_names + STRUCTURAL_SCOPES[scope])}

    def graph(self, ml_key: str, precision: str) -> onnx.ModelProto:
        """The graph of an evaluated ML config's first-fold pipeline at ``precision`` (made once)."""
        if (ml_key, precision) not in self.graphs:
            try:
                base = self.graph(ml_key, "fp32") if precision != "fp32" else export(
                    self.ml.holdouts[ml_key].pipeline, self.data.X.iloc[:5])
                self.graphs[ml_key, precision] = Graph(for_precision(base, precision))
            except ExportError as exc:  # the fp32 graph's failure is the export's; int8's says "int8:" itself
                self.graphs[ml_key, precision] = Graph(None, ExportError(
                    f"export: {exc}" if precision == "fp32" else str(exc), exc.structural))
        graph = self.graphs[ml_key, precision]
        if graph.error is not None:
            raise graph.error
        return graph.model  # type: ignore[return-value]

    def final(self, config: Config) -> Final | dict[str, Any]:
        """``config`` refit on all training rows and deployed (exported, compiled, verified, timed), then raced over
        the deployment space (:meth:`race`); given a race (a mapping with ``finalists``), their ML parts re-scored
        (:meth:`MLEvaluator.rescore`)."""
        if "finalists" in config:
            return self.ml.rescore({**config, "finalists": [Deployment.split(c)[0] for c in config["finalists"]]})
        self._final = None
        left = signal.getitimer(signal.ITIMER_REAL)[0]  # half of the time left is the deployment's
        final = self.ml.final(Deployment.split(config)[0], DEPLOY_SHARE * left if left else None)
        try:
            final.deployed = self.finalize(config, final.pipeline)
        except (ExportError, BackendError) as exc:  # the graph the search verified stands in, with its pipeline
            why = f"the refit pipeline could not be deployed ({exc})"
            verified = self.verified(config, f"the first CV fold's pipeline, whose graph the search verified: {why}")
            if verified is None:
                final.error = f"{why}; no deployment of it was verified in the search"
                return final
            return verified
        final.config = dict(config)
        self._final = (MLEvaluator.key(config), final)
        self.race(final)
        if final.deployed.verification.startswith("agrees"):
            return final
        return self.reverified(config, final.deployed.verification) or final

    def reverified(self, config: Config, verdict: str) -> Final | None:
        """When no deployment of the refit pipeline's graph agrees with it (``verdict``): the first CV fold's
        pipeline and the graph the search verified, if that graph agrees with its pipeline on the same rows the
        refit was verified on (the search checked it on the fold's held-out rows only), verified and timed
        anew; else None."""
        verified = self.verified(config, f"the first CV fold's pipeline, whose graph the search verified: the refit "
                                         f"pipeline's graph disagreed with it ({verdict})")
        if verified is None:
            return None
        X, y, weights = self.verification_rows()
        try:
            deployed = self.deploy(verified.deployed.model, config, verified.pipeline, X, y, weights)
        except (ExportError, BackendError):
            return None
        if not deployed.verification.startswith("agrees"):
            return None
        verified.deployed = deployed
        return verified

    def race(self, final: Final) -> None:
        """Race ``final``'s refit pipeline over the deployment space; keep the winner in ``final`` (:mod:`.race`)."""
        X, y, weights = self.verification_rows()
        base = export(final.pipeline, self.data.X.iloc[:5])
        graphs: dict[str, onnx.ModelProto] = {}

        def prepare(contender: Contender) -> None:
            precision = contender.precision
            if precision not in graphs:
                graphs[precision] = for_precision(base, precision)
            model = graphs[precision]
            session, metrics, verdict = self.compiled(model, contender.config, final.pipeline, X, y, weights)
            contender.model, contender.session, contender.metrics = model, session, metrics
            contender.verification, contender.served = verdict, self.served(model, session, contender.config)

        field_ = contenders(self.space, final.config, base)
        winner, final.race = run_race(prepare, field_, self.data.examples, self.deployment.batch_size,
                                      race_settings(self.deployment.timing), self.broken)
        if winner.served is not None:  # its figures: the medians of the race's rounds, and the graph call's alone
            metrics = {k: v for k, v in winner.metrics.items() if not k.startswith("_")}
            metrics.update(self.graph_figures(winner.model, winner.session, X))
            final.deployed = Deployed(winner.model, metrics, winner.verification)
            final.config = winner.config

    def broken(self, metrics: dict[str, float]) -> list[str]:
        """The constraints whose metric ``metrics`` hold (those a deployment measures) that they break, each with
        its figure (``latency_p95_ms 1.2 ms > 1 ms``); empty when every one holds."""
        return [c.broken_by(metrics[c.metric]) for c in self.constraints
                if c.metric in metrics and c.violation(metrics[c.metric]) > 0]

    def fallback(self, config: Config, reason: str) -> Final | dict[str, Any]:
        """When :meth:`final` could not finish: the refit and its searched deployment if the race was what ran out,
        else the first CV fold's pipeline and the graph the search verified."""
        if "finalists" in config:
            return self.ml.fallback(config, reason)
        if self._final is not None and self._final[0] == MLEvaluator.key(config):
            final = self._final[1]
            final.race = {"note": f"the deployment race did not finish ({reason}): the search's deployment stands",
                          "rounds": 0, "contenders": []}
            return final
        final = self.ml.fallback(Deployment.split(config)[0], reason)
        verified = self.verified(config, final.source)
        if verified is None:
            final.error = "no deployment of it was verified in the search"
        return verified or final

    def verified(self, config: Config, source: str) -> Final | None:
        """The first CV fold's pipeline of ``config`` with the graph the search verified and its figures (None when
        the search kept none), described as ``source``."""
        ml_key = MLEvaluator.key(Deployment.split(config)[0])
        holdout, obs = self.ml.holdouts.get(ml_key), self.cache.get(MLEvaluator.key(config))
        graph = self.graphs.get((ml_key, config[PRECISION]))
        if holdout is None or obs is None or not obs.ok or graph is None or graph.model is None:
            return None
        deployed = Deployed(graph.model, {k: v for k, v in obs.metrics.items() if k in DEPLOY_METRICS},
                            str(obs.attrs.get("verification", "")))
        return Final(holdout.pipeline, source, deployed, config=dict(config))

    def verification_rows(self) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """The rows the refit's deployments are verified on, their targets and weights (None: unweighted): the
        test split, else (up to 1000) training rows."""
        data = self.data
        if data.X_test is not None:
            return data.X_test, data.y_test, data.sample_weight_test
        weights = None if data.sample_weight is None else data.sample_weight[:1000]
        return data.X.iloc[:1000], data.y[:1000], weights

    def finalize(self, config: Config, pipeline: Any) -> Deployed:
        """Export, compile, verify and time the refit ``pipeline`` as ``config`` deploys it.

        Verified on the problem's test split when it has one, else on (up
        to 1000) training rows, which still checks that the graph computes
        what the pipeline computes.
        """
        X, y, weights = self.verification_rows()
        model = for_precision(export(pipeline, self.data.X.iloc[:5]), config[PRECISION])
        return self.deploy(model, config, pipeline, X, y, weights)

    def deploy(self, model: onnx.ModelProto, config: Config, pipeline: Any, X: Any, y: np.ndarray,
               weights: np.ndarray | None = None) -> Deployed:
        """Compile ``model`` as ``config`` says, verify it against ``pipeline`` on ``X, y`` (rows weighted by
        ``weights`` in ``deployed_score``), and time it."""
        session, metrics, verdict = self.compiled(model, config, pipeline, X, y, weights)
        metrics.update(self.timed(model, session, config, X))
        return Deployed(model, metrics, verdict)

    def compiled(self, model: onnx.ModelProto, config: Config, pipeline: Any, X: Any, y: np.ndarray,
                 weights: np.ndarray | None = None) -> tuple[Session, dict[str, float], str]:
        """``model`` compiled as ``config`` says and verified against ``pipeline`` on ``X, y`` (see :meth:`verify`):
        the session, the verification's metrics (with ``model_size_kb`` and ``compile_time_s``) and its verdict."""
        precision = config[PRECISION]
        start = time.perf_counter()
        try:
            session = get_backend(config[BACKEND]).compile(model, Deployment.knobs(config), precision)
        except Exception as exc:
            if isinstance(exc, BackendError) or not UNSUPPORTED.search(str(exc)):
                raise
            raise ExportError(f"{config[BACKEND]} cannot run this graph: {str(exc).splitlines()[0][:300]}",
                              "backend") from None
        compile_s = time.perf_counter() - start
        metrics, verdict = self.verify(session, model, pipeline, X, y, precision, weights)
        metrics.update({"model_size_kb": session.size_bytes / 1024.0, "compile_time_s": compile_s})
        return session, metrics, verdict

    def timed(self, model: onnx.ModelProto, session: Session, config: Config, X: Any) -> dict[str, float]:
        """The end-to-end figures of ``session`` (``load_model.py``'s ``predict`` on raw records) and the graph
        call's alone (``graph_*``), at the deployment's batch size."""
        batch = self.deployment.batch_size
        served = self.served(model, session, config)
        examples = self.data.examples
        records = [examples[i] for i in batch_rows(len(examples), batch)]
        metrics = measure_call(lambda: served.predict(records), batch, self.deployment.timing).metrics()
        return {**metrics, **self.graph_figures(model, session, X)}

    def graph_figures(self, model: onnx.ModelProto, session: Session, X: Any) -> dict[str, float]:
        """``graph_*``: the graph call alone on prepared rows of ``X`` (diagnosis), at the deployment's batch size."""
        batch = self.deployment.batch_size
        inputs = feeds(model, X.iloc[batch_rows(len(X), batch)])
        graph = measure(session, inputs, graph_settings(self.deployment.timing))
        return {f"graph_{k}": v for k, v in graph.metrics().items() if k in GRAPH_FIGURES}

    def served(self, model: onnx.ModelProto, session: Session, config: Config) -> Model:
        """The deployment as ``load_model.py`` serves it: raw rows prepared, the graph run by the backend's ``infer``
        on the compiled session."""
        backend = get_backend(config[BACKEND])
        _, infer = backend.serving_functions()
        compiled = backend.prepare(model, Deployment.knobs(config))
        native = session.native
        return Model(lambda inputs: infer(native, inputs), serving_spec(self.data, compiled, model))

    def verify(self, session: Session, model: onnx.ModelProto, pipeline: Any, X: Any, y: np.ndarray,
               precision: str, weights: np.ndarray | None = None) -> tuple[dict[str, float], str]:
        """Deployed outputs vs the Python ``pipeline`` on the rows ``X, y``, at the timing batch size.

        A row disagrees when its label differs or its probabilities (or its
        regression value, in target sd) differ by more than the tolerance;
        ``output_mismatch`` is the number of disagreeing rows over the number
        allowed, so <= 1 is within tolerance.  ``deployed_score`` is the
        objective's scorer on the graph's outputs, rows weighted by
        ``weights``; the agreement figures (``output_mismatch``,
        ``accuracy_drop``) count rows unweighted: they are about the graph
        computing what the pipeline computes, row by row.
        """
        outputs = self._run_batched(session, model, X)
        if self.data.task != CLASSIFICATION:
            outputs[0] = restore(model, outputs[0])  # a graph of the standardised target: the target itself
        tol = TOLERANCES["fp32" if precision == "fp32" else "reduced"]
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            expected = pipeline.predict(X)
            if self.data.task == CLASSIFICATION:
                labels = outputs[0].reshape(-1)
                off = labels != expected
                metrics = {"label_agreement": float(1.0 - off.mean()),
                           "accuracy_drop": float(accuracy_score(y, expected) - accuracy_score(y, labels))}
                what = f"{int(off.sum())} labels"
                if hasattr(pipeline, "predict_proba") and len(outputs) > 1:
                    gap = np.abs(np.asarray(outputs[1], dtype=float).reshape(len(labels), -1)
                                 - pipeline.predict_proba(X)).max(axis=1)
                    metrics["max_proba_diff"] = float(gap.max())
                    off |= gap > tol.outputs
                    what += f" or probabilities (by up to {gap.max():.3g})"
            else:
                deployed = outputs[0].reshape(-1)
                gap = np.abs(deployed - expected) / (float(np.std(self.data.y)) or 1.0)
                off = gap > tol.outputs
                metrics = {"accuracy_drop": float(r2_score(y, expected) - r2_score(y, deployed)),
                           "max_output_diff": float(gap.max())}
                what = f"values (by up to {gap.max():.3g} target sd)"
        classification = self.data.task == CLASSIFICATION
        proba = classification and hasattr(pipeline, "predict_proba") and len(outputs) > 1
        decisions = None
        if classification and not proba and hasattr(pipeline, "decision_function") and len(outputs) > 1:
            decisions = decision_scores(np.asarray(outputs[1], dtype=float).reshape(len(y), -1), pipeline, X)
        metrics["deployed_score"] = score_outputs(  # the objective's scorer on the graph's own outputs
            self.ml.objective.scoring, np.asarray(y), outputs[0],
            np.asarray(outputs[1]).reshape(len(y), -1) if proba else None,
            getattr(pipeline, "classes_", None) if classification else None, weights, decisions)
        allowed = max(1, math.floor(tol.labels * len(off)))
        metrics["output_mismatch"] = float(off.sum()) / allowed
        verdict = "agrees" if off.sum() <= allowed else "DISAGREES"
        return metrics, (f"{verdict}: {int(off.sum())}/{len(off)} rows differ in {what}; "
                         f"tolerance {allowed} rows, {tol.outputs:g}")

    def _run_batched(self, session: Session, model: onnx.ModelProto, X: Any) -> list[np.ndarray]:
        """Outputs for all rows of ``X``, run in calls of the timing batch size (last call padded)."""
        b = self.deployment.batch_size
        inputs = feeds(model, X)  # once: per call, the DataFrame look-ups cost more than a small model's run
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(X), b):
            n = min(b, len(X) - start)
            rows = start + batch_rows(n, b)  # pad by cycling, so every call has the batch size being timed
            parts.append([np.asarray(o)[:n] for o in session.run({k: v[rows] for k, v in inputs.items()})])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def decision_scores(raw: np.ndarray, pipeline: Any, X: Any) -> np.ndarray:
    """A graph's decision-score output as scikit-learn's ``decision_function`` of ``pipeline`` gives it: for two
    classes the one column that holds it (skl2onnx writes ``[s, -s]`` or ``[-s, s]`` by converter), else all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.asarray(pipeline.decision_function(X), dtype=float)
    column = matching_column(raw, want)
    return raw if column is None else raw[:, column]


GRAPH_FIGURES = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms", "throughput_rps")
"""Figures also reported for the graph call alone, as ``graph_<figure>``."""


def graph_settings(settings: TimingSettings) -> TimingSettings:
    """The graph-only timing's settings: a third of the end-to-end one's time (its figures are for diagnosis)."""
    return replace(settings, seconds=settings.seconds / 3, min_runs=min(settings.min_runs, settings.max_runs))


def serving_spec(data: Any, compiled: onnx.ModelProto, exported: onnx.ModelProto) -> dict[str, Any]:
    """What :class:`~admm_tune.serving.Model` needs of a deployment: the raw rows' schema, the graph's inputs
    (of ``compiled``, the graph the backend runs; their columns as ``exported`` recorded them) and the classes."""
    classes = None
    if data.task == CLASSIFICATION:
        classes = [v.item() if isinstance(v, np.generic) else v for v in np.unique(data.y)]
    return {"rows": data.schema, "graph_inputs": loader.inputs(compiled, columns(exported), list(data.X.columns)),
            "task": data.task, "classes": classes, "target": target_scaling(exported),
            **(scores(exported) if classes is not None else {})}


def write_deployment(target: str | Path, deployed: Deployed, config: Config, search_metrics: dict[str, float],
                     batch_size: int, data: Any) -> Path:
    """Write the chosen candidate's graph, ``deployment.json`` and ``load_model.py``.

    ``target`` is a directory (the graph is ``model.onnx`` in it) or the
    graph's file name (``*.onnx``; the other two files go beside it).  The
    graph is the deployed one (int8: quantised) that
    :meth:`DeploymentEvaluator.finalize` verified and timed, saved as the
    backend compiles it (:meth:`~.backends.base.Backend.prepare`);
    ``deployment.json`` holds the graph's file name (``model``), backend,
    precision, knobs, the session's settings (``session``), the inputs and
    their columns, the raw rows' schema (``rows``), batch size, the final
    graph's figures (``measured``: ``latency_*`` end to end from raw
    records, ``graph_latency_*`` the graph call alone) and those of the
    search (``measured_in_search``), and example raw rows;
    ``load_model.py`` (:mod:`.loader`) serves it with only the backend's
    package and numpy.  Returns the graph's path.
    """
    target = Path(target)
    path = target if target.suffix == ".onnx" else target / "model.onnx"
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    backend, knobs = get_backend(config[BACKEND]), Deployment.knobs(config)
    model = backend.prepare(deployed.model, knobs)  # as the backend compiles it: what load_model.py runs
    onnx.save_model(model, path)
    spec = {"model": path.name, "backend": config[BACKEND], "precision": config[PRECISION], "knobs": knobs,
            "batch_size": batch_size, "session": backend.settings(knobs, config[PRECISION]),
            **serving_spec(data, model, deployed.model),
            "outputs": [o.name for o in model.graph.output], "verification": deployed.verification,
            "latency": LATENCY_NOTE, "measured": deployed.metrics, "measured_in_search": search_metrics,
            "example_rows": data.examples[:5]}
    (directory / "deployment.json").write_text(json.dumps(spec, indent=2, default=lambda v: v.item()))
    (directory / "load_model.py").write_text(loader.loader_source(backend, config[PRECISION], spec.get("scores")))
    return path


LATENCY_NOTE = ("latency_p50/p95/p99_ms, latency_mean_ms and throughput_rps: load_model.py's predict on raw records "
                "(one call of batch_size rows, end to end: data preparation, graph, outputs); graph_latency_* and "
                "graph_throughput_rps: the graph call alone")
"""``deployment.json``'s ``latency``: what its figures time."""
