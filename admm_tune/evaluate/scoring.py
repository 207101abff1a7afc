"""Scores of outputs already computed (a deployed graph's), with any scikit-learn scorer.

A scorer calls ``predict`` / ``predict_proba`` / ``decision_function`` on an
estimator; :class:`Outputs` answers them with the deployed graph's outputs,
so the graph gets exactly the score the Python pipeline would get from the
same scorer.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import get_scorer


class _Outputs(BaseEstimator):
    """Stands for a fitted model whose outputs on the scored rows are already known."""

    def __init__(self, predictions: np.ndarray, probabilities: np.ndarray | None = None,
                 decisions: np.ndarray | None = None) -> None:
        self.predictions = predictions
        self.probabilities = probabilities
        self.decisions = decisions

    def fit(self, X: Any, y: Any = None) -> _Outputs:
        """Nothing to fit."""
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The known predictions."""
        return self.predictions

    def predict_proba(self, X: Any) -> np.ndarray:
        """The known class probabilities."""
        if self.probabilities is None:
            raise AttributeError("the deployed graph gives no probabilities")
        return self.probabilities

    def decision_function(self, X: Any) -> np.ndarray:
        """The known decision scores (a classifier without probabilities)."""
        if self.decisions is None:
            raise AttributeError("the deployed graph gives no decision scores")
        return self.decisions


class _ClassifierOutputs(ClassifierMixin, _Outputs):
    """Known outputs of a classifier (``classes_`` set by :func:`score_outputs`)."""


class _RegressorOutputs(RegressorMixin, _Outputs):
    """Known outputs of a regressor."""


def score_outputs(scoring: str, y: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None = None,
                  classes: np.ndarray | None = None, sample_weight: np.ndarray | None = None,
                  decisions: np.ndarray | None = None) -> float:
    """The score ``scoring`` gives outputs computed elsewhere, on the rows whose targets are ``y``.

    Parameters
    ----------
    scoring : str
        A scikit-learn scorer name.
    y : ndarray
        Targets of the scored rows.
    predictions : ndarray
        Labels (classification, ``classes`` given) or values (regression).
    probabilities : ndarray, optional
        Class probabilities, columns in the order of ``classes``.
    classes : ndarray, optional
        The classes; None for regression.
    sample_weight : ndarray, optional
        The rows' weights, given to the scorer.
    decisions : ndarray, optional
        Decision scores, as scikit-learn's ``decision_function`` gives them (a classifier without probabilities).

    Returns
    -------
    float
        NaN when the scorer needs outputs the graph does not give.
    """
    if classes is None:
        model: _Outputs = _RegressorOutputs(np.asarray(predictions).reshape(-1))
    else:
        model = _ClassifierOutputs(np.asarray(predictions).reshape(-1),
                                   None if probabilities is None else np.asarray(probabilities, dtype=float),
                                   None if decisions is None else np.asarray(decisions, dtype=float))
        model.classes_ = np.asarray(classes)
    rows = np.zeros((len(y), 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weighted = {} if sample_weight is None else {"sample_weight": sample_weight}
            return float(get_scorer(scoring)(model, rows, y, **weighted))
    except AttributeError:
        return float("nan")
