"""``fit``: wires problem → optimiser → evaluator → journal → result."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from joblib import effective_n_jobs

from .errors import ProblemError, RunError
from .evaluate.backends import BackendError
from .evaluate.deploy import DeploymentEvaluator, write_deployment
from .evaluate.export import ExportError
from .evaluate.function import FunctionEvaluator
from .evaluate.pipeline import MLEvaluator
from .journal import Journal
from .observation import Observation
from .optim import ADMM, Candidate
from .optim.constraints import ConstraintTerms
from .parallel import DaskPool, Pool, WorkerPool
from .problem import Budget, Problem, load_problem, parse_budget
from .progress import Progress
from .result import Result, open_run


def fit(problem: Problem | Mapping[str, Any] | str | Path, *,
        budget: Budget | Mapping[str, Any] | int | str | None = None, seed: int | None = None,
        storage: str | None = None, n_jobs: int = 1, progress: bool = True,
        run_dir: str | Path | None = None, resume: bool = False, backend: str = "processes",
        scheduler: Any = None) -> Result:
    """Search the problem's space by ADMM and return the best feasible pipeline.

    Parameters
    ----------
    problem : Problem, dict or path
        A :class:`~admm_tune.problem.Problem`, its dict form or a YAML file.
    budget : optional
        Overrides the problem's budget: a mapping (``{"evaluations": 25}``),
        an evaluation count, or a duration string (``"90s"``).
    seed : int, optional
        Overrides the problem's seed; with an evaluation budget and
        ``n_jobs=1`` the trial sequence is then reproducible.
    storage : str, optional
        SQLAlchemy URL of the journal, or ``"memory"`` (nothing written to
        disk); default ``sqlite:///RUN_DIR/journal.db``.
    n_jobs : int
        Candidates evaluated in parallel, each in an isolated worker process
        under the problem's ``isolation`` limits (-1: one per core).  A
        worker that finishes gets the next candidate at once, so with
        ``n_jobs > 1`` the trial sequence depends on timing.
    progress : bool
        Show a progress line on stderr.
    run_dir : path, optional
        Where the journal goes when ``storage`` is not given; default
        ``./admm_runs/<problem>-<time>``.
    backend : {"processes", "dask"}
        Where candidates run: isolated worker processes on this machine, or
        a Dask cluster (see ``docs/distributed.md``).
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: a scheduler address or a client; default a
        ``LocalCluster`` of ``n_jobs`` worker processes.  ``n_jobs``
        candidates run at once on the cluster (-1: one per worker thread).
    resume : bool
        Continue the interrupted run whose journal is ``storage`` (or
        ``run_dir``'s): completed evaluations are not run again, evaluations
        cut off by the dead process are retried once, the ADMM state, the
        bandit and the random stream continue from the last finished
        iteration, and the budget counts the evaluations already done.

    Returns
    -------
    Result

    Raises
    ------
    ProblemError
        The problem is malformed (the message names the field).
    RunError
        No candidate completed; the message summarises the failure reasons.
    """
    problem_file = Path(problem).resolve() if isinstance(problem, (str, Path)) else None
    problem = load_problem(problem)
    if budget is not None:
        problem = problem.with_budget(parse_budget(budget))
    if seed is not None:
        problem = replace(problem, seed=seed)
    workers_n = _workers(n_jobs)
    if resume and storage is None and run_dir is None:
        raise ProblemError("resume", "give the storage or run_dir of the run to continue")
    if storage is None:
        run_path = Path(run_dir) if run_dir is not None else _fresh_dir(Path("admm_runs"), problem.name)
        run_path.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{run_path / 'journal.db'}"
    else:
        run_path = Path(run_dir) if run_dir is not None else None
    evaluator = _evaluator(problem)
    optimiser = ADMM(problem.space, problem.constraints, problem.optimizer, problem.budget, problem.seed)
    retry_of: dict[str, int] = {}
    if resume:
        journal = Journal.reopen(storage, problem.name, problem.space)
        history = [(_candidate(attrs), obs) for attrs, obs in journal.history()]
        retry = []
        for attrs in journal.interrupted():
            retry.append(replace(_candidate(attrs), step="retry"))
            retry_of[attrs["config"]] = attrs["retry_of"]
        optimiser.restore(history, journal.iterations(), retry)
        if budget is not None:  # the budget given now is the run's from here on (a later resume keeps it)
            journal.set_attr("budget", _jsonable(problem.budget.__dict__))
    else:
        journal = Journal(storage, problem.name, problem.space)
        journal.set_attr("problem", _jsonable(problem.source or {"name": problem.name}))
        journal.set_attr("seed", problem.seed)
        journal.set_attr("budget", _jsonable(problem.budget.__dict__))
        if problem_file is not None:
            journal.set_attr("problem_file", str(problem_file))
    bar = Progress(problem.budget.evaluations, problem.budget.seconds, progress)
    if backend == "dask":
        pool: Pool = DaskPool(evaluator, scheduler, -1 if n_jobs == -1 else workers_n, problem.isolation)
    elif backend == "processes":
        pool = WorkerPool(evaluator, workers_n, problem.isolation)
    else:
        raise ProblemError("backend", f"expected 'processes' or 'dask', got {backend!r}")
    executor = _JournaledExecutor(problem, pool, journal, bar, retry_of, [r.observation for r in optimiser.records])

    def on_iteration(entry: dict[str, Any]) -> None:
        journal.record_iteration(entry)
        bar.iteration(int(entry["iteration"]) + 1)

    try:
        optimiser.run(executor, on_iteration)
    finally:
        pool.close()
        bar.close()
    best = optimiser.best()
    if best is None:
        reasons = Counter(r.observation.reason[:120] for r in optimiser.records)
        summary = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(5))
        raise RunError(f"every one of the {len(optimiser.records)} candidates failed: {summary}")
    pipeline = evaluator.refit(best.config) if problem.data is not None else None
    result = Result.from_frames(problem, journal.trials(), journal.trace(), storage, run_path, pipeline)
    if isinstance(evaluator, DeploymentEvaluator):
        _finalize(result, evaluator, run_path)
    return result


class _JournaledExecutor:
    """The optimiser's :class:`~admm_tune.optim.Executor`: a pool, with every trial journaled and shown.

    A trial is written when it starts and again when it finishes, so a run
    killed at any point loses nothing finished and knows what was in flight.
    """

    def __init__(self, problem: Problem, pool: Pool, journal: Journal, bar: Progress, retry_of: Mapping[str, int],
                 done: Sequence[Observation]) -> None:
        self.problem, self.pool, self.journal, self.bar, self.retry_of = problem, pool, journal, bar, retry_of
        self.terms = ConstraintTerms(problem.constraints)
        self.capacity = pool.capacity
        self.started: dict[int, tuple[Candidate, Any]] = {}  # ticket → (candidate, journal trial)
        self.done = 0
        self.leader: tuple[bool, float, float] | None = None  # (infeasible, violation, loss) of the best so far
        for obs in done:  # a resumed run's evaluations: the progress line starts from them
            self._count(obs)

    def submit(self, candidate: Candidate) -> None:
        """Journal the trial as running and start it."""
        trial = self.journal.start(candidate.config, _attrs(self.problem, candidate, self.retry_of))
        self.started[self.pool.submit(candidate.config)] = (candidate, trial)

    def next(self) -> tuple[Candidate, Observation]:
        """Wait for the next finished trial; journal it and update the progress line."""
        ticket, obs = self.pool.next()
        candidate, trial = self.started.pop(ticket)
        missing = [c.metric for c in self.problem.constraints if c.metric not in obs.metrics]
        if obs.ok and missing:
            obs = Observation.failed(f"error: the constrained metric {missing[0]!r} was not measured", obs.duration_s)
        self.journal.finish(trial, obs, self._count(obs))
        self.bar.update(self.done, self.leader[2] if self.leader else None,
                        self.leader is not None and not self.leader[0])
        return candidate, obs

    def _count(self, obs: Observation) -> float:
        """Count a finished evaluation towards the progress line; return its constraint violation."""
        violation = self.terms.violation(self.terms.violations(obs.metrics)) if obs.ok else math.inf
        if obs.ok:
            self.leader = min(filter(None, [self.leader, (violation > 0, violation, float(obs.loss))]))
        self.done += 1
        return violation


def _finalize(result: Result, evaluator: DeploymentEvaluator, run_path: Path | None) -> None:
    """Deploy the refit pipeline (verified and timed itself) and write its files into the run directory."""
    config, batch = result.best.config, evaluator.deployment.batch_size
    try:
        final = evaluator.finalize(config, result.pipeline)
    except (ExportError, BackendError) as exc:
        result.final = {"verification": f"the refit pipeline could not be deployed: {exc}", "measured": {}}
        return
    result.final = {"verification": final.verification, "measured": final.metrics}
    result.exporter = partial(write_deployment, deployed=final, config=config,
                              search_metrics=result.deployment["measured"], batch_size=batch,
                              X_sample=result.problem.data.X.iloc[:5])
    if run_path is not None and result.best.feasible:
        result.export(run_path)


def _evaluator(problem: Problem) -> FunctionEvaluator | MLEvaluator | DeploymentEvaluator:
    """The black box of a problem: a callable, CV of pipelines, or CV plus the deployment."""
    if problem.data is None:
        return FunctionEvaluator(problem.objective)
    if problem.deployment is not None:
        return DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, problem.seed)
    return MLEvaluator(problem.space, problem.data, problem.objective, problem.seed)


def _fresh_dir(parent: Path, name: str) -> Path:
    """``parent/NAME-YYYYmmdd-HHMMSS``, suffixed ``-2``, ``-3``... if taken."""
    base = parent / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _attrs(problem: Problem, candidate: Candidate, retry_of: Mapping[str, int]) -> dict[str, Any]:
    config = json.dumps(candidate.config, default=_scalar)
    attrs = {"step": candidate.step, "iteration": candidate.iteration,
             "structure": "/".join(problem.space.structure_of(candidate.config)),
             "config": config, "relaxed": json.dumps(candidate.relaxed)}
    if candidate.step == "retry" and config in retry_of:
        attrs["retry_of"] = retry_of[config]
    return attrs


def _candidate(attrs: Mapping[str, Any]) -> Candidate:
    """The candidate a journal trial's attributes describe."""
    return Candidate(json.loads(attrs["config"]), str(attrs.get("step", "")), int(attrs.get("iteration", 0)),
                     json.loads(attrs.get("relaxed", "{}")))


def resume(run_dir: str | Path, *, budget: Budget | Mapping[str, Any] | int | str | None = None, n_jobs: int = 1,
           progress: bool = True) -> Result:
    """Continue the interrupted run in ``run_dir`` (see ``fit(..., resume=True)``).

    The problem is rebuilt from the problem file the run was given (else
    from the fields its journal holds), with the run's seed and budget.

    Raises
    ------
    RunError
        When ``run_dir`` holds no journal or its problem cannot be rebuilt.
    """
    run_dir = Path(run_dir)
    journal, problem = open_run(run_dir)
    return fit(problem, budget=budget, storage=journal.storage, run_dir=run_dir, n_jobs=n_jobs, progress=progress,
               resume=True)


def _workers(n_jobs: int) -> int:
    """Number of parallel evaluations for joblib's ``n_jobs`` (-1: every core)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ProblemError("n_jobs", f"expected a non-zero integer (-1: every core), got {n_jobs!r}")
    return int(effective_n_jobs(n_jobs))


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: f"<{type(v).__name__}>"))
