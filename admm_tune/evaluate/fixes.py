"""A backport of an upstream fix to scikit-learn, applied where admm_tune fits pipelines.

scikit-learn 1.7 to 1.9 bins a weighted feature of ``HistGradientBoosting*``
(``sample_weight``, or ``class_weight="balanced"``) by calling
``sklearn.utils.stats._weighted_percentile`` once per bin edge: 254 calls,
each sorting the column again, per feature, most of a weighted fit's time
on a small table; the default portfolio's first entries on imbalanced
tables are weighted HGBs.
scikit-learn's fix (pull request 34248, merged after 1.9.1) computes all
edges from one sort.  :func:`weighted_thresholds` does the same with NumPy:
the same edges, bit for bit (``tests/test_fixes.py`` compares them with
scikit-learn's own on columns with ties, zero weights and missing values),
from one sort and one cumulative sum.

:func:`apply` installs it in ``sklearn.ensemble._hist_gradient_boosting.binning``
of the running process, for the scikit-learn versions that lack the fix,
when that private module still has the function it replaces; anywhere else
it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

AFFECTED = ((1, 7), (1, 10))
"""scikit-learn versions ``[from, to)`` (major, minor) whose weighted binning calls the percentile per edge."""

_ORIGINAL: dict[str, Callable[..., np.ndarray]] = {}


def weighted_thresholds(col_data: np.ndarray, max_bins: int, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """scikit-learn's ``_find_binning_thresholds`` with the weighted quantiles computed at once.

    Parameters
    ----------
    col_data : ndarray of shape (n_samples,)
        One feature (float64; NaN for missing).
    max_bins : int
        Bins for the non-missing values.
    sample_weight : ndarray of shape (n_samples,), optional
        Without weights, or with at most ``max_bins`` distinct weighted values,
        scikit-learn's own function answers.

    Returns
    -------
    ndarray of shape (k,)
        Increasing bin edges, ``k <= max_bins - 1``, as scikit-learn's.
    """
    original = _ORIGINAL.get("find") or _find()
    if sample_weight is None:
        return original(col_data, max_bins, None)
    keep = ~np.isnan(col_data) & (sample_weight != 0)
    values, weights = col_data[keep], sample_weight[keep]
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    if len(np.unique(values)) <= max_bins:
        return original(col_data, max_bins, sample_weight)
    ranks = np.linspace(0, 100, num=max_bins + 1)[1:-1]
    edges = _averaged_inverted_cdf(values, weights, ranks)
    unique = np.unique(edges)
    if unique.shape[0] != edges.shape[0]:
        edges = unique
    from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF  # private: only where apply() installed it

    np.clip(edges, a_min=None, a_max=ALMOST_INF, out=edges)
    return edges


def _averaged_inverted_cdf(values: np.ndarray, weights: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``sklearn.utils.stats._weighted_percentile(values, weights, ranks, average=True)`` for a 1-d column
    without zero weights or NaN, every rank at once (the same sort, sums and comparisons)."""
    order = np.argsort(values.reshape(-1, 1), axis=0)[:, 0]  # as scikit-learn sorts (its input is 2-d)
    cdf = np.cumsum(weights[order])
    adjusted = ranks / 100 * cdf[-1]
    zero = adjusted == 0
    adjusted[zero] = np.nextafter(adjusted[zero], adjusted[zero] + 1)
    last = len(values) - 1
    at = np.clip(np.searchsorted(cdf, adjusted), 0, last)
    above = (cdf[at] - adjusted) > np.finfo(np.float64).eps
    here, after = values[order[at]], values[order[np.clip(at + 1, 0, last)]]
    return np.where(above, here, (here + after) / 2)


def _find() -> Callable[..., np.ndarray]:
    from sklearn.ensemble._hist_gradient_boosting import binning

    return binning._find_binning_thresholds


@cache
def _affected() -> bool:
    """Whether this scikit-learn is one of :data:`AFFECTED` (read once: every ``build_pipeline`` asks)."""
    import sklearn

    version = tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())
    return AFFECTED[0] <= version < AFFECTED[1]


def apply() -> bool:
    """Install :func:`weighted_thresholds` where scikit-learn lacks the fix; whether it did (idempotent)."""
    if not _affected():
        return False
    from sklearn.ensemble._hist_gradient_boosting import binning

    if getattr(binning, "_find_binning_thresholds", None) is None:
        return False
    if "find" not in _ORIGINAL:
        _ORIGINAL["find"] = binning._find_binning_thresholds
    binning._find_binning_thresholds = weighted_thresholds
    return True
