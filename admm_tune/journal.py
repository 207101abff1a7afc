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
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .errors import ProblemError, RunError
from .observation import COMPLETE, FAILED, Observation
from .space import Categorical, Config, Int, SearchSpace, param_key

optuna.logging.set_verbosity(optuna.logging.WARNING)

ITERATION_PREFIX = "admm:"
SCHEMA_ATTEMPTS = 5
MEMORY = "memory"
"""The ``storage`` value of a journal kept in memory only."""
INTERRUPTED = "interrupted"
"""Failure reason of an evaluation whose process died while it ran."""


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

    def __init__(self, storage: str, study_name: str, space: SearchSpace) -> None:
        from sqlalchemy.exc import ArgumentError, DBAPIError  # here, not at import: it costs ``import admm_tune``

        self.storage = storage
        self.space = space
        backend = optuna.storages.InMemoryStorage() if storage == MEMORY else storage
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                self.study = optuna.create_study(storage=backend, study_name=study_name, direction="minimize",
                                                 sampler=optuna.samplers.RandomSampler(seed=0))
                break
            except optuna.exceptions.DuplicatedStudyError:
                raise RunError(f"the storage {storage!r} already holds a run named {study_name!r}; "
                               "choose another run directory (--out) or storage, or delete that one") from None
            except ArgumentError as exc:  # not a URL SQLAlchemy can read
                raise ProblemError("storage", f"{storage!r} is not a database URL: {exc}") from None
            except DBAPIError as exc:
                # Two processes creating the schema of a new database at once (PostgreSQL): one of them
                # loses the race on CREATE TYPE/TABLE; the schema exists after a moment.
                if attempt == SCHEMA_ATTEMPTS - 1 or "unable to open database file" in str(exc) or \
                        "could not connect" in str(exc) or "Connection refused" in str(exc):
                    raise ProblemError("storage", f"cannot open the journal {storage!r}: "
                                                  f"{str(exc.orig or exc).splitlines()[0]}") from None
                time.sleep(0.5 * (attempt + 1))

    @classmethod
    def open(cls, storage: str, study_name: str | None = None) -> Journal:
        """The journal of the run ``study_name`` in ``storage`` (without a name, ``storage`` must hold exactly
        one run: a run directory's ``journal.db``), for reading."""
        try:
            names = optuna.get_all_study_names(storage)
        except Exception as exc:  # SQLAlchemy raises many types for an unreadable database
            raise RunError(f"cannot read the journal {storage!r}: {exc}") from None
        if study_name is not None and study_name not in names:
            raise RunError(f"the journal {storage!r} holds no run named {study_name!r}")
        if study_name is None and len(names) != 1:
            raise RunError(f"the journal {storage!r} holds {len(names)} runs ({names}); expected one")
        journal = cls.__new__(cls)
        journal.storage, journal.space = storage, None
        journal.study = optuna.load_study(study_name=study_name or names[0], storage=storage)
        return journal

    @classmethod
    def reopen(cls, storage: str, study_name: str, space: SearchSpace) -> Journal:
        """An interrupted run's journal, to continue writing it.

        Trials left ``RUNNING`` (or enqueued and never started) by the
        process that died are closed as failed with the reason
        ``interrupted`` (see :meth:`interrupted`).
        """
        journal = cls.open(storage, study_name)
        if journal.study.study_name != study_name:
            raise RunError(f"the journal {storage!r} holds the run {journal.study.study_name!r}, "
                           f"not {study_name!r}")
        journal.space = space
        study = journal.study
        running = [optuna.trial.Trial(study, t._trial_id)
                   for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
        # A trial enqueued just before the kill was never started: asking pops it (oldest first).
        running += [study.ask() for _ in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
        for trial in running:
            trial.set_user_attr("status", FAILED)
            trial.set_user_attr("reason", INTERRUPTED)
            study.tell(trial, state=TrialState.FAIL)
        return journal

    def history(self) -> list[tuple[dict[str, Any], Observation]]:
        """``(attributes, observation)`` of every finished evaluation, in order (interrupted ones left out).

        The attributes are those :meth:`start` stored (``config``, ``step``,
        ``iteration``, ``relaxed`` as JSON...).
        """
        out = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            attrs = t.user_attrs
            if attrs.get("reason") == INTERRUPTED or "config" not in attrs:
                continue
            metrics = {k[len("metric:"):]: float(v) for k, v in attrs.items() if k.startswith("metric:")}
            status = COMPLETE if t.state == TrialState.COMPLETE else FAILED
            kept = {k: attrs[k] for k in ("structural", "fidelity", "step_losses", "first_result_s")  # what the optimiser reads again
                    if k in attrs}
            out.append((attrs, Observation(status, t.value, metrics, attrs.get("reason", ""),
                                           float(attrs.get("duration_s", 0.0)), kept)))
        return out

    def interrupted(self) -> list[dict[str, Any]]:
        """Attributes of evaluations cut off by a dead process that were not retried yet (each is retried once)."""
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        return [dict(t.user_attrs, retry_of=t.number) for t in trials
                if t.user_attrs.get("reason") == INTERRUPTED and "config" in t.user_attrs
                and "retry_of" not in t.user_attrs and t.number not in retried]

    def iterations(self) -> list[dict[str, Any]]:
        """The trace entries recorded so far, in order."""
        attrs = self.study.user_attrs
        return [attrs[k] for k in sorted(attrs) if k.startswith(ITERATION_PREFIX)]

    @property
    def attrs(self) -> dict[str, Any]:
        """Every fact stored with :meth:`set_attr` (and the iterations' entries)."""
        return self.study.user_attrs

    # -- writing -----------------------------------------------------------------------
    def set_attr(self, key: str, value: Any) -> None:
        """Store a JSON-able fact about the run (the problem, the seed...)."""
        self.study.set_user_attr(key, value)

    def start(self, config: Config, attrs: Mapping[str, Any]) -> optuna.Trial:
        """Create the trial of an evaluation that is starting: its config and attributes in one write.

        One transaction (the storage's ``create_new_trial`` from a template
        trial), so a process killed at any moment leaves either no trial or a
        ``RUNNING`` one with its whole config, which a resume retries.
        """
        dists = self.distributions(config)
        template = optuna.trial.FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(), datetime_complete=None,
            params={k: _param_value(config[k]) for k in dists}, distributions=dists, user_attrs=dict(attrs),
            system_attrs={}, intermediate_values={}, trial_id=-1)
        # Optuna has no public call that creates a running trial with its params in one write: the study's
        # storage does it (enqueue_trial + ask + suggest_* + set_user_attr are a write each).
        trial_id = self.study._storage.create_new_trial(self.study._study_id, template_trial=template)
        return optuna.Trial(self.study, trial_id)

    def finish(self, trial: optuna.Trial, obs: Observation, violation: float) -> None:
        """Record the outcome of an evaluation: its attributes in one write, then its state and loss.

        One transaction for the ~30 attributes, not one each: in an SQLite
        file each commit waits for the disk (20 ms each on a loaded machine,
        most of a fast evaluation's time in the journal).
        """
        attrs = {"status": obs.status, "reason": obs.reason, "duration_s": obs.duration_s,
                 "violation": violation if math.isfinite(violation) else None,
                 "feasible": bool(obs.ok and violation <= 0.0),
                 **{f"metric:{key}": value for key, value in obs.metrics.items()}, **obs.attrs}
        storage = getattr(self.study._storage, "_backend", self.study._storage)  # behind Optuna's cache
        if isinstance(storage, optuna.storages.RDBStorage):
            # Optuna writes each user attribute in its own transaction and has no public call for several:
            # its storage's per-attribute write, inside one session.
            from optuna.storages._rdb.models import TrialUserAttributeModel
            from optuna.storages._rdb.storage import _create_scoped_session

            with _create_scoped_session(storage.scoped_session) as session:
                for key, value in attrs.items():
                    storage._set_trial_attr_without_commit(session, TrialUserAttributeModel, trial._trial_id,
                                                           key, value)
        else:
            for key, value in attrs.items():
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
        return pd.DataFrame(self.iterations())


def _param_value(value: Any) -> Any:
    """A config value as Optuna stores a parameter (numpy scalars as Python ones)."""
    return value.item() if hasattr(value, "item") else value
