"""The outcome of a run, read from its journal."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .deployment import BACKEND, DEPLOY_METRICS, PRECISION, Deployment
from .errors import ProblemError, RunError
from .journal import Journal
from .problem import Problem, restore_problem
from .space import Config, describe


def open_run(run_dir: Path) -> tuple[Journal, Problem]:
    """The journal of the run in ``run_dir`` and its problem (see :func:`~admm_tune.problem.restore_problem`).

    Raises
    ------
    RunError
        When ``run_dir`` holds no journal, or its problem cannot be rebuilt:
        a problem given as Python objects (arrays, a callable) is not stored
        in its journal.
    """
    db = run_dir / "journal.db"
    if not db.is_file():
        raise RunError(f"{run_dir} holds no journal.db: not a run directory")
    journal = Journal.open(f"sqlite:///{db}")
    try:
        return journal, restore_problem(journal.attrs)
    except ProblemError as exc:
        raise RunError(f"cannot rebuild the problem of {run_dir} ({exc}); a problem given as Python objects "
                       "(arrays, a callable) is not stored in its journal") from None

@dataclass
class Best:
    """The chosen candidate: its config, loss, metrics and feasibility."""

    config: Config
    loss: float
    metrics: dict[str, float]
    feasible: bool
    violation: float
    trial: int


@dataclass
class Result:
    """What :func:`admm_tune.fit` returns.

    Attributes
    ----------
    problem : Problem
    best : Best
        The best feasible candidate by measured constraints, or the
        least-violating one (``best.feasible`` is then False).
    pipeline : sklearn.pipeline.Pipeline or None
        The best config refit on all training data (None for a callable
        objective).  Data with categorical columns were read as strings with
        missing values as ``<missing>``: prepare new rows the same way with
        :func:`admm_tune.data.as_categories` (the estimators do it for you).
    trials : pandas.DataFrame
        One row per evaluation.
    trace : pandas.DataFrame
        One row per ADMM iteration.
    storage : str
        Where the journal lives.
    run_dir : Path or None
    onnx_path : Path or None
        ``model.onnx`` of the chosen deployment, once :meth:`export` wrote it
        (:func:`admm_tune.fit` does, into the run directory, when the best
        candidate of a deployment problem is feasible).
    exporter : callable or None
        ``directory -> model path``: writes the chosen deployment's files.
        :func:`admm_tune.fit` hands it over (the result reads the journal and
        never imports the evaluator itself).
    final : dict or None
        The deployment of the refit pipeline, verified and timed again:
        ``verification`` (the verdict) and ``measured`` (its figures).
    """

    problem: Problem
    best: Best
    pipeline: Any
    trials: pd.DataFrame
    trace: pd.DataFrame
    storage: str
    run_dir: Path | None = None
    onnx_path: Path | None = None
    exporter: Callable[[Path], Path] | None = field(default=None, repr=False)
    final: dict[str, Any] | None = None

    @classmethod
    def from_frames(cls, problem: Problem, trials: pd.DataFrame, trace: pd.DataFrame, storage: str,
                    run_dir: Path | None, pipeline: Any = None) -> Result:
        """Pick the best row of ``trials`` and wrap everything up."""
        return cls(problem, best_of(trials), pipeline, trials, trace, storage, run_dir)

    @property
    def deployment(self) -> dict[str, Any] | None:
        """The chosen backend, precision, knobs, batch size and figures (None without deployment).

        ``measured`` holds the figures of the search's evaluation (first-fold
        pipeline, held-out rows); ``final`` those of the refit pipeline's graph.
        """
        if self.problem.deployment is None:
            return None
        config = self.best.config
        return {"backend": config[BACKEND], "precision": config[PRECISION], "knobs": Deployment.knobs(config),
                "batch_size": self.problem.deployment.batch_size,
                "measured": {k: v for k, v in self.best.metrics.items() if k in DEPLOY_METRICS},
                "final": self.final}

    def export(self, directory: str | Path) -> Path:
        """Write ``model.onnx``, ``deployment.json`` and a ``load_model.py`` example into ``directory``.

        The graph is exported from :attr:`pipeline` (refit on all training
        data); ``load_model.py`` compiles it on the chosen backend with the
        chosen knobs and precision and runs it.  Returns the model's path.

        Raises
        ------
        RunError
            When the problem has no deployment.
        """
        if self.deployment is None or self.exporter is None:
            raise RunError("this result has no deployment to export (the problem has no `deployment` field)")
        self.onnx_path = self.exporter(Path(directory))
        return self.onnx_path

    @classmethod
    def load(cls, run_dir: str | Path) -> Result:
        """The result of an earlier run, read back from its run directory (journal, deployment files).

        The problem is rebuilt from the problem file the run was given, else
        from the fields stored in the journal; the pipeline is not refit
        (``pipeline`` is None).

        Raises
        ------
        RunError
            When the directory has no journal, or the problem cannot be rebuilt
            (it held Python arrays or a callable).
        """
        run_dir = Path(run_dir)
        journal, problem = open_run(run_dir)
        trials, trace = journal.trials(), journal.trace()
        if not len(trials) or not (trials["state"] == "complete").any():
            raise RunError(f"{run_dir} holds no completed evaluation")
        result = cls.from_frames(problem, trials, trace, journal.storage, run_dir)
        spec = run_dir / "deployment.json"
        if spec.is_file():
            saved = json.loads(spec.read_text())
            result.final = {"verification": saved.get("verification", ""), "measured": saved.get("measured", {})}
            result.onnx_path = run_dir / "model.onnx"
        return result

    def pareto(self) -> pd.DataFrame:
        """Completed trials on the loss / cost Pareto front (cost: p95 latency, else fit time, else evaluation time)."""
        from .report import pareto

        return pareto(self.trials)

    def report(self, path: str | Path) -> Path:
        """Write the HTML report (problem, best candidate, plots, trials) to ``path``; return the path."""
        from .report import write_report

        return write_report(self, path)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON-able data (``result.json`` of a run directory)."""
        b = self.best
        return {"problem": self.problem.name, "best": {"config": b.config, "loss": b.loss, "metrics": b.metrics,
                                                       "feasible": b.feasible, "trial": b.trial},
                "deployment": self.deployment, "evaluations": self.n_evaluations,
                "failed": self.n_failed, "iterations": len(self.trace),
                "storage": self.storage, "onnx_path": str(self.onnx_path) if self.onnx_path else None}

    @property
    def n_evaluations(self) -> int:
        """Number of evaluations in the journal."""
        return len(self.trials)

    @property
    def n_failed(self) -> int:
        """Number of evaluations that failed."""
        return int((self.trials["state"] == "fail").sum()) if len(self.trials) else 0

    def save(self, run_dir: str | Path) -> None:
        """Write ``result.json`` (:meth:`to_dict`) and ``report.html`` (:meth:`report`) into ``run_dir``."""
        run_dir = Path(run_dir)
        (run_dir / "result.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
        self.report(run_dir / "report.html")

    def summary(self) -> str:
        """A few lines for people: the pipeline, its score, the search."""
        b = self.best
        lines = [f"problem      {self.problem.name}",
                 f"best         {describe(self.best.config)}",
                 f"loss         {b.loss:.6g}" + ("" if b.feasible else f"  (INFEASIBLE: violation {b.violation:.3g})")]
        if "cv_score" in b.metrics and hasattr(self.problem.objective, "scoring"):
            lines.append(f"cv {self.problem.objective.scoring:<9} {b.metrics['cv_score']:.4f}")
        for c in self.problem.constraints:
            lines.append(f"constraint   {c}: measured {b.metrics.get(c.metric, float('nan')):.4g}")
        deployment = self.deployment
        if deployment is not None:
            knobs = ", ".join(f"{k}={v}" for k, v in deployment["knobs"].items())
            m = deployment["measured"]
            lines.append(f"deployment   {deployment['backend']} {deployment['precision']} ({knobs}), "
                         f"batch {deployment['batch_size']}: p50 {m.get('latency_p50_ms', float('nan')):.3g} ms, "
                         f"p95 {m.get('latency_p95_ms', float('nan')):.3g} ms, "
                         f"{m.get('model_size_kb', float('nan')):.1f} kB")
            if self.final is not None:
                f = self.final["measured"]
                lines.append(f"refit graph  {self.final['verification']}"
                             + (f"; p95 {f['latency_p95_ms']:.3g} ms" if "latency_p95_ms" in f else ""))
            if self.onnx_path is not None:
                lines.append(f"model        {self.onnx_path}")
        lines.append(f"evaluations  {self.n_evaluations} ({self.n_failed} failed) in {len(self.trace)} ADMM iterations")
        if len(self.trace):
            last = self.trace.iloc[-1]
            lines.append(f"ADMM         final rho {last['rho']:.3g}, integer residual {last['primal_residual']:.2g}, "
                         f"structures tried {self.trials['structure'].nunique()}")
        lines.append(f"journal      {self.storage}")
        return "\n".join(lines)


def best_of(trials: pd.DataFrame) -> Best:
    """Best feasible completed row by loss, else the least-violating completed row."""
    done = trials[trials["state"] == "complete"]
    feasible = done[done["feasible"].astype(bool)]
    if len(feasible):
        row = feasible.loc[feasible["loss"].idxmin()]
    else:
        row = done.sort_values(["violation", "loss"]).iloc[0]
    config = json.loads(row["config"])
    metrics = {k[len("metric:"):]: float(v) for k, v in row.items() if k.startswith("metric:") and pd.notna(v)}
    violation = float(row["violation"]) if pd.notna(row["violation"]) else float("inf")
    return Best(config, float(row["loss"]), metrics, bool(row["feasible"]), violation, int(row["number"]))
