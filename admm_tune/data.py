"""Data sets of a problem: bundled scikit-learn sets, CSV/Parquet files, arrays.

Every loader returns a :class:`Dataset` whose ``X`` is a pandas DataFrame
(column names kept, so non-numeric columns can get the categorical front)
and whose ``y`` is a 1-d numpy array.  Data problems are reported as
:class:`~admm_tune.errors.ProblemError` naming the ``data`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _fields as F
from .errors import ProblemError

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
    """

    X: pd.DataFrame
    y: np.ndarray
    task: str
    name: str = "data"
    X_test: pd.DataFrame | None = None
    y_test: np.ndarray | None = None
    categorical: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        """Number of input columns."""
        return int(self.X.shape[1])

    @property
    def needs_front(self) -> bool:
        """Whether the data needs the imputer / one-hot front."""
        return bool(self.categorical) or bool(self.X.isna().any().any())


def load_dataset(spec: Any, path: str = "data", base_dir: Path | None = None,
                 task: str | None = None, seed: int | None = None) -> Dataset:
    """Load the data described by ``spec`` and check it.

    Parameters
    ----------
    spec : str or mapping
        ``"sklearn:NAME"``, a ``.csv``/``.parquet`` path, or a mapping with
        ``source`` (one of those), ``target``, ``test_size``, ``categorical``;
        from Python the mapping may hold ``X``, ``y`` (and ``X_test``,
        ``y_test``) as arrays or DataFrames instead of ``source``.
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
    F.only_keys(spec, ("source", "target", "test_size", "categorical", "X", "y", "X_test", "y_test"), path)
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
    task = task or infer_task(y)
    categorical = _categorical(X, spec.get("categorical"), F.join(path, "categorical"))
    X = as_categories(X, categorical)
    X_test = None if X_test is None else as_categories(X_test, categorical)
    _check(X, y, task, path)
    if X_test is not None:
        if list(X_test.columns) != list(X.columns):
            raise ProblemError(F.join(path, "X_test"), "columns differ from the training columns")
        _check(X_test, y_test, task, path, suffix="_test")
    elif "test_size" in spec:
        test_size = F.number(spec["test_size"], F.join(path, "test_size"), minimum=0, exclusive=True)
        if test_size >= 1:
            raise ProblemError(F.join(path, "test_size"), f"must be < 1, got {test_size:g}")
        X, X_test, y, y_test = _split(X, y, test_size, task, seed, F.join(path, "test_size"))
    return Dataset(X, y, task, name, X_test, y_test, categorical)


MISSING = "<missing>"
"""The category that stands for a missing value in a categorical column."""


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


def infer_task(y: np.ndarray) -> str:
    """Classification for non-float targets or few integer values, else regression."""
    if y.dtype.kind in "OUSb" or isinstance(y.dtype, pd.CategoricalDtype):
        return CLASSIFICATION
    if y.dtype.kind in "iu" and len(np.unique(y)) <= max(20, int(0.05 * len(y))):
        return CLASSIFICATION
    return REGRESSION


def _bundled(name: str, path: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    if name not in BUNDLED:
        raise ProblemError(path, f"unknown scikit-learn data set {name!r}; expected one of {sorted(BUNDLED)}")
    import sklearn.datasets

    loader, task = BUNDLED[name]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    X = bunch.data.copy()
    X.columns = [str(c) for c in X.columns]
    return X, np.asarray(bunch.target), task


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
    y = frame.pop(target).to_numpy()
    frame.columns = [str(c) for c in frame.columns]
    return frame, y


def _arrays(X: Any, y: Any, path: str, suffix: str = "") -> tuple[pd.DataFrame, np.ndarray]:
    if X is None or y is None:
        raise ProblemError(F.join(path, f"X{suffix}" if X is None else f"y{suffix}"), "missing")
    if isinstance(X, pd.DataFrame):
        frame = X.copy()
        frame.columns = [str(c) for c in frame.columns]
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ProblemError(F.join(path, f"X{suffix}"), f"expected a 2-d array, got {arr.ndim} dimension(s)")
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    target = np.asarray(y)
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


def _split(X: pd.DataFrame, y: np.ndarray, test_size: float, task: str, seed: int | None,
           path: str) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    stratify = y if task == CLASSIFICATION else None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise ProblemError(path, f"cannot split the data: {exc}") from None
    return X_train.reset_index(drop=True), X_test.reset_index(drop=True), y_train, y_test
