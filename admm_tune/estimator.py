"""scikit-learn estimators that run the whole search in ``fit``.

:class:`AutoPipelineClassifier` and :class:`AutoPipelineRegressor` build a
:class:`~admm_tune.problem.Problem` from their parameters and the data given
to ``fit``, run :func:`admm_tune.fit` and then behave as the winning
pipeline (refit on all of ``X``).  Parameters are stored unchanged in
``__init__`` and validated in ``fit``, as scikit-learn expects, so
``clone``, ``GridSearchCV`` over them, ``cross_val_score`` and pickling work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils._available_if import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .data import CLASSIFICATION, REGRESSION, as_categories
from .errors import ProblemError
from .journal import MEMORY
from .problem import Limits
from .result import Result
from .runner import fit as run_fit

DEFAULT_EVALUATIONS = 30
"""Evaluations of a search when neither ``max_evals`` nor ``time_budget`` is given."""


def _winner_has(method: str) -> Any:
    """``available_if`` check: present before ``fit`` (raising NotFittedError), after it only if the winner has it."""

    def check(estimator: _AutoPipeline) -> bool:
        pipeline = getattr(estimator, "best_pipeline_", None)
        return pipeline is None or hasattr(pipeline, method)

    return check


class _AutoPipeline(BaseEstimator):
    """What the classifier and the regressor share; see :class:`AutoPipelineClassifier`."""

    _task = ""

    def __init__(self, search_space: str | Mapping[str, Any] = "default",
                 deployment: str | Mapping[str, Any] | None = None,
                 constraints: Mapping[str, float] | Sequence[Mapping[str, Any]] | None = None,
                 scoring: str | None = None, cv: int = 3, max_evals: int | None = None,
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
        tags.non_deterministic = self.random_state is None
        return tags

    # -- fitting ---------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> _AutoPipeline:
        """Search pipelines (and deployments) for ``X, y`` and refit the best on all of it.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            A DataFrame may hold non-numeric columns (they get the one-hot front).
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        checked, y = validate_data(self, X, y, dtype=None, ensure_all_finite="allow-nan", reset=True,
                                   y_numeric=self._task == REGRESSION)
        if self._task == CLASSIFICATION:
            check_classification_targets(y)
            self.classes_ = np.unique(y)
        result = run_fit(self._problem(self._frame(X, checked), y), n_jobs=self.n_jobs, progress=self.verbose > 0,
                         storage=self.storage if self.storage is not None else MEMORY)
        self.result_: Result = result
        self.best_pipeline_ = result.pipeline
        self.best_params_ = dict(result.best.config)
        self.best_score_ = float(result.best.metrics.get("cv_score", -result.best.loss))
        self.deployment_ = result.deployment
        return self

    def _problem(self, X: pd.DataFrame, y: np.ndarray) -> dict[str, Any]:
        if self.max_evals is None and self.time_budget is None:
            budget: dict[str, Any] = {"evaluations": DEFAULT_EVALUATIONS}
        else:
            budget = {"evaluations": self.max_evals, "seconds": self.time_budget}
        objective: dict[str, Any] = {"cv": self.cv}
        if self.scoring is not None:
            objective["scoring"] = self.scoring
        problem: dict[str, Any] = {
            "name": type(self).__name__, "task": self._task, "data": {"X": X, "y": y}, "objective": objective,
            "search_space": self._task if self.search_space == "default" else self.search_space,
            "constraints": _constraints(self.constraints), "budget": budget, "seed": self.random_state,
            "isolation": {"seconds": self.time_limit, "memory_mb": self.memory_limit_mb}}
        if self.deployment is not None:
            problem["deployment"] = self.deployment
        return problem

    def _frame(self, X: Any, checked: np.ndarray) -> pd.DataFrame:
        """The rows as the problem's data: a DataFrame keeps its columns, arrays get ``x0, x1, ...``."""
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
            frame.columns = [str(c) for c in frame.columns]
            return frame
        return pd.DataFrame(np.asarray(checked, dtype=float), columns=[f"x{i}" for i in range(checked.shape[1])])

    # -- predicting ------------------------------------------------------------------
    def _rows(self, X: Any) -> pd.DataFrame:
        """Rows to predict, prepared like the training data (categorical columns as strings)."""
        check_is_fitted(self, "best_pipeline_")
        checked = validate_data(self, X, dtype=None, ensure_all_finite="allow-nan", reset=False)
        return as_categories(self._frame(X, checked), self.result_.problem.data.categorical)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the best pipeline."""
        rows = self._rows(X)
        return self.best_pipeline_.predict(rows)

    def export_onnx(self, path: str | Path) -> Path:
        """Write the best pipeline as an ONNX graph (float32 input) to ``path``; return the path."""
        import onnx

        from .evaluate.export import export

        check_is_fitted(self, "best_pipeline_")
        model = export(self.best_pipeline_, self.result_.problem.data.X.iloc[:5])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(model, path)
        return path


class AutoPipelineClassifier(ClassifierMixin, _AutoPipeline):
    """A classifier whose ``fit`` searches pipelines (and their deployment) by ADMM.

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
    scoring : str, optional
        scikit-learn scorer name; default balanced accuracy.
    cv : int, default=3
        Cross-validation folds of the search.
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
    result_ : Result
        The whole run (trials, ADMM trace).
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray
        Only when ``X`` had string column names.
    """

    _task = CLASSIFICATION

    @available_if(_winner_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the best pipeline (when it has them)."""
        rows = self._rows(X)
        return self.best_pipeline_.predict_proba(rows)

    @available_if(_winner_has("decision_function"))
    def decision_function(self, X: Any) -> np.ndarray:
        """Decision scores of the best pipeline (when it has them)."""
        rows = self._rows(X)
        return self.best_pipeline_.decision_function(rows)


class AutoPipelineRegressor(RegressorMixin, _AutoPipeline):
    """A regressor whose ``fit`` searches pipelines (and their deployment) by ADMM.

    Parameters and attributes are those of :class:`AutoPipelineClassifier`
    (without ``classes_``); the default scoring is R².
    """

    _task = REGRESSION


def _constraints(spec: Mapping[str, float] | Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """The list form of ``constraints``: a mapping's values are ``max`` bounds (``min`` for throughput)."""
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [{"metric": k, "min" if k == "throughput_rps" else "max": v} for k, v in spec.items()]
    if isinstance(spec, (list, tuple)):
        return list(spec)
    raise ProblemError("constraints", f"expected a mapping or a list, got {type(spec).__name__}")
