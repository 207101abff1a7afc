"""Bad input: a corpus of malformed problem files, and random mutations of a valid one.

Every file of ``tests/corpus/malformed`` starts with ``# expect: FIELD: REASON``;
``admm-tune validate`` must exit 2 naming that field.  The property test
mutates a valid problem at random (values of every type, deleted and added
keys, at any depth): loading either succeeds or raises ``ProblemError``,
never anything else.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admm_tune import ProblemError, load_problem
from admm_tune.cli import main

CORPUS = sorted((Path(__file__).resolve().parent / "corpus" / "malformed").glob("*.yaml"))


def expected(path: Path) -> tuple[str, str]:
    header = path.read_text().splitlines()[0]
    assert header.startswith("# expect: "), path
    field, _, reason = header[len("# expect: "):].partition(": ")
    return field, reason


def test_the_corpus_covers_every_field_kind():
    assert len(CORPUS) >= 30
    tops = {expected(p)[0].split(".")[0].split("[")[0] for p in CORPUS}
    assert {"constraints", "objective", "budget", "data", "restrict", "search_space", "optimizer", "seed", "task",
            "deployment"} <= tops


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_validate_refuses_each_file_naming_the_field(path, capsys, monkeypatch):
    monkeypatch.chdir(path.parent)  # relative data paths in the corpus resolve (and fail) from there
    field, reason = expected(path)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{field}: " in err and reason in err, err


def test_the_console_script_exits_2_too():
    out = subprocess.run([sys.executable, "-m", "admm_tune.cli", "validate", str(CORPUS[0])], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and expected(CORPUS[0])[0] in out.stderr


VALID = {"name": "valid", "data": {"source": "sklearn:wine", "test_size": 0.2},
         "objective": {"scoring": "balanced_accuracy", "cv": 3},
         "search_space": {"modules": [
             {"name": "scaler", "algorithms": [{"name": "none"},
                                               {"name": "std", "class": "sklearn.preprocessing.StandardScaler"}]},
             {"name": "estimator", "algorithms": [
                 {"name": "lr", "class": "sklearn.linear_model.LogisticRegression", "fixed": {"max_iter": 500},
                  "params": {"C": {"type": "float", "low": 0.01, "high": 100.0, "log": True, "default": 1.0},
                             "fit_intercept": {"type": "categorical", "choices": [True, False]}}},
                 {"name": "knn", "class": "sklearn.neighbors.KNeighborsClassifier",
                  "params": {"n_neighbors": {"type": "int", "low": 1, "high": 30}}}]}],
             "forbidden": [{"when": {"scaler": "none", "estimator": "knn"}, "reason": "knn needs scaling"}]},
         "deployment": {"space": "cpu", "batch_size": 4, "timing": {"seconds": 0.1}},
         "constraints": [{"metric": "fit_time_s", "max": 1.0}, {"metric": "latency_p95_ms", "max": 2.0}],
         "budget": {"evaluations": 20, "seconds": 600, "patience": 5},
         "optimizer": {"theta_solver": "gp", "rho": 1.0, "z_pulls": 2},
         "seed": 3}

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def paths(node, prefix=()):
    """Every path to a value inside nested dicts and lists."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated(draw):
    problem = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(problem))[1:]))
        parent = problem
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_random_mutations_load_or_raise_problem_error(problem):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        yaml.safe_dump(problem, fh)
    try:
        load_problem(fh.name)
    except ProblemError:
        pass
    finally:
        Path(fh.name).unlink()
