"""The ADMM loop (``docs/architecture.md`` §2) and its state.

Variables: the algorithm choice ``z`` (with categorical values), continuous
parameters ``θᶜ``, relaxed integers ``θ̃ᵈ`` and their integer copies ``δ``,
constraint slacks ``u``; duals ``λ`` (integer consensus) and ``μ``
(constraints); penalty ``ρ``.  The run starts by evaluating the configs it was given (a warm-start portfolio),
then bandit draws at their default parameters (``initial_pulls`` in all); the best becomes z⁰.  The bandit is credited once per
pull and once per θ-step (with the θ-step's best point): crediting every
θ-step evaluation would let the structure being tuned out-vote the others.
One iteration:

1. θ-step: a Bayesian-optimisation solver proposes ``I_t`` points for the
   active algorithms (z fixed), minimising the observed objective plus the
   constraint terms plus the analytic consensus term ``ρ/2 ‖θ̃ᵈ − δ + λ/ρ‖²``.
   Integers are evaluated rounded; since the objective is constant on each
   rounding cell, the relaxed iterate is the exact minimiser of the consensus
   term on the best point's cell (on the cell's edge when the integer copy
   lies in another cell, which leaves a residual for the duals to close).
2. u-step: ``u = max(1 − ĝ − μ/ρ, 0)`` at the iterate (no upper cap: see docs/optimiser.md).
3. δ-step: ``δ = round(Π(θ̃ᵈ + λ/ρ))``.
4. z-step: Thompson-sampling pulls evaluated with θ fixed (with random
   parameters when that point was evaluated already); z becomes the
   candidate (current z included) with the lowest augmented Lagrangian,
   unless that would take an algorithm past its share of the θ-steps
   (``optim/allocation.py``, ``_share``).

Under constraints (``docs/optimiser.md``, "Constraints across blocks"): the
initial draws spread the small modules' values (every backend and precision
is measured first); an additive model of each constraint over the module
choices, fitted to every evaluation whose constraints were measured, directs a z-step pull to the block that
fixes a constraint the θ-steps of one structure kept breaking and screens
out pulls it predicts far infeasible; and the θ-step's first point, while
the iterate breaks a constraint, is a step onto the bound.  When δ cycles
between neighbouring integers, the next θ-step settles the integers at δ
(``_settle``).
5. Duals: ``λ ← λ + ρ(θ̃ᵈ − δ)`` (computed before the z-step, which may
   move θ to another structure's point), ``μ ← μ + ρ(ĝ − 1 + u)``; ρ grows by
   ``rho_growth`` when the iterate's constraint violation did not at least
   halve since the last iteration.  Only the constraint block's penalty
   grows: the integer consensus keeps the initial ρ (ADMM allows one
   penalty per block), because a stiff consensus term freezes the integers
   near their copy whenever a constraint stays violated, and the exact cell
   projection of step 1 drives the residual to 0 without it.

Evaluations are asynchronous (:class:`~.executor.Executor`): a step starts
each candidate as soon as a slot is free and ends once all of its candidates
are started and a slot is free again.  With one slot this is the sequential
loop above.  With several, the θ-step conditions each proposal on the
candidates still running (kriging believer) and a step's updates use the
results in by then; results that come later join the history and the next
z update (as options, and credited to the bandit: each pull once, the best
late θ-step point once), so no slot ever waits for the slowest evaluation
of a batch: asynchronous ADMM whose staleness is bounded by the number of
slots.

Units: integer residuals are measured in units of each parameter's range,
constraints in units of their bound, and the objective in units of its
observed spread (median minus best loss), so ρ and μ mean the same on any
problem.  The
optimiser sees only the space and a black-box executor (or ``evaluate``
callable): it knows nothing of scikit-learn pipelines or ONNX.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..observation import Observation
from ..settings import TIE_BREAK, Budget, Constraint, OptimizerSettings, best_key
from ..space import Config, Float, Forbidden, Int, SearchSpace
from .allocation import behind, projected
from .bandit import NoAllowedDraw, ThompsonBandit, reward
from .bayes import ThetaTask, make_solver
from .constraints import ConstraintTerms
from .cost import CostModel
from .credit import UNTRIED, ValueStats, arm, optimistic, value_stats
from .executor import Candidate, EvaluateFn, Executor, SerialExecutor
from .feasibility import ChoiceModel, directed_moves, restoration_point


@dataclass
class Record:
    """An evaluated candidate, as the optimiser remembers it."""

    candidate: Candidate
    observation: Observation
    violations: np.ndarray
    """Normalised violations per constraint, capped at :data:`~.constraints.MAX_VIOLATION` (the penalties')."""
    miss: float | None = None
    """The worst violation uncapped (:meth:`~.constraints.ConstraintTerms.miss`, what the journal keeps): among
    infeasible records the one that missed least is best; None: the capped :attr:`violation`."""
    measured: bool = True
    """Whether :attr:`violations` were measured. False for an evaluation stopped early as clearly worse than the
    best feasible one before its constrained metrics were measured (a deployment's): its violations are the
    structure's typical ones (:meth:`ADMM._imputed_violations`), for the models to read, and it is never feasible."""

    @property
    def config(self) -> Config:
        """The evaluated config."""
        return self.candidate.config

    @property
    def feasible(self) -> bool:
        """Completed, its constraints measured, and every one holds."""
        return self.observation.ok and self.measured and bool(np.all(self.violations <= 0.0))

    @property
    def full(self) -> bool:
        """Evaluated in full (not stopped early at a lower fidelity)."""
        return self.observation.fidelity >= 1.0

    @property
    def violation(self) -> float:
        """Worst normalised violation (inf when failed)."""
        return ConstraintTerms.violation(self.violations) if self.observation.ok else math.inf


@dataclass
class ADMMState:
    """Everything the loop carries from one iteration to the next (JSON-able)."""

    iteration: int = 0
    z: Config = field(default_factory=dict)
    theta: dict[str, float] = field(default_factory=dict)
    delta: dict[str, int] = field(default_factory=dict)
    lam: dict[str, float] = field(default_factory=dict)
    u: list[float] = field(default_factory=list)
    mu: list[float] = field(default_factory=list)
    rho: float = 1.0
    inner: int = 2
    f_scale: float = 1.0
    infeasibility: float = math.inf
    settle: bool = False
    stuck: int = 0

    def to_json(self) -> str:
        """Serialise for the journal."""
        return json.dumps(asdict(self), default=_json_default)


IterationFn = Callable[[dict[str, Any]], None]
MAX_SKIPS = 10
"""Candidates a step may pass over (predicted not to finish in the time left) before it stops proposing."""

CYCLE = 3
"""An integer copy δ that returns to a value it left within this many iterations of one structure is cycling."""
STUCK = 2
"""θ-steps of one structure whose iterate breaks a constraint before the z-step moves the block that fixes it."""
OPTIMISM_TIME = 0.1
"""Under a time budget, the z-step moves to an untuned structure (optimism) only when one θ-step of it (``inner``
evaluations at its measured duration) takes at most this share of the seconds left."""
SCREEN, SCREEN_TRIES = 0.25, 5
"""A bandit pull predicted (by every measured evaluation, :class:`~.feasibility.ChoiceModel`) to break a
constraint by more than a quarter of its bound is drawn again, up to this many times."""


class ADMM:
    """ADMM over a search space with black-box constraints.

    Parameters
    ----------
    space : SearchSpace
    constraints : sequence of Constraint
    settings : OptimizerSettings
    budget : Budget
    seed : int, optional
        Makes a run with an evaluation budget reproducible (with one
        evaluation slot).
    initial : sequence of Config
        Configs the initial draws take first, in order (a warm-start
        portfolio, handed over by the problem layer); those the space does
        not allow are skipped, and bandit draws fill the rest.
    """

    def __init__(self, space: SearchSpace, constraints: Sequence[Constraint], settings: OptimizerSettings,
                 budget: Budget, seed: int | None = None, initial: Sequence[Config] = ()) -> None:
        self.space = space
        self.initial = [dict(c) for c in initial]
        self.terms = ConstraintTerms(constraints)
        self.settings = settings
        self.budget = budget
        self.rng = np.random.default_rng(seed)
        self.solver = make_solver(settings.theta_solver)
        self.bandit = ThompsonBandit(space)
        self.cost = CostModel(space)
        self.first_cost = CostModel(space)  # seconds to an evaluation's first result (its lowest fidelity)
        k = len(self.terms)
        self.state = ADMMState(rho=settings.rho, inner=settings.inner_budget, u=[0.0] * k, mu=[0.0] * k)
        self.rho_int = settings.rho  # the consensus block keeps the initial penalty (see the module docstring)
        self.records: list[Record] = []
        self.trace: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._retry: list[Candidate] = []
        self._running: dict[int, Candidate] = {}  # id → candidate submitted and not yet returned
        self._late: list[Record] = []  # results that came in after their step ended, not yet judged
        self._started = 0
        self._executor: Executor = SerialExecutor(lambda batch: [])
        self._start = time.monotonic()
        self._time_left: Callable[[], float] | None = None
        self._stalled = 0

    # -- public ----------------------------------------------------------------
    def run(self, evaluate: Executor | EvaluateFn, on_iteration: IterationFn | None = None,
            time_left: Callable[[], float] | None = None) -> list[Record]:
        """Iterate until the budget is spent or progress stalls; return every record.

        Parameters
        ----------
        evaluate : Executor or callable
            Where candidates are evaluated; a ``[candidate] -> [observation]``
            callable is used one candidate at a time.
        on_iteration : callable, optional
            Called with each iteration's trace entry.
        time_left : callable, optional
            Seconds left to start candidates in; when given, it replaces the
            budget's ``seconds`` (the caller keeps time back for its own work).
        """
        self._executor = evaluate if isinstance(evaluate, Executor) else SerialExecutor(evaluate)
        self._start = time.monotonic()
        self._time_left = time_left
        if self._retry:
            retry = iter(self._retry)
            records = self._step(lambda: next(retry, None))
            if not self.state.z:  # the run died before its first result: start from the retried ones
                records += self._drain()
                if records:
                    self.state.z = self.space.choice_of(min(records, key=self._merit).config)
            self._credit(records)
            self._retry = []
        if not self.state.z:
            self._initialise()
        empty = 0
        while not self._exhausted():
            entry = self.iterate()
            if on_iteration is not None:
                on_iteration(entry)
            empty = empty + 1 if entry["new_evaluations"] == 0 else 0
            if self._converged(entry) or empty >= 3:  # three iterations found nothing new: space exhausted
                break
        self._drain()
        return self.records

    def restore(self, history: Sequence[tuple[Candidate, Observation]], trace: Sequence[dict[str, Any]],
                retry: Sequence[Candidate] = ()) -> None:
        """Continue an interrupted run instead of starting afresh.

        Parameters
        ----------
        history : (candidate, observation) pairs
            Every evaluation that finished, in order; none is evaluated again.
        trace : entries of the finished iterations
            The last one's ``state``, ``bandit`` and ``rng`` are what the next
            iteration starts from.
        retry : candidates
            Evaluations that were in flight when the run died; :meth:`run`
            starts them first.
        """
        self.records = [self._record(c, o) for c, o in history]
        for record in self.records:
            self._ban(record)
            self._observe_cost(record)
        self._seen = {_key(r.config) for r in self.records}
        self.trace = [dict(e) for e in trace]
        if self.trace:
            last = self.trace[-1]
            self.state = ADMMState(**json.loads(last["state"]))
            self.bandit.arms = json.loads(last["bandit"])
            self.rng.bit_generator.state = json.loads(last["rng"])
        elif self.records:  # died during the initial draws
            self.state.z = self.space.choice_of(min(self.records, key=self._merit).config)
        self._retry = list(retry)

    def _initialise(self) -> None:
        """Evaluate the ``initial`` configs, then distinct bandit draws at their defaults; z⁰ is the best.

        ``initial_pulls`` of them, but at most ``initial_share`` of an
        evaluation budget.  With several slots, z⁰ is the best of those in when the step
        ends (at least one); the others are options at the first z update.
        The θ-step of z⁰ starts from that evaluation's parameters.
        """
        n = self.settings.initial_pulls
        if self.budget.evaluations is not None:
            n = min(n, max(1, int(self.budget.evaluations * self.settings.initial_share)))
        batch: list[Candidate] = []
        for config in self.initial:
            if len(batch) < n and self.space.allowed(config) and _key(config) not in self._seen | {
                    _key(c.config) for c in batch}:
                batch.append(Candidate(config, "init", 0))
        spread = self._spread(n)
        for i in range(20 * n):
            if len(batch) == n:
                break
            try:
                choice = self.bandit.sample(self.rng, fixed=spread[i] if i < len(spread) else None)
            except NoAllowedDraw:
                choice = self.bandit.sample(self.rng)
            config = self.space.complete(choice)
            if _key(config) not in self._seen and all(_key(c.config) != _key(config) for c in batch):
                batch.append(Candidate(config, "init", 0))
        draws = iter(batch)
        records = self._step(lambda: next(draws, None))
        while not records and self._running:  # z⁰ needs at least one result, however many slots there are
            records.append(self._receive())
        self._credit(records)
        first = min(records, key=self._merit) if records else None
        self.state.z = self.space.choice_of(first.config if first else batch[0].config)
        if first is not None:
            self.state.theta.update({k: float(first.config[k]) for k, _ in self.space.numeric_params(self.state.z)})

    def _spread(self, n: int) -> list[Config]:
        """Under constraints, the modules each initial draw keeps: every value of every small module in turn.

        A module with at most ``n`` algorithms (backend, precision, scaler)
        takes its values in turn (in a random order) over the ``n`` initial
        draws, the others are drawn by the bandit; when the allowed
        combinations of those modules number ``n`` at most, each combination
        is drawn once instead (every backend x precision pair, not only every
        backend and every precision).  Every backend and
        precision is then measured once before the first iteration, so the
        choice model knows each one's effect on every constraint (a backend's
        fixed per-call cost, a precision's size) from the start.  A value
        that a forbidden clause excludes next to the values already kept is
        left to the bandit.  Without constraints, no module is kept.
        """
        if not len(self.terms):
            return []
        small = [m for m in self.space.modules if 1 < len(m.names) <= n]
        if math.prod(len(m.names) for m in small) <= n:
            combos = [dict(zip([m.name for m in small], values))
                      for values in itertools.product(*(m.names for m in small))]
            combos = [c for c in combos if self.space.allowed(c)]
            if combos:
                return [combos[j] for j in self.rng.permutation(len(combos))]
        orders = {m.name: [m.names[j] for j in self.rng.permutation(len(m.names))]
                  for m in self.space.modules if 1 < len(m.names) <= n}
        spread = []
        for i in range(n):
            keep: Config = {}
            for module, order in orders.items():
                if self.space.allowed({**keep, module: order[i % len(order)]}):
                    keep[module] = order[i % len(order)]
            spread.append(keep)
        return spread

    def best(self) -> Record | None:
        """Best feasible record by loss, else the least-violating one."""
        return best_record(self.records)

    # -- one iteration -------------------------------------------------------------
    def iterate(self) -> dict[str, Any]:
        """One ADMM iteration; returns its trace entry."""
        s = self.state
        t = s.iteration
        n_before = self._started
        s.f_scale = self._loss_scale()
        iterate = self._theta_step(t)
        g_hat = self._g_hat(iterate)
        mu = np.array(s.mu)
        u = self.terms.slack(g_hat, mu, s.rho) if len(self.terms) else np.zeros(0)
        s.u = u.tolist()
        ints = self._int_keys(s.z)
        for key, p in ints:
            s.delta[key] = p.cast(s.theta[key] + s.lam.get(key, 0.0) * _span(p) / self.rho_int)
        residual = self._residual(ints)
        s.settle = self._cycling(ints)
        s.stuck = s.stuck + 1 if iterate is not None and iterate.violation > 0 else 0
        z_before = dict(s.z)
        for key, p in ints:  # before the z-step, which may move θ to another structure's point (_share)
            s.lam[key] = s.lam.get(key, 0.0) + self.rho_int * (s.theta[key] - s.delta[key]) / _span(p)
        self._z_step(t, iterate)
        if s.z != z_before:  # both flags are about the structure the iteration tuned
            s.stuck, s.settle = 0, False
        if len(self.terms):
            s.mu = self.terms.dual_update(mu, g_hat, u, s.rho).tolist()
        best = self.best()
        entry = {
            "iteration": t,
            "z": json.dumps(z_before, sort_keys=True, default=_json_default),
            "z_next": json.dumps(s.z, sort_keys=True, default=_json_default),
            "structure": "/".join(self.space.structure_of(z_before)),
            "evaluations": len(self.records),
            "new_evaluations": self._started - n_before,
            "inner_budget": s.inner,
            "rho": s.rho,
            "f_scale": s.f_scale,
            "primal_residual": residual,
            "violation": iterate.violation if iterate is not None else math.inf,
            "iterate_loss": _loss(iterate),
            "best_loss": _loss(best),
            "best_feasible": bool(best is not None and best.feasible),
            "delta": json.dumps({k: s.delta[k] for k, _ in ints}),
            "lam": json.dumps({k: s.lam[k] for k, _ in ints}),
            "u": json.dumps(s.u),
            "mu": json.dumps(s.mu),
        }
        infeasibility = iterate.violation if iterate is not None else 0.0
        if infeasibility > 1e-9 and infeasibility > 0.5 * s.infeasibility:
            s.rho = min(s.rho * self.settings.rho_growth, self.settings.rho_max)
        s.infeasibility = infeasibility
        s.inner = min(s.inner + self.settings.inner_growth, self.settings.inner_max)
        s.iteration += 1
        # What the next iteration starts from, so that an interrupted run resumes here (see restore).
        entry["state"] = s.to_json()
        entry["bandit"] = json.dumps(self.bandit.arms)
        entry["rng"] = json.dumps(self.rng.bit_generator.state)
        self.trace.append(entry)
        return entry

    # -- θ-step ------------------------------------------------------------------
    def _theta_step(self, t: int) -> Record | None:
        s = self.state
        every = self.space.numeric_params(s.z)
        zkey = _key(s.z)
        for key, p in every:
            s.theta.setdefault(key, float(p.initial()))
        if not every:
            return self._best_of_choice(zkey)
        keys = self._theta_block(t, every)
        settling = s.settle and any(isinstance(p, Int) for _, p in keys)
        s.settle = False
        if settling:
            keys = self._settle(every, keys)
        fixed = {key: s.theta[key] for key, _ in every}
        center = np.array([p.to_unit(s.theta[key]) for key, p in keys])
        others = [kp for kp in every if kp not in keys]
        proposed = 0

        def propose() -> Candidate | None:
            nonlocal proposed
            if proposed == s.inner or not self.space.allowed(s.z):  # z's structure may have been banned since
                return None
            if not keys:  # a settled block of integers only: its one point
                proposed = s.inner
                config = self.space.complete(s.z, fixed)
                return None if _key(config) in self._seen else Candidate(config, "theta", t, dict(fixed))
            task = self._theta_task(zkey, keys, center, fixed, others)
            points = self._restoration(task) if proposed == 0 else None
            if points is None:
                points = self.solver.propose(task, 1, self.rng)
            if len(points) == 0:
                return None
            proposed += 1
            relaxed = {**fixed, **{key: p.from_unit(v) for (key, p), v in zip(keys, points[0])}}
            return Candidate(self.space.complete(s.z, relaxed), "theta", t,
                             {k: relaxed[k] for k, p in every if isinstance(p, Int)})

        new = self._step(propose)
        if new:
            self._credit([min(new, key=self._merit)])
        cell = {key: s.delta[key] for key, p in every if isinstance(p, Int)} if settling else {}
        best = self._best_of_choice(zkey, every, cell)
        if best is not None:
            for key, p in every:
                value = _relaxed(best.candidate, key)
                if isinstance(p, Int):
                    n_star = p.cast(value)
                    target = s.delta.get(key, n_star) - s.lam.get(key, 0.0) * _span(p) / self.rho_int
                    value = float(np.clip(target, max(p.low, n_star - 0.5), min(p.high, n_star + 0.5 - 1e-9)))
                s.theta[key] = value
        return best

    def _settle(self, every: list[tuple[str, Float]], keys: list[tuple[str, Float]]) -> list[tuple[str, Float]]:
        """Settle an oscillating integer consensus: the integers take their copies δ, the θ-step moves the rest.

        Called when δ went back to a value it left within the last
        ``CYCLE`` iterations of this structure (see :meth:`_cycling`): the
        iterate then alternates between two integer cells whose best points
        are ranked differently as μ and ρ change, and λ only feeds the swing.
        θ̃ᵈ is set to δ and its λ to 0, and this θ-step searches the
        continuous parameters with the integers at δ (a coupled move, e.g. n
        up and x down onto a constraint's boundary, is then found in δ's
        cell), and the iterate is the best point of δ's cell: the residual is
        0 and stays 0 unless a later θ-step finds a better cell.  Returns the
        keys the θ-step moves.
        """
        s = self.state
        for key, p in every:
            if isinstance(p, Int):
                s.theta[key], s.lam[key] = float(s.delta[key]), 0.0
        return [(key, p) for key, p in keys if not isinstance(p, Int)]

    def _cycling(self, ints: list[tuple[str, Int]]) -> bool:
        """Whether δ just went back to a value it left within the last ``CYCLE`` iterations of this structure."""
        s, structure = self.state, "/".join(self.space.structure_of(self.state.z))
        recent = []
        for entry in reversed(self.trace[-CYCLE:]):
            if entry["structure"] != structure:
                break
            recent.append(json.loads(entry["delta"]))
        if not recent:
            return False
        changed = {k for k, _ in ints if recent[0].get(k, s.delta[k]) != s.delta[k]}
        return any(s.delta[k] == past.get(k) for past in recent[1:] for k in changed)

    def _theta_block(self, t: int, every: list[tuple[str, Float]]) -> list[tuple[str, Float]]:
        """The parameters the θ-step of iteration ``t`` moves.

        With one module group, all of them.  With several (ML and
        deployment), the groups take turns and the others stay at the
        iterate (block coordinate descent), so a move of a cheap block (knobs)
        reuses the expensive block's evaluation (the fitted pipeline).
        """
        groups = self.space.groups
        if len(groups) < 2:
            return every
        for shift in range(len(groups)):
            block = self.space.numeric_params(self.state.z, groups[(t + shift) % len(groups)])
            if block:
                return block
        return every

    def _theta_task(self, zkey: str, keys: list[tuple[str, Float]], center: np.ndarray,
                    fixed: dict[str, float], others: list[tuple[str, Float]]) -> ThetaTask:
        """The θ-step problem over ``keys``; ``others`` stay at ``fixed`` (block moves).

        Only evaluations of this structure whose other parameters equal the
        fixed ones inform the models: the others' effect is not modelled.
        Such candidates still running are the task's ``pending`` points.
        """
        def comparable(config: Config) -> bool:
            return (_key(self.space.choice_of(config)) == zkey
                    and all(config[k] == p.cast(fixed[k]) for k, p in others))

        history = [r for r in self.records if comparable(r.config)]
        k = len(self.terms)
        X = _unit([r.candidate for r in history], keys)
        worst = self._worst_loss()
        f = np.array([r.observation.loss if r.observation.ok else worst for r in history], dtype=float)
        ok = np.array([r.observation.ok for r in history], dtype=bool)
        failed = self._failed_violations()
        G = np.array([r.violations if r.observation.ok else failed for r in history]).reshape(len(history), k)
        mu, rho = np.array(self.state.mu), self.state.rho

        def merit(f_values: np.ndarray, violations: np.ndarray) -> np.ndarray:
            return f_values / self.state.f_scale + self.terms.penalty(1.0 + violations, mu, rho)

        steps = np.array([_unit_step(p, self.state.theta[key]) if isinstance(p, Int) else 0.0 for key, p in keys])
        pending = _unit([c for c in self._running.values() if comparable(c.config)], keys)
        return ThetaTask(X, f, G, ok, merit, self._consensus(keys), self._valid(keys, fixed), center, steps, pending,
                         key=zkey + "|" + ",".join(key for key, _ in keys), cost=self._theta_cost(keys, fixed))

    def _theta_cost(self, keys: list[tuple[str, Float]], fixed: dict[str, float]
                    ) -> Callable[[np.ndarray], np.ndarray] | None:
        """Predicted seconds at θ-step points (unit cube over ``keys``), under a time budget once known."""
        config = self.space.complete(self.state.z, fixed)
        base = self.cost.unit(config)
        if not math.isfinite(self._seconds_left()) or self.cost.predict_unit(config, base[None, :]) is None:
            return None
        names = [k for k, _ in self.space.numeric_params(config)]
        where = [names.index(k) for k, _ in keys]

        def seconds(X: np.ndarray) -> np.ndarray:
            full = np.repeat(base[None, :], len(X), axis=0)
            full[:, where] = X
            return self.cost.predict_unit(config, full)

        return seconds

    def _restoration(self, task: ThetaTask) -> np.ndarray | None:
        """The θ-step's first point when the iterate breaks a constraint: a step onto the bound (or ``None``).

        See :func:`~.feasibility.restoration_point`: the continuous
        parameters move along a local linear model of each violated
        constraint until it predicts 5 % inside the bound.  The augmented
        Lagrangian alone reaches that point only once μ has grown enough to
        outweigh the loss the move costs, which can take more iterations
        than the budget has.
        """
        if not len(self.terms) or not task.ok.any():
            return None
        x = restoration_point(task.X[task.ok], task.G[task.ok], task.center, task.steps == 0)
        return x[None, :] if x is not None and task.valid(x) else None

    def _consensus(self, keys: list[tuple[str, Float]]) -> Callable[[np.ndarray], np.ndarray]:
        s = self.state
        ints = [(i, key, p) for i, (key, p) in enumerate(keys) if isinstance(p, Int)]

        def penalty(X: np.ndarray) -> np.ndarray:
            X = np.atleast_2d(X)
            total = np.zeros(len(X))
            for i, key, p in ints:
                relaxed = np.array([p.from_unit(v) for v in X[:, i]])
                delta = s.delta.get(key, p.cast(s.theta[key]))
                e = (relaxed - delta) / _span(p) + s.lam.get(key, 0.0) / self.rho_int
                total += self.rho_int / 2.0 * e**2
            return total

        return penalty

    def _valid(self, keys: list[tuple[str, Float]], fixed: dict[str, float]) -> Callable[[np.ndarray], bool]:
        z = self.state.z

        def valid(x: np.ndarray) -> bool:
            config = self.space.complete(z, {**fixed, **{key: p.from_unit(v) for (key, p), v in zip(keys, x)}})
            return self.space.allowed(config) and _key(config) not in self._seen

        return valid

    # -- z-step ------------------------------------------------------------------
    def _z_step(self, t: int, iterate: Record | None) -> None:
        """Bandit pulls with θ fixed; z becomes the best of them and the current iterate.

        With several module groups, every pull after the first redraws one
        group only (in turn) and keeps the others' choices and parameters.
        """
        s = self.state
        fixed = {**s.theta, **s.delta}
        groups = self.space.groups
        model = self._choice_model()
        batch = self._directed(t, iterate, model, fixed)
        # A structure whose iterate failed STUCK θ-steps in a row gets no more pulls: they only redraw its parameters.
        failing = s.stuck >= STUCK and iterate is not None and not iterate.observation.ok
        for i in range(len(batch), self.settings.z_pulls):
            group = groups[(t + i) % len(groups)] if len(groups) > 1 and i > 0 else None
            keep, values = {}, fixed
            if group is not None:  # kept modules keep the iterate's exact values, so their evaluation is reused
                keep = {k: v for k, v in s.z.items() if self._group_of(k) != group}
                if iterate is not None:
                    values = {**fixed, **{k: v for k, v in iterate.config.items()
                                          if "." in k and self._group_of(k) != group}}
            for _attempt in range(20):
                try:
                    choice = self.bandit.sample(self.rng, fixed=keep)
                except NoAllowedDraw:
                    break
                if failing and self.space.structure_of(choice) == self.space.structure_of(s.z):
                    continue
                config = self.space.complete(choice, values)
                if _key(config) in self._seen:  # θ fixed gives a known point: draw its parameters instead
                    config = self.space.complete(choice, {**values, **{
                        k: p.sample(self.rng) for k, p in self.space.numeric_params(choice, group)}})
                if (_key(config) not in self._seen and self.space.allowed(config)
                        and all(_key(c.config) != _key(config) for c in batch)
                        and (_attempt >= SCREEN_TRIES or not self._far_infeasible(model, choice))):
                    batch.append(Candidate(config, "z", t, {}))
                    break
        draws = iter(batch)
        pulled = self._step(lambda: next(draws, None)) + self._late
        self._late = []
        late_theta = [r for r in pulled if r.candidate.step == "theta"]
        self._credit([r for r in pulled if r.candidate.step != "theta"]
                     + ([min(late_theta, key=self._merit)] if late_theta else []))
        options = ([iterate] if iterate is not None else []) + pulled
        drawn = next((r for r in pulled if batch and r.candidate is batch[0] and r.observation.ok), None)
        if drawn is not None and iterate is not None and iterate.observation.ok and drawn.violation > iterate.violation:
            drawn = None  # optimism never trades a measured constraint for an untuned structure's promise
        if drawn is not None and s.inner * drawn.observation.duration_s > OPTIMISM_TIME * self._seconds_left():
            drawn = None  # nor spends more than its share of the time left on one θ-step of a slow structure
        if drawn is not None and self._untuned(self.space.choice_of(drawn.config)):
            s.z = self.space.choice_of(drawn.config)  # optimism: tune what the bandit drew before judging it
        elif options:
            self._share(self.space.choice_of(min(options, key=self._merit).config))

    def _share(self, z: Config) -> None:
        """Set z to ``z``, or move it to the algorithm furthest behind its share of θ-steps (``optim/allocation.py``).

        In every module with several algorithms, those with parameters of
        their own and a full, feasible evaluation in a structure the space
        still allows, whose last θ-step (if any) proposed something, are
        ranked by projected merit, and the best
        ``shared_algorithms`` share what the θ-steps spend: evaluations, or
        seconds under a time budget.  In the module where the one furthest
        behind its share (after one more θ-step: ``inner`` evaluations at
        its mean duration) lags ``z``'s algorithm most, z moves to that one's best
        evaluation: θ starts there, with its integer copies δ at θ and their
        duals λ at 0.  When ``z``'s algorithm had its last θ-step and it
        proposed nothing, z moves in any case.  Where ``z``'s algorithm is
        not among them otherwise (it has no parameters, its structure breaks
        a constraint, or it ranks below), z stays.
        """
        s = self.state
        tuned = dict(s.z)  # this iteration's θ-step (not in the trace yet)
        s.z = z
        top = self.settings.shared_algorithms
        if top < 2:
            return
        merits = [self._merit(r) for r in self.records]
        counts = [r.full and r.feasible and self.space.allowed(self.space.choice_of(r.config)) for r in self.records]
        held = [(entry["iteration"], json.loads(entry["z"])) for entry in self.trace] + [(s.iteration, tuned)]
        timed = math.isfinite(self._seconds_left())

        def spend(record: Record) -> float:  # in the budget's unit
            return max(record.observation.duration_s, 1e-3) if timed else 1.0

        proposed = {c.iteration for c in [r.candidate for r in self.records] + list(self._running.values())
                    if c.step == "theta"}
        move, most = None, 1.0
        for module in self.space.modules:
            own = {a.name for a in module.algorithms if _tunable(a)}
            if len(own) < 2:
                continue
            history: dict[str, list[tuple[Record, float, bool]]] = {}
            for row in zip(self.records, merits, counts):
                if row[0].config[module.name] in own:
                    history.setdefault(str(row[0].config[module.name]), []).append(row)
            last = {str(choice.get(module.name)): t for t, choice in held}  # its last θ-step found nothing new:
            value = {name: projected(rows) for name, rows in history.items()  # exhausted, or too slow for the time
                     if name not in last or last[name] in proposed}
            ranked = sorted((name for name in value if math.isfinite(value[name])), key=value.get)
            spent = {name: sum(spend(r) for r, _, _ in rows if r.candidate.step == "theta")
                     for name, rows in history.items()}
            cost = {name: s.inner * float(np.mean([spend(r) for r, _, _ in rows])) for name, rows in history.items()}
            current = str(z[module.name])
            if current in own and current not in value and ranked:  # z's own θ-step would find nothing new
                chosen, lag = behind(ranked, spent, ranked[0], top, cost)[0], math.inf
            else:
                chosen, lag = behind(ranked, spent, current, top, cost)
            if lag > most:
                move, most = min((h for h in history[chosen] if h[2]), key=lambda h: h[1])[0], lag
        if move is not None:
            s.z = self.space.choice_of(move.config)
            s.theta.update({k: float(_relaxed(move.candidate, k)) for k, _ in self.space.numeric_params(s.z)})
            for key, p in self._int_keys(s.z):
                s.delta[key], s.lam[key] = p.cast(s.theta[key]), 0.0

    def _choice_model(self) -> ChoiceModel | None:
        """Additive model of the violations and the scaled loss over module choices, from every completed record."""
        done = [r for r in self.records if r.observation.ok and r.measured and r.observation.loss is not None]
        if not len(self.terms) or len(done) < 2:
            return None
        targets = np.array([np.append(r.violations, r.observation.loss / self.state.f_scale) for r in done])
        return ChoiceModel.fit(self.space, [self.space.choice_of(r.config) for r in done], targets)

    def _far_infeasible(self, model: ChoiceModel | None, choice: Config) -> bool:
        """Whether the model predicts ``choice`` breaks a constraint by more than ``SCREEN`` of its bound."""
        predicted = model.predict(choice) if model is not None else None
        return predicted is not None and bool(np.max(predicted[:-1]) > SCREEN)

    def _directed(self, t: int, iterate: Record | None, model: ChoiceModel | None,
                  fixed: dict[str, float]) -> list[Candidate]:
        """The z-step's constraint-directed pull: move the module that the choice model says fixes the constraint.

        When the iterate of one structure has broken a constraint for
        ``STUCK`` θ-steps in a row, the θ-step's parameters are not what
        breaks it: among the structures one module away (another backend,
        precision, estimator, ...), the pull is the one whose predicted
        violations (the iterate's measured ones plus the change of that
        module's effect) hold every constraint, with the lowest predicted
        merit.  None when no such move is predicted feasible.
        """
        s = self.state
        if model is None or iterate is None or not iterate.observation.ok or s.stuck < STUCK:
            return []
        measured = np.append(iterate.violations, iterate.observation.loss / s.f_scale)
        moves = [(choice, p) for choice, p in directed_moves(self.space, model, s.z, measured)
                 if np.all(p[:-1] <= 0.0)]
        mu = np.array(s.mu)
        for choice, _ in sorted(moves, key=lambda m: m[1][-1] + self.terms.penalty(1.0 + m[1][:-1], mu, s.rho)):
            values = {**fixed, **{k: v for k, v in iterate.config.items() if "." in k}}
            config = self.space.complete(choice, values)
            if _key(config) in self._seen:  # that point was measured: draw the moved module's parameters
                moved = [m for m in self.space.module_names if choice[m] != s.z[m]]
                config = self.space.complete(choice, {**values, **{
                    k: p.sample(self.rng) for k, p in self.space.numeric_params(choice) if k.split(".")[0] in moved}})
            if _key(config) not in self._seen and self.space.allowed(config):
                return [Candidate(config, "z", t, {})]
        return []

    def _group_of(self, key: str) -> str:
        """Module group of a config key (a module name or ``module.algorithm.param``)."""
        return self.space.module(key.split(".")[0]).group

    # -- evaluation and bookkeeping -----------------------------------------------------
    def _step(self, propose: Callable[[], Candidate | None]) -> list[Record]:
        """Evaluate what ``propose`` gives (until ``None``) while the budget lasts; return the step's results.

        Each candidate starts as soon as a slot is free.  The step ends once
        every candidate has started and a slot is free again (with one slot:
        when all are done); the results in by then are returned, later ones
        go to ``_late``.
        """
        mine: set[int] = set()
        done: list[Record] = []
        proposing = True
        capacity = self._executor.capacity
        while True:
            while proposing and len(self._running) < capacity:
                candidate = None if self._exhausted() else propose()
                skipped = 0
                while candidate is not None and (not self.space.allowed(candidate.config)  # banned meanwhile
                                                 or not self._fits(candidate)):
                    skipped += 1
                    candidate = propose() if skipped < MAX_SKIPS else None
                if candidate is None:
                    proposing = False
                else:
                    self._submit(candidate)
                    mine.add(id(candidate))
            if not proposing and len(self._running) < capacity:
                return done
            record = self._receive()
            (done if id(record.candidate) in mine else self._late).append(record)

    def _fits(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` is predicted to give a result in the time left (its first, lowest-fidelity one, of
        an evaluator that scores in steps: ``first_result_s``); one that is not is never proposed again."""
        predicted = self.first_cost.upper(candidate.config)
        if predicted is None or predicted <= self._seconds_left():
            return True
        self._seen.add(_key(candidate.config))
        return False

    def _seconds_left(self) -> float:
        """Seconds left to start candidates in (inf without a time budget)."""
        if self._time_left is not None:
            return float(self._time_left())
        if self.budget.seconds is not None:
            return self.budget.seconds - (time.monotonic() - self._start)
        return math.inf

    def _drain(self) -> list[Record]:
        """Wait for every running evaluation; return their records."""
        return [self._receive() for _ in range(len(self._running))]

    def _submit(self, candidate: Candidate) -> None:
        candidate.incumbent = self._incumbent()
        self._seen.add(_key(candidate.config))
        self._running[id(candidate)] = candidate
        self._started += 1
        self._executor.submit(candidate)

    def _record(self, candidate: Candidate, obs: Observation) -> Record:
        if not obs.ok:
            return Record(candidate, obs, np.full(len(self.terms), np.inf), math.inf)
        if obs.fidelity < 1.0 and any(c.metric not in obs.metrics for c in self.terms.constraints):
            return Record(candidate, obs, self._imputed_violations(candidate.config), math.inf, measured=False)
        return Record(candidate, obs, self.terms.violations(obs.metrics), self.terms.miss(obs.metrics))

    def _imputed_violations(self, config: Config) -> np.ndarray:
        """Violations for a record stopped before its constraints were measured: the median of its structure's
        measured ones, else of every measured record, else 0 (no constraint known broken)."""
        measured = [r for r in self.records if r.observation.ok and r.measured]
        zkey = _key(self.space.choice_of(config))
        same = [r.violations for r in measured if _key(self.space.choice_of(r.config)) == zkey]
        pool = same or [r.violations for r in measured]
        return np.median(pool, axis=0) if pool else np.zeros(len(self.terms))

    def _receive(self) -> Record:
        """Wait for the next finished evaluation and record it."""
        candidate, obs = self._executor.next()
        del self._running[id(candidate)]
        record = self._record(candidate, obs)
        self.records.append(record)
        self._observe_cost(record)
        self._ban(record)
        return record

    def _observe_cost(self, record: Record) -> None:
        """Teach the cost models the evaluation's seconds, scaled to a full evaluation when it stopped early, and
        the seconds to its first result (``first_result_s``: all of them for an evaluation in one step)."""
        obs = record.observation
        full = obs.duration_s / max(obs.fidelity, 1e-3)
        self.cost.observe(record.config, full)
        self.first_cost.observe(record.config, float(obs.attrs.get("first_result_s", full)))

    def _incumbent(self) -> tuple[float, ...]:
        """The step losses a new candidate may be stopped against: the best evaluation's (see ``Candidate``).

        Only with ``early_stop``, and only when the best evaluation reported
        step losses (an evaluation not done in full: those of the steps it
        did). With constraints, only a feasible best: a candidate clearly
        worse in loss than a feasible one can never be chosen, whatever its
        constrained metrics would measure, so they need not be measured
        (``Record.measured``); stopped against an infeasible best it could.
        """
        if not self.settings.early_stop:
            return ()
        best = self.best()
        if best is None or (len(self.terms) and not best.feasible):
            return ()
        return tuple(best.observation.step_losses)

    def _ban(self, record: Record) -> None:
        """Never propose again the structure of a failure that follows from it (the evaluator says so).

        The observation's ``structural`` attribute names the modules whose
        choices made the failure certain (``"scaler,transformer,estimator,
        precision"`` for int8 on a graph with no weights): every config with
        the same choices there becomes forbidden, whatever its parameters
        and its other modules' choices.
        """
        scope = record.observation.attrs.get("structural") if not record.observation.ok else None
        if not scope:
            return
        when = {m: frozenset([record.config[m]]) for m in str(scope).split(",") if m in record.config}
        clause = Forbidden(when, f"failed by structure: {record.observation.reason[:200]}")
        if when and clause not in self.space.forbidden:
            self.space = replace(self.space, forbidden=self.space.forbidden + (clause,))
            self.bandit.space = self.space

    def _credit(self, records: list[Record]) -> None:
        """Credit the bandit with ``records``.

        The algorithm of a module that offers several is judged by the best
        merit it reached, with optimism while untuned (``optim/credit.py``);
        a categorical value by each record's own merit (Bernoulli update): it
        is always evaluated with the structure's current θ, never at
        defaults alone.  Every value never evaluated gets the optimistic
        arm of an untuned value evaluated once (``credit.UNTRIED``); before
        the first credit all arms are equal, so the first draws are unchanged.
        """
        merits = [self._merit(r) for r in self.records]
        stats = self._value_stats(merits)
        modules = {m.name for m in self.space.modules if len(m.algorithms) > 1}
        for record in records:  # a failure earns nothing, even when every evaluation so far failed (equal merits)
            choice = self.space.choice_of(record.config)
            r = reward(self._merit(record), merits) if record.observation.ok else 0.0
            self.bandit.update({k: v for k, v in choice.items() if k not in modules}, r, self.rng)
            for name in modules:
                v = stats[(name, str(choice[name]))]  # an algorithm that never ran earns nothing, optimism neither
                judged = optimistic(reward(v.best, merits), v.tuned) if math.isfinite(v.best) else 0.0
                self.bandit.judge(name, choice[name], arm(judged, v.evaluations))
        for block, arms in self.bandit.arms.items():  # values never evaluated: optimism (credit.UNTRIED)
            for value in arms:
                if (block, value) not in stats:
                    self.bandit.judge(block, value, list(UNTRIED))

    def _value_stats(self, merits: list[float] | None = None) -> dict[tuple[str, str], ValueStats]:
        merits = merits if merits is not None else [self._merit(r) for r in self.records]
        merits = [m if r.observation.ok else math.inf for r, m in zip(self.records, merits)]  # best of what ran
        return value_stats([self.space.choice_of(r.config) for r in self.records], merits,
                           [r.candidate.iteration if r.candidate.step == "theta" else None for r in self.records])

    def _untuned(self, choice: Config) -> bool:
        """Whether some module's algorithm in ``choice`` has numeric parameters and never had a θ-step."""
        stats = self._value_stats()
        return any(stats.get((name, str(algo.name)), ValueStats()).tuned == 0
                   for name, _, algo in self.space.active(choice) if _tunable(algo))

    def _merit(self, record: Record) -> float:
        """Objective plus constraint terms; a failure counts as the worst loss and violations seen (see below)."""
        violations = record.violations if record.observation.ok else self._failed_violations()
        loss = record.observation.loss if record.observation.ok else self._worst_loss()
        return float(loss) / self.state.f_scale + self.terms.penalty(
            1.0 + violations, np.array(self.state.mu), self.state.rho)

    def _failed_violations(self) -> np.ndarray:
        """Violations a failed evaluation counts as: the worst measured per constraint, at least 1 (2× the bound).

        A failure must never look better than a candidate that ran and broke
        a constraint badly, or a structure that always fails would win z⁰.
        """
        done = [r.violations for r in self.records if r.observation.ok and r.measured]
        worst = np.max(done, axis=0) if done else np.zeros(len(self.terms))
        return np.maximum(worst, 1.0)

    def _worst_loss(self) -> float:
        losses = [r.observation.loss for r in self.records if r.observation.ok and r.observation.loss is not None]
        return float(max(losses) + self.state.f_scale) if losses else 1.0

    def _loss_scale(self) -> float:
        """Typical size of an improvement: median minus best observed loss.

        The objective enters the augmented Lagrangian divided by this, so ρ
        and μ mean the same whether losses are near 0.03 or near 100.
        """
        losses = np.array([r.observation.loss for r in self.records if r.observation.ok], dtype=float)
        if len(losses) < 2:
            return self.state.f_scale
        spread = float(np.median(losses) - losses.min()) or float(np.std(losses))
        return spread if spread > 1e-12 else self.state.f_scale

    def _g_hat(self, record: Record | None) -> np.ndarray:
        if record is None or not record.observation.ok:
            return np.full(len(self.terms), 2.0)
        return 1.0 + record.violations

    def _best_of_choice(self, zkey: str, keys: list[tuple[str, Float]] | None = None,
                        cell: dict[str, int] | None = None) -> Record | None:
        """Best record of a structure by merit plus consensus term; within the integer ``cell`` when one is given."""
        history = [r for r in self.records if _key(self.space.choice_of(r.config)) == zkey]
        inside = [r for r in history if all(r.config.get(k) == v for k, v in (cell or {}).items())]
        history = inside or history
        if not history:
            return None
        penalty = self._consensus(keys) if keys else None

        def value(r: Record) -> float:
            v = self._merit(r)
            if penalty is not None:
                v += float(penalty(_unit([r.candidate], keys))[0])
            return v

        return min(history, key=value)

    def _int_keys(self, z: Config) -> list[tuple[str, Int]]:
        return [(k, p) for k, p in self.space.numeric_params(z) if isinstance(p, Int)]

    def _residual(self, ints: list[tuple[str, Int]]) -> float:
        s = self.state
        return float(math.sqrt(sum(((s.theta[k] - s.delta[k]) / _span(p)) ** 2 for k, p in ints)))

    def _left(self) -> int:
        """Evaluations the budget still allows to start."""
        if self.budget.evaluations is None:
            return 1 << 30
        return max(0, self.budget.evaluations - len(self.records) - len(self._running))

    def _exhausted(self) -> bool:
        return self._left() == 0 or self._seconds_left() <= 0

    def _converged(self, entry: dict[str, Any]) -> bool:
        if self.budget.patience is None or len(self.trace) < 2:
            return False
        improved = entry["best_loss"] != self.trace[-2]["best_loss"] or (
            entry["best_feasible"] and not self.trace[-2]["best_feasible"])
        self._stalled = 0 if improved else self._stalled + 1
        return self._stalled >= self.budget.patience and entry["primal_residual"] < 1e-6


def best_record(records: Sequence[Record]) -> Record | None:
    """The completed record with the lowest :func:`~admm_tune.settings.best_key` (None when none completed)."""
    done = [r for r in records if r.observation.ok]
    return min(done, key=lambda r: best_key(r.observation.loss, _miss(r), r.observation.fidelity,
                                            r.observation.metrics.get(TIE_BREAK)), default=None)


def _miss(record: Record) -> float:
    """The record's worst violation for :func:`best_record`: 0 when feasible, else uncapped where known."""
    if record.feasible:
        return 0.0
    miss = record.miss if record.miss is not None else record.violation
    return miss if miss > 0 else math.inf  # a NaN violation (nothing measured) counts as the worst


def _tunable(algorithm: Any) -> bool:
    """Whether an algorithm has numeric parameters of its own (something for a θ-step to tune)."""
    return any(isinstance(p, Float) for p in algorithm.params)


def _relaxed(candidate: Candidate, key: str) -> float:
    """The value of ``key`` the θ-step chose (relaxed, for integers) or, without one, the config's."""
    return float(candidate.relaxed.get(key, candidate.config[key]))


def _unit(candidates: Sequence[Candidate], keys: Sequence[tuple[str, Float]]) -> np.ndarray:
    """The candidates' :func:`_relaxed` values of ``keys`` in unit coordinates, one row each."""
    return np.array([[p.to_unit(_relaxed(c, key)) for key, p in keys] for c in candidates]).reshape(-1, len(keys))


def _unit_step(p: Int, value: float) -> float:
    """Unit-cube distance of one integer step up from ``value`` (log scales make it uneven)."""
    n = p.cast(value)
    up = min(n + 1, int(p.high)) if n < p.high else max(n - 1, int(p.low))
    return abs(p.to_unit(up) - p.to_unit(n))


def _span(p: Float) -> float:
    return float(p.high - p.low) or 1.0


def _loss(record: Record | None) -> float:
    if record is None or record.observation.loss is None:
        return math.nan
    return float(record.observation.loss)


def _key(config: Config) -> str:
    return json.dumps(config, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
