"""Synthetic problems with known optima, shared by the tests."""

from __future__ import annotations

QUADRATIC_SPACE = {"modules": [{"name": "f", "algorithms": [{"name": "q", "params": {
    "x1": {"type": "float", "low": -5, "high": 5},
    "x2": {"type": "float", "low": -5, "high": 5},
    "n1": {"type": "int", "low": 0, "high": 10},
    "n2": {"type": "int", "low": 0, "high": 10},
    "c": {"type": "categorical", "choices": ["a", "b", "c"]}}}]}]}

OFFSET = {"a": 1.0, "b": 0.0, "c": 2.0}
QUADRATIC_OPTIMUM = 1.5
"""Constrained optimum of :func:`quadratic`: x1=0, x2=-2, n1=2, n2=7, c=b.

Unconstrained, the optimum is x1=1, n1=3 (loss 0); the constraint
x1 + n1 <= 2 cuts it off.  Over the integer n1: n1=3 needs x1 <= -1
(loss 4), n1=2 needs x1 <= 0 (loss 1 + 0.5), n1=1 allows x1=1 (loss 2).
"""


def quadratic(config: dict) -> tuple[float, dict[str, float]]:
    """2 continuous + 2 integer variables and a 3-way categorical, plus g = x1 + n1."""
    x1, x2, n1, n2, c = (config[f"f.q.{k}"] for k in ("x1", "x2", "n1", "n2", "c"))
    loss = (x1 - 1) ** 2 + (x2 + 2) ** 2 + 0.5 * (n1 - 3) ** 2 + 0.5 * (n2 - 7) ** 2 + OFFSET[c]
    return loss, {"g": x1 + n1}
