"""Data sets of a problem: bundled scikit-learn sets, CSV/Parquet files, arrays.

Every loader returns a :class:`Dataset` whose ``X`` is a pandas DataFrame
(column names kept as strings, so non-numeric columns can get the
categorical front) and whose ``y`` is a 1-d numpy array.  Data problems are
reported as :class:`~admm_tune.errors.ProblemError` naming the ``data``
field.

The tables users have are brought to what the pipelines and their float32
ONNX graphs take, the same way for the training rows and for new rows
(:meth:`Dataset.prepare`):

- a scipy sparse matrix is made dense (up to :data:`MAX_DENSE_CELLS` cells;
  the graphs take dense input), pandas sparse columns likewise;
- pandas nullable numbers (``Int64``, ``Float64``...) become float64 with
  ``pd.NA`` as NaN (imputed by the front); ``boolean`` columns are
  categorical like ``bool`` ones; object columns holding only numbers are
  numeric; time deltas become seconds;
- datetime columns, naive or time-zone aware (converted to UTC), and text
  columns of ISO dates are expanded into numeric parts
  (:data:`DATE_PARTS`, those that vary in the training rows, plus
  ``days``, the days since 1970-01-01): ``when`` becomes ``when_year``,
  ``when_day_of_year``..., so that trends and seasons are learnable and the
  graph gets numbers;
- a numeric column with infinite values is refused, naming it (every
  scikit-learn model rejects them).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse

from . import _fields as F
from .errors import ProblemError
from .serving import rows as serving
from .serving.rows import DATE_PARTS, MISSING, words

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

BUNDLED = {
    "breast_cancer": ("load_breast_cancer", CLASSIFICATION),
    "digits": ("load_digits", CLASSIFICATION),
    "wine": ("load_wine", CLASSIFICATION),
    "iris": ("load_iris", CLASSIFICATION),
    "diabetes": ("load_diabetes", REGRESSION),
}
"""Data sets that ship with scikit-learn, usable as ``sklearn:NAME``."""


@dataclass
class Dataset:
    """Training data (and an optional held-out test split) of a problem.

    Attributes
    ----------
    X : pandas.DataFrame
        Training features.
    y : numpy.ndarray
        Training target.
    task : {"classification", "regression"}
    name : str
        Where it came from (``sklearn:breast_cancer``, a file path...).
    X_test, y_test : optional
        Held-out rows, never used by the search.
    categorical : list of str
        Columns that get the fixed front (imputer + one-hot).
    text : list of str
        Free-text columns (:func:`text_columns`): their lowercased words joined
        by spaces (:func:`as_text`), missing as ``""``; the front turns each
        into TF-IDF features of its words.
    dates : dict
        Datetime column of the raw table → the parts it was expanded into.
    task_reason : str
        How the task was inferred (empty when the problem named it).
    examples : list of dict
        Up to :data:`EXAMPLES` raw training rows as JSON records (dates as
        ISO strings, missing values as None): what a service receives; the
        search times its deployments on them.
    groups : ndarray of shape (n_rows,), optional
        The group of each training row (a patient, a user...), for a
        group-aware splitter (``objective.cv``); never a feature.
    sample_weight : ndarray of shape (n_rows,), optional
        The weight of each training row (finite, >= 0, not all 0): given to
        every fit of the estimator and every score (CV, re-scoring, refit);
        never a feature.
    sample_weight_test : ndarray of shape (n_test_rows,), optional
        The test rows' weights, for the test score.
    """

    X: pd.DataFrame
    y: np.ndarray
    task: str
    name: str = "data"
    X_test: pd.DataFrame | None = None
    y_test: np.ndarray | None = None
    categorical: list[str] = field(default_factory=list)
    dates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    task_reason: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    groups: np.ndarray | None = None
    sample_weight: np.ndarray | None = None
    sample_weight_test: np.ndarray | None = None
    text: list[str] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        """The prepared columns that are numbers (neither categories nor text)."""
        return [c for c in self.X.columns if c not in self.categorical and c not in self.text]

    @functools.cached_property
    def schema(self) -> dict[str, Any]:
        """The raw columns of the training table and their kinds, as the serving contract reads rows
        (:mod:`admm_tune.serving.rows`; ``deployment.json``'s ``rows``)."""
        part_of = {f"{d}_{p}": d for d, parts in self.dates.items() for p in parts}
        columns: list[dict[str, Any]] = []
        for name in self.X.columns:
            if name in part_of:
                if not columns or columns[-1]["name"] != part_of[name]:
                    parts = list(self.dates[part_of[name]])
                    columns.append({"name": part_of[name], "kind": "datetime", "parts": parts})
            elif name in self.text:
                columns.append({"name": name, "kind": "text"})
            elif name in self.categorical:
                seen = sorted(str(v) for v in pd.unique(self.X[name]))
                boolean = bool(set(seen) - {MISSING}) and set(seen) <= {"True", "False", MISSING}
                columns.append({"name": name, "kind": "boolean"} if boolean else
                               {"name": name, "kind": "category", "categories": seen})
            else:
                columns.append({"name": name, "kind": "number"})
        return {"columns": columns}

    def prepare(self, X: Any) -> pd.DataFrame:
        """New raw rows as the training rows were prepared, by the serving contract's rules (:mod:`.serving.rows`).

        Parameters
        ----------
        X : DataFrame, array, sparse matrix of shape (n_rows, n_raw_columns), or list of records

        Returns
        -------
        DataFrame of shape (n_rows, n_features)
            The columns of :attr:`X`, in order: numbers as float64 (missing as
            NaN), categories as strings (missing as ``<missing>``), dates as parts.

        Raises
        ------
        ProblemError
            When a column of the training rows is missing, or a value cannot
            be converted to its column's kind (both named).
        """
        records = isinstance(X, (list, Mapping)) and not scipy.sparse.issparse(X)  # a dok matrix is a dict
        rows = X if records else _frame(X, "X")
        try:
            prepared = serving.prepare(rows, self.schema)
        except serving.RowError as exc:
            raise ProblemError("X", str(exc)) from None
        n = len(next(iter(prepared.values())))
        return pd.DataFrame(prepared, index=rows.index if isinstance(rows, pd.DataFrame) else range(n))

    @property
    def n_features(self) -> int:
        """Number of input columns."""
        return int(self.X.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes the training table takes in memory (its columns, strings included, and the target)."""
        return int(self.X.memory_usage(deep=True).sum()) + int(np.asarray(self.y).nbytes)



class GroupedSplits:
    """A user's splitter (or list of ``(train, test)`` index pairs) with the data's groups bound, as ``cv``."""

    def __init__(self, splitter: Any, groups: Any) -> None:
        self.splitter, self.groups = splitter, groups

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        if hasattr(self.splitter, "split"):
            return self.splitter.split(X, y, self.groups)
        return iter(self.splitter)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        if hasattr(self.splitter, "get_n_splits"):
            return int(self.splitter.get_n_splits(X, y, self.groups))
        return len(self.splitter)


def load_dataset(spec: Any, path: str = "data", base_dir: Path | None = None,
                 task: str | None = None, seed: int | None = None) -> Dataset:
    """Load the data described by ``spec`` and check it.

    Parameters
    ----------
    spec : str or mapping
        ``"sklearn:NAME"``, a ``.csv``/``.parquet`` path, or a mapping with
        ``source`` (one of those), ``target``, ``test_size``, ``categorical``,
        ``groups`` and ``sample_weight`` (each a column, taken out of the
        features, or one value per row); from Python the mapping may hold
        ``X``, ``y`` (and ``X_test``, ``y_test``, ``sample_weight_test``) as
        arrays or DataFrames instead of ``source``.
    path : str
        Field path used in error messages.
    base_dir : Path, optional
        Folder that relative file paths are resolved against.
    task : str, optional
        Force the task; inferred from the data when omitted.
    seed : int, optional
        Seed of the held-out split.
    """
    if isinstance(spec, (str, Path)):
        spec = {"source": str(spec)}
    spec = F.mapping(spec, path)
    F.only_keys(spec, ("source", "target", "test_size", "categorical", "text", "X", "y", "X_test", "y_test", "groups",
                       "sample_weight", "sample_weight_test"), path)
    y_test = None
    X_test = None
    if "X" in spec or "y" in spec:
        if "source" in spec:
            raise ProblemError(F.join(path, "source"), "give either source or X and y, not both")
        X, y = _arrays(spec.get("X"), spec.get("y"), path)
        if "X_test" in spec or "y_test" in spec:
            X_test, y_test = _arrays(spec.get("X_test"), spec.get("y_test"), path, suffix="_test")
        name = "arrays"
    else:
        source = F.string(spec.get("source"), F.join(path, "source"))
        if source.startswith("sklearn:"):
            X, y, bundled_task = _bundled(source[len("sklearn:"):], F.join(path, "source"))
            task = task or bundled_task
        else:
            X, y = _file(source, spec, path, base_dir)
        name = source
    X, groups = _groups(spec.get("groups"), X, F.join(path, "groups"))
    X, weights = _weights(spec.get("sample_weight"), X, F.join(path, "sample_weight"))
    weights_test = None
    if "sample_weight_test" in spec:
        if X_test is None:
            raise ProblemError(F.join(path, "sample_weight_test"), "weighs the rows of X_test, which is not given")
        weights_test = _weights(spec["sample_weight_test"], X_test, F.join(path, "sample_weight_test"),
                                by_column=False)[1]
    task_reason = ""
    if task is None:
        task, task_reason = infer_task(y)
    examples = records(X.head(EXAMPLES)) if not X.columns.duplicated().any() else []  # normalise refuses those
    X = normalise(X, path)
    dates = date_parts(X, path)
    X = expand_dates(X, dates)
    categorical = _categorical(X, spec.get("categorical"), F.join(path, "categorical"))
    text = text_columns(X, categorical, spec.get("text"), F.join(path, "text"))
    categorical = [c for c in categorical if c not in text]
    X = as_text(as_categories(X, categorical), text)
    if X_test is not None:
        X_test = as_text(as_categories(expand_dates(normalise(X_test, path), dates), categorical), text)
    _check(X, y, task, path)
    if X_test is not None:
        if list(X_test.columns) != list(X.columns):
            raise ProblemError(F.join(path, "X_test"), "columns differ from the training columns")
        _check(X_test, y_test, task, path, suffix="_test")
    elif "test_size" in spec:
        test_size = F.number(spec["test_size"], F.join(path, "test_size"), minimum=0, exclusive=True)
        if test_size >= 1:
            raise ProblemError(F.join(path, "test_size"), f"must be < 1, got {test_size:g}")
        train, test = _split(X, y, test_size, task, seed, F.join(path, "test_size"), groups)
        X, X_test = X.iloc[train].reset_index(drop=True), X.iloc[test].reset_index(drop=True)
        y, y_test = y[train], y[test]
        groups = None if groups is None else groups[train]
        weights, weights_test = (None, None) if weights is None else (weights[train], weights[test])
    return Dataset(X, y, task, name, X_test, y_test, categorical, dates, task_reason, examples, groups, weights,
                   weights_test, text)


def _per_row(given: Any, X: pd.DataFrame, path: str, what: str, by_column: bool = True
             ) -> tuple[pd.DataFrame, np.ndarray]:
    """One value per row: a column of the table (taken out of the features) or an array."""
    if isinstance(given, str) and by_column:
        if given not in X.columns:
            raise ProblemError(path, f"column {given!r} is not in the data (columns: {list(X.columns)[:10]})")
        return X.drop(columns=given), X[given].to_numpy()
    values = np.asarray(given)
    if values.ndim != 1 or len(values) != len(X):
        raise ProblemError(path, f"expected one {what} per row ({len(X)}), got shape {values.shape}")
    return X, values


def _groups(given: Any, X: pd.DataFrame, path: str) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The rows' groups (see :func:`_per_row`); none missing."""
    if given is None:
        return X, None
    X, groups = _per_row(given, X, path, "group")
    if pd.isna(pd.Series(groups)).any():
        raise ProblemError(path, "a row has no group (missing value)")
    return X, groups


def _weights(given: Any, X: pd.DataFrame, path: str, by_column: bool = True
             ) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The rows' weights (see :func:`_per_row`): numbers, finite, >= 0, not all 0."""
    if given is None:
        return X, None
    X, raw = _per_row(given, X, path, "weight", by_column)
    try:
        weights = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise ProblemError(path, f"expected numbers, got {F.describe(raw[0]) if len(raw) else 'nothing'}") from None
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        row = int(bad.argmax())
        raise ProblemError(path, f"weights must be finite and >= 0; row {row} has {weights[row]:g}")
    if not weights.any():
        raise ProblemError(path, "every weight is zero: no row would count")
    return X, weights


EXAMPLES = 32
"""Raw training rows kept as JSON records (:attr:`Dataset.examples`)."""


def records(X: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the JSON records a service receives: dates as ISO 8601 strings, time deltas as seconds, missing as
    None, numbers exact."""
    def plain(value: Any) -> Any:
        if serving.is_missing(value):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if isinstance(value, pd.Timedelta):
            return value.total_seconds()
        return value.item() if isinstance(value, np.generic) else value

    rows = [{str(k): plain(v) for k, v in row.items()} for row in X.to_dict("records")]
    json.dumps(rows, default=str)  # JSON-able, as a service receives them
    return rows


def as_categories(X: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as strings, missing values as the category :data:`MISSING`.

    Done once when the data are loaded, so the Python pipeline and the
    exported ONNX graph (string inputs) see the same categories.
    """
    if not categorical:
        return X
    X = X.copy()
    for column in categorical:
        values = X[column]
        X[column] = values.astype(object).where(values.notna(), MISSING).astype(str)
    return X


TEXT_MIN_WORDS = 3.0
"""Mean words (runs of non-space characters) per value from which a string column may be free text."""
TEXT_MIN_DISTINCT = 20
"""Distinct values from which a string column may be free text (and at least :data:`TEXT_MIN_SHARE` of its
values): fewer are categories, whatever their length (``"Not at all likely"``)."""
TEXT_MIN_SHARE = 0.1
TEXT_FEATURES = 300
"""Most TF-IDF features (the most frequent words) a text column gives the pipeline's front: its output is dense
(the exported graphs take dense rows), so a wide vocabulary would be rows x words floats."""


def text_columns(X: pd.DataFrame, categorical: list[str], given: Any, path: str) -> list[str]:
    """The free-text columns: ``given`` (a list of columns, ``[]`` for none), else the string columns among
    ``categorical`` whose values are sentences: at least :data:`TEXT_MIN_DISTINCT` distinct values (and
    :data:`TEXT_MIN_SHARE` of the values) of :data:`TEXT_MIN_WORDS` words or more on average.  A column of
    identifiers (``user_81723``) has many distinct values but one word each: a category."""
    if given is not None:
        names = [F.string(c, F.join(path, i)) for i, c in enumerate(F.sequence(given, path))]
        for i, n in enumerate(names):
            if n not in X.columns or pd.api.types.is_numeric_dtype(X[n]) and not pd.api.types.is_bool_dtype(X[n]):
                raise ProblemError(F.join(path, i), f"column {n!r} is not a string column of the data")
        return names
    out = []
    for name in categorical:
        values = X[name].dropna()
        if pd.api.types.is_bool_dtype(values) or not len(values):
            continue
        strings = values.astype(str)
        distinct = strings.nunique()
        if distinct >= max(TEXT_MIN_DISTINCT, TEXT_MIN_SHARE * len(strings)) and \
                strings.str.split().str.len().mean() >= TEXT_MIN_WORDS:
            out.append(name)
    return out


def as_text(X: pd.DataFrame, text: list[str]) -> pd.DataFrame:
    """Text columns as their lowercased words joined by spaces (:func:`~admm_tune.serving.rows.words`), missing
    values as ``""`` (no words), as the serving contract prepares them (:mod:`admm_tune.serving.rows`): ONNX
    Runtime's tokenizer changes no case (its ``StringNormalizer`` needs a system locale) and reads ``\\w`` as
    ASCII, so the words are found in Python, by both, and the graph only splits on spaces."""
    if not text:
        return X
    X = X.copy()
    for column in text:
        values = X[column]
        X[column] = [words(v) for v in values.astype(object).where(values.notna(), "").astype(str)]
    return X


MAX_CLASSES = 20
"""An integer target with more distinct values than this (and than 5 % of the rows) is taken as regression."""


def infer_task(y: np.ndarray) -> tuple[str, str]:
    """The task a target calls for, and why, in words.

    Classification for labels (strings, booleans, categories) and for
    integer-valued targets (integers, or floats that are all whole
    numbers, as scikit-learn's ``type_of_target`` reads them) with few
    distinct values: at most ``max(MAX_CLASSES, 5 % of the rows)`` and at
    most half the rows (so that a class has two rows on average).  Else
    regression.

    Returns
    -------
    task : {"classification", "regression"}
    reason : str
        E.g. ``"task inferred: regression (a float target with 150 distinct values); set `task:` to override"``.
    """
    override = "; set `task:` (or use the other estimator) to override"
    if y.dtype.kind in "OUSb" or isinstance(y.dtype, pd.CategoricalDtype):
        return CLASSIFICATION, f"task inferred: classification (a target of labels, {y.dtype}){override}"
    distinct = len(np.unique(y))
    kind = "an integer" if y.dtype.kind in "iu" else "a float"
    whole = y.dtype.kind in "iu" or bool(np.all(np.mod(y, 1) == 0))
    if whole and distinct <= max(MAX_CLASSES, 0.05 * len(y)) and distinct <= len(y) / 2:
        return CLASSIFICATION, (f"task inferred: classification ({kind} target of whole numbers with {distinct} "
                                f"distinct values in {len(y)} rows){override}")
    return REGRESSION, f"task inferred: regression ({kind} target with {distinct} distinct values in {len(y)} rows)" \
        + override


MAX_DENSE_CELLS = 20_000_000
"""Largest sparse matrix (rows × columns) made dense: 160 MB as float64."""

_ISO_DATE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"


def normalise(X: pd.DataFrame, path: str = "data") -> pd.DataFrame:
    """Column dtypes as the pipelines take them (see the module docstring); a copy when anything changes.

    Raises
    ------
    ProblemError
        A numeric column holds infinite values (named).
    """
    if X.columns.duplicated().any():
        raise ProblemError(path, f"duplicate column name {str(X.columns[X.columns.duplicated()][0])!r} (column "
                                 "names are compared as strings: 1 and '1' are the same)")
    out = {}
    for name in X.columns:
        column = X[name]
        if isinstance(column.dtype, pd.SparseDtype):
            column = column.sparse.to_dense()
        if pd.api.types.is_timedelta64_dtype(column):
            column = column.dt.total_seconds()
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        elif column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            column = _object_column(column)
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            column = pd.Series(column.to_numpy(dtype="float64", na_value=np.nan), index=column.index, name=name) \
                if pd.api.types.is_extension_array_dtype(column) else column
            values = column.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(values).any():
                raise ProblemError(path, f"column {str(name)!r} has infinite values (row {int(np.isinf(values).argmax())})"
                                         "; replace them by NaN (imputed) or finite numbers")
        out[name] = column
    return pd.DataFrame(out, index=X.index)


def _object_column(column: pd.Series) -> pd.Series:
    """A text/object column as numbers (all values numeric), datetimes (all ISO dates) or left as is."""
    values = column.dropna()
    if len(values) == 0:
        return column
    if values.map(lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))).all():
        return pd.to_numeric(column.astype(object).where(column.notna(), np.nan))
    if values.map(lambda v: isinstance(v, str)).all() and values.str.match(_ISO_DATE).all():
        parsed = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
        return parsed.dt.tz_localize(None)
    return column


def date_parts(X: pd.DataFrame, path: str = "data") -> dict[str, tuple[str, ...]]:
    """Datetime column → the parts it is expanded into: ``days`` and the :data:`DATE_PARTS` that vary in ``X``.

    Raises
    ------
    ProblemError
        When a part's column name (``COLUMN_PART``) is already a column of ``X``.
    """
    out = {}
    for name in X.columns:
        if pd.api.types.is_datetime64_any_dtype(X[name]):
            dt = X[name].dt
            out[str(name)] = ("days",) + tuple(p for p in DATE_PARTS if getattr(dt, p).nunique(dropna=True) > 1)
            taken = [f"{name}_{p}" for p in out[str(name)] if f"{name}_{p}" in X.columns]
            if taken:
                raise ProblemError(path, f"column {taken[0]!r} would be replaced by a part of the datetime column "
                                         f"{str(name)!r} (dates are expanded into COLUMN_PART columns); rename it")
    return out


def expand_dates(X: pd.DataFrame, dates: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """Replace each datetime column of ``dates`` by its numeric parts ``COLUMN_PART`` (NaT → NaN), in place order."""
    if not dates:
        return X
    out = {}
    for name in X.columns:
        if name not in dates:
            out[name] = X[name]
            continue
        when = pd.to_datetime(X[name], utc=True, errors="coerce").dt.tz_localize(None)
        for part in dates[name]:
            if part == "days":
                values = (when - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
            else:
                values = getattr(when.dt, part).astype("float64")
            out[f"{name}_{part}"] = values.astype("float64")
    return pd.DataFrame(out, index=X.index)


def _bundled(name: str, path: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    if name not in BUNDLED:
        raise ProblemError(path, f"unknown scikit-learn data set {name!r}; expected one of {sorted(BUNDLED)}")
    import sklearn.datasets

    loader, task = BUNDLED[name]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    return _frame(bunch.data, path), np.asarray(bunch.target), task


def _file(source: str, spec: Mapping[str, Any], path: str, base_dir: Path | None) -> tuple[pd.DataFrame, np.ndarray]:
    file = Path(source)
    if not file.is_absolute() and base_dir is not None:
        file = base_dir / file
    spath = F.join(path, "source")
    if not file.is_file():
        raise ProblemError(spath, f"file {str(file)!r} does not exist")
    try:
        if file.suffix == ".csv":
            frame = pd.read_csv(file)
        elif file.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(file)
        else:
            raise ProblemError(spath, f"expected a .csv or .parquet file or sklearn:NAME, got {source!r}")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ProblemError(spath, f"cannot read {str(file)!r}: {exc}") from None
    target = F.string(spec.get("target", "target"), F.join(path, "target"))
    if target not in frame.columns:
        raise ProblemError(F.join(path, "target"),
                           f"column {target!r} is not in {file.name} (columns: {list(frame.columns)[:10]})")
    y = as_target(frame.pop(target))
    frame.columns = [str(c) for c in frame.columns]
    return frame, y


def _frame(X: Any, path: str) -> pd.DataFrame:
    """Rows as a DataFrame with string column names: a DataFrame's own, else ``x0, x1, ...``.

    A scipy sparse matrix is made dense (at most :data:`MAX_DENSE_CELLS` cells).
    """
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame
    if scipy.sparse.issparse(X):
        cells = X.shape[0] * X.shape[1]
        if cells > MAX_DENSE_CELLS:
            raise ProblemError(path, f"a sparse matrix of {X.shape[0]} x {X.shape[1]} ({cells:,} cells) is too "
                                     f"large to make dense (at most {MAX_DENSE_CELLS:,}): the pipelines and their "
                                     "ONNX graphs take dense rows; select columns first")
        X = X.toarray()
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ProblemError(path, f"expected a 2-d array, got {arr.ndim} dimension(s)")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def as_target(y: Any) -> np.ndarray:
    """A target as a numpy array: pandas nullable numbers as float (``pd.NA`` as NaN), whole ones as integers."""
    if isinstance(y, (pd.Series, pd.Index)) and pd.api.types.is_extension_array_dtype(y.dtype) \
            and pd.api.types.is_numeric_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
        values = y.to_numpy(dtype="float64", na_value=np.nan)
        return values.astype(np.int64) if pd.api.types.is_integer_dtype(y.dtype) and not np.isnan(values).any() \
            else values
    if scipy.sparse.issparse(y):
        y = y.toarray()
    y = np.asarray(y)
    return y.astype(np.int64) if y.dtype.kind in "iu" else y  # int8 labels would make int8 graph outputs


def _arrays(X: Any, y: Any, path: str, suffix: str = "") -> tuple[pd.DataFrame, np.ndarray]:
    if X is None or y is None:
        raise ProblemError(F.join(path, f"X{suffix}" if X is None else f"y{suffix}"), "missing")
    frame = _frame(X, F.join(path, f"X{suffix}"))
    target = as_target(y)
    if target.ndim != 1:
        target = target.ravel() if target.ndim == 2 and target.shape[1] == 1 else target
    if target.ndim != 1:
        raise ProblemError(F.join(path, f"y{suffix}"), "expected a 1-d target")
    if len(target) != len(frame):
        raise ProblemError(F.join(path, f"y{suffix}"), f"has {len(target)} rows but X has {len(frame)}")
    return frame, target


def _categorical(X: pd.DataFrame, given: Any, path: str) -> list[str]:
    if given is None:
        return [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])
                or pd.api.types.is_bool_dtype(X[c])]
    names = [F.string(c, F.join(path, i)) for i, c in enumerate(F.sequence(given, path))]
    for i, n in enumerate(names):
        if n not in X.columns:
            raise ProblemError(F.join(path, i), f"column {n!r} is not in the data")
    return names


def _check(X: pd.DataFrame, y: np.ndarray, task: str, path: str, suffix: str = "") -> None:
    if len(X) == 0 or X.shape[1] == 0:
        raise ProblemError(path, f"data{suffix} is empty ({X.shape[0]} rows, {X.shape[1]} columns)")
    if not suffix and len(X) < 2:
        raise ProblemError(path, f"needs at least 2 rows, got n_samples={len(X)}")
    if X.columns.duplicated().any():
        dup = X.columns[X.columns.duplicated()][0]
        raise ProblemError(path, f"duplicate column name {dup!r}")
    if task == REGRESSION:
        try:
            values = y.astype(float)
        except (TypeError, ValueError):
            raise ProblemError(F.join(path, f"y{suffix}"), "a regression target must be numeric") from None
        if not np.isfinite(values).all():
            raise ProblemError(F.join(path, f"y{suffix}"), "the target has NaN or infinite values")
    else:
        if pd.isna(pd.Series(y)).any():
            raise ProblemError(F.join(path, f"y{suffix}"), "the target has missing values")
        if not suffix and len(np.unique(y)) < 2:
            raise ProblemError(F.join(path, "y"), "the target has a single class (one class only)")


def _split(X: pd.DataFrame, y: np.ndarray, test_size: float, task: str, seed: int | None, path: str,
           groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The held-out split's ``(train, test)`` row indices: stratified for classification; whole groups on either
    side when rows have groups."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    try:
        if groups is not None:
            return next(GroupShuffleSplit(1, test_size=test_size, random_state=seed).split(X, y, groups))
        stratify = y if task == CLASSIFICATION else None
        train, test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise ProblemError(path, f"cannot split the data: {exc}") from None
    return train, test
