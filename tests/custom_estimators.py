"""A classifier outside scikit-learn, for the allow-list test."""

from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class Wrapped(ClassifierMixin, BaseEstimator):
    """Logistic regression behind a class of another package."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, X, y):
        self.model_ = LogisticRegression(C=self.C, max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


class Sleepy(ClassifierMixin, BaseEstimator):
    """Logistic regression whose ``fit`` first sleeps ``delay`` seconds when it gets more than ``above`` rows.

    A candidate whose cost is forced: slow on every fit (``above=0``), or only on the refit on all rows
    (``above`` = the rows of a CV training fold).
    """

    def __init__(self, delay: float = 0.0, above: int = 0) -> None:
        self.delay = delay
        self.above = above

    def fit(self, X, y):
        import time

        if len(X) > self.above:
            time.sleep(self.delay)
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)

    def predict_proba(self, X):
        return self.model_.predict_proba(X)
