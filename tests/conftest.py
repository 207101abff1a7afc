"""Shared fixtures: small synthetic problems and a fast ML space."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from synthetic import QUADRATIC_SPACE, quadratic

from admm_tune import Problem, SearchSpace
from admm_tune.problem import Budget, Constraint


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most tests marked slow first: ``make test`` gives whole files to its pytest-xdist processes
    in this order, so the long files start early and the processes finish together (within a file, order kept)."""
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.path])  # a stable sort: each file's own order stays


@pytest.fixture
def quadratic_problem() -> Problem:
    """The constrained quadratic as a Problem with a callable objective."""
    return Problem(SearchSpace.from_dict(QUADRATIC_SPACE), quadratic, constraints=(Constraint("g", 2.0, "max"),),
                   budget=Budget(evaluations=80))


FAST_CLASSIFIERS = ["logistic_regression", "knn", "decision_tree", "gaussian_nb"]


@pytest.fixture
def fast_problem_dict() -> dict:
    """breast_cancer restricted to algorithms that fit in milliseconds."""
    return {"name": "fast", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
            "restrict": {"estimator": FAST_CLASSIFIERS, "transformer": ["none", "pca", "select_k_best"]},
            "budget": {"evaluations": 10}, "seed": 0}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
