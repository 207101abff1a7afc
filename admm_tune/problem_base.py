"""The :class:`Problem` type and the fields every kind of problem shares: budget, constraints, optimizer settings,
isolation limits.

The kinds' loaders (:mod:`admm_tune.problem` for pipelines and callables, :mod:`admm_tune.deploy_problem` for
trained ONNX models) build a :class:`Problem` with these parsers; this module imports neither, so the two kinds
never import each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from . import _fields as F
from .deployment import DEPLOY_METRICS
from .errors import ProblemError
from .metrics import bound_sense
from .settings import Budget, Constraint, OptimizerSettings
from .space import Config

if TYPE_CHECKING:
    from .data import Dataset
    from .deployment import Deployment
    from .space import SearchSpace


@dataclass(frozen=True)
class Limits:
    """Per-candidate limits, enforced where evaluations run (``admm_tune.parallel``).

    Parameters
    ----------
    seconds : float, optional
        Wall-clock limit of one evaluation (None: none).
    memory_mb : int, optional
        Address-space limit of a worker process in MiB (None: none).  It
        covers the libraries a worker loads (about 0.8 GiB with ONNX Runtime
        and OpenVINO), so give a few GiB.
    """

    _parameter_constraints: ClassVar[dict[str, dict[str, Any]]] = {
        "seconds": {"type": float, "minimum": 0, "exclusive": True, "none": True},
        "memory_mb": {"type": int, "minimum": 256, "none": True}}
    """What each field accepts (None: no limit)."""

    seconds: float | None = 600.0
    memory_mb: int | None = None


@dataclass(frozen=True)
class Objective:
    """Cross-validated scoring of a pipeline: loss = 1 - score (or -score for ``neg_*``).

    ``probabilities``: every candidate classifier gives class probabilities;
    one without ``predict_proba`` is calibrated inside its pipeline (see
    :func:`~admm_tune.evaluate.pipeline.build_pipeline`), so the calibrated
    probabilities are what is scored, deployed and exported.
    """

    scoring: str | Callable[..., float]
    """A scikit-learn scorer name, a scorer object (``make_scorer(...)``) or a callable ``(estimator, X, y) ->
    float``, greater is better."""
    cv: int = 5
    """Folds: the number of splits of ``splitter`` when the problem gives one."""
    probabilities: bool = False
    splitter: Any = None
    """The problem's own CV splitter (a scikit-learn splitter such as ``GroupKFold`` or ``TimeSeriesSplit``, or a
    list of ``(train, test)`` index pairs), split with the data's groups; None: shuffled (stratified) k-fold."""

    @property
    def name(self) -> str:
        """The scorer's name for people: the name given, else the callable's name or its repr."""
        return self.scoring if isinstance(self.scoring, str) else getattr(self.scoring, "__name__", repr(self.scoring))

    def loss(self, score: float) -> float:
        """Turn a score (greater is better) into a loss: ``-score`` for ``neg_*`` names, else ``1 - score``."""
        return -score if isinstance(self.scoring, str) and self.scoring.startswith("neg_") else 1.0 - score

    def score(self, loss: float) -> float:
        """The score a loss stands for (the inverse of :meth:`loss`)."""
        return self.loss(loss) if isinstance(self.scoring, str) and self.scoring.startswith("neg_") else 1.0 - loss


ObjectiveFn = Callable[[Config], float | Mapping[str, float] | tuple]


@dataclass
class Problem:
    """Everything a run needs, validated.

    Either ``data`` (scored by ``objective``, an :class:`Objective`) or a
    plain Python callable ``objective`` over the space (for synthetic
    problems: it takes a config and returns a loss, a ``(loss, metrics)``
    pair or a mapping with ``loss`` and metrics).  ``source`` keeps the
    fields the problem was loaded from.  With a ``deployment``, ``space``
    is the joint space (exportable ML algorithms, then ``backend`` and
    ``precision``) and ``notes`` says what was left out on this machine.
    """

    space: SearchSpace
    objective: Objective | ObjectiveFn
    data: Dataset | None = None
    constraints: tuple[Constraint, ...] = ()
    budget: Budget = field(default_factory=lambda: Budget(evaluations=50))
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    seed: int | None = None
    name: str = "problem"
    source: dict[str, Any] | None = None
    deployment: Deployment | None = None
    notes: tuple[str, ...] = ()
    isolation: Limits = field(default_factory=Limits)
    kind: str = "ml"
    """``ml`` (a pipeline to fit, or a callable), or ``deploy``: a trained ONNX model (:mod:`admm_tune.deploy_problem`),
    whose ``objective`` is an :class:`~admm_tune.evaluate.onnx_model.OnnxModelEvaluator`."""

    @property
    def task(self) -> str | None:
        """``classification``/``regression`` for data problems, else None."""
        return self.data.task if self.data is not None else None

    def with_budget(self, budget: Budget) -> Problem:
        """A copy with another budget."""
        return replace(self, budget=budget)


def parse_isolation(raw: Any, path: str = "isolation") -> Limits:
    """The ``isolation`` field: per-candidate ``seconds`` and ``memory_mb`` (:class:`Limits`; absent: its defaults).

    Raises
    ------
    ProblemError
        Naming the malformed key.
    """
    return F.settings(raw or {}, Limits(), path)


def constraint_list(spec: Any) -> list[Any]:
    """The list form of ``constraints``: ``{metric: bound}`` means ``max`` bounds, ``min`` ones for the metrics
    where higher is better (``throughput_rps``, ``accuracy``, ``label_agreement``;
    :func:`~admm_tune.metrics.bound_sense`).

    Examples
    --------
    >>> constraint_list({"latency_p95_ms": 1.0})
    [{'metric': 'latency_p95_ms', 'max': 1.0}]
    """
    if isinstance(spec, Mapping):
        return [{"metric": k, bound_sense(k): v} for k, v in spec.items()]
    return F.sequence(spec or [], "constraints")


def parse_constraint(raw: Any, path: str, measurable: Mapping[str, str] | None) -> Constraint:
    """One ``{metric, max|min}``; ``measurable`` lists the metrics of a data problem (None: any)."""
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("metric", "max", "min"), path)
    metric = F.string(raw.get("metric"), F.join(path, "metric"))
    if measurable is not None and metric not in measurable:
        hint = ""
        if metric in DEPLOY_METRICS:  # a deployment metric: none measured without a deployment, else another task's
            hint = " (not measured for this task)" if DEPLOY_METRICS.keys() & measurable.keys() else \
                " (add a `deployment` to measure it)"
        raise ProblemError(F.join(path, "metric"),
                           f"unknown metric {metric!r}{hint}; measurable here: {sorted(measurable)}")
    if ("max" in raw) == ("min" in raw):
        raise ProblemError(path, "give exactly one of max or min")
    sense = "max" if "max" in raw else "min"
    bound = F.number(raw[sense], F.join(path, sense))
    return Constraint(metric, bound, sense)


def check_contradictions(constraints: tuple[Constraint, ...]) -> None:
    for i, a in enumerate(constraints):
        for j, b in enumerate(constraints[:i]):
            if a.metric == b.metric and a.sense != b.sense:
                lo, hi = (a, b) if a.sense == "min" else (b, a)
                if lo.bound > hi.bound:
                    raise ProblemError(f"constraints[{i}]",
                                       f"contradicts constraints[{j}]: {lo} and {hi} cannot both hold")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$")


def _seconds(value: Any, path: str) -> float:
    """A positive number of seconds, or a duration string: ``"90s"``, ``"5m"``, ``"1h"``."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match:
        value = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    return F.number(value, path, minimum=0, exclusive=True)


def parse_budget(raw: Any, path: str = "budget") -> Budget:
    """Read a budget: a mapping, an evaluation count, or ``"90s"``/``"5m"``/``"1h"``.

    Examples
    --------
    >>> parse_budget("200"), parse_budget("60s").seconds
    (Budget(evaluations=200, seconds=None, patience=None), 60.0)
    """
    if isinstance(raw, Budget):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.isdigit():
            raw = {"evaluations": int(text)}
        elif _DURATION.match(text):
            raw = {"seconds": text}
        else:
            raise ProblemError(path, f"expected an evaluation count or a duration like '60s', got {raw!r}")
    elif isinstance(raw, int) and not isinstance(raw, bool):
        raw = {"evaluations": raw}
    raw = F.mapping(raw, path)
    F.only_keys(raw, ("evaluations", "seconds", "patience"), path)
    evals = None if raw.get("evaluations") is None else F.integer(raw["evaluations"], F.join(path, "evaluations"),
                                                                  minimum=1)
    seconds = None if raw.get("seconds") is None else _seconds(raw["seconds"], F.join(path, "seconds"))
    patience = None if raw.get("patience") is None else F.integer(raw["patience"], F.join(path, "patience"),
                                                                  minimum=1)
    if evals is None and seconds is None:
        raise ProblemError(path, "needs evaluations or seconds")
    return Budget(evals, seconds, patience)


def parse_optimizer(raw: Any, path: str) -> OptimizerSettings:
    settings = F.settings(raw, OptimizerSettings(), path)
    if settings.inner_max < settings.inner_budget:
        raise ProblemError(F.join(path, "inner_max"), "must be >= inner_budget")
    if settings.rho_max < settings.rho:
        raise ProblemError(F.join(path, "rho_max"), "must be >= rho")
    return settings
