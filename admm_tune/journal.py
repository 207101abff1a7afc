"""Durable record of a run in an Optuna storage.

Every evaluation is an Optuna trial: the full config as params (with their
distributions), the loss as value, every metric, the feasibility, the ADMM
step and iteration, the failure reason and the duration as user attributes.
A trial is created (``RUNNING``) when the evaluation starts and finished
(``COMPLETE`` or ``FAIL``) when it ends, so the journal is current after each
evaluation.  Each ADMM iteration's state is a study user attribute
``admm:NNNNN``.  The storage is an SQLite file in the run directory by
default, or any SQLAlchemy URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .errors import RunError
from .observation import Observation
from .space import Categorical, Config, Int, SearchSpace, param_key

optuna.logging.set_verbosity(optuna.logging.WARNING)

ITERATION_PREFIX = "admm:"
MEMORY = "memory"
"""The ``storage`` value of a journal kept in memory only."""


class Journal:
    """One run's trials and ADMM trace in an Optuna study.

    Parameters
    ----------
    storage : str
        SQLAlchemy URL (``sqlite:///run/journal.db``, ``postgresql://...``),
        or :data:`MEMORY` for a journal that lives only in this process.
    study_name : str
    space : SearchSpace
        Gives each parameter its Optuna distribution.
    """

    def __init__(self, storage: str, study_name: str, space: SearchSpace | None) -> None:
        self.storage = storage
        self.space = space
        backend = optuna.storages.InMemoryStorage() if storage == MEMORY else storage
        try:
            self.study = optuna.create_study(storage=backend, study_name=study_name, direction="minimize",
                                             sampler=optuna.samplers.RandomSampler(seed=0))
        except optuna.exceptions.DuplicatedStudyError:
            raise RunError(f"the storage {storage!r} already holds a run named {study_name!r}; "
                           "choose another run directory (--out) or storage, or delete that one") from None

    @classmethod
    def open(cls, storage: str) -> Journal:
        """The journal of an earlier run in ``storage`` (which must hold exactly one), for reading."""
        try:
            names = optuna.get_all_study_names(storage)
        except Exception as exc:  # SQLAlchemy raises many types for an unreadable database
            raise RunError(f"cannot read the journal {storage!r}: {exc}") from None
        if len(names) != 1:
            raise RunError(f"the journal {storage!r} holds {len(names)} runs ({names}); expected one")
        journal = cls.__new__(cls)
        journal.storage, journal.space = storage, None
        journal.study = optuna.load_study(study_name=names[0], storage=storage)
        return journal

    def attr(self, key: str, default: Any = None) -> Any:
        """A fact stored with :meth:`set_attr`."""
        return self.study.user_attrs.get(key, default)

    # -- writing -----------------------------------------------------------------------
    def set_attr(self, key: str, value: Any) -> None:
        """Store a JSON-able fact about the run (the problem, the seed...)."""
        self.study.set_user_attr(key, value)

    def start(self, config: Config, attrs: Mapping[str, Any]) -> optuna.Trial:
        """Create the trial of an evaluation that is starting."""
        self.study.enqueue_trial(dict(config), skip_if_exists=False)
        trial = self.study.ask()
        for key, dist in self.distributions(config).items():
            if isinstance(dist, CategoricalDistribution):
                trial.suggest_categorical(key, dist.choices)
            elif isinstance(dist, IntDistribution):
                trial.suggest_int(key, dist.low, dist.high, log=dist.log)
            else:
                trial.suggest_float(key, dist.low, dist.high, log=dist.log)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return trial

    def finish(self, trial: optuna.Trial, obs: Observation, violation: float) -> None:
        """Record the outcome of an evaluation."""
        trial.set_user_attr("status", obs.status)
        trial.set_user_attr("reason", obs.reason)
        trial.set_user_attr("duration_s", obs.duration_s)
        trial.set_user_attr("violation", violation if math.isfinite(violation) else None)
        trial.set_user_attr("feasible", bool(obs.ok and violation <= 0.0))
        for key, value in obs.metrics.items():
            trial.set_user_attr(f"metric:{key}", value)
        for key, value in obs.attrs.items():
            trial.set_user_attr(key, value)
        if obs.ok:
            self.study.tell(trial, obs.loss)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def record_iteration(self, entry: Mapping[str, Any]) -> None:
        """Store one ADMM iteration's trace entry."""
        self.study.set_user_attr(f"{ITERATION_PREFIX}{int(entry['iteration']):05d}", dict(entry))

    # -- reading -----------------------------------------------------------------------
    def distributions(self, config: Config) -> dict[str, BaseDistribution]:
        """Optuna distribution of every key of ``config``."""
        dists: dict[str, BaseDistribution] = {}
        for module_name, module, algo in self.space.active(config):
            dists[module_name] = CategoricalDistribution(module.names)
            for p in algo.params:
                key = param_key(module_name, algo.name, p.name)
                if isinstance(p, Categorical):
                    dists[key] = CategoricalDistribution(p.choices)
                elif isinstance(p, Int):
                    dists[key] = IntDistribution(int(p.low), int(p.high), log=p.log)
                else:
                    dists[key] = FloatDistribution(p.low, p.high, log=p.log)
        return dists

    def trials(self) -> pd.DataFrame:
        """One row per evaluation: number, state, loss, feasibility, metrics, attributes, params."""
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            row: dict[str, Any] = {"number": t.number, "state": t.state.name.lower(), "loss": t.value}
            for key, value in t.user_attrs.items():
                row[key] = value
            row["datetime_start"] = t.datetime_start
            row["datetime_complete"] = t.datetime_complete
            for key, value in t.params.items():
                row[f"param:{key}"] = value
            rows.append(row)
        return pd.DataFrame(rows)

    def trace(self) -> pd.DataFrame:
        """One row per ADMM iteration."""
        attrs = self.study.user_attrs
        rows = [attrs[k] for k in sorted(attrs) if k.startswith(ITERATION_PREFIX)]
        return pd.DataFrame(rows)
