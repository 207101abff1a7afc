"""What gives a run's trials their meaning, as one digest per part, so that a resume can refuse a changed problem.

A trial's loss and metrics mean something only for the data it was scored on, the objective that scored it, the
space its config lives in, the constraints it was judged by and the deployment it was measured on.  A run
journals :func:`fingerprint` of its problem; ``resume`` recomputes it and refuses, naming the parts that
changed (:func:`changes`), instead of mixing trials of two problems.  The budget, the seed, ``n_jobs``, the
storage, the optimiser's settings and the isolation limits are not part of it: they change how the search goes
on, not what its trials mean.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .problem import Problem

PARTS = ("data", "objective", "space", "constraints", "deployment")
"""The parts of a problem a trial's meaning depends on, in the order a refusal names them."""


def fingerprint(problem: Problem) -> dict[str, dict[str, str]]:
    """``{part: {"digest": hex, "summary": text}}`` for each of :data:`PARTS`.

    The data's digest is of its values (columns, dtypes, rows, target, groups, test split), not of where they
    were read from; a deploy problem's data is its model and evaluation rows.  Hashing reads every value once
    (about a second for 2,000,000 rows x 30 columns).
    """
    objective = problem.objective
    if problem.data is not None:
        data: Any = {f.name: getattr(problem.data, f.name) for f in dataclasses.fields(problem.data)
                     if f.name != "name"}  # its values, not the path they were read from
        rows, columns = problem.data.X.shape
        data_summary = f"{rows} rows x {columns} columns ({problem.data.task})"
    elif hasattr(objective, "model"):  # a deploy problem: the trained model and the rows it is evaluated on
        data = (objective.model, objective.data)
        data_summary = f"the model {getattr(objective.model, 'graph', objective.model).name!r} and its rows"
    else:  # a Python objective over the space: no data
        data, data_summary = None, "none"
    space = problem.space
    algorithms = sum(len(m.algorithms) for m in space.modules)
    parts = {
        "data": (data, data_summary),
        "objective": (objective, _name(objective)),
        "space": (space, f"{len(space.modules)} modules ({', '.join(space.module_names)}), {algorithms} algorithms"),
        "constraints": (problem.constraints,
                        ", ".join(f"{c.metric} {'<=' if c.sense == 'max' else '>='} {c.bound:g}"
                                  for c in problem.constraints) or "none"),
        "deployment": (problem.deployment, "none" if problem.deployment is None else
                       f"{problem.deployment.name or 'deployment'}, batch_size {problem.deployment.batch_size}"),
    }
    return {part: {"digest": _digest(value), "summary": summary} for part, (value, summary) in parts.items()}


def changes(stored: Mapping[str, Mapping[str, str]], current: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The parts whose digests differ, each as ``"part (was ..., now ...)"`` (a part missing from either side
    is not compared: a journal written before it was fingerprinted)."""
    out = []
    for part in PARTS:
        if part in stored and part in current and stored[part]["digest"] != current[part]["digest"]:
            was, now = stored[part]["summary"], current[part]["summary"]
            out.append(f"{part} (was {was}, now {now})" if was != now else f"{part} ({now}, other values)")
    return out


def _name(objective: Any) -> str:
    """How a summary names the objective: scoring and folds of an :class:`~admm_tune.problem.Objective`, else
    the callable's name."""
    if hasattr(objective, "scoring"):
        splits = f"{objective.splitter!r}" if objective.splitter is not None else f"cv {objective.cv}"
        return f"scoring {objective.name}, {splits}"
    return getattr(objective, "objective", None) or _text(objective)


def _text(value: Any) -> str:
    """A callable as ``module.qualname`` (its repr holds an address that changes each process), else its repr."""
    qualname = getattr(value, "__qualname__", None)
    if callable(value) and qualname is not None:
        return f"{getattr(value, '__module__', '')}.{qualname}"
    return repr(value)


def _digest(value: Any) -> str:
    hasher = hashlib.blake2b(digest_size=12)
    _feed(hasher, value)
    return hasher.hexdigest()


def _feed(hasher: Any, value: Any) -> None:
    """Feed ``value`` to ``hasher``: tables and arrays by their values, containers and dataclasses by their
    items, an ONNX model by its bytes, anything else by :func:`_text`."""
    import pandas as pd  # only for the isinstance checks below; loaded whenever a problem is

    hasher.update(type(value).__name__.encode())
    if isinstance(value, pd.DataFrame):
        hasher.update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        hasher.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
    elif isinstance(value, pd.Series):
        _feed(hasher, value.to_frame())
    elif isinstance(value, np.ndarray):
        hasher.update(f"{value.dtype}{value.shape}".encode())
        if value.dtype == object:
            hasher.update(pd.util.hash_array(value.ravel()).tobytes())
        else:
            hasher.update(np.ascontiguousarray(value).tobytes())
    elif hasattr(value, "SerializeToString"):  # an onnx.ModelProto
        hasher.update(value.SerializeToString())
    elif isinstance(value, Mapping):
        for key in sorted(value, key=str):
            hasher.update(str(key).encode())
            _feed(hasher, value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _feed(hasher, item)
    elif isinstance(value, (set, frozenset)):  # iterated in an order that changes with each process's hash seed
        for text in sorted(_text(item) for item in value):
            hasher.update(text.encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            hasher.update(f.name.encode())
            _feed(hasher, getattr(value, f.name))
    else:
        hasher.update(_text(value).encode())
