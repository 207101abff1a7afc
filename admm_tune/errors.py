"""Error types raised by admm_tune."""

from __future__ import annotations


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
