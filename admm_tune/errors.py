"""Error types raised by admm_tune."""

from __future__ import annotations

from typing import Any


class ProblemError(ValueError):
    """A problem, search space or data set is malformed.

    The message starts with the path of the offending field
    (``constraints[1].max``) followed by the reason, so a user can fix the
    file without reading the code.

    Parameters
    ----------
    field : str
        Path of the offending field, e.g. ``"constraints[1].max"``; empty for
        problems that concern the whole document.
    reason : str
        What is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class RunError(RuntimeError):
    """A run could not produce a result (e.g. every candidate failed)."""


class InfeasibleWarning(UserWarning):
    """A search returned a result that misses its constraints, or whose deployed graph failed verification.

    The message names each missed constraint with the measured value and by
    how much it is missed (see :meth:`admm_tune.Result.shortfalls`).
    """


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT): a ``KeyboardInterrupt`` that says where the run is and how far it got.

    Parameters
    ----------
    run_dir : Path or None
        The run directory (None when the journal is elsewhere).
    evaluations : int
        Evaluations finished and journaled.
    """

    def __init__(self, run_dir: Any, evaluations: int) -> None:
        self.run_dir = run_dir
        self.evaluations = evaluations
        super().__init__(f"interrupted after {evaluations} evaluations"
                         + (f"; continue with: admm-tune resume {run_dir}" if run_dir is not None else ""))
