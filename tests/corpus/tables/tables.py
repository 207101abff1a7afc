"""Small generated tables of the kinds scikit-learn users have (issue: runs that hold on a user's first day).

Each entry of :data:`TABLES` builds ``(X, y, expected)`` deterministically:
``expected`` is ``"ok"`` (the run completes, with a verified deployment
when one is asked) or ``("refused", column)`` (refused before the search,
the message naming the column).  :func:`with_categorical` adds a string
column with missing values to any of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

N = 120


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _signal(X: pd.DataFrame) -> np.ndarray:
    """A binary target learnable from the first numeric column."""
    first = X.select_dtypes("number").iloc[:, 0].astype("float64").fillna(0.0).to_numpy()
    return (first > np.median(first)).astype(int)


def integer_names() -> tuple[Any, Any, Any]:
    X = pd.DataFrame(_rng().normal(size=(N, 3)))  # columns 0, 1, 2
    return X, _signal(X), "ok"


def odd_names() -> tuple[Any, Any, Any]:
    X = pd.DataFrame(_rng().normal(size=(N, 5)), columns=["price ($)", "a-b", "a_b", "x y", "été"])
    return X, _signal(X), "ok"


def nullable_dtypes() -> tuple[Any, Any, Any]:
    rng = _rng()
    ints = pd.array(rng.integers(0, 50, N), dtype="Int64")
    ints[::7] = pd.NA
    floats = pd.array(rng.normal(size=N), dtype="Float64")
    floats[::5] = pd.NA
    flags = pd.array(rng.random(N) > 0.5, dtype="boolean")
    flags[::9] = pd.NA
    X = pd.DataFrame({"count": ints, "value": floats, "flag": flags})
    y = pd.array(((X["count"].fillna(25) > 25)).astype(int).to_numpy(), dtype="Int64")
    return X, pd.Series(y), "ok"


def _dates(tz: str | None) -> tuple[Any, Any, Any]:
    rng = _rng()
    when = pd.Timestamp("2021-01-01", tz=tz) + pd.to_timedelta(rng.integers(0, 3 * 365, N), unit="D")
    X = pd.DataFrame({"when": when, "noise": rng.normal(size=N)})
    y = np.sin(2 * np.pi * X["when"].dt.day_of_year.to_numpy() / 365.25)  # a season: learnable from the day of year
    return X, y, "ok"


def naive_dates() -> tuple[Any, Any, Any]:
    return _dates(None)


def aware_dates() -> tuple[Any, Any, Any]:
    return _dates("Europe/Paris")


def date_strings() -> tuple[Any, Any, Any]:
    X, y, expected = _dates(None)
    X["when"] = X["when"].dt.strftime("%Y-%m-%d")
    X.loc[::11, "when"] = None
    return X, y, expected


def sparse_matrix() -> tuple[Any, Any, Any]:
    dense = _rng().normal(size=(N, 6)) * (_rng().random((N, 6)) > 0.6)
    return scipy.sparse.csr_matrix(dense), (dense[:, 0] > 0).astype(int), "ok"


def float_target() -> tuple[Any, Any, Any]:
    X = pd.DataFrame(_rng().normal(size=(N, 4)), columns=list("abcd"))
    return X, 2.0 * X["a"].to_numpy() + 0.1 * X["b"].to_numpy(), "ok"


def many_integer_values() -> tuple[Any, Any, Any]:
    """20 rows and 19 distinct integers: a count to regress, not 19 classes."""
    rng = _rng()
    X = pd.DataFrame({"a": rng.normal(size=20), "b": rng.normal(size=20)})
    y = np.arange(20)
    y[-1] = 0
    return X, y, "ok"


def beyond_float32() -> tuple[Any, Any, Any]:
    X = pd.DataFrame(_rng().normal(size=(N, 3)), columns=["a", "huge", "c"])
    X.loc[3, "huge"] = 1e39
    return X, _signal(X), ("refused", "huge")


def infinite_values() -> tuple[Any, Any, Any]:
    X = pd.DataFrame(_rng().normal(size=(N, 3)), columns=["a", "b", "inf col"])
    X.loc[5, "inf col"] = np.inf
    return X, _signal(X), ("refused", "inf col")


def everything() -> tuple[Any, Any, Any]:
    """Integer and odd names, nullable numbers and booleans, aware dates, together."""
    X, y, _ = nullable_dtypes()
    dates, _, _ = aware_dates()
    X[0] = dates["noise"].to_numpy()
    X["price ($)"] = X["value"]
    X["when"] = dates["when"].to_numpy()
    return X, y, "ok"


TABLES: dict[str, Callable[[], tuple[Any, Any, Any]]] = {f.__name__: f for f in (
    integer_names, odd_names, nullable_dtypes, naive_dates, aware_dates, date_strings, sparse_matrix,
    float_target, many_integer_values, beyond_float32, infinite_values, everything)}
"""Every kind of table, by name."""


def with_categorical(X: Any) -> pd.DataFrame:
    """``X`` (a DataFrame, or made one) with a string column that has missing values."""
    frame = pd.DataFrame(X.toarray()) if scipy.sparse.issparse(X) else pd.DataFrame(X).copy()
    frame["colour"] = np.array(["red", "green", "blue", None], dtype=object)[np.arange(len(frame)) % 4]
    return frame


def empty_column() -> tuple[Any, Any, Any]:
    """A numeric column with no value at all (the front's imputer keeps it)."""
    X = pd.DataFrame(_rng().normal(size=(N, 3)), columns=["a", "b", "c"]).assign(empty=np.nan)
    return X, _signal(X), "ok"


def small_int_target() -> tuple[Any, Any, Any]:
    """int8 labels: the graph's label output is int64 whatever the target's width."""
    X = pd.DataFrame(_rng().normal(size=(N, 3)), columns=["a", "b", "c"])
    return X, _signal(X).astype(np.int8), "ok"


def duplicate_names() -> tuple[Any, Any, Any]:
    X = pd.DataFrame({1: _rng().normal(size=N), "1": _rng().normal(size=N), "b": _rng().normal(size=N)})
    return X, _signal(X), ("refused", "1")


def date_part_collision() -> tuple[Any, Any, Any]:
    X, y, _ = naive_dates()
    X["when_days"] = X["noise"]
    return X, y, ("refused", "when_days")


TABLES.update({f.__name__: f for f in (empty_column, small_int_target, duplicate_names, date_part_collision)})
