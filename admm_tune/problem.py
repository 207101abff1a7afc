"""The :class:`Problem`: data, objective, search space, constraints, budget.

A problem is written in YAML (see ``docs/problem-format.md``), given as a
dict, or built from Python objects.  :func:`load_problem` validates every
field and raises :class:`~admm_tune.errors.ProblemError` whose message names
the exact field path and the reason::

    constraints[1].max: expected a number, got 'fast'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import _fields as F
from .data import CLASSIFICATION, REGRESSION, TASKS, TEXT_FEATURES, Dataset, GroupedSplits, load_dataset
from .deployment import MISMATCH, deploy_metrics, load_deployment, running_text, with_deployment
from .deployment import MODULES as DEPLOYMENT_MODULES
from .errors import ProblemError
from .metrics import ML, measured
from .problem_base import (Limits, Objective, ObjectiveFn, Problem, check_contradictions, constraint_list,
                           parse_budget, parse_constraint, parse_isolation, parse_optimizer)
from .registry import resolve_class
from .settings import Budget, Constraint, OptimizerSettings
from .space import SearchSpace, read_yaml

ML_METRICS = measured(ML)
"""Metrics the ML evaluator measures for every candidate, usable in constraints (:mod:`admm_tune.metrics`)."""

DEFAULT_SCORING = {CLASSIFICATION: "balanced_accuracy", REGRESSION: "r2"}

__all__ = ["DEFAULT_SCORING", "ML_METRICS", "Budget", "Constraint", "Limits", "Objective", "ObjectiveFn",
           "OptimizerSettings", "Problem", "constraint_list", "load_problem", "parse_budget", "restore_problem"]
"""Public names; the :class:`Problem` type and the shared fields live in :mod:`admm_tune.problem_base`."""



def load_problem(source: Problem | Mapping[str, Any] | str | Path) -> Problem:
    """Build a validated :class:`Problem` from a YAML path, a dict or a Problem.

    Raises
    ------
    ProblemError
        Naming the first malformed field and the reason.
    """
    if isinstance(source, Problem):
        return source
    base_dir = None
    if isinstance(source, (str, Path)):
        file = Path(source)
        if not file.is_file():
            raise ProblemError("", f"problem file {str(file)!r} does not exist")
        raw = read_yaml(file, "")
        if not isinstance(raw, Mapping):
            raise ProblemError("", f"{file} must hold a mapping of fields, got {F.describe(raw)}")
        base_dir = file.resolve().parent
        raw = dict(raw)
        raw.setdefault("name", file.stem)
    else:
        raw = dict(F.mapping(source, "problem"))
    return _from_dict(raw, base_dir)


def restore_problem(attrs: Mapping[str, Any]) -> Problem:
    """The problem of an earlier run, from the facts its journal holds (``problem_file``, ``problem``, ...).

    The problem file the run was given is reloaded when it still exists (so
    relative data paths resolve), else the stored fields; the run's seed and
    budget are kept.

    Raises
    ------
    ProblemError
        When the problem cannot be rebuilt (it held Python arrays or a callable).
    """
    file = attrs.get("problem_file")
    problem = load_problem(file if file and Path(file).is_file() else dict(attrs.get("problem", {})))
    budget = attrs.get("budget")
    return replace(problem, seed=attrs.get("seed", problem.seed),
                   budget=Budget(**budget) if budget else problem.budget)


_FIELDS = ("name", "description", "task", "data", "objective", "search_space", "restrict",
           "constraints", "budget", "optimizer", "seed", "deployment", "isolation", "kind")


def _from_dict(raw: dict[str, Any], base_dir: Path | None) -> Problem:
    kind = F.string(raw.get("kind", "ml"), "kind", choices=("ml", "deploy"))
    if kind == "deploy":  # a trained ONNX model instead of a pipeline: its own fields
        from .deploy_problem import from_dict

        return from_dict(raw, base_dir)
    F.only_keys(raw, _FIELDS, "")
    name = F.string(raw.get("name", "problem"), "name")
    seed = None if raw.get("seed") is None else F.integer(raw["seed"], "seed", minimum=0)
    task = raw.get("task")
    if task is not None:
        task = F.string(task, "task", choices=TASKS)
    objective_raw = raw.get("objective", {})
    data = None
    if callable(objective_raw):
        objective: Objective | ObjectiveFn = objective_raw
        if "data" in raw:
            raise ProblemError("data", "a callable objective takes no data")
        space = _space(raw.get("search_space"), raw, None, base_dir)
    else:
        if "data" not in raw:
            raise ProblemError("data", "missing (or give a callable objective)")
        data = load_dataset(raw["data"], "data", base_dir, task, seed)
        space = _space(raw.get("search_space"), raw, data.task, base_dir)
        _check_task(space, data)
        objective = _objective(objective_raw, data)
    notes: tuple[str, ...] = (data.task_reason,) if data is not None and data.task_reason else ()
    notes += _text_notes(data) if data is not None else ()
    if data is not None:
        space, bounded = _bounded_by_width(space, data)
        space, tall = _bounded_by_rows(space, data)
        space, weighted = _taking_weights(space, data)
        notes += bounded + tall + weighted
    deployment = None
    if raw.get("deployment") is not None:
        if data is None:
            raise ProblemError("deployment", "needs data: a callable objective has no pipeline to deploy")
        _check_float32(data)
        deployment = load_deployment(raw["deployment"], "deployment", base_dir=base_dir,
                                     restrict=raw.get("restrict"))
        space, joint = with_deployment(space, deployment)
        space, narrow = _within_half_precision(space, data)
        space, strings = running_text(space, data.text)
        notes += deployment.notes + joint + narrow + strings
    measurable = None if data is None else {**ML_METRICS, **(deploy_metrics(data.task) if deployment else {})}
    constraints = tuple(parse_constraint(c, f"constraints[{i}]", measurable)
                        for i, c in enumerate(constraint_list(raw.get("constraints"))))
    if deployment is not None and all(c.metric != MISMATCH for c in constraints):
        constraints += (Constraint(MISMATCH, 1.0, "max"),)
    check_contradictions(constraints)
    budget = parse_budget(raw.get("budget", {"evaluations": 50}), "budget")
    optimizer = parse_optimizer(raw.get("optimizer", {}) or {}, "optimizer")
    isolation = parse_isolation(raw.get("isolation"))
    return Problem(space, objective, data, constraints, budget, optimizer, seed, name, raw, deployment, notes,
                   isolation)


def _space(spec: Any, raw: Mapping[str, Any], task: str | None, base_dir: Path | None) -> SearchSpace:
    """The search space (default: the bundled one of the data's ``task``), restricted as the problem says."""
    if spec is None:
        if task is None:
            raise ProblemError("search_space", "missing")
        spec = task
    if isinstance(spec, SearchSpace):
        space = spec
    elif isinstance(spec, Mapping):
        space = SearchSpace.from_dict(spec, "search_space")
    elif isinstance(spec, (str, Path)):
        file = Path(spec)
        if file.suffix in (".yaml", ".yml") and not file.is_absolute() and base_dir is not None:
            file = base_dir / file
            spec = str(file)
        space = SearchSpace.load(spec, "search_space")
    else:
        raise ProblemError("search_space",
                           f"expected a bundled name, a .yaml path or a mapping, got {F.describe(spec)}")
    restrict = raw.get("restrict")
    if restrict is not None:
        restrict = F.mapping(restrict, "restrict")
        if raw.get("deployment") is not None:  # backend / precision: restricted by load_deployment
            restrict = {mod: names for mod, names in restrict.items() if mod not in DEPLOYMENT_MODULES}
        for mod, names in restrict.items():
            path = F.join("restrict", mod)
            if mod not in space.module_names:
                raise ProblemError(path, f"unknown module; expected one of {list(space.module_names)}")
            names = F.sequence(names, path)
            if not names:
                raise ProblemError(path, "keeps no algorithm")
            for i, n in enumerate(names):
                if n not in space.module(mod).names:
                    raise ProblemError(F.join(path, i),
                                       f"unknown algorithm {n!r}; expected one of {list(space.module(mod).names)}")
        space = space.restricted(restrict)
    if raw.get("data") is not None:
        _check_classes(space)
    return space


def _check_task(space: SearchSpace, data: Dataset) -> None:
    """Every estimator of the space's last module that declares a kind (scikit-learn's mixins) suits the task."""
    from sklearn.base import ClassifierMixin, RegressorMixin

    wrong = ClassifierMixin if data.task == REGRESSION else RegressorMixin
    module = space.modules[-1]
    for j, algo in enumerate(module.algorithms):
        if algo.estimator is None:
            continue
        cls = resolve_class(algo.estimator, f"search_space.modules[{len(space.modules) - 1}].algorithms[{j}].class")
        if isinstance(cls, type) and issubclass(cls, wrong):
            how = data.task_reason or f"task: {data.task}"
            raise ProblemError(f"search_space.{module.name}.{algo.name}",
                               f"{cls.__name__} is a {'classifier' if wrong is ClassifierMixin else 'regressor'} "
                               f"but the task is {data.task} ({how})")


POLYNOMIAL = "sklearn.preprocessing.PolynomialFeatures"
POLYNOMIAL_MAX_INPUTS = 40
"""Widest input (columns after the categorical front) polynomial features are searched on.

Degree-2 features of ``w`` columns are ``w (w + 3) / 2`` columns (860 at
40), and skl2onnx's converter for them grows faster still (measured: 60
columns 6 s, 80 columns 20 s, 120 columns over 200 s): beyond this width
the step is left out of the space by construction.
"""


def _bounded_by_width(space: SearchSpace, data: Dataset) -> tuple[SearchSpace, tuple[str, ...]]:
    """Leave out steps whose cost explodes with the data's width (known before any fit); notes say which."""
    width = len(data.numeric) + TEXT_FEATURES * len(data.text) + sum(
        int(data.X[c].nunique(dropna=False)) for c in data.categorical)
    if width <= POLYNOMIAL_MAX_INPUTS:
        return space, ()
    return _left_out(space, (POLYNOMIAL,), f"{width} input columns after one-hot (polynomial features are searched "
                                           f"on at most {POLYNOMIAL_MAX_INPUTS})")


def _left_out(space: SearchSpace, classes: tuple[str, ...], why: str) -> tuple[SearchSpace, tuple[str, ...]]:
    """``space`` without the algorithms of ``classes`` (a module keeps at least one), and a note per module."""
    keep, notes = {}, []
    for module in space.modules:
        names = [a.name for a in module.algorithms if a.estimator not in classes]
        if names and len(names) < len(module.algorithms):
            keep[module.name] = names
            notes.append(f"{module.name}.{', '.join(a.name for a in module.algorithms if a.name not in names)} "
                         f"left out: {why}")
    return space.restricted(keep), tuple(notes)


KERNEL_SVMS = ("sklearn.svm.SVC", "sklearn.svm.SVR", "sklearn.svm.NuSVC", "sklearn.svm.NuSVR")
KERNEL_MAX_ROWS = 20_000
"""Most training rows kernel SVMs are searched on.

libsvm's fit grows as rows^2 to rows^3, much faster still with a large
``C``, and runs in C, where a candidate's time limit cannot interrupt it
(its worker is killed, with what it held): one SVC at C = 6,000 on 6,700
rows of a 20-column table ran past 10 s.  From this many rows (where tall
tables are scored on row rungs, :mod:`admm_tune.evaluate.rungs`) they are
left out of the space.
"""


def _bounded_by_rows(space: SearchSpace, data: Dataset) -> tuple[SearchSpace, tuple[str, ...]]:
    """Leave out kernel SVMs on a table of :data:`KERNEL_MAX_ROWS` rows or more; notes say which."""
    rows = len(data.y)
    if rows < KERNEL_MAX_ROWS:
        return space, ()
    return _left_out(space, KERNEL_SVMS, f"{rows} training rows (kernel SVMs are searched on fewer than "
                                         f"{KERNEL_MAX_ROWS})")


def _taking_weights(space: SearchSpace, data: Dataset) -> tuple[SearchSpace, tuple[str, ...]]:
    """With sample weights, leave out the estimators whose ``fit`` takes none (k-NN, LDA, QDA, ARD in the bundled
    spaces) rather than fit them unweighted; notes say which.

    Raises
    ------
    ProblemError
        Naming ``data.sample_weight`` when no estimator of the space takes weights.
    """
    if data.sample_weight is None:
        return space, ()
    last = space.modules[-1]
    cannot = tuple(a.estimator for a in last.algorithms if a.estimator is not None and "sample_weight" not in
                   inspect.signature(resolve_class(a.estimator, "search_space").fit).parameters)
    if len(cannot) == len(last.algorithms):
        raise ProblemError("data.sample_weight", f"no estimator of the space takes sample weights in its fit "
                                                 f"({', '.join(last.names)})")
    return _left_out(space, cannot, "the data has sample weights, which its fit does not take")


def _check_float32(data: Dataset) -> None:
    """Numbers a float32 ONNX graph can hold: a value beyond float32's range becomes inf in the deployed graph."""
    import numpy as np

    limit = float(np.finfo(np.float32).max)
    for frame in (data.X, data.X_test):
        if frame is None:
            continue
        for column in data.numeric:
            values = np.abs(frame[column].to_numpy(dtype="float64", na_value=np.nan))
            if np.nanmax(values, initial=0.0) > limit:
                raise ProblemError("data", f"column {column!r} has values beyond float32's range (up to "
                                           f"{np.nanmax(values):.3g} > {limit:.3g}), which the float32 ONNX graph "
                                           "cannot represent; rescale it (e.g. divide by a constant or take a log)")


FP16_MAX = 65504.0
"""The largest finite float16: an input beyond it is infinite in an fp16 graph."""


def _within_half_precision(space: SearchSpace, data: Dataset) -> tuple[SearchSpace, tuple[str, ...]]:
    """The joint space without ``fp16`` when a numeric input exceeds float16's range (known before any fit)."""
    if "fp16" not in space.module("precision").names:
        return space, ()
    import numpy as np

    largest = float(np.nanmax(np.abs(data.X[data.numeric].to_numpy(dtype="float64", na_value=np.nan)), initial=0.0))
    if largest <= FP16_MAX:
        return space, ()
    keep = [p for p in space.module("precision").names if p != "fp16"]
    if not keep:
        raise ProblemError("restrict.precision", f"keeps only fp16, but input values reach {largest:.3g}, beyond "
                                                 f"float16's range ({FP16_MAX:g})")
    return space.restricted({"precision": keep}), (
        f"precision fp16 left out: input values reach {largest:.3g}, beyond float16's range ({FP16_MAX:g})",)


def _text_notes(data: Dataset) -> tuple[str, ...]:
    """What the data layer read as free text (:func:`~admm_tune.data.text_columns`) and what the front makes of it."""
    notes = []
    for column in data.text:
        values = data.X[column][data.X[column] != ""]
        words = float(values.str.split().str.len().mean()) if len(values) else 0.0
        notes.append(f"data.{column}: read as free text ({values.nunique()} distinct values, {words:.1f} words on "
                     f"average): TF-IDF of its {TEXT_FEATURES} most frequent words, lowercased")
    return tuple(notes)


def _check_classes(space: SearchSpace) -> None:
    """Every class the space names imports from an allowed module."""
    for i, module in enumerate(space.modules):
        for j, algo in enumerate(module.algorithms):
            if algo.estimator is not None:
                resolve_class(algo.estimator, f"search_space.modules[{i}].algorithms[{j}].class")


def _objective(raw: Any, data: Dataset) -> Objective:
    raw = F.mapping(raw if raw is not None else {}, "objective")
    F.only_keys(raw, ("scoring", "cv", "probabilities"), "objective")
    scoring = raw.get("scoring", DEFAULT_SCORING[data.task])
    if not callable(scoring):
        scoring = F.string(scoring, "objective.scoring")
    _check_scoring(scoring, data, "objective.scoring")
    probabilities = F.boolean(raw.get("probabilities", False), "objective.probabilities")
    splitter = _splitter(raw.get("cv", 5), data)
    if splitter is not None:
        return Objective(scoring, _check_splits(splitter, data), probabilities, splitter)
    if data.groups is not None:
        raise ProblemError("data.groups", "groups need a group-aware splitter in objective.cv (GroupKFold, "
                                          "StratifiedGroupKFold, LeaveOneGroupOut, ...)")
    cv = F.integer(raw.get("cv", 5), "objective.cv", minimum=2)
    if cv > len(data.y):
        raise ProblemError("objective.cv", f"{cv} folds but only {len(data.y)} training rows")
    if data.task == CLASSIFICATION:
        import numpy as np

        smallest = int(np.unique(data.y, return_counts=True)[1].min())
        if smallest < cv:
            raise ProblemError("objective.cv", f"{cv} folds but the rarest class has {smallest} rows")
    return Objective(scoring, cv, probabilities)


def _splitter(raw: Any, data: Dataset) -> Any:
    """The problem's own splitter from ``objective.cv``: a splitter object, a list of ``(train, test)`` pairs, or a
    mapping ``{splitter: NAME, ...arguments}`` of a scikit-learn splitter; None for a number of folds."""
    if isinstance(raw, bool) or isinstance(raw, (int, float)):
        return None
    if isinstance(raw, Mapping):
        raw = dict(raw)
        name = F.string(raw.pop("splitter", None), "objective.cv.splitter")
        import sklearn.model_selection as ms

        cls = getattr(ms, name, None)
        if not (isinstance(cls, type) and hasattr(cls, "split")):
            known = [n for n in dir(ms) if n.endswith(("Fold", "Split", "Out")) and not n.startswith("_")]
            raise ProblemError("objective.cv.splitter", f"unknown scikit-learn splitter {name!r}; expected one of "
                                                        f"{known}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ProblemError("objective.cv", f"{name}: {exc}") from None
    if hasattr(raw, "split") and hasattr(raw, "get_n_splits"):
        return raw
    if isinstance(raw, str) or not hasattr(raw, "__iter__"):
        raise ProblemError("objective.cv", f"expected a number of folds, a splitter or (train, test) index pairs, "
                                           f"got {F.describe(raw)}")
    try:
        return [(np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)) for train, test in raw]
    except (TypeError, ValueError):
        raise ProblemError("objective.cv", "expected a number of folds, a splitter or (train, test) index pairs "
                                           "(two arrays of row indices each)") from None


def _check_splits(splitter: Any, data: Dataset) -> int:
    """The number of splits, each checked: two or more, non-empty train and test parts within the rows.

    Raises
    ------
    ProblemError
        Naming ``objective.cv`` (or ``data.groups`` when the splitter needs them), with the splitter's reason.
    """
    try:
        splits = list(GroupedSplits(splitter, data.groups).split(data.X, data.y))
    except (ValueError, TypeError) as exc:
        field = "data.groups" if "groups" in str(exc) and data.groups is None else "objective.cv"
        raise ProblemError(field, f"{type(splitter).__name__}: {str(exc).splitlines()[0]}") from None
    if len(splits) < 2:
        raise ProblemError("objective.cv", f"the splitter gives {len(splits)} split(s); at least 2 are needed")
    n = len(data.y)
    for i, (train, test) in enumerate(splits):
        train, test = np.asarray(train), np.asarray(test)
        if not len(train) or not len(test) or max(train.max(), test.max()) >= n or min(train.min(), test.min()) < 0:
            raise ProblemError("objective.cv", f"split {i} has an empty part or indices outside the {n} rows")
    return len(splits)


SCORER_MODULES = {CLASSIFICATION: ("sklearn.metrics._classification", "sklearn.metrics._ranking"),
                  REGRESSION: ("sklearn.metrics._regression",)}
"""Where scikit-learn defines the metrics of each task's scorers."""


def _check_scoring(scoring: str | Callable[..., float], data: Dataset, path: str) -> None:
    """A scorer that exists, suits the task, and scores this target: tried once on a dummy model of the data.

    Raises
    ------
    ProblemError
        An unknown name (with close names), a scorer of the other task, or one that fails on this target (a
        multiclass target with ``roc_auc``: with the names that handle it), naming ``path``.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.metrics import get_scorer, get_scorer_names

    names = get_scorer_names()
    if isinstance(scoring, str):
        if scoring not in names:
            close = [s for s in names if scoring.split("_")[0] in s][:5]
            raise ProblemError(path, f"unknown scikit-learn scorer {scoring!r}"
                               + (f"; did you mean one of {close}?" if close else ""))
        module = getattr(getattr(get_scorer(scoring), "_score_func", None), "__module__", "")
        other = REGRESSION if data.task == CLASSIFICATION else CLASSIFICATION
        if module.startswith(SCORER_MODULES[other]):
            raise ProblemError(path, f"{scoring!r} scores {other}, but the task is {data.task} (e.g. "
                                     f"{DEFAULT_SCORING[data.task]!r})")
    label = scoring if isinstance(scoring, str) else getattr(scoring, "__name__", repr(scoring))
    dummy = DummyClassifier(strategy="stratified", random_state=0) if data.task == CLASSIFICATION else \
        DummyRegressor()
    import warnings

    weighted = {} if data.sample_weight is None else {"sample_weight": data.sample_weight}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = get_scorer(scoring)(dummy.fit(data.X, data.y), data.X, data.y, **weighted)
    except TypeError as exc:
        if weighted and "sample_weight" in str(exc):
            raise ProblemError(path, f"{label} takes no sample_weight, and data.sample_weight weighs the rows: "
                                     "give a scorer that takes it (make_scorer(metric) or a callable "
                                     "(estimator, X, y, sample_weight=None))") from None
        raise ProblemError(path, f"{label} cannot score this target: TypeError: {str(exc)[:200]}") from None
    except Exception as exc:  # the scorer cannot score this task's outputs
        fits = [n for n in names if isinstance(scoring, str) and n.startswith(f"{scoring}_")][:6]
        raise ProblemError(path, f"{label} cannot score this target: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}" + (f"; use one of {fits}" if fits else "")) \
            from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        import numpy as np

        if not isinstance(value, np.number):
            raise ProblemError(path, f"{label} returned {type(value).__name__}, not a number")


