"""Waiting for an observable state of a run in another process, instead of sleeping and hoping."""

from __future__ import annotations

import subprocess
import time

import optuna


def finished(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    """The finished trials of ``study`` in the journal at ``storage``."""
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return [t for t in trials if t.state.is_finished()]


def wait_for_trials(proc: subprocess.Popen, storage: str, study: str, n: int, timeout: float = 900) -> None:
    """Return once the journal holds ``n`` finished trials, however slow the machine; fail if ``proc`` ends or
    ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if len(finished(storage, study)) >= n:
                return
        except Exception:  # the journal or the study is not created yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"no {n} finished evaluations in the journal: the run "
                         + ("ended" if proc.poll() is not None else f"took over {timeout:.0f} s"))
