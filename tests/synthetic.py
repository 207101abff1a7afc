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


BACKEND_OVERHEAD_MS = {"fast_runtime": 0.008, "slow_runtime": 0.06}
"""Fixed per-call cost of each backend of :data:`JOINT_SPACE` (ms): no knob of ``slow_runtime`` removes it."""
LATENCY_BOUND_MS = 0.05
"""The latency bound of :func:`joint`: every ``slow_runtime`` candidate breaks it, ``fast_runtime`` ones with a
model cheap enough hold it."""


def joint_space():
    """An ML block (``estimator``) and a deployment block (``backend``, ``precision``), like a deployment problem.

    The estimator with the best loss, ``forest``, is the slowest; ``nb`` is the fastest and the worst.
    """
    from dataclasses import replace

    from admm_tune import SearchSpace

    space = SearchSpace.from_dict({"modules": [
        {"name": "estimator", "algorithms": [
            {"name": "nb"},
            {"name": "linear", "params": {"c": {"type": "float", "low": 1e-3, "high": 1e3, "log": True}}},
            {"name": "forest", "params": {"trees": {"type": "int", "low": 5, "high": 200, "log": True},
                                          "depth": {"type": "int", "low": 1, "high": 16}}}]},
        {"name": "backend", "algorithms": [
            {"name": "slow_runtime", "params": {"streams": {"type": "int", "low": 1, "high": 4},
                                                "hint": {"type": "categorical", "choices": ["latency", "throughput"]}}},
            {"name": "fast_runtime", "params": {"threads": {"type": "int", "low": 1, "high": 4}}}]},
        {"name": "precision", "algorithms": [{"name": "fp32"}, {"name": "int8"}]}]})
    deploy = ("backend", "precision")
    return replace(space, modules=tuple(replace(m, group="deployment") if m.name in deploy else m
                                        for m in space.modules))


def joint(config: dict) -> tuple[float, dict[str, float]]:
    """Loss and ``latency_ms`` of a :func:`joint_space` config (a deterministic stand-in for a deployed pipeline).

    Latency is the backend's fixed per-call cost plus the model's own cost, which threads/streams shrink a
    little and int8 shrinks for the linear model; int8 costs the linear model some loss.
    """
    import math

    estimator, backend = config["estimator"], config["backend"]
    if estimator == "nb":
        loss, cost = 0.12, 0.004
    elif estimator == "linear":
        loss, cost = 0.06 + 0.01 * (math.log10(config["estimator.linear.c"]) - 1.0) ** 2, 0.01
    else:
        trees, depth = config["estimator.forest.trees"], config["estimator.forest.depth"]
        loss = 0.03 + 0.2 / trees + 0.04 * abs(depth - 8) / 8
        cost = 0.0004 * trees * depth / 8
    if config["precision"] == "int8" and estimator == "linear":
        loss, cost = loss + 0.005, cost * 0.5
    knob = config.get("backend.fast_runtime.threads", config.get("backend.slow_runtime.streams", 1))
    latency = BACKEND_OVERHEAD_MS[backend] + cost / (1.0 + 0.1 * (knob - 1))
    return loss, {"latency_ms": latency}
