"""scikit-learn estimators that run the whole search in ``fit``.

:class:`AutoPipelineClassifier` and :class:`AutoPipelineRegressor` build a
:class:`~admm_tune.problem.Problem` from their parameters and the data given
to ``fit``, run :func:`admm_tune.fit` and then behave as the winning
pipeline (refit on all of ``X``).  Parameters are stored unchanged in
``__init__`` and validated in ``fit``, as scikit-learn expects, so
``clone``, ``GridSearchCV`` over them, ``cross_val_score`` and pickling work.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .data import CLASSIFICATION, REGRESSION, as_target
from .errors import InfeasibleWarning
from .journal import MEMORY
from .problem import Limits
from .result import Result
from .runner import fit as run_fit

DEFAULT_EVALUATIONS = 30
"""Evaluations of a search when neither ``max_evals`` nor ``time_budget`` is given."""


class _AutoPipeline(BaseEstimator):
    """What the classifier and the regressor share; see :class:`AutoPipelineClassifier`."""

    _task = ""

    def __init__(self, search_space: str | Mapping[str, Any] = "default",
                 deployment: str | Mapping[str, Any] | None = None,
                 constraints: Mapping[str, float] | Sequence[Mapping[str, Any]] | None = None,
                 scoring: str | Callable[..., float] | None = None, cv: Any = 3, max_evals: int | None = None,
                 time_budget: float | None = None, n_jobs: int = 1, random_state: int | None = None,
                 storage: str | None = None, verbose: int = 0, time_limit: float | None = Limits.seconds,
                 memory_limit_mb: int | None = None) -> None:
        self.search_space = search_space
        self.deployment = deployment
        self.constraints = constraints
        self.scoring = scoring
        self.cv = cv
        self.max_evals = max_evals
        self.time_budget = time_budget
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.storage = storage
        self.verbose = verbose
        self.time_limit = time_limit
        self.memory_limit_mb = memory_limit_mb

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # the pipeline's front imputes missing values
        tags.input_tags.sparse = True  # made dense by the data layer (the ONNX graphs take dense rows)
        tags.non_deterministic = self.random_state is None
        return tags

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X: Any, y: Any, groups: Any = None, sample_weight: Any = None) -> _AutoPipeline:
        """Search pipelines (and deployments) for ``X, y`` and refit the best on all of it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            A DataFrame may hold non-numeric columns (they get the one-hot front).
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            The group of each row, for a group-aware ``cv`` (``GroupKFold(3)``...), as scikit-learn's
            ``cross_validate(..., groups=...)`` takes them; the search's CV then never splits a group.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights (finite, >= 0, not all 0), given to every fit of the estimator and every score of the
            search, and to the refit; estimators whose ``fit`` takes no weights (k-NN, LDA, QDA, ARD) are left
            out of the space (``result_.problem.notes``).  Reaches ``fit`` from ``cross_val_score(...,
            params={"sample_weight": w})`` and ``GridSearchCV.fit(..., sample_weight=w)`` as scikit-learn
            routes it (with metadata routing enabled: ``set_fit_request(sample_weight=True)``, and
            ``set_score_request(sample_weight=True)`` for scikit-learn's outer scores, which then get the weights too).

        Returns
        -------
        self
        """
        rows, y = self._checked(X, y, fitting=True)
        if self._task == CLASSIFICATION:
            check_classification_targets(y)
            self.classes_ = np.unique(y)
        problem = self._problem(rows, y)
        if groups is not None:
            problem["data"]["groups"] = column_or_1d(np.asarray(groups))
        if sample_weight is not None:
            problem["data"]["sample_weight"] = column_or_1d(np.asarray(sample_weight))
        result = run_fit(problem, n_jobs=self.n_jobs, progress=self.verbose > 0,
                         storage=self.storage if self.storage is not None else MEMORY)
        self.result_: Result = result
        self.best_pipeline_ = result.pipeline
        self.best_params_ = dict(result.best.config)
        self.best_score_ = float(result.best.metrics.get("cv_score", -result.best.loss))
        self.deployment_ = result.deployment
        self.feasible_ = result.feasible
        if not self.feasible_:
            warnings.warn(f"{type(self).__name__}: the result does not meet every requirement: "
                          + "; ".join(result.shortfalls()), InfeasibleWarning, stacklevel=2)
        return self

    def _folds(self, y: np.ndarray) -> Any:
        """``cv``, reduced (with a warning) to the rarest class's count when that is smaller, as inside an outer CV;
        a splitter or a list of ``(train, test)`` pairs as it is."""
        if self._task != CLASSIFICATION or isinstance(self.cv, bool) or not isinstance(self.cv, int):
            return self.cv
        rarest = int(np.unique(y, return_counts=True)[1].min())
        if rarest >= self.cv or rarest < 2:  # < 2: no stratified CV at all; the problem says so
            return self.cv
        warnings.warn(f"{type(self).__name__}: the rarest class has {rarest} rows, fewer than cv={self.cv}; "
                      f"the search cross-validates with {rarest} folds", UserWarning, stacklevel=3)
        return rarest

    def _problem(self, X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
        if self.max_evals is None and self.time_budget is None:
            budget: dict[str, Any] = {"evaluations": DEFAULT_EVALUATIONS}
        else:
            budget = {"evaluations": self.max_evals, "seconds": self.time_budget}
        objective: dict[str, Any] = {"cv": self._folds(y), "probabilities": self._task == CLASSIFICATION}
        if self.scoring is not None:
            objective["scoring"] = self.scoring
        problem: dict[str, Any] = {
            "name": type(self).__name__, "task": self._task, "data": {"X": X, "y": y}, "objective": objective,
            "search_space": self._task if self.search_space == "default" else self.search_space,
            "constraints": self.constraints, "budget": budget, "seed": self.random_state,
            "isolation": {"seconds": self.time_limit, "memory_mb": self.memory_limit_mb}}
        if self.deployment is not None:
            problem["deployment"] = self.deployment
        return problem

    def _checked(self, X: Any, y: Any = None, fitting: bool = False) -> tuple[Any, Any]:
        """``X`` (and ``y``) as the problem's data takes them, checked as scikit-learn checks its estimators' input.

        A DataFrame keeps its columns (named as strings: ``0`` is ``"0"``) and
        their dtypes, since dates, nullable numbers and categories are
        prepared by the data layer (:meth:`admm_tune.data.Dataset.prepare`):
        only its feature names and count are checked.  Arrays and sparse
        matrices go through scikit-learn's validation (sparse ones are made
        dense by the data layer).
        """
        if isinstance(X, pd.DataFrame):
            X = X.rename(columns=str)
            validate_data(self, X, reset=fitting, skip_check_array=True)
            if not fitting:
                return X, None
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
            y = as_target(y)
            if self._task == REGRESSION:
                y = check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=True)
            return X, column_or_1d(y, warn=True)
        if not fitting:
            checked = validate_data(self, X, accept_sparse=True, dtype=None, ensure_all_finite="allow-nan",
                                    reset=False)
        else:
            checked, y = validate_data(self, X, None if y is None else as_target(y), accept_sparse=True, dtype=None,
                                       ensure_all_finite="allow-nan", reset=True, y_numeric=self._task == REGRESSION)
        # an array's values are numbers (an object array of anything else is a TypeError, as in scikit-learn)
        return (checked if scipy.sparse.issparse(checked) else np.asarray(checked, dtype=float)), y

    # -- predicting ------------------------------------------------------------------
    def _rows(self, X: Any) -> pd.DataFrame:
        """Rows to predict, prepared like the training data (dates expanded, categories as strings...)."""
        check_is_fitted(self, "best_pipeline_")
        return self.result_.problem.data.prepare(self._checked(X)[0])

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the best pipeline."""
        rows = self._rows(X)
        return self.best_pipeline_.predict(rows)

    def export_onnx(self, path: str | Path, force: bool = False) -> Path:
        """Write the deployed graph to ``path`` (``*.onnx``); return the path.

        With ``deployment``, this is :meth:`Result.export <admm_tune.Result.export>`:
        the graph the chosen deployment runs (int8: quantised), verified and
        timed after the refit, with ``deployment.json`` and ``load_model.py``
        beside it.  Without ``deployment``, the float32 graph of
        :attr:`best_pipeline_`, unverified.

        Parameters
        ----------
        path : path
            The graph's file; a path without the ``.onnx`` suffix is a directory
            (the graph is ``model.onnx`` in it).
        force : bool
            Export even a graph that failed verification (see :attr:`feasible_`).

        Raises
        ------
        RunError
            When the deployed graph failed verification and ``force`` is False.
        """
        check_is_fitted(self, "best_pipeline_")
        if self.deployment_ is not None:
            return self.result_.export(path, force=force)
        import onnx

        from .evaluate.export import export

        model = export(self.best_pipeline_, self.result_.problem.data.X.iloc[:5])
        path = Path(path)
        path = path if path.suffix == ".onnx" else path / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, path)
        return path


class AutoPipelineClassifier(ClassifierMixin, _AutoPipeline):
    """A classifier whose ``fit`` searches pipelines (and their deployment) by ADMM.

    Its methods do not depend on which candidate wins: ``predict``,
    ``predict_proba`` and ``score`` always (classifiers without
    ``predict_proba`` are calibrated inside the search), never
    ``decision_function``.  A ``cv`` larger than the rarest class is reduced
    to it, with a warning (as inside an outer cross-validation).

    Parameters
    ----------
    search_space : str or mapping, default="default"
        ``"default"`` (the bundled classification space), a bundled name, a
        YAML path or a mapping (see ``docs/problem-format.md``).
    deployment : str or mapping, optional
        ``"cpu"``, ``"gpu"`` or a deployment mapping: search the inference
        deployment too, and measure latency, size and accuracy drop.
    constraints : mapping or list, optional
        ``{"latency_p95_ms": 1.0}`` (each a ``max`` bound; ``throughput_rps``
        a ``min``) or the list form ``[{"metric": ..., "max": ...}]``.
    scoring : str, scorer or callable, optional
        A scikit-learn scorer name, a scorer object (``make_scorer(fbeta_score, beta=2)``) or a callable
        ``(estimator, X, y) -> float`` (greater is better); default balanced accuracy.  One that cannot score
        the target (``roc_auc`` on three classes, ``r2`` on classes) is refused by ``fit``, naming alternatives.
    cv : int, splitter or iterable, default=3
        Cross-validation of the search: a number of folds (shuffled, stratified), a scikit-learn splitter
        (``GroupKFold(3)`` with ``fit(X, y, groups=...)``, ``StratifiedGroupKFold``, ``TimeSeriesSplit``,
        ``PredefinedSplit``...) or ``(train, test)`` index pairs; with a splitter, the finalists are not
        re-scored on fresh splits (there are none to draw).
    max_evals : int, optional
        Evaluation budget (default 30 when ``time_budget`` is not given either).
    time_budget : float, optional
        Seconds of search.
    n_jobs : int, default=1
        Candidates evaluated in parallel (asynchronously).
    random_state : int, optional
        Seed; with ``max_evals`` and ``n_jobs=1`` the search is reproducible.
    storage : str, optional
        SQLAlchemy URL of the journal; default: in memory.
    verbose : int, default=0
        > 0 shows the progress line.
    time_limit : float or None, default=600
        Wall-clock limit of one candidate's evaluation, in seconds.
    memory_limit_mb : int, optional
        Memory limit of the worker process that evaluates candidates (MiB, >= 256).

    Attributes
    ----------
    best_pipeline_ : sklearn.pipeline.Pipeline
        The best feasible pipeline, refit on all of ``X``.
    best_params_ : dict
        Its configuration (algorithms, hyper-parameters, deployment choices).
    best_score_ : float
        Its cross-validated score.
    deployment_ : dict or None
        Backend, precision, knobs and measured figures (with ``deployment``).
    feasible_ : bool
        The best candidate met every constraint and its deployed graph passed
        verification; when not, ``fit`` warned with
        :class:`~admm_tune.InfeasibleWarning` (naming each missed constraint
        and by how much) and :meth:`export_onnx` refuses a graph that failed
        verification unless ``force=True``.
    result_ : Result
        The whole run (trials, ADMM trace).
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray
        Only when ``X`` had string column names.
    """

    _task = CLASSIFICATION

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the best pipeline, columns in the order of :attr:`classes_`.

        Always offered: the search calibrates classifiers without
        ``predict_proba`` inside their pipelines (sigmoid, see
        ``objective.probabilities`` in ``docs/problem-format.md``), so the
        calibrated probabilities were scored, deployed and verified too.
        """
        rows = self._rows(X)
        return self.best_pipeline_.predict_proba(rows)


class AutoPipelineRegressor(RegressorMixin, _AutoPipeline):
    """A regressor whose ``fit`` searches pipelines (and their deployment) by ADMM.

    Parameters and attributes are those of :class:`AutoPipelineClassifier`
    (without ``classes_``); the default scoring is R².
    """

    _task = REGRESSION

