"""A candidate's deployment, really run: export, compile, verify, time.

:class:`DeploymentEvaluator` scores the ML part of a config by
cross-validation (:class:`~.pipeline.MLEvaluator`, cached by the ML config)
and deploys the pipeline fitted on the first CV fold's training rows:

1. export it to ONNX (cached by the ML config: a deployment-only move reuses
   the fitted pipeline and its graph, and the journal says ``reused_fit``);
2. compile the graph on the chosen backend with its knobs and precision;
3. verify the deployed outputs against the Python pipeline on that fold's
   held-out rows, run at the batch size being timed (``label_agreement``,
   ``max_proba_diff``, ``accuracy_drop`` and ``output_mismatch``, which is
   <= 1 within tolerance: the problem constrains it, so a candidate beyond
   tolerance is infeasible, never silently accepted);
4. time it with the harness (:mod:`.timing`).

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
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import threadpool_limits

from ..data import CLASSIFICATION
from ..deployment import BACKEND, MODULES, PRECISION, Deployment
from ..observation import COMPLETE, Observation
from ..space import Config, SearchSpace
from .backends import BackendError, Session, get_backend
from .export import ExportError, export, feeds, for_precision, is_standard
from .pipeline import Holdout, MLEvaluator
from .timing import batch_rows, measure


@dataclass(frozen=True)
class Tolerance:
    """How far deployed outputs may stray from the Python pipeline's."""

    labels: float
    """Share of held-out rows allowed to disagree (at least one row)."""
    outputs: float
    """Probability difference beyond which a row disagrees (regression: in target sd)."""


TOLERANCES = {"fp32": Tolerance(0.01, 1e-3), "reduced": Tolerance(0.05, 0.1)}


@dataclass
class Exported:
    """The ONNX graph of a config's first-fold pipeline (or why there is none)."""

    model: onnx.ModelProto | None
    error: str = ""


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
    """

    def __init__(self, space: SearchSpace, data: Any, objective: Any, deployment: Deployment,
                 seed: int | None = None) -> None:
        self.space = space
        self.deployment = deployment
        ml_space = replace(space, modules=tuple(m for m in space.modules if m.name not in MODULES))
        self.ml = MLEvaluator(ml_space, data, objective, seed, keep_fitted=True)
        self.exported: dict[str, Exported] = {}
        self.cache: dict[str, Observation] = {}

    @property
    def data(self) -> Any:
        """The training data."""
        return self.ml.data

    def __call__(self, config: Config) -> Observation:
        """Evaluate one full config; failures become failed observations with their reason."""
        key = MLEvaluator.key(config)
        if key in self.cache:
            cached = self.cache[key]
            return replace(cached, metrics=dict(cached.metrics), duration_s=0.0,
                           attrs={**cached.attrs, "cache_hit": True})
        start = time.perf_counter()
        ml_config, _ = Deployment.split(config)
        ml_key = MLEvaluator.key(ml_config)
        reused = ml_key in self.ml.cache
        ml_obs = self.ml(ml_config)
        attrs = {"cache_hit": False, "reused_fit": reused, "backend": config[BACKEND], "precision": config[PRECISION]}
        if not ml_obs.ok:
            obs = Observation.failed(ml_obs.reason, time.perf_counter() - start, **attrs)
        else:
            try:
                metrics, more = self._deploy(config, ml_key)
            except (ExportError, BackendError) as exc:
                obs = Observation.failed(f"deploy: {exc}"[:500], time.perf_counter() - start, **attrs)
            except Exception as exc:  # a crash of a backend on one candidate is recorded, never fatal
                obs = Observation.failed(f"deploy: {type(exc).__name__}: {exc}"[:500], time.perf_counter() - start,
                                         **attrs)
            else:
                obs = Observation(COMPLETE, ml_obs.loss, {**ml_obs.metrics, **metrics},
                                  duration_s=time.perf_counter() - start, attrs={**attrs, **more})
        self.cache[key] = obs
        return obs

    def model(self, ml_key: str) -> onnx.ModelProto:
        """The ONNX graph of an evaluated ML config's first-fold pipeline (exported once)."""
        if ml_key not in self.exported:
            holdout = self.ml.holdouts[ml_key]
            try:
                self.exported[ml_key] = Exported(export(holdout.pipeline, self.data.X.iloc[:5]))
            except ExportError as exc:
                self.exported[ml_key] = Exported(None, str(exc))
        exported = self.exported[ml_key]
        if exported.model is None:
            raise ExportError(f"export: {exported.error}")
        return exported.model

    def refit(self, config: Config) -> Any:
        """The ML part of ``config`` fitted on all training data."""
        return self.ml.refit(Deployment.split(config)[0])

    def _deploy(self, config: Config, ml_key: str) -> tuple[dict[str, float], dict[str, Any]]:
        model = self.model(ml_key)
        holdout = self.ml.holdouts[ml_key]
        backend = get_backend(config[BACKEND])
        precision = config[PRECISION]
        start = time.perf_counter()
        session = backend.compile(model, Deployment.knobs(config), precision)
        compile_s = time.perf_counter() - start
        X = self.data.X.iloc[holdout.rows]
        metrics, verdict = self.verify(session, model, holdout, precision)
        timing = measure(session, feeds(model, X.iloc[batch_rows(len(X), self.deployment.batch_size)]),
                         self.deployment.timing)
        metrics.update(timing.metrics())
        metrics.update({"model_size_kb": session.size_bytes / 1024.0, "compile_time_s": compile_s})
        return metrics, {"verification": verdict, "onnx_ops": "standard" if is_standard(model) else "ml"}

    def verify(self, session: Session, model: onnx.ModelProto, holdout: Holdout, precision: str
               ) -> tuple[dict[str, float], str]:
        """Deployed outputs vs the Python pipeline on the held-out rows, at the timing batch size.

        A row disagrees when its label differs or its probabilities (or its
        regression value, in target sd) differ by more than the tolerance;
        ``output_mismatch`` is the number of disagreeing rows over the number
        allowed, so <= 1 is within tolerance.
        """
        X = self.data.X.iloc[holdout.rows]
        y = self.data.y[holdout.rows]
        outputs = self._run_batched(session, model, X)
        tol = TOLERANCES["fp32" if precision == "fp32" else "reduced"]
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            expected = holdout.pipeline.predict(X)
            if self.data.task == CLASSIFICATION:
                labels = outputs[0].reshape(-1)
                off = labels != expected
                metrics = {"label_agreement": float(1.0 - off.mean()),
                           "accuracy_drop": float(accuracy_score(y, expected) - accuracy_score(y, labels))}
                what = f"{int(off.sum())} labels"
                if hasattr(holdout.pipeline, "predict_proba") and len(outputs) > 1:
                    gap = np.abs(np.asarray(outputs[1], dtype=float).reshape(len(labels), -1)
                                 - holdout.pipeline.predict_proba(X)).max(axis=1)
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
        allowed = max(1, math.floor(tol.labels * len(off)))
        metrics["output_mismatch"] = float(off.sum()) / allowed
        verdict = "agrees" if off.sum() <= allowed else "DISAGREES"
        return metrics, (f"{verdict}: {int(off.sum())}/{len(off)} rows differ in {what}; "
                         f"tolerance {allowed} rows, {tol.outputs:g}")

    def _run_batched(self, session: Session, model: onnx.ModelProto, X: Any) -> list[np.ndarray]:
        """Outputs for all rows of ``X``, run in calls of the timing batch size (last call padded)."""
        b = self.deployment.batch_size
        parts: list[list[np.ndarray]] = []
        for start in range(0, len(X), b):
            chunk = X.iloc[start:start + b]
            n = len(chunk)
            if n < b:  # pad by cycling, so every call has the batch size being timed
                chunk = chunk.iloc[batch_rows(n, b)]
            parts.append([np.asarray(o)[:n] for o in session.run(feeds(model, chunk))])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


LOADER = '''"""Run the pipeline admm_tune chose, on {backend} ({precision}), with its tuned knobs."""
import json
import pathlib

import numpy as np
import onnx
from admm_tune.evaluate.backends import get_backend

here = pathlib.Path(__file__).resolve().parent
spec = json.loads((here / "deployment.json").read_text())
session = get_backend(spec["backend"]).compile(onnx.load(here / "model.onnx"), spec["knobs"], spec["precision"])
X = np.asarray(spec["example_rows"], dtype=np.float32)  # replace with your rows ({n_features} columns)
print(session.run({{spec["input"]: X}}))
'''


def write_deployment(directory: str | Path, pipeline: Any, X_sample: Any, config: Config, metrics: dict[str, float],
                     batch_size: int) -> Path:
    """Write ``model.onnx``, ``deployment.json`` and ``load_model.py`` for a chosen candidate.

    ``model.onnx`` is the float32 graph of ``pipeline``; the backend applies
    the precision when it compiles it (int8: the quantised graph is also
    written as ``model.int8.onnx``).  Returns the path of ``model.onnx``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = export(pipeline, X_sample)
    path = directory / "model.onnx"
    onnx.save_model(model, path)
    if config[PRECISION] == "int8":
        onnx.save_model(for_precision(model, "int8"), directory / "model.int8.onnx")
    single_input = len(model.graph.input) == 1
    spec = {"backend": config[BACKEND], "precision": config[PRECISION], "knobs": Deployment.knobs(config),
            "batch_size": batch_size, "input": model.graph.input[0].name if single_input else None,
            "outputs": [o.name for o in model.graph.output], "measured": metrics,
            "example_rows": np.asarray(X_sample, dtype=float)[:batch_size].tolist() if single_input else None}
    (directory / "deployment.json").write_text(json.dumps(spec, indent=2, default=_json_default))
    (directory / "load_model.py").write_text(LOADER.format(backend=config[BACKEND], precision=config[PRECISION],
                                                           n_features=np.shape(X_sample)[1]))
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
