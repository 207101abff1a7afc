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

    Only for an unconstrained ML problem without a deployment whose
    settings keep ``warm_start``; an entry is kept only when it is a valid,
    allowed config of the problem's space (a restricted or custom space
    keeps those it holds; the optimiser fills the other initial draws from
    its bandit).  Constrained and deployment problems keep their own initial
    draws, which spread the deployment modules over them.

    Returns
    -------
    list of dict
        Configs of ``problem.space``; empty when the warm start does not apply.
    """
    if (not problem.optimizer.warm_start or problem.kind != "ml" or problem.data is None
            or problem.constraints or problem.deployment is not None):
        return []
    kept = []
    for text in _entries(problem.task):
        config = json.loads(text)
        try:
            problem.space.validate_config(config)
        except ProblemError:  # an algorithm or a value the space does not hold
            continue
        kept.append(problem.space.complete(config, config))  # in the space's module order, as every draw is
    return kept
