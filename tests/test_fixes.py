"""The backport of scikit-learn's weighted binning (admm_tune/evaluate/fixes.py) gives scikit-learn's own edges."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting import binning

from admm_tune.evaluate import fixes


def scikit_learns():
    """scikit-learn's own function, whether or not the backport is installed in this process."""
    return fixes._ORIGINAL.get("find", binning._find_binning_thresholds)


def columns(seed: int):
    """Columns of every kind the edges depend on: continuous, few distinct values (ties), rounded, with zero
    weights and with missing values; weights continuous or from a few levels (sums that tie)."""
    rng = np.random.default_rng(seed)
    for case in range(40):
        n = int(rng.integers(260, 2500))
        x = [rng.normal(size=n), rng.integers(0, 400, n).astype(float), np.round(rng.exponential(size=n), 2),
             rng.integers(0, 300, n) / 7.0][case % 4]
        w = rng.choice([0.5, 1.0, 2.0, 3.7, 1 / 3], n) if case % 2 else rng.random(n)
        if case % 5 == 0:
            w[rng.random(n) < 0.1] = 0.0
        if case % 3 == 0:
            x[rng.random(n) < 0.05] = np.nan
        yield x, w


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("max_bins", [255, 31])
def test_the_edges_are_scikit_learns_bit_for_bit(seed, max_bins):
    for x, w in columns(seed):
        assert np.array_equal(fixes.weighted_thresholds(x.copy(), max_bins, w.copy()),
                              scikit_learns()(x.copy(), max_bins, w.copy()))
        assert np.array_equal(fixes.weighted_thresholds(x.copy(), max_bins), scikit_learns()(x.copy(), max_bins))


def test_a_weighted_hist_gradient_boosting_fit_is_the_same_model_with_the_backport(monkeypatch):
    X, y = load_breast_cancer(return_X_y=True)
    weights = np.where(y == 0, 2.5, 1.0)
    monkeypatch.setattr(binning, "_find_binning_thresholds", scikit_learns())
    plain = [HistGradientBoostingClassifier(class_weight="balanced", random_state=0).fit(X, y),
             HistGradientBoostingRegressor(random_state=0).fit(X, y, sample_weight=weights)]
    assert fixes.apply() and fixes.apply()  # idempotent
    assert binning._find_binning_thresholds is fixes.weighted_thresholds
    ported = [HistGradientBoostingClassifier(class_weight="balanced", random_state=0).fit(X, y),
              HistGradientBoostingRegressor(random_state=0).fit(X, y, sample_weight=weights)]
    for a, b in zip(plain, ported):
        assert all(np.array_equal(p, q) for p, q in zip(a._bin_mapper.bin_thresholds_, b._bin_mapper.bin_thresholds_))
        assert np.array_equal(a.predict(X), b.predict(X))
