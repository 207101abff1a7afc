"""``fit``: wires problem → optimiser → evaluator → journal → result."""

from __future__ import annotations

import json
import math
import re
import secrets
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from joblib import effective_n_jobs

from .deployment import DEPLOY_METRICS
from .errors import Interrupted, ProblemError, RunError
from .evaluate.deploy import DeploymentEvaluator, write_deployment
from .evaluate.function import FunctionEvaluator
from .evaluate.pipeline import Final, MLEvaluator
from .evaluate.race import TREE_OPERATORS, pairs
from .fingerprint import changes, fingerprint
from .journal import MEMORY, Journal
from .observation import Observation
from .optim import ADMM, Candidate
from .optim.constraints import ConstraintTerms
from .parallel import GRACE_S, DaskPool, InProcessPool, Pool, WorkerPool, in_daemonic_process, peak_memory_mb
from .portfolio import warm_start
from .problem import Budget, Problem, load_problem, parse_budget
from .progress import Progress
from .rescore import MIN_EVALUATIONS, expected_seconds, rescore
from .result import JOURNAL_POINTER, Result, best_of, open_run
from .settings import TIE_BREAK, best_key, unit


def fit(problem: Problem | Mapping[str, Any] | str | Path, *,
        budget: Budget | Mapping[str, Any] | int | str | None = None, seed: int | None = None,
        storage: str | None = None, n_jobs: int = 1, progress: bool = True,
        run_dir: str | Path | None = None, resume: bool = False, backend: str = "processes",
        scheduler: Any = None, report: bool = False, study_name: str | None = None) -> Result:
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
    report : bool
        Also write ``report.html`` into the run directory (as the command
        line does); ``result.json`` is always written there.  Both are part
        of a ``seconds`` budget.
    study_name : str, optional
        The run's name in ``storage`` (default: the problem's name); runs
        sharing a storage (a PostgreSQL database) need distinct names.  With
        a ``storage`` and a ``run_dir``, the run directory records where its
        journal is (``journal.json``), so ``resume`` and ``report`` find it.

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
    clock_start = time.monotonic()
    problem_file = Path(problem).resolve() if isinstance(problem, (str, Path)) else None
    problem = load_problem(problem)
    if budget is not None:
        problem = problem.with_budget(parse_budget(budget))
    if seed is not None:
        problem = replace(problem, seed=seed)
    elif problem.seed is None and not resume:  # drawn, and journaled below, so that the run can be replayed
        problem = replace(problem, seed=secrets.randbelow(2**31))
    workers_n = _workers(n_jobs)
    _check_memory(problem, workers_n)
    if resume and storage is None and run_dir is None:
        raise ProblemError("resume", "give the storage or run_dir of the run to continue")
    if storage is None:
        run_path = Path(run_dir) if run_dir is not None else _fresh_dir(Path("admm_runs"), problem.name)
        _make_dir(run_path)
        storage = f"sqlite:///{run_path / 'journal.db'}"
    else:
        run_path = Path(run_dir) if run_dir is not None else None
    study_name = study_name or problem.name
    if run_path is not None and storage not in (MEMORY, f"sqlite:///{run_path / 'journal.db'}"):
        _make_dir(run_path)
        (run_path / JOURNAL_POINTER).write_text(json.dumps({"storage": storage, "study_name": study_name}))
    evaluator = _evaluator(problem)
    optimiser = ADMM(problem.space, problem.constraints, problem.optimizer, problem.budget, problem.seed,
                     initial=warm_start(problem))
    retry_of: dict[str, int] = {}
    meaning = fingerprint(problem) if storage != MEMORY else {}  # a run kept in memory is never resumed
    if resume:
        changed = changes(Journal.open(storage, study_name).attrs.get("fingerprint", {}), meaning)
        if changed:  # refused before the journal is touched
            where = run_path if run_path is not None else "RUN_DIR"
            raise ProblemError("resume", f"the problem changed since the run started: {'; '.join(changed)}; its "
                                         "trials would mix two problems.  Resume with the problem as it was, or "
                                         f"start a new run of this one (admm-tune resume {where} --fork)")
        journal = Journal.reopen(storage, study_name, problem.space)
        history = [(_candidate(attrs), obs) for attrs, obs in journal.history()]
        retry = []
        for attrs in journal.interrupted():
            retry.append(replace(_candidate(attrs), step="retry"))
            retry_of[attrs["config"]] = attrs["retry_of"]
        optimiser.restore(history, journal.iterations(), retry)
        if budget is not None:  # the budget given now is the run's from here on (a later resume keeps it)
            journal.set_attr("budget", _jsonable(problem.budget.__dict__))
    else:
        journal = Journal(storage, study_name, problem.space)
        journal.set_attr("problem", _jsonable(problem.source or {"name": problem.name}))
        journal.set_attr("seed", problem.seed)
        if meaning:
            journal.set_attr("fingerprint", meaning)
        journal.set_attr("budget", _jsonable(problem.budget.__dict__))
        if problem_file is not None:
            journal.set_attr("problem_file", str(problem_file))
    bar = Progress(problem.budget.evaluations, problem.budget.seconds, progress,
                   iteration=len(journal.iterations()) if resume else 0, done=len(optimiser.records),
                   unit=loss_unit(problem))
    clock = Clock(problem.budget.seconds, clock_start)
    if backend == "dask":
        pool: Pool = DaskPool(evaluator, scheduler, -1 if n_jobs == -1 else workers_n, problem.isolation)
    elif backend == "processes" and in_daemonic_process():
        warnings.warn(DAEMONIC, UserWarning, stacklevel=2)
        pool = InProcessPool(evaluator, problem.isolation)
    elif backend == "processes":
        pool = WorkerPool(evaluator, workers_n, problem.isolation)
    else:
        raise ProblemError("backend", f"expected 'processes' or 'dask', got {backend!r}")
    if clock.seconds is not None:
        pool.grace_s = clock.grace_s
    executor = _JournaledExecutor(problem, pool, journal, bar, retry_of, [r.observation for r in optimiser.records],
                                  clock)

    def on_iteration(entry: dict[str, Any]) -> None:
        journal.record_iteration(entry)
        bar.iteration(int(entry["iteration"]) + 1)

    final: Final | None = None
    race: dict[str, Any] | None = None
    try:
        optimiser.run(executor, on_iteration, executor.search_time_left if clock.seconds is not None else None)
        best = optimiser.best()
        if best is None:
            reasons = Counter(r.observation.reason[:120] for r in optimiser.records)
            summary = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(5))
            raise RunError(f"every one of the {len(optimiser.records)} candidates failed: {summary}")
        if problem.data is not None:  # the finalists re-scored, then the refit (and its deployment), isolated
            cv = getattr(problem.objective, "cv", 1)
            refit_s = final_cost(best.observation, cv, executor.deployments)
            trials = journal.trials()
            race = rescore(pool, trials, cv, clock.final_seconds(None, keep=refit_s),
                           fixed_splits=problem.objective.splitter is not None)
            journal.set_attr("race", race)
            said = _chosen_text(race)
            if said:
                bar.chosen(said)
            config = json.loads(trials.set_index("number").loc[race["chosen"], "config"]) \
                if race["chosen"] is not None else best_of(trials).config  # the result's rule: the least miss
            final, why = pool.final(config, clock.final_seconds(problem.isolation.seconds))
            final = final or Final(None, f"none: the refit on all training rows failed ({why})")
            if final.race is not None:
                journal.set_attr("deployment_race", _jsonable(final.race))
        elif problem.kind == "deploy":  # the best few re-measured in interleaved rounds, in the time left
            from .deploy_problem import chosen_text
            from .deploy_problem import race as final_race

            race = _jsonable(final_race(pool, journal.trials(), problem, clock.final_seconds(None)))
            journal.set_attr("race", race)
            said = chosen_text(race)
            if said:
                bar.chosen(said)
    except KeyboardInterrupt:
        raise Interrupted(run_path, executor.done) from None
    finally:
        pool.close()
        bar.close()
    result = Result.from_frames(problem, journal.trials(), journal.trace(), storage, run_path,
                                final.pipeline if final is not None else None, race)
    result.refit = final.source if final is not None else None
    if isinstance(evaluator, DeploymentEvaluator) and final is not None:
        _finalize(result, final, evaluator.deployment.batch_size, run_path)
    elif problem.kind == "deploy":  # the chosen way to run the trained model: written as the ML kind's is
        result.exporter = partial(evaluator.export, result.best.config, searched=result.best.metrics.get("accuracy"),
                                  remeasured=race)
        if run_path is not None and result.feasible:
            result.export(run_path)
    result.timing = clock.report()
    if run_path is not None:  # the run's files (result.json, report.html) are part of the budgeted call
        result.save(run_path, clock.report, report=report)
    return result


def loss_unit(problem: Problem) -> str:
    """The unit of a run's loss: a deploy run's objective's when it is minimised (a latency), else none."""
    if problem.kind != "deploy":
        return ""
    from .deploy_problem import OBJECTIVES

    metric = problem.objective.objective
    return unit(metric) if OBJECTIVES[metric] == "min" else ""


def _chosen_text(race: Mapping[str, Any]) -> str:
    """The progress bar's last words on the ML kind's choice after a re-scoring: the search's best loss, the chosen
    trial and its mean loss over all splits (empty when nothing was re-scored: the search's best is the choice)."""
    finalists = {f["trial"]: f for f in race["finalists"]}
    chosen, pick = race["chosen"], race["search_pick"]
    if chosen not in finalists or "remeasured" not in finalists[chosen]:
        return ""
    won = finalists[chosen]
    head = f"search best {finalists[pick]['search']:.4g}" if pick in finalists else "search best -"
    return f"{head} | chosen trial {chosen}, re-scored {won['remeasured']:.4g}"


DAEMONIC = ("admm_tune: this is a daemonic process (a multiprocessing.Pool worker), which cannot start worker "
            "processes: candidates are evaluated here, one at a time, with time limits but no memory limit or crash "
            "isolation; for those, fit from joblib (loky) or concurrent.futures.ProcessPoolExecutor workers")
"""The one line a run inside a daemonic process warns with."""

FINISH_S = 3.0
"""Seconds a time-budgeted run keeps at its very end for the result and its files (the HTML report: ~2 s)."""

FINAL_SHARE = 0.3
"""At most this share of a time budget is kept back from the search for the final refit and deployment."""


class Clock:
    """The time plan of a run with a budget of ``seconds`` (None: no time budget).

    The whole call ends by ``max(1.1 × seconds, seconds + 5)`` after it
    started.  The search starts candidates until ``seconds`` minus the time
    the final refit and deployment of the best candidate so far are
    expected to take (estimated from its own evaluation, at most
    :data:`FINAL_SHARE` of the budget); each candidate's limit is the time
    the search has left; a worker silent past its limit is killed after
    :attr:`grace_s`; the final step gets what is left, less the grace and
    :data:`FINISH_S` for writing the result.
    """

    def __init__(self, seconds: float | None, start: float) -> None:
        self.seconds, self.start = seconds, start

    @property
    def end(self) -> float:
        """When the whole call must be over (monotonic clock); inf without a time budget."""
        if self.seconds is None:
            return math.inf
        return self.start + max(1.1 * self.seconds, self.seconds + 5.0) - FINISH_S

    @property
    def grace_s(self) -> float:
        """How long a candidate may overrun its limit before its worker is killed."""
        if self.seconds is None:
            return GRACE_S
        return float(min(GRACE_S, max(0.5, (self.end - self.start - self.seconds) / 2)))

    def search_left(self, reserve: float) -> float:
        """Seconds the search may still start candidates in, keeping ``reserve`` for the final step."""
        if self.seconds is None:
            return math.inf
        reserve = min(reserve, FINAL_SHARE * self.seconds)
        return self.start + self.seconds - reserve - time.monotonic()

    def final_seconds(self, limit: float | None, keep: float = 0.0) -> float | None:
        """A final step's limit: what is left (at least a second) less ``keep`` seconds for the steps after it, or
        ``limit`` without a time budget."""
        if self.seconds is None:
            return limit
        left = max(1.0, self.end - self.grace_s - keep - time.monotonic())
        return left if limit is None else min(limit, left)

    def report(self) -> dict[str, float | None]:
        """Budget adherence: ``budget_s``, ``wall_s`` and ``overrun`` (wall / budget; None without a budget); and
        ``peak_memory_mb``, this process's peak resident memory (MiB)."""
        wall = time.monotonic() - self.start
        return {"budget_s": self.seconds, "wall_s": wall,
                "overrun": wall / self.seconds if self.seconds else None, "peak_memory_mb": peak_memory_mb()}


def final_cost(obs: Observation, cv: int, deployments: int = 1, rows: int | None = None) -> float:
    """Expected seconds to refit and deploy a candidate, from its own evaluation ``obs`` (``cv`` folds).

    The refit fits all ``rows`` once (a fold fitted ``(cv - 1) / cv`` of the
    rows its evaluation scored, its ``rows`` attribute on a tall table, and
    fits grow faster than linearly for many models: x1.5); each of the
    ``deployments`` (the refit's own and the deployment race's contenders:
    export, compile, verify, time) costs what it cost in the search, the
    evaluation's time beyond its folds.
    """
    fit, score = obs.metrics.get("fit_time_s", 0.0), obs.metrics.get("score_time_s", 0.0)
    deploy = max(0.0, obs.duration_s - cv * (fit + score))
    grown = rows / float(obs.attrs.get("rows", rows)) if rows else 1.0
    return 1.5 * fit * grown * cv / max(1, cv - 1) + deploy * deployments


FAIL_FAST = 4
"""A run whose first this many evaluations all failed for one same reason stops with that reason."""

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)
"""Numbers in a failure's reason: two reasons that differ only in them are the same reason."""


class _JournaledExecutor:
    """The optimiser's :class:`~admm_tune.optim.Executor`: a pool, with every trial journaled and shown.

    A trial is written when it starts and again when it finishes, so a run
    killed at any point loses nothing finished and knows what was in flight.
    Each candidate's time limit is the smaller of the problem's
    ``isolation.seconds`` and the time the search has left (:class:`Clock`).
    When the first :data:`FAIL_FAST` evaluations of a run all fail for one
    reason (a crash, an import error, the same exception; not a time-out or
    the memory limit, which depend on the candidate), the run stops with
    that reason instead of spending its budget on it.
    """

    def __init__(self, problem: Problem, pool: Pool, journal: Journal, bar: Progress, retry_of: Mapping[str, int],
                 done: Sequence[Observation], clock: Clock) -> None:
        self.problem, self.pool, self.journal, self.bar, self.retry_of = problem, pool, journal, bar, retry_of
        self.clock = clock
        self.terms = ConstraintTerms(problem.constraints)
        self.rows = None if problem.data is None else len(problem.data.y)
        self.deployments = 3 + pairs(problem.space) if problem.deployment is not None else 1  # refit, race, plain
        self.capacity = pool.capacity
        self.started: dict[int, tuple[Candidate, Any]] = {}  # ticket → (candidate, journal trial)
        self.done = 0
        self.leader: tuple[float, bool, float, float, float] | None = None  # the best so far's best_key
        self.leader_obs: Observation | None = None
        self.failures: list[str] | None = [] if not done else None  # reasons of a new run's first failures
        self.seconds: dict[tuple[str, ...], list[float]] = {}  # structure → its evaluations' seconds
        for obs in done:  # a resumed run's evaluations: the progress line starts from them
            self._count(obs)

    def search_time_left(self) -> float:
        """Seconds the search may still start candidates in (the final step's expected cost kept back; before any
        result, the most that may be kept: :data:`FINAL_SHARE` of the budget)."""
        return self.clock.search_left(self._reserve())

    def _reserve(self) -> float:
        """The final steps' expected seconds (refit, deployment, re-scoring) for the best so far; inf before any."""
        if self.leader_obs is None:
            return math.inf
        if self.problem.kind == "deploy":  # its final step: the race of the finalists, then the export
            from .deploy_problem import race_seconds

            return race_seconds(self.problem, self.leader_obs)
        cv = getattr(self.problem.objective, "cv", 1)
        reserve = final_cost(self.leader_obs, cv, self.deployments, self.rows)
        if self.problem.data is not None and self.done >= MIN_EVALUATIONS:  # the re-scoring of the finalists
            m = self.leader_obs.metrics
            reserve += expected_seconds(m.get("fit_time_s", 0.0), m.get("score_time_s", 0.0), cv)
        return reserve

    def seconds_left(self) -> float | None:
        """The run's expected seconds left, for the progress line: the evaluations left at the mean of the
        structures' seconds per evaluation (each structure's median so far: the search spreads its pulls over the
        structures, and one slow structure explored first does not set the pace of the rest), over the workers,
        plus the final steps; capped by a time budget.  None before any evaluation is done."""
        if not self.seconds:
            return None
        total = self.problem.budget.evaluations
        left = self.clock.end - time.monotonic() if self.clock.seconds is not None else math.inf
        if total is not None:
            left = min(left, evaluations_left_s(self.seconds, total - self.done, self.capacity, self._reserve()))
        return left if math.isfinite(left) else None

    def submit(self, candidate: Candidate) -> None:
        """Journal the trial as running and start it, limited to the time the search has left."""
        trial = self.journal.start(candidate.config, _attrs(self.problem, candidate, self.retry_of))
        seconds = self.problem.isolation.seconds
        if self.clock.seconds is not None:
            left = max(0.5, self.search_time_left())
            seconds = left if seconds is None else min(seconds, left)
        self.started[self.pool.submit(candidate.config, seconds, candidate.incumbent)] = (candidate, trial)

    def next(self) -> tuple[Candidate, Observation]:
        """Wait for the next finished trial; journal it and update the progress line."""
        ticket, obs = self.pool.next()
        candidate, trial = self.started.pop(ticket)
        missing = [c.metric for c in self.problem.constraints if c.metric not in obs.metrics]
        if obs.ok and missing and obs.fidelity >= 1.0:  # one stopped early measured nothing more, on purpose
            obs = Observation.failed(f"error: the constrained metric {missing[0]!r} was not measured", obs.duration_s)
        self.journal.finish(trial, obs, self._count(obs))
        self.seconds.setdefault(self.problem.space.structure_of(candidate.config), []).append(obs.duration_s)
        self.bar.update(self.done, self.leader_obs.loss if self.leader_obs else None,
                        self.leader is not None and not self.leader[1], self.seconds_left())
        self._fail_fast(obs)
        return candidate, obs

    def _fail_fast(self, obs: Observation) -> None:
        """Stop a run whose first :data:`FAIL_FAST` evaluations all failed for the same reason."""
        if self.failures is None:
            return
        if obs.ok or obs.reason.startswith(("timeout", "memory")):
            self.failures = None
            return
        self.failures.append(re.sub(NUMBER, "#", obs.reason))  # "boom 0.31" and "boom 0.72" are one reason
        if len(self.failures) == FAIL_FAST and len(set(self.failures)) == 1:
            raise RunError(f"stopped early: the first {FAIL_FAST} candidates all failed the same way: "
                           f"{obs.reason[:300]}")
        if len(self.failures) >= FAIL_FAST:
            self.failures = None

    def _count(self, obs: Observation) -> float:
        """Count a finished evaluation towards the progress line; return its constraint violation."""
        violation = self.terms.miss(obs.metrics) if obs.ok else math.inf
        if obs.ok:
            entry = best_key(float(obs.loss), violation, obs.fidelity, obs.metrics.get(TIE_BREAK))
            if self.leader is None or entry < self.leader:
                self.leader, self.leader_obs = entry, obs
        self.done += 1
        return violation


def evaluations_left_s(seconds: Mapping[Any, Sequence[float]], evaluations: int, workers: int,
                       reserve: float) -> float:
    """Expected seconds of ``evaluations`` more evaluations on ``workers``, then the final steps (``reserve``; inf:
    not known yet, counted 0): each at the mean over the structures of their median seconds so far (``seconds``:
    structure → its evaluations' seconds), so that a slow structure explored first counts once, not once per
    evaluation of it."""
    pace = sum(statistics.median(s) for s in seconds.values()) / len(seconds)
    return max(0, evaluations) * pace / workers + (reserve if math.isfinite(reserve) else 0.0)


def _finalize(result: Result, final: Final, batch: int, run_path: Path | None) -> None:
    """Hand over the final pipeline's deployment (verified and timed itself, the deployment race's winner); write
    its files into the run dir."""
    if final.deployed is None:
        result.final = {"verification": final.error or f"no pipeline to deploy: {final.source}", "measured": {},
                        "pipeline": final.source}
        return
    deployed, config = final.deployed, final.config or result.best.config
    result.final = {"verification": deployed.verification, "measured": deployed.metrics, "pipeline": final.source,
                    "config": config, "trees": any(n.op_type in TREE_OPERATORS for n in deployed.model.graph.node),
                    **({"race": final.race} if final.race is not None else {})}
    result.exporter = partial(write_deployment, deployed=deployed, config=config,
                              search_metrics={k: v for k, v in result.best.metrics.items() if k in DEPLOY_METRICS},
                              batch_size=batch,
                              data=result.problem.data)
    if run_path is not None and result.feasible:  # never a graph that failed verification
        result.export(run_path)


def _evaluator(problem: Problem) -> FunctionEvaluator | MLEvaluator | DeploymentEvaluator:
    """The black box of a problem: a callable, CV of pipelines, CV plus the deployment, or a trained model's."""
    if problem.kind == "deploy":  # an OnnxModelEvaluator: config -> Observation
        return problem.objective
    if problem.data is None:
        return FunctionEvaluator(problem.objective)
    if problem.deployment is not None:
        return DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, problem.seed,
                                   problem.constraints)
    return MLEvaluator(problem.space, problem.data, problem.objective, problem.seed)


def _make_dir(path: Path) -> None:
    """Create the run directory ``path``.

    Raises
    ------
    ProblemError
        Naming ``run_dir`` and the reason, when it cannot be made (a file on its path, no permission...).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProblemError("run_dir", f"cannot create the run directory {str(path)!r}: {exc.strerror or exc}") \
            from None


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
           progress: bool = True, report: bool = False, fork: bool = False) -> Result:
    """Continue the interrupted run in ``run_dir`` (see ``fit(..., resume=True)``).

    The problem is rebuilt from the problem file the run was given (else
    from the fields its journal holds), with the run's seed and budget.

    Parameters
    ----------
    fork : bool
        Start a new run of the problem as its file is now, with the run's
        seed and budget, in a new directory beside ``run_dir`` (whose
        journal records ``forked_from``); nothing of ``run_dir``'s trials is
        reused.  What to do when the problem changed since the run started.

    Raises
    ------
    RunError
        When ``run_dir`` holds no journal or its problem cannot be rebuilt.
    ProblemError
        Field ``resume``: the problem changed since the run started (its data,
        objective, space, constraints or deployment; see
        :mod:`admm_tune.fingerprint`), naming what changed.
    """
    run_dir = Path(run_dir)
    journal, problem = open_run(run_dir)
    if fork:
        new = _fresh_dir(run_dir.parent, problem.name)
        result = fit(problem, budget=budget, run_dir=new, n_jobs=n_jobs, progress=progress, report=report)
        Journal.open(f"sqlite:///{new / 'journal.db'}").set_attr("forked_from", str(run_dir))
        return result
    return fit(problem, budget=budget, storage=journal.storage, run_dir=run_dir, n_jobs=n_jobs, progress=progress,
               report=report, resume=True, study_name=journal.study.study_name)


FIT_COPIES = 4
"""Memory a fit needs, in copies of the table: the worker's own, and the fold's training rows as the pipeline's steps
transform them (a measured rule of thumb, for refusing a table before the search, not a limit)."""


def _check_memory(problem: Problem, workers: int) -> None:
    """Refuse, before the search, a table that the parent and ``workers`` workers cannot hold and fit in memory.

    Raises
    ------
    ProblemError
        Naming the table's size and the memory available (or
        ``isolation.memory_mb``), in MiB.
    """
    if problem.data is None:
        return
    import psutil

    size = problem.data.nbytes / 2**20
    available = psutil.virtual_memory().available / 2**20
    need = size * (1 + workers * FIT_COPIES)
    if size * (1 + FIT_COPIES) > available:
        raise ProblemError("data", f"the table takes {size:,.0f} MiB in memory; fitting on it needs about "
                                   f"{size * (1 + FIT_COPIES):,.0f} MiB, more than the {available:,.0f} MiB available "
                                   "(use fewer rows or columns)")
    if need > available:
        raise ProblemError("n_jobs", f"{workers} workers, each holding and fitting on the {size:,.0f} MiB table, need "
                                     f"about {need:,.0f} MiB, more than the {available:,.0f} MiB available: use fewer "
                                     f"(n_jobs={max(1, int((available / size - 1) // FIT_COPIES))})")
    limit = problem.isolation.memory_mb
    if limit is not None and size * FIT_COPIES > limit:
        raise ProblemError("isolation.memory_mb", f"{limit} MiB per worker cannot hold and fit on the {size:,.0f} MiB "
                                                  f"table (about {size * FIT_COPIES:,.0f} MiB)")


def _workers(n_jobs: int) -> int:
    """Number of parallel evaluations for joblib's ``n_jobs`` (-1: every core)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ProblemError("n_jobs", f"expected a non-zero integer (-1: every core), got {n_jobs!r}")
    return int(effective_n_jobs(n_jobs))


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: f"<{type(v).__name__}>"))
