"""A progress line for long runs: evaluations, iteration, best score, time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Shows ``[#####.....] 12/40 evals | iter 3 | best 0.0312 (feasible) | 0:12, ~0:28 left``.

    On a terminal the line is redrawn in place; elsewhere (CI logs, pipes)
    a line is printed at each tenth of the budget.

    Parameters
    ----------
    evaluations, seconds : optional
        The budget, for the bar and the time-left estimate.
    enabled : bool
    stream : file, default stderr
    """

    def __init__(self, evaluations: int | None, seconds: float | None, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.total = evaluations
        self.seconds = seconds
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._iteration = 0
        self._line = ""

    def iteration(self, number: int) -> None:
        """Note the current ADMM iteration."""
        self._iteration = number

    def update(self, done: int, best_loss: float | None, feasible: bool) -> None:
        """Redraw after ``done`` evaluations."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.start
        fraction = self._fraction(done, elapsed)
        width = 20
        bar = "#" * int(round(fraction * width))
        count = f"{done}/{self.total}" if self.total else str(done)
        state = "feasible" if feasible else "infeasible"
        best = "best -" if best_loss is None else f"best loss {best_loss:.4g} ({state})"
        left = f", ~{_clock(elapsed / fraction - elapsed)} left" if 0 < fraction < 1 else ""
        self._line = (f"[{bar:<{width}}] {count} evals | iter {self._iteration} | {best} | "
                      f"{_clock(elapsed)}{left}")
        decile = int(fraction * 10)
        if self.tty:
            self.stream.write("\r" + self._line + " " * 4)
            self.stream.flush()
        elif decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(self._line + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the line."""
        if self.enabled and self.tty and self._line:
            self.stream.write("\n")
            self.stream.flush()

    def _fraction(self, done: int, elapsed: float) -> float:
        parts = []
        if self.total:
            parts.append(done / self.total)
        if self.seconds:
            parts.append(elapsed / self.seconds)
        return min(1.0, max(parts)) if parts else 0.0


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
