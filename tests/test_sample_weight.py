"""Sample weights: in every fit and score of the search, the refit and the test score; scikit-learn's idioms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, get_scorer
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate

import admm_tune
from admm_tune import AutoPipelineClassifier, ProblemError
from admm_tune.problem import load_problem

LINEAR = {"estimator": ["logistic_regression"], "scaler": ["standard"], "transformer": ["none"]}


def _corrupted(seed: int = 0, rows: int = 300, share: float = 0.6):
    """A separable table whose ``share`` of rows have flipped labels and weight 0: only the weights tell them."""
    X, y = make_classification(rows, 5, n_informative=3, n_redundant=0, n_clusters_per_class=1, flip_y=0.0,
                               class_sep=2.0, random_state=seed)
    rng = np.random.default_rng(seed)
    noisy = rng.random(rows) < share
    y = np.where(noisy, 1 - y, y)
    return X, y, np.where(noisy, 0.0, rng.uniform(0.5, 2.0, rows))


def test_zero_weight_rows_neither_train_nor_score_the_search():
    # 60 % of the labels are flipped, on rows of weight 0: weighted, the search fits and scores the clean rows
    # (near 1); unweighted it learns the flipped labels; with weights in the fit only it is scored on every row
    # (about 0.4), in the score only it is fitted to the flipped majority (near 0): none of them reaches 0.9.
    X, y, w = _corrupted()
    problem = {"data": {"X": X, "y": y, "sample_weight": w}, "restrict": LINEAR, "objective": {"cv": 3},
               "budget": {"evaluations": 2}, "seed": 0}
    weighted = admm_tune.fit(problem, progress=False, storage="memory")
    plain = admm_tune.fit({**problem, "data": {"X": X, "y": y}}, progress=False, storage="memory")
    assert weighted.best.metrics["cv_score"] > 0.9 > plain.best.metrics["cv_score"] + 0.2
    clean, rows = w > 0, weighted.problem.data.X  # the refit learnt the clean rows too
    assert balanced_accuracy_score(y[clean], weighted.pipeline.predict(rows[clean])) > 0.9


def test_a_fold_is_the_estimator_fitted_and_scored_with_the_fold_weights():
    from admm_tune.evaluate.pipeline import fit_and_score

    X, y, w = _corrupted(1)
    data = load_problem({"data": {"X": X, "y": y, "sample_weight": w}, "restrict": LINEAR}).data
    train, test = np.arange(0, 200), np.arange(200, 300)
    pipeline = sklearn.pipeline.Pipeline([("estimator", LogisticRegression())])
    fitted, score, _, _ = fit_and_score(pipeline, data, "accuracy", train, test)
    direct = LogisticRegression().fit(data.X.iloc[train], y[train], sample_weight=w[train])
    np.testing.assert_allclose(fitted[-1].coef_, direct.coef_)
    assert score == pytest.approx(get_scorer("accuracy")(direct, data.X.iloc[test], y[test], sample_weight=w[test]))


def test_a_weight_column_of_the_table_is_taken_out_of_the_features_and_the_test_split_keeps_its_weights():
    X, y, w = _corrupted(2)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(weight=w)
    problem = load_problem({"data": {"X": frame, "y": y, "sample_weight": "weight", "test_size": 0.25},
                            "restrict": LINEAR, "seed": 0})
    data = problem.data
    assert "weight" not in data.X.columns and len(data.sample_weight) == len(data.y)
    assert len(data.sample_weight_test) == len(data.y_test) == 75
    assert sorted(np.r_[data.sample_weight, data.sample_weight_test]) == sorted(w)
    result = admm_tune.fit(problem, budget=2, progress=False, storage="memory")
    scorer = get_scorer(problem.objective.scoring)
    expected = scorer(result.pipeline, data.X_test, data.y_test, sample_weight=data.sample_weight_test)
    assert result.test_scores["pipeline"] == pytest.approx(expected)
    assert expected != pytest.approx(scorer(result.pipeline, data.X_test, data.y_test))  # the weights count


def test_estimators_whose_fit_takes_no_weights_are_left_out_and_named():
    X, y, w = _corrupted(3)
    problem = load_problem({"data": {"X": X, "y": y, "sample_weight": w}})
    names = problem.space.modules[-1].names
    assert {"knn", "lda", "qda"}.isdisjoint(names) and "logistic_regression" in names
    assert any("knn, lda, qda left out: the data has sample weights" in n for n in problem.notes)
    assert "knn" in load_problem({"data": {"X": X, "y": y}}).space.modules[-1].names
    with pytest.raises(ProblemError, match=r"^data\.sample_weight: no estimator of the space takes sample weights"):
        load_problem({"data": {"X": X, "y": y, "sample_weight": w}, "restrict": {"estimator": ["knn", "qda"]}})


@pytest.mark.parametrize(("weights", "reason"), [
    (lambda n: -np.ones(n), "finite and >= 0; row 0 has -1"),
    (lambda n: np.r_[np.nan, np.ones(n - 1)], "finite and >= 0; row 0 has nan"),
    (lambda n: np.zeros(n), "every weight is zero"),
    (lambda n: np.ones(n - 1), "expected one weight per row"),
    (lambda n: np.array(["a"] * n), "expected numbers"),
    (lambda n: "no such column", "column 'no such column' is not in the data"),
])
def test_bad_weights_are_refused_naming_the_field(weights, reason):
    X, y, _ = _corrupted(4, rows=40)
    with pytest.raises(ProblemError, match=r"^data\.sample_weight: ") as refused:
        load_problem({"data": {"X": X, "y": y, "sample_weight": weights(40)}})
    assert reason in str(refused.value)


def test_a_scorer_that_takes_no_weights_is_refused_when_the_rows_have_them():
    X, y, w = _corrupted(5, rows=60)

    def plain(estimator, X, y):
        return float((estimator.predict(X) == y).mean())

    with pytest.raises(ProblemError, match=r"^objective\.scoring: plain takes no sample_weight"):
        load_problem({"data": {"X": X, "y": y, "sample_weight": w}, "objective": {"scoring": plain}})
    load_problem({"data": {"X": X, "y": y}, "objective": {"scoring": plain}})  # unweighted: fine

    def weighted(estimator, X, y, sample_weight=None):
        return float(np.average(estimator.predict(X) == y, weights=sample_weight))

    load_problem({"data": {"X": X, "y": y, "sample_weight": w}, "objective": {"scoring": weighted}})


@pytest.mark.slow
def test_scikit_learn_passes_weights_to_fit_as_it_routes_them():
    X, y, w = _corrupted(6, rows=200)
    est = AutoPipelineClassifier(search_space={"modules": [{"name": "estimator", "algorithms": [
        {"name": "lr", "class": "sklearn.linear_model.LogisticRegression"}]}]}, max_evals=1, random_state=0)
    clean = w > 0

    def on_clean_rows(**params) -> list[float]:  # routing off: params are fit parameters
        fitted = cross_validate(est, X, y, cv=2, params=params, return_estimator=True)["estimator"]
        return [balanced_accuracy_score(y[clean], e.predict(X[clean])) for e in fitted]

    assert min(on_clean_rows(sample_weight=w)) > 0.9 > 0.5 > max(on_clean_rows())  # the fits learnt the clean rows
    with sklearn.config_context(enable_metadata_routing=True):
        routed = est.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        assert cross_val_score(routed, X, y, cv=2, params={"sample_weight": w}).mean() > 0.9  # fit and score
    grid = GridSearchCV(est, {"cv": [2, 3]}, cv=2).fit(X, y, sample_weight=w)
    assert grid.best_estimator_.result_.problem.data.sample_weight is not None
