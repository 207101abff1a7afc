"""The progress bar of a run (tqdm): evaluations, ADMM iteration, best loss and whether it is feasible, time left.

tqdm knows the terminal's width (the bar shrinks, the line never wraps),
Jupyter (a widget, through ``tqdm.auto``) and pipes.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Shows ``12/40 evals |#####     | iter 3 | best loss 0.0312 | ~0:28 left [00:12]``.

    The best loss is the best feasible one, else the least-violating
    candidate's, marked ``infeasible``.  The line fits 80 columns with room
    for the bar; tqdm trims it on narrower terminals rather than wrapping.

    Parameters
    ----------
    evaluations, seconds : optional
        The budget, for the bar and the time-left estimate (the sooner of the two).
    enabled : bool
    stream : file, default stderr
    iteration, done : int
        ADMM iterations and evaluations already finished (a resumed run's).
    unit : str
        The loss's unit (`` ms`` for a deploy run minimising a latency), shown after it.
    """

    def __init__(self, evaluations: int | None, seconds: float | None, enabled: bool = True,
                 stream: TextIO | None = None, iteration: int = 0, done: int = 0, unit: str = "") -> None:
        self.total = evaluations
        self.seconds = seconds
        self.enabled = enabled
        self.unit = unit
        self.start = time.monotonic()
        self._iteration = iteration
        self._best = "best -"
        self._left: tuple[float, float] | None = None  # (seconds left, when the run said so)
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            stream = stream or sys.stderr
            tty = bool(getattr(stream, "isatty", lambda: False)())
            shape = "{n_fmt}/{total_fmt} evals |{bar}| " if evaluations else "{n_fmt} evals | "
            self._bar = tqdm(total=evaluations, initial=done, desc=self._text(done), file=stream, dynamic_ncols=True,
                             leave=True, bar_format=shape + "{desc} [{elapsed}]", mininterval=0.2 if tty else 10.0)

    def iteration(self, number: int) -> None:
        """Note the current ADMM iteration."""
        self._iteration = number
        self._show()

    def update(self, done: int, best_loss: float | None, feasible: bool, seconds_left: float | None = None) -> None:
        """Redraw after ``done`` evaluations (counting a resumed run's earlier ones); ``seconds_left``: the run's
        own estimate of the time left (the pace of its latest candidates, from its cost model), else the share of
        the budget done says it."""
        if self._bar is None:
            return
        if best_loss is not None:
            self._best = f"best loss {best_loss:.4g}{self.unit}" + ("" if feasible else " infeasible")
        self._left = None if seconds_left is None else (seconds_left, time.monotonic())
        self._bar.n = done
        self._show()

    def chosen(self, text: str) -> None:
        """Say what the run chose after its search (``search best 0.0283 | chosen trial 44, re-scored 0.035``):
        the final line then tells the summary's story, not only the search's."""
        self._best = text
        self._show()

    def close(self) -> None:
        """End the bar."""
        if self._bar is not None:
            self._describe()
            self._bar.close()  # draws the final state once

    def _show(self) -> None:
        if self._bar is not None:
            self._describe()
            self._bar.update(0)  # redraws at most every mininterval

    def _describe(self) -> None:
        self._bar.set_description_str(self._text(self._bar.n), refresh=False)

    def _text(self, done: int) -> str:
        now = time.monotonic()
        elapsed = now - self.start
        fraction = self._fraction(done, elapsed)
        if not 0 < fraction < 1:
            left = ""
        elif self._left is not None:  # the run's estimate, counted down since it was given
            left = f" | ~{_clock(self._left[0] - (now - self._left[1]))} left"
        else:
            left = f" | ~{_clock(elapsed / fraction - elapsed)} left"
        return f"iter {self._iteration} | {self._best}{left}"

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
