"""The warm-start portfolio: pipelines good across many data sets, as a run's first evaluations.

``search_spaces/portfolio.json`` holds, per task, configurations of the
bundled space chosen offline by ``benchmarks/portfolio.py`` (greedy
portfolio construction over generated data sets that no test or benchmark
scores; the file says how it was built).  The problem layer hands them to
the optimiser as plain configs; the optimiser knows nothing of where they
came from.
"""

from __future__ import annotations

import json
from functools import cache

from .errors import ProblemError
from .problem import Problem
from .space import SPACES_DIR, Config

PORTFOLIO = SPACES_DIR / "portfolio.json"


@cache
def _entries(task: str) -> tuple[str, ...]:
    """The portfolio's configs for ``task`` as JSON text (hashable, and each caller gets a fresh copy)."""
    raw = json.loads(PORTFOLIO.read_text())
    return tuple(json.dumps(entry["config"]) for entry in raw.get(task, {}).get("entries", []))


def warm_start(problem: Problem) -> list[Config]:
    """The portfolio entries a run of ``problem`` starts from, in the order they were chosen.

    For every ML problem whose settings keep ``warm_start``, constrained or
    not; with a deployment, each entry is deployed at the best-known default
    (:func:`default_deployment`).  An entry is kept only when it is a valid,
    allowed config of the problem's space (a restricted or custom space, or
    the joint space of exportable algorithms, keeps those it holds; the
    optimiser fills the other initial draws from its bandit).

    Returns
    -------
    list of dict
        Configs of ``problem.space``; empty when the warm start does not apply.
    """
    if not problem.optimizer.warm_start or problem.kind != "ml" or problem.data is None:
        return []
    deployment = default_deployment(problem) if problem.deployment is not None else {}
    kept = []
    for text in _entries(problem.task):
        config = {**json.loads(text), **deployment}
        try:
            config = problem.space.complete(config, config)  # in the space's module order, as every draw is
            problem.space.validate_config(config)
        except (ProblemError, KeyError):  # an algorithm or a value the space does not hold, or a forbidden pair
            continue
        kept.append(config)
    return kept


DEFAULT_DEPLOYMENTS = (("onnxruntime", "fp32"), ("openvino", "fp32"))
"""The deployment a warm-start entry gets, the first the space allows: ONNX Runtime at fp32 with its default knobs
answered single rows fastest on the bundled portfolio's pipelines (``docs/deployment.md``)."""


def default_deployment(problem: Problem) -> dict[str, str]:
    """``{"backend": ..., "precision": ...}`` of the first of :data:`DEFAULT_DEPLOYMENTS` the space holds, else
    its first backend and precision (knobs take the space's defaults)."""
    backends, precisions = problem.space.module("backend").names, problem.space.module("precision").names
    for backend, precision in DEFAULT_DEPLOYMENTS:
        if backend in backends and precision in precisions:
            return {"backend": backend, "precision": precision}
    return {"backend": backends[0], "precision": precisions[0]}
