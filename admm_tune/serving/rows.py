"""Raw rows to the columns a pipeline and its graph take: the serving contract's data preparation.

One implementation serves the fitted estimator's ``predict``
(:meth:`admm_tune.data.Dataset.prepare`) and the exported folder's
``load_model.py``, which holds this module's source (everything below the
``SHIPPED`` line), so that both follow the same rules.  It needs numpy, and
pandas only when it is given a DataFrame; it imports nothing of admm_tune.

A *schema* (JSON-able, written to ``deployment.json`` as ``rows``) lists the
raw columns of the training table and the kind of each:

``number``
    float64; ``None``, NaN, ``pd.NA`` or a missing key is NaN (the
    pipeline's front imputes it); an empty string is missing; a number
    written as a string (``"3.5"``) is that number; ``True``/``False`` are
    1 and 0; any other string is refused (:class:`RowError`).
``category``
    the training category it equals, as a string: a missing value is
    ``"<missing>"``; a number equal to a training category that is a number
    (``3.0`` for ``"3"``, ``3`` for ``"3.0"``) is that category; any other
    value is its string, and a string never seen in training is *unseen*:
    the one-hot front encodes it as all zeros, as scikit-learn's
    ``OneHotEncoder(handle_unknown="ignore")`` does (:func:`unseen` counts them).
``boolean``
    ``"True"``/``"False"`` (the categories of a boolean training column):
    booleans, ``1``/``0`` (also ``1.0``, ``"1"``), and the strings ``"true"``,
    ``"false"``, ``"yes"``, ``"no"``, ``"t"``, ``"f"`` in any case; missing is
    ``"<missing>"``; any other value is refused.
``text``
    free text, as its words: lowercased (Python's ``str.lower``), the runs of
    two or more word characters (scikit-learn's ``TfidfVectorizer`` default
    ``(?u)\\b\\w\\w+\\b``, Unicode letters included) joined by single spaces
    (:func:`words`), which the graph then only splits on spaces: ONNX
    Runtime's tokenizer changes no case and reads ``\\w`` as ASCII only (it
    dropped ``café`` and moved ``won't`` by up to 1e-3 in probability when it
    tokenized the raw text); a missing value is ``""`` (no words); a number
    is its string's words.
``datetime``
    expanded into the numeric parts the training rows had (``days`` since
    1970-01-01 and the varying ones of year, month, day, day_of_week,
    day_of_year, hour, minute, second), from datetimes, dates, pandas
    timestamps, numpy datetime64 or ISO 8601 strings (an offset or ``Z`` is
    converted to UTC); missing is NaN in every part; any other value is
    refused.

Rows are a DataFrame (columns by name, any order, extra ones ignored), a
list of mappings (one record per row, as a service receives JSON; a missing
key is a missing value, extra keys are ignored) or one mapping (one row).
A DataFrame without a training column is refused, naming it.
"""

from __future__ import annotations

import datetime as _datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# -- SHIPPED: load_model.py holds the source from here on ----------------------------------------------------

MISSING = "<missing>"
"""The category that stands for a missing value in a categorical column."""

DATE_PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "hour", "minute", "second")
"""Parts a datetime column may be expanded into, besides ``days``."""

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


class RowError(ValueError):
    """A row cannot be prepared: a column is absent, or a value cannot be converted (both named)."""


def is_missing(value: Any) -> bool:
    """Whether ``value`` is a missing marker: ``None``, NaN, ``pd.NA``, ``pd.NaT`` or numpy's NaT."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    if isinstance(value, np.generic):
        return bool(np.isnat(value)) if value.dtype.kind in "mM" else bool(value.dtype.kind == "f" and value != value)
    return type(value).__name__ in ("NAType", "NaTType")


def features(schema: Mapping[str, Any]) -> list[str]:
    """The prepared columns of a schema, in training order (a datetime column is its parts ``NAME_PART``)."""
    out: list[str] = []
    for column in schema["columns"]:
        out += [f"{column['name']}_{p}" for p in column["parts"]] if column["kind"] == "datetime" \
            else [column["name"]]
    return out


def prepare(rows: Any, schema: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The prepared columns of raw ``rows``: numbers as float64, categories as strings (object arrays).

    Parameters
    ----------
    rows : DataFrame, sequence of mappings, or mapping
        ``n`` raw rows (a mapping is one row).
    schema : mapping
        ``{"columns": [{"name", "kind", ...}, ...]}`` (module docstring).

    Returns
    -------
    dict of str to ndarray of shape (n,)
        One entry per prepared column (:func:`features`).

    Raises
    ------
    RowError
        A DataFrame lacks a training column, or a value cannot be converted
        to its column's kind (both named, with the value).
    """
    rows = _rows(rows, [c["name"] for c in schema["columns"]])
    numeric = [c["name"] for c in schema["columns"] if c["kind"] == "number"]
    block = _number_block(rows, numeric)
    out: dict[str, np.ndarray] = {}
    for column in schema["columns"]:
        name, kind = column["name"], column["kind"]
        if kind == "number":
            out[name] = block[:, numeric.index(name)] if block is not None else _numbers(_values(rows, name), name)
        elif kind == "datetime":
            instants = _instants(_values(rows, name), name)
            for part in column["parts"]:
                out[f"{name}_{part}"] = _date_part(instants, part)
        elif kind == "boolean":
            out[name] = _booleans(_values(rows, name), name)
        elif kind == "text":
            out[name] = _texts(_values(rows, name))
        else:
            out[name] = _categories(_values(rows, name), column["categories"])
    return out


def unseen(prepared: Mapping[str, np.ndarray], schema: Mapping[str, Any]) -> dict[str, int]:
    """How many values of each category column were never seen in training (encoded as all zeros)."""
    out = {}
    for column in schema["columns"]:
        if column["kind"] == "category":
            known = set(column["categories"])
            count = sum(1 for v in prepared[column["name"]] if v not in known)
            if count:
                out[column["name"]] = count
    return out


def _is_frame(rows: Any) -> bool:
    return hasattr(rows, "columns") and hasattr(rows, "iloc")  # a pandas DataFrame, without importing pandas


def _rows(rows: Any, names: Sequence[str]) -> Any:
    """``rows`` checked: a DataFrame holding every training column (named as strings), or a list of records."""
    if _is_frame(rows):
        by_name = {str(c): c for c in rows.columns}
        absent = [n for n in names if n not in by_name]
        if absent:
            raise RowError(f"column {absent[0]!r} of the training data is missing from the rows "
                           f"(columns given: {list(by_name)[:10]})")
        return rows[[by_name[n] for n in names]].set_axis(list(names), axis=1)
    if isinstance(rows, Mapping):
        rows = [rows]
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
        raise RowError(f"rows must be a DataFrame, a list of records (mappings) or one record, got "
                       f"{type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RowError(f"row {i} is a {type(row).__name__}, not a record (a mapping of column to value)")
    return rows


def _values(rows: Any, name: str) -> Any:
    """One column's raw values: a numpy array (DataFrame rows) or a list (records; a missing key is None)."""
    return _frame_column(rows[name]) if _is_frame(rows) else [row.get(name) for row in rows]


def _number_block(rows: Any, names: list[str]) -> np.ndarray | None:
    """The number columns as one float64 matrix ``(n, len(names))`` in one conversion; None when some value needs
    :func:`_number`'s rules (which give the same numbers for the values numpy converts)."""
    if not names:
        return None
    if _is_frame(rows):
        dtypes = [rows[n].dtype for n in names]
        if not all(isinstance(t, np.dtype) and t.kind in "iuf" for t in dtypes):
            return None
        block = rows[names].to_numpy(dtype=np.float64)
    else:
        values = [[row.get(n) for n in names] for row in rows]
        try:  # numbers, None (NaN), booleans and numbers written as strings convert as _number converts them
            block = np.array(values, dtype=np.float64).reshape(len(values), len(names))
        except (TypeError, ValueError):  # "", pd.NA, a date, a word: the per-value rules decide or name it
            return None
    if np.isinf(block).any():
        row, column = np.argwhere(np.isinf(block))[0]
        raise RowError(f"column {names[column]!r}: infinite value in row {row} (a missing value is None or NaN)")
    return block


def _frame_column(series: Any) -> Any:
    """A DataFrame column's values: float64 for plain numeric dtypes, datetime64[ns] for naive dates, else objects."""
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf" and isinstance(dtype, np.dtype):
        return series.to_numpy(dtype=np.float64)
    if kind == "M" and isinstance(dtype, np.dtype):
        return series.to_numpy(dtype="datetime64[ns]")
    if kind == "m" and isinstance(dtype, np.dtype):
        return series.to_numpy(dtype="timedelta64[ns]").astype(np.float64) / 1e9
    return series.to_numpy(dtype=object)


def _numbers(values: Any, name: str) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        out = values
    elif all(type(v) is float or type(v) is int for v in values):  # JSON numbers: one conversion
        out = np.array(values, dtype=np.float64)
    else:
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            out[i] = _number(v, name)
    if np.isinf(out).any():
        raise RowError(f"column {name!r}: infinite value in row {int(np.isinf(out).argmax())} (a missing value is "
                       "None or NaN)")
    return out


def _number(value: Any, name: str) -> float:
    if is_missing(value):
        return math.nan
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, _datetime.timedelta):  # time deltas are seconds, as in training
        return value.total_seconds()
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return math.nan
        try:
            number = float(text)
        except ValueError:
            raise RowError(f"column {name!r}: {value!r} is not a number") from None
        return number
    raise RowError(f"column {name!r}: {value!r} ({type(value).__name__}) is not a number")


def _canonical(value: Any) -> str:
    """A value as the string training gave it, before matching numbers to numeric categories."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _as_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _categories(values: Any, categories: Sequence[str]) -> np.ndarray:
    known = set(categories)
    numeric = {}
    for c in categories:
        number = _as_float(c) if c != MISSING else None
        if number is not None:
            numeric.setdefault(number, c)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if is_missing(v):
            out[i] = MISSING
            continue
        text = _canonical(v)
        if text not in known and numeric and not isinstance(v, (bool, np.bool_)):
            number = _as_float(text)
            text = numeric.get(number, text) if number is not None else text
        out[i] = text
    return out


WORD = re.compile(r"\w\w+")
"""A word of a text column: two or more word characters (Unicode), as scikit-learn's default ``token_pattern``."""


def words(text: str) -> str:
    """``text`` lowercased, its :data:`WORD` runs joined by single spaces (``"Crème brûlée, won't!"`` → ``"crème
    brûlée won"``)."""
    return " ".join(WORD.findall(text.lower()))


def _texts(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = "" if is_missing(v) else words(_canonical(v))
    return out


def _booleans(values: Any, name: str) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if is_missing(v):
            out[i] = MISSING
        elif isinstance(v, (bool, np.bool_)):
            out[i] = str(bool(v))
        else:
            word = str(v.item() if isinstance(v, np.generic) else v).strip().lower()
            if word in TRUE_WORDS:
                out[i] = "True"
            elif word in FALSE_WORDS:
                out[i] = "False"
            else:
                raise RowError(f"column {name!r}: {v!r} is not a boolean (true/false, 1/0, yes/no)")
    return out


def _instants(values: Any, name: str) -> np.ndarray:
    """Each value as a naive UTC ``datetime64[ns]`` (NaT where missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[ns]")
    out = np.empty(len(values), dtype="datetime64[ns]")
    for i, v in enumerate(values):
        out[i] = _instant(v, name)
    return out


def _instant(value: Any, name: str) -> np.datetime64:
    if is_missing(value):
        return np.datetime64("NaT", "ns")
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[ns]")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = _datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise RowError(f"column {name!r}: {value!r} is not an ISO 8601 date") from None
    elif isinstance(value, _datetime.date) and not isinstance(value, _datetime.datetime):
        value = _datetime.datetime(value.year, value.month, value.day)
    if not isinstance(value, _datetime.datetime):
        raise RowError(f"column {name!r}: {value!r} ({type(value).__name__}) is not a date")
    if value.tzinfo is not None:
        value = value.astimezone(_datetime.UTC).replace(tzinfo=None)
    nanos = getattr(value, "nanosecond", 0)  # a pandas Timestamp carries nanoseconds
    return np.datetime64(value.replace(tzinfo=None), "us").astype("datetime64[ns]") + np.timedelta64(nanos, "ns")


def _date_part(moment: np.ndarray, part: str) -> np.ndarray:
    """A part of each instant, as pandas' ``.dt`` gives it (``days``: since 1970-01-01, fractional); NaT is NaN."""
    missing = np.isnat(moment)
    day = moment.astype("datetime64[D]")
    if part == "days":
        values = moment.astype(np.int64) / 86_400e9
    elif part == "year":
        values = moment.astype("datetime64[Y]").astype(np.int64) + 1970
    elif part == "month":
        values = moment.astype("datetime64[M]").astype(np.int64) % 12 + 1
    elif part == "day":
        values = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
    elif part == "day_of_week":  # Monday 0, as pandas
        values = (day.astype(np.int64) + 3) % 7
    elif part == "day_of_year":
        values = (day - day.astype("datetime64[Y]")).astype(np.int64) + 1
    else:
        seconds = (moment - day).astype("timedelta64[s]").astype(np.int64)
        values = {"hour": seconds // 3600, "minute": seconds // 60 % 60, "second": seconds % 60}[part]
    return np.where(missing, np.nan, values.astype(np.float64))
