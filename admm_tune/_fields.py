"""Typed readers for nested mappings that report errors by field path.

Every reader takes the value and its path (``"constraints[1].max"``) and
raises :class:`~admm_tune.errors.ProblemError` naming that path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from .errors import ProblemError


def join(path: str, key: str | int) -> str:
    """Return the path of ``key`` inside ``path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """Short description of a value for an error message."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value)


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    """Check that ``value`` is a mapping with string keys."""
    if not isinstance(value, Mapping):
        raise ProblemError(path, f"expected a mapping, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ProblemError(path, f"keys must be strings, got {describe(key)}")
    return value


def sequence(value: Any, path: str) -> list[Any]:
    """Check that ``value`` is a list."""
    if not isinstance(value, (list, tuple)):
        raise ProblemError(path, f"expected a list, got {describe(value)}")
    return list(value)


def only_keys(value: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    """Reject keys outside ``allowed`` (catches typos such as ``evaluatons``)."""
    allowed = list(allowed)
    for key in value:
        if key not in allowed:
            raise ProblemError(join(path, key), f"unknown field; expected one of {sorted(allowed)}")


def number(value: Any, path: str, *, minimum: float | None = None, exclusive: bool = False) -> float:
    """Check that ``value`` is a finite real number, optionally bounded below."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProblemError(path, f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ProblemError(path, f"expected a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        relation = ">" if exclusive else ">="
        raise ProblemError(path, f"must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def integer(value: Any, path: str, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an integer, optionally bounded below."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ProblemError(path, f"expected an integer, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ProblemError(path, f"must be >= {minimum}, got {value!r}")
    return int(value)


def string(value: Any, path: str, *, choices: Iterable[str] | None = None) -> str:
    """Check that ``value`` is a non-empty string, optionally one of ``choices``."""
    if not isinstance(value, str) or not value:
        raise ProblemError(path, f"expected a non-empty string, got {describe(value)}")
    if choices is not None:
        choices = list(choices)
        if value not in choices:
            raise ProblemError(path, f"unknown value {value!r}; expected one of {choices}")
    return value


def boolean(value: Any, path: str) -> bool:
    """Check that ``value`` is a boolean."""
    if not isinstance(value, bool):
        raise ProblemError(path, f"expected true or false, got {describe(value)}")
    return value


def settings(raw: Any, defaults: Any, path: str) -> Any:
    """A copy of the dataclass ``defaults`` with the fields ``raw`` gives, each checked against the constraint its
    class declares beside the field (``_parameter_constraints``, see :func:`constrained`)."""
    raw = mapping(raw, path)
    only_keys(raw, [f.name for f in fields(defaults)], path)  # fields(): ClassVars left out
    rules = type(defaults)._parameter_constraints
    return replace(defaults, **{key: constrained(value, join(path, key), rules[key]) for key, value in raw.items()})


def constrained(value: Any, path: str, rule: Mapping[str, Any]) -> Any:
    """``value`` checked against a declared constraint (plain data, as scikit-learn's ``_parameter_constraints``):
    ``type`` (``bool``, ``int``, ``float``, ``str``), ``minimum`` (``exclusive``), ``maximum`` (with ``why``),
    ``choices``, and ``none`` (None allowed).

    Raises
    ------
    ProblemError
        Naming ``path`` and what was expected.
    """
    if value is None and rule.get("none"):
        return None
    kind = rule["type"]
    if kind is str:
        return string(value, path, choices=rule.get("choices"))
    if kind is bool:
        return boolean(value, path)
    if kind is int:
        return integer(value, path, minimum=rule.get("minimum"))
    out = number(value, path, minimum=rule.get("minimum"), exclusive=rule.get("exclusive", False))
    if "maximum" in rule and out > rule["maximum"]:
        raise ProblemError(path, f"must be <= {rule['maximum']:g}{rule.get('why', '')}, got {value!r}")
    return out
