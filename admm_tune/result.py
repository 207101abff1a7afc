"""The outcome of a run, read from its journal."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .deployment import BACKEND, DEPLOY_METRICS, PRECISION, TREE_KNOBS, Deployment
from .errors import ProblemError, RunError
from .journal import Journal
from .problem import Problem, restore_problem
from .settings import TIE_BREAK, Constraint, best_key, unit
from .space import Config, describe

JOURNAL_POINTER = "journal.json"
"""A run directory's record of a journal kept elsewhere: ``{"storage": URL, "study_name": name}``."""


def open_run(run_dir: Path) -> tuple[Journal, Problem]:
    """The journal of the run in ``run_dir`` and its problem (see :func:`~admm_tune.problem.restore_problem`).

    Raises
    ------
    RunError
        When ``run_dir`` holds no journal, or its problem cannot be rebuilt:
        a problem given as Python objects (arrays, a callable) is not stored
        in its journal.
    """
    db, pointer = run_dir / "journal.db", run_dir / JOURNAL_POINTER
    if db.is_file():
        journal = Journal.open(f"sqlite:///{db}")
    elif pointer.is_file():  # a run whose journal lives in another storage (PostgreSQL...)
        where = json.loads(pointer.read_text())
        journal = Journal.open(where["storage"], where["study_name"])
    else:
        raise RunError(f"{run_dir} holds no journal.db (nor {JOURNAL_POINTER}): not a run directory")
    objects = _python_objects(journal.attrs.get("problem", {}))
    if objects:
        raise RunError(f"cannot rebuild the problem of {run_dir}: its {', '.join(objects)} were Python objects, which "
                       "a journal does not store; write the report from Python (result.report(path)) or give the "
                       "data as a file (docs/problem-format.md)")
    try:
        return journal, restore_problem(journal.attrs)
    except ProblemError as exc:
        raise RunError(f"cannot rebuild the problem of {run_dir}: {exc}") from None


def _python_objects(stored: Any, path: str = "") -> list[str]:
    """Fields of a journaled problem that held Python objects (stored as ``"<ndarray>"``, ``"<function>"``...)."""
    if isinstance(stored, dict):
        return [f for k, v in stored.items() for f in _python_objects(v, f"{path}.{k}" if path else str(k))]
    if isinstance(stored, str) and stored.startswith("<") and stored.endswith(">") and stored[1:-1].isidentifier():
        return [path]
    return []

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
    refit: str | None = None
    """Which pipeline :attr:`pipeline` is: ``refit on all N training rows``, or, when that could not finish in
    the time left, the fallback (the first CV fold's pipeline that the search verified) and why."""
    timing: dict[str, float | None] = field(default_factory=dict)
    """Budget adherence of the whole call: ``budget_s``, ``wall_s``, ``overrun`` (wall / budget)."""
    test: dict[str, float] | None = None
    """Scores on the test split, once :attr:`test_scores` computed them (or read back from ``result.json``)."""
    race: dict[str, Any] | None = None
    """The run's final race, the trial chosen by it being :attr:`best`: a deploy run's finalists re-measured in
    interleaved rounds (:func:`admm_tune.deploy_problem.race`), an ML run's re-scored on fresh CV splits
    (:func:`admm_tune.rescore.rescore`); None for a function problem."""

    @classmethod
    def from_frames(cls, problem: Problem, trials: pd.DataFrame, trace: pd.DataFrame, storage: str,
                    run_dir: Path | None, pipeline: Any = None, race: dict[str, Any] | None = None) -> Result:
        """Pick the best row of ``trials`` (the one a deploy run's ``race`` chose) and wrap everything up."""
        return cls(problem, best_of(trials, (race or {}).get("chosen")), pipeline, trials, trace, storage, run_dir,
                   race=race)

    @property
    def deployment(self) -> dict[str, Any] | None:
        """The chosen backend, precision, knobs, batch size and figures (None without deployment).

        The deployment is the deployment race's winner (``final["config"]``)
        when the run raced one, else the best trial's.  ``measured`` holds the
        figures of the search's evaluation of the best trial (first-fold
        pipeline, held-out rows) when the race kept its deployment, else the
        race's figures of the winner (and ``searched`` says what the search
        had chosen, with its figures); ``final`` holds those of the refit
        pipeline's graph as deployed, and ``final["race"]`` the race.
        """
        if self.problem.deployment is None:
            return None
        searched = self.best.config
        config = (self.final or {}).get("config") or searched
        measured = {k: v for k, v in self.best.metrics.items() if k in DEPLOY_METRICS}
        applicable = self.problem.space.applicable(config)  # knobs that take effect with the others' values
        knobs = {k: v for k, v in Deployment.knobs(applicable).items()  # tree_lowering means nothing without trees
                 if k not in TREE_KNOBS or (self.final or {}).get("trees", True)}
        out = {"backend": config[BACKEND], "precision": config[PRECISION], "knobs": knobs,
               "batch_size": self.problem.deployment.batch_size, "measured": measured, "final": self.final,
               **({"remeasured": self.remeasured} if self.remeasured is not None else {})}
        if Deployment.split(config)[1] != Deployment.split(searched)[1]:
            out["searched"] = {"backend": searched[BACKEND], "precision": searched[PRECISION],
                               "knobs": Deployment.knobs(searched), "measured": measured}
            out["measured"] = {k: v for k, v in self.final["measured"].items() if k in DEPLOY_METRICS}
        return out

    @property
    def remeasured(self) -> dict[str, float] | None:
        """The chosen deployment's figures re-measured by a deploy run's race (medians of its rounds), if raced."""
        chosen = [f for f in (self.race or {}).get("finalists", []) if f.get("trial") == self.best.trial]
        return chosen[0].get("metrics") if chosen else None

    @property
    def test_scores(self) -> dict[str, float] | None:
        """Scores on the problem's test split (``test_size`` or ``X_test``), with ``objective.scoring`` (rows
        weighted by ``data.sample_weight``'s test part, when the data has weights).

        ``pipeline``: :attr:`pipeline` (refit on all training rows) on the
        test rows; ``deployed``: the deployed graph of that pipeline, from
        its own outputs on the same rows (with a deployment).  None without a
        test split; the search never sees these rows.
        """
        data = self.problem.data
        if self.test is None and data is not None and data.X_test is not None:
            from sklearn.metrics import get_scorer

            scores = {}
            if self.pipeline is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scorer = get_scorer(self.problem.objective.scoring)
                    weighted = {} if data.sample_weight_test is None else {"sample_weight": data.sample_weight_test}
                    scores["pipeline"] = float(scorer(self.pipeline, data.X_test, data.y_test, **weighted))
            deployed = (self.final or {}).get("measured", {}).get("deployed_score")
            if deployed is not None:
                scores["deployed"] = float(deployed)
            self.test = scores
        return self.test

    @property
    def verified(self) -> bool:
        """False when the refit pipeline's deployed graph disagreed with it (or could not be deployed)."""
        return self.final is None or str(self.final.get("verification", "")).startswith("agrees")

    @property
    def feasible(self) -> bool:
        """The best candidate met every constraint, and its refit, deployed graph passed verification and meets
        the constraints a deployment measures as deployed (:meth:`deployed_misses`)."""
        return self.best.feasible and self.verified and not self.deployed_misses()

    def deployed_misses(self) -> list[Constraint]:
        """The constraints that the exported graph's own figures break (``final["measured"]``, timed after the
        refit by the deployment race), though the search's figures of the chosen candidate met them."""
        if self.problem.kind == "deploy":
            return []
        deployed = (self.final or {}).get("measured", {})
        return [c for c in self.problem.constraints if c.metric in deployed and c.violation(deployed[c.metric]) > 0
                and c.violation(self.best.metrics.get(c.metric, math.nan)) <= 0]

    def shortfalls(self) -> list[str]:
        """Why the result is not :attr:`feasible`: each missed constraint, measured, and by how much; empty if none.

        Examples
        --------
        ``["latency_p95_ms <= 0.05 ms: measured 0.12 ms, missed by 0.07 ms (140%)"]``
        """
        out = []
        for c in self.problem.constraints:
            value = self.best.metrics.get(c.metric)
            violation = c.violation(value if value is not None else math.nan)
            if violation > 0:
                graph = self.best.metrics.get(f"graph_{c.metric}")
                u = unit(c.metric)
                out.append(f"{c}: not measured" if not math.isfinite(violation) else
                           f"{c}: measured {value:.4g}{u}, missed by {abs(value - c.bound):.3g}{u} ({violation:.0%})"
                           + (f"; end to end from raw rows, of which the graph alone {graph:.4g}{u}"
                              if graph is not None else ""))
        for c in self.deployed_misses():
            out.append(f"{c}: {self.final['measured'][c.metric]:.4g}{unit(c.metric)} as deployed (the exported graph "
                       f"re-timed after the refit), though {self.best.metrics[c.metric]:.4g}{unit(c.metric)} in the "
                       "search")
        if not self.verified:
            out.append(f"the refit pipeline's deployed graph: {self.final['verification']}")
        return out

    def export(self, target: str | Path, force: bool = False) -> Path:
        """Write the chosen deployment's graph, ``deployment.json`` and ``load_model.py``.

        This is the one export path (:meth:`AutoPipelineClassifier.export_onnx
        <admm_tune.AutoPipelineClassifier.export_onnx>` calls it too): the
        graph is the one the chosen deployment runs (int8: quantised), made
        from :attr:`pipeline` (refit on all training data), itself verified
        and timed (:attr:`final`).  ``load_model.py`` runs it on the chosen
        backend with the chosen knobs and needs only that backend, numpy and
        pandas.

        Parameters
        ----------
        target : path
            A directory (the graph is ``model.onnx`` in it), or a file name
            ending in ``.onnx`` (the other files go beside it).
        force : bool
            Export even when the deployed graph failed verification.

        Returns
        -------
        Path
            The graph's path.

        Raises
        ------
        RunError
            When the problem has no deployment, or the deployed graph failed
            verification and ``force`` is False.
        """
        if self.deployment is None:
            raise RunError("this result has no deployment to export (the problem has no `deployment` field)")
        if self.exporter is None:
            raise RunError(f"this result has no deployment to export: {(self.final or {}).get('verification')}")
        if not self.verified and not force:
            raise RunError(f"not exporting a graph that failed verification ({self.final['verification']}); "
                           "pass force=True to export it anyway")
        self.onnx_path = self.exporter(Path(target))
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
        result = cls.from_frames(problem, trials, trace, journal.storage, run_dir, race=journal.attrs.get("race"))
        saved_result = run_dir / "result.json"  # written by save(): the CLI's and sweeps' runs
        outcome = json.loads(saved_result.read_text()) if saved_result.is_file() else {}
        result.test, result.refit = outcome.get("test"), outcome.get("pipeline")  # of a pipeline that is not kept
        spec = run_dir / "deployment.json"
        if spec.is_file():
            saved = json.loads(spec.read_text())
            if problem.kind != "deploy":  # a trained model has no refit graph; its file verification is in the spec
                final = ((outcome.get("deployment") or {}).get("final") or {})
                result.final = {"verification": saved.get("verification", ""), "measured": saved.get("measured", {}),
                                "pipeline": result.refit, "trees": final.get("trees", True),
                                **({"race": journal.attrs["deployment_race"]}
                                   if "deployment_race" in journal.attrs else {}),
                                **({"config": final["config"]} if final.get("config") else {})}
            result.onnx_path = run_dir / saved.get("model", "model.onnx")
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
                "storage": self.storage, "onnx_path": str(self.onnx_path) if self.onnx_path else None,
                "pipeline": self.refit, "timing": self.timing, "seed": self.problem.seed,
                "feasible": self.feasible, "shortfalls": self.shortfalls(), "test": self.test_scores,
                **({"race": self.race} if self.race is not None else {})}

    @property
    def n_evaluations(self) -> int:
        """Number of evaluations in the journal."""
        return len(self.trials)

    @property
    def n_failed(self) -> int:
        """Number of evaluations that failed."""
        return int((self.trials["state"] == "fail").sum()) if len(self.trials) else 0

    def save(self, run_dir: str | Path, timing: Callable[[], dict[str, float | None]] | None = None,
             report: bool = True) -> None:
        """Write ``report.html`` (:meth:`report`; unless ``report`` is False), then ``result.json`` (:meth:`to_dict`).

        ``timing``, when given, refreshes :attr:`timing` between the two, so
        that the budget adherence in ``result.json`` counts the report too.
        """
        run_dir = Path(run_dir)
        if report:
            self.report(run_dir / "report.html")
        if timing is not None:
            self.timing = timing()
        (run_dir / "result.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))

    def summary(self) -> str:
        """A few lines for people: the pipeline, its score, the search."""
        b = self.best
        lines = [f"problem      {self.problem.name}", f"chosen       trial {b.trial}: {self.described()}"]
        if not b.feasible:
            lines.append("INFEASIBLE   no candidate met every constraint: the one that missed them least is chosen "
                         "(NOT MET below)")
        lines += [f"{key:<12} {text}" for key, text in self.story()]
        test = self.test_scores
        if test:
            lines.append("test score   " + ", ".join(f"{k} {v:.4f}" for k, v in test.items())
                         + f" ({self.problem.objective.name}, {len(self.problem.data.y_test)} held-out rows)")
        lines += [f"{key:<12} {text}" for key, text in self.constraint_story()]
        lines += [f"NOT MET      {shortfall}" for shortfall in self.shortfalls()]
        lines += [f"{key:<12} {text}" for key, text in self.deployment_story()]
        if self.deployment is not None and self.onnx_path is not None:
            lines.append(f"model        {self.onnx_path}")
        elif self.deployment is not None and self.run_dir is not None and self.verified:
            lines.append("model        not written to the run directory: the result does not meet every requirement "
                         "(NOT MET above); result.export(path) writes it")
        if self.race is not None and self.problem.kind == "deploy":
            lines.append(f"final race   {self.race['note']}")
        if self.refit is not None:
            lines.append(f"pipeline     {self.refit}")
        lines.append(f"evaluations  {self.n_evaluations} ({self.n_failed} failed) in {len(self.trace)} ADMM iterations")
        if self.timing.get("budget_s"):
            lines.append(f"time         {self.timing['wall_s']:.1f} s for a {self.timing['budget_s']:g} s budget "
                         f"({self.timing['overrun']:.2f}x)")
        if self.timing.get("peak_memory_mb"):
            worker = self.trials["peak_memory_mb"].max() if "peak_memory_mb" in self.trials else math.nan
            lines.append(f"memory       peak {self.timing['peak_memory_mb']:,.0f} MiB in this process"
                         + (f", {worker:,.0f} MiB in a worker" if worker == worker else ""))
        if len(self.trace):
            last = self.trace.iloc[-1]
            lines.append(f"ADMM         final rho {last['rho']:.3g}, integer residual {last['primal_residual']:.2g}, "
                         f"structures tried {self.trials['structure'].nunique()}")
        lines.append(f"journal      {self.storage}")
        return "\n".join(lines)


    def constraint_story(self) -> list[tuple[str, str]]:
        """Each constraint with its figure, as ``("constraint", text)`` pairs (the summary's and the report's): the
        exported graph's figure beside the search's for those a deployment measures, else the search's."""
        deployed = (self.final or {}).get("measured", {}) if self.problem.kind != "deploy" else {}
        out = []
        for c in self.problem.constraints:
            found = self.best.metrics.get(c.metric, math.nan)
            if c.metric in deployed:
                out.append(("constraint", f"{c}: {deployed[c.metric]:.4g}{unit(c.metric)} as deployed "
                                          f"({found:.4g}{unit(c.metric)} in the search)"))
            else:
                out.append(("constraint", f"{c}: measured {found:.4g}{unit(c.metric)}"))
        return out

    def deployment_story(self) -> list[tuple[str, str]]:
        """The deployment as ``(key, text)`` pairs (the summary's and the report's): what runs, its figures as
        exported (the refit pipeline's graph, timed by the deployment race when it ran, else the search's), what
        the search had chosen when the race replaced it, the verification and the race; empty without one."""
        deployment = self.deployment
        if deployment is None:
            return []
        knobs = ", ".join(f"{k}={v}" for k, v in deployment["knobs"].items())
        final = self.final or {}
        m = final.get("measured") or deployment["measured"]
        where = "the exported graph, end to end from raw rows" if final.get("measured") else "in the search"
        graph = f", graph alone {m['graph_latency_p95_ms']:.4g} ms" if "graph_latency_p95_ms" in m else ""
        out = [("deployment", f"{deployment['backend']} {deployment['precision']} ({knobs}), "
                              f"batch {deployment['batch_size']}: p50 {m.get('latency_p50_ms', math.nan):.4g} ms, "
                              f"p95 {m.get('latency_p95_ms', math.nan):.4g} ms ({where}{graph}), "
                              f"{m.get('model_size_kb', math.nan):.1f} kB")]
        searched = deployment.get("searched")
        if searched is not None:
            out.append(("searched", f"{searched['backend']} {searched['precision']}: the search's deployment of "
                                    "the chosen pipeline, replaced by the deployment race's choice"))
        if final:
            out.append(("refit graph", final["verification"]))
            if final.get("race"):
                out.append(("deploy race", final["race"]["note"]))
        return out

    def described(self) -> str:
        """The chosen config for people (:func:`~admm_tune.space.describe`), without the parameters that take no
        effect (:meth:`~admm_tune.space.SearchSpace.applicable`) and the knobs that do not apply to its deployed
        graph (:data:`TREE_KNOBS` when it has no tree ensemble)."""
        trees = (self.final or {}).get("trees", True)
        config = (self.final or {}).get("config") or self.best.config  # the deployment race's choice, if it ran
        config = self.problem.space.applicable(config)
        return describe({k: v for k, v in config.items() if trees or k.split(".")[-1] not in TREE_KNOBS})

    def story(self) -> list[tuple[str, str]]:
        """How the chosen candidate was chosen and what to expect of it, as ``(key, text)`` pairs (the summary's
        and the report's): by which rule (the search's lowest loss, or the re-scoring of its finalists), the score
        to expect (the re-scored mean over all splits) and the search's own CV figure; a deploy run's objective
        figure with its unit; else the loss."""
        b, objective, race = self.best, self.problem.objective, self.race or {}
        if self.problem.kind == "deploy":  # its loss is the objective's figure (negated for throughput)
            metric = objective.objective
            return [("objective", f"{metric} {b.metrics.get(metric, math.nan):.4g}{unit(metric)} (the search's "
                                  "figure; the final race re-measures the finalists)")]
        if "cv_score" not in b.metrics or not hasattr(objective, "scoring"):
            return [("loss", f"{b.loss:.6g}")]
        name, cv = objective.name, getattr(objective, "cv", 0)
        search = f"{name} {b.metrics['cv_score']:.4f} (loss {b.loss:.4g}) on the search's {cv} folds"
        won = next((f for f in race.get("finalists", []) if f["trial"] == b.trial and "remeasured" in f), None)
        if won is None:
            count = self.n_evaluations - self.n_failed
            why = race.get("note", "")
            return [("chosen by", f"the lowest search loss of {count} evaluations" + (f" ({why})" if why else "")),
                    ("search CV", search + ": the estimate to expect" + (
                        ", slightly optimistic (the best of many)" if count > 1 else ""))]
        splits = race["rounds"] + 1
        ranked = sorted((f for f in race["finalists"] if "remeasured" in f), key=lambda f: f["remeasured"])
        pick = race["search_pick"]
        place = next((i for i, f in enumerate(ranked) if f["trial"] == pick), None)
        told = "the search's best" if pick == b.trial else \
            f"the search's best, trial {pick}, search loss {ranked[place]['search']:.4g}, came {_ordinal(place + 1)}" \
            if place is not None else f"the search's best, trial {pick}, failed on a fresh split"
        return [("chosen by", f"re-scoring the search's {len(race['finalists'])} best on {race['rounds']} fresh CV "
                              f"splits: the lowest mean loss over {splits} splits ({told})"),
                ("estimate", f"{name} {objective.score(won['remeasured']):.4f} (loss {won['remeasured']:.4g}), the "
                             f"mean over {splits} CV splits of {cv} folds: what to expect on new data"),
                ("search CV", search + " (optimistic: the best of many estimates)")]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _best_key(row: pd.Series) -> tuple[float, bool, float, float, float]:
    """:func:`~admm_tune.settings.best_key` of a trials row."""
    fidelity = row.get("fidelity", 1.0)
    violation = 0.0 if bool(row["feasible"]) else float(row["violation"]) if pd.notna(row["violation"]) else math.inf
    return best_key(float(row["loss"]), violation, 1.0 if pd.isna(fidelity) else float(fidelity),
                    row.get(f"metric:{TIE_BREAK}"))


def best_of(trials: pd.DataFrame, chosen: int | None = None) -> Best:
    """The completed trial numbered ``chosen``, else the one with the lowest :func:`~admm_tune.settings.best_key`
    (the rule the optimiser and the progress line follow)."""
    done = trials[trials["state"] == "complete"]
    if chosen is not None and (done["number"] == chosen).any():
        row = done[done["number"] == chosen].iloc[0]
    else:
        row = min((row for _, row in done.iterrows()), key=_best_key)
    config = json.loads(row["config"])
    metrics = {k[len("metric:"):]: float(v) for k, v in row.items() if k.startswith("metric:") and pd.notna(v)}
    violation = float(row["violation"]) if pd.notna(row["violation"]) else float("inf")
    return Best(config, float(row["loss"]), metrics, bool(row["feasible"]), violation, int(row["number"]))
