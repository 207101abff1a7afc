"""The ML part of a candidate: config → scikit-learn ``Pipeline`` → CV loss.

:func:`build_pipeline` turns a config into an unfitted pipeline (the fixed
categorical front first, when the data needs it); :class:`MLEvaluator`
scores it by k-fold cross-validation (stratified for classification) and
caches results by the ML configuration.
"""

from __future__ import annotations

import inspect
import json
import math
import signal
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ..data import CLASSIFICATION, REGRESSION, TEXT_FEATURES, Dataset, GroupedSplits
from ..errors import ProblemError
from ..observation import COMPLETE, Observation
from ..problem import Objective
from ..registry import resolve_class
from ..space import Config, Float, SearchSpace, param_key
from . import fixes
from .rungs import nested_order, predicted_seconds, rung_sizes


def front(data: Dataset) -> BaseEstimator:
    """The fixed front of every pipeline: it imputes missing numbers, one-hot encodes categories and turns free
    text into TF-IDF features of its words.

    All-numeric data get a median imputer (one float input in ONNX, in
    standard operators: :mod:`.converters`), also when the training rows have
    no missing value, so that a row served with one is imputed, never NaN
    probabilities (``docs/serving.md``).  Data with categorical columns get a
    column transformer: one-hot for those, median imputer for the others (one
    ONNX input per column).  Missing categories are already the category ``<missing>``
    (:func:`~admm_tune.data.as_categories`), so no categorical imputer is
    needed, which skl2onnx could not export for strings.  A column without
    any value is kept (imputed as 0: ``keep_empty_features``), so that the
    exported graph takes every column of the table.  A text column
    (:func:`~admm_tune.data.text_columns`, already lowercased) gets a
    ``TfidfVectorizer`` of at most :data:`TEXT_FEATURES` words; skl2onnx
    exports it with ONNX Runtime's ``Tokenizer`` operator, which OpenVINO
    does not run (:mod:`admm_tune.problem` leaves it out for such data).
    """
    if not data.categorical and not data.text:
        return SimpleImputer(strategy="median", keep_empty_features=True)
    parts: list[tuple[str, Any, Any]] = []
    if data.numeric:
        parts.append(("numeric", SimpleImputer(strategy="median", keep_empty_features=True), data.numeric))
    if data.categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                      list(data.categorical)))
    for i, column in enumerate(data.text):  # a scalar column: the vectorizer takes one string per row
        parts.append((f"text{i}", TfidfVectorizer(lowercase=False, token_pattern=r"\S+", max_features=TEXT_FEATURES,
                                                  dtype=np.float32), column))
    return ColumnTransformer(parts, sparse_threshold=0.0, verbose_feature_names_out=False)



CALIBRATION_FOLDS = 3
"""Inner folds of the sigmoid calibration given to classifiers without ``predict_proba``."""


def build_pipeline(config: Mapping[str, Any], space: SearchSpace, data: Dataset, seed: int | None = None,
                   probabilities: bool = False) -> Pipeline:
    """An unfitted scikit-learn pipeline for ``config``.

    Parameters
    ----------
    config : mapping
        A complete config of ``space``.
    space : SearchSpace
    data : Dataset
        Decides the front and resolves ``relative_to: n_features``.
    seed : int, optional
        Passed as ``random_state`` to every step that takes one.
    probabilities : bool
        A classifier without ``predict_proba`` (LinearSVC, RidgeClassifier,
        SVC) becomes ``CalibratedClassifierCV(method="sigmoid",
        ensemble=False)`` around it: fitted on all rows, its decision scores
        mapped to probabilities by a sigmoid fitted on
        :data:`CALIBRATION_FOLDS`-fold out-of-fold scores.  skl2onnx converts
        it, so the calibrated probabilities are deployed too.

    A regressor is fitted on the standardised target
    (``TransformedTargetRegressor`` with a ``StandardScaler``): estimators
    sensitive to the target's scale (MLP, SVR, SGD) then fit a target at
    1e7 ± 3 as one at 0 ± 1, and the exported graph predicts the
    standardised value, which float32 holds at any scale; the mean and scale
    are restored in float64 outside it (:func:`~.export.restore`).

    Weighted ``HistGradientBoosting*`` fits bin their features with
    scikit-learn's pending fix (:mod:`.fixes`): the same model, from one
    sort per feature instead of one per bin edge.
    """
    fixes.apply()
    steps: list[tuple[str, BaseEstimator]] = [("front", front(data))]
    for module_name, _, algo in space.active(config):
        if algo.estimator is None:
            continue
        cls = resolve_class(algo.estimator, f"search_space.{module_name}.{algo.name}.class")
        kwargs: dict[str, Any] = dict(algo.fixed)
        for p in algo.params:
            value = config[param_key(module_name, algo.name, p.name)]
            if isinstance(p, Float) and p.relative_to == "n_features":
                value = int(max(1, min(data.n_features, round(value * data.n_features))))
            kwargs[p.name] = value
        if "random_state" in inspect.signature(cls).parameters and "random_state" not in kwargs:
            kwargs["random_state"] = seed
        step = cls(**kwargs)
        if probabilities and data.task == CLASSIFICATION and module_name == space.module_names[-1] \
                and not hasattr(step, "predict_proba"):
            step = CalibratedClassifierCV(step, method="sigmoid", cv=CALIBRATION_FOLDS, ensemble=False)
        if data.task == REGRESSION and module_name == space.module_names[-1]:
            step = TransformedTargetRegressor(regressor=step, transformer=StandardScaler())
        steps.append((module_name, step))
    if not steps or space.module_names[-1] not in dict(steps):
        raise ProblemError("search_space", "the last module must choose an estimator (it has no class)")
    return Pipeline(steps)


def fit_params(pipeline: Pipeline, weights: np.ndarray | None) -> dict[str, Any]:
    """The ``fit`` keyword that gives the rows' ``weights`` to the pipeline's estimator (its last step; a
    calibrated or target-scaled estimator passes them on), or none."""
    return {} if weights is None else {f"{pipeline.steps[-1][0]}__sample_weight": weights}


def fit_and_score(pipeline: Pipeline, data: Dataset, scoring: Any, train: np.ndarray, test: np.ndarray
                  ) -> tuple[Pipeline, float, float, float]:
    """``pipeline`` (a clone) fitted on the ``train`` rows of ``data`` and scored on its ``test`` rows, both
    weighted by the data's ``sample_weight`` when it has them (scikit-learn's ``cross_validate`` passes fit
    parameters but gives its scorers no weights).

    Returns
    -------
    (fitted, score, fit_seconds, score_seconds)
    """
    weights = data.sample_weight
    fitted = clone(pipeline)
    began = time.perf_counter()
    fitted.fit(data.X.iloc[train], data.y[train], **fit_params(fitted, None if weights is None else weights[train]))
    fit_s = time.perf_counter() - began
    weighted = {} if weights is None else {"sample_weight": weights[test]}
    score = float(get_scorer(scoring)(fitted, data.X.iloc[test], data.y[test], **weighted))
    return fitted, score, fit_s, time.perf_counter() - began - fit_s


@dataclass
class Final:
    """The chosen config as a run hands it over: its pipeline and, with a deployment, its deployed graph.

    Made by an evaluator's ``final`` (refit on all training rows) or, when
    that could not finish in the time left, its ``fallback`` (what the
    search already fitted and verified).
    """

    pipeline: Pipeline | None
    source: str
    """Which pipeline this is: ``refit on all N training rows``, or the fallback and why."""
    deployed: Any = None
    """The deployment's :class:`~admm_tune.evaluate.deploy.Deployed` (None without one)."""
    error: str = ""
    """Why the pipeline could not be deployed, when it could not."""
    config: dict[str, Any] | None = None
    """The full config whose deployment :attr:`deployed` is: the search's, or the deployment race's winner."""
    race: dict[str, Any] | None = None
    """The deployment race (:mod:`~admm_tune.evaluate.race`): ``note``, ``rounds`` and ``contenders``."""


STOP_SPREADS = 2.0
"""A candidate is clearly worse when its fold losses exceed the incumbent's on the same folds, on average, by more
than this many standard deviations of the incumbent's fold losses (:func:`clearly_worse`)."""


def clearly_worse(losses: Sequence[float], incumbent: Sequence[float], folds: int, last: bool = True) -> bool:
    """Whether a candidate's first fold ``losses`` show it clearly worse than the ``incumbent``'s fold losses.

    Folds are seeded, so fold ``i`` of both is the same split and the
    comparison is paired: the fold's difficulty cancels.  Clearly worse:
    the mean paired difference exceeds :data:`STOP_SPREADS` times the
    standard deviation of the incumbent's fold losses (the spread of one
    fold's estimate).  Never once every fold of the ``last`` rung is done
    (nothing left to save), nor without an incumbent of ``folds`` losses.

    Parameters
    ----------
    losses : sequence of float, length j <= folds
    incumbent : sequence of float, length ``folds`` (or empty)
    folds : int
    last : bool
        Whether these folds are the evaluation's last rung's (:mod:`.rungs`).
    """
    j = len(losses)
    if not 0 < j <= folds or (last and j == folds) or len(incumbent) != folds:
        return False
    gap = float(np.mean(np.subtract(losses, incumbent[:j])))
    return gap > STOP_SPREADS * float(np.std(incumbent, ddof=1))


STOPPED_WORSE = "clearly worse than the incumbent"
"""``Observation.attrs["stopped"]`` of an evaluation stopped by :func:`clearly_worse`: it cannot become the best, so
nothing more of it (its other folds, its deployment) is worth measuring."""

REFIT_SHARE = 0.8
"""Under a time limit, a final refit is predicted to take at most this share of the time left (the rest: the
prediction's error); else it fits fewer rows (:meth:`MLEvaluator.climb_refit`)."""

KEPT_FOLD_PIPELINES = 4
"""First-fold pipelines an evaluator without ``keep_fitted`` keeps: those of its lowest losses (the fallback)."""


@dataclass
class Holdout:
    """The pipeline fitted on the first CV fold's training rows (of the last rung scored), and that fold's held-out
    rows."""

    pipeline: Pipeline
    rows: np.ndarray
    fitted: int
    """How many training rows the pipeline was fitted on."""


class MLEvaluator:
    """Scores ML configs by cross-validation, with a cache keyed by the config.

    Parameters
    ----------
    space : SearchSpace
    data : Dataset
    objective : Objective
    seed : int, optional
        Seeds the folds and every estimator, so a config always gets the same loss.
    keep_fitted : bool
        Keep each config's first-fold pipeline and held-out rows
        (:attr:`holdouts`), for the deployment step to export and verify
        without fitting again.

    Attributes
    ----------
    n_fits : int
        Pipelines fitted so far (one per fold done of each evaluated config).
    """

    def __init__(self, space: SearchSpace, data: Dataset, objective: Objective, seed: int | None = None,
                 keep_fitted: bool = False) -> None:
        self.space = space
        self.data = data
        self.objective = objective
        self.seed = seed
        self.keep_fitted = keep_fitted
        self.cache: dict[str, Observation] = {}
        self.holdouts: dict[str, Holdout] = {}
        self.n_fits = 0
        self._order: np.ndarray | None = None  # the rungs' row permutation (made on first use)
        self._partial: Observation | None = None  # the running evaluation's result so far (see interrupted)
        self._first: float | None = None  # the running evaluation's seconds to its first result
        self._fitted: dict[str, Holdout] = {}  # the running evaluation's last rung's first-fold pipeline
        self._scored: dict[str, tuple[int, float]] = {}  # config key → (rows a fold fitted, its mean fit seconds)
        self._refitted: tuple[str, Final] | None = None  # the last refit a climb finished (see climb_refit)

    @staticmethod
    def key(config: Config) -> str:
        """Cache key of an ML config."""
        return json.dumps(config, sort_keys=True, default=str)

    affinity = key
    """Configs with the same key go to the same worker (see :class:`admm_tune.parallel.WorkerPool`)."""

    def folds(self, split: int = 0) -> Any:
        """The CV splitter (shuffled, seeded; stratified for classification); ``split`` > 0: a fresh one.

        The search scores every candidate on split 0; :meth:`rescore` uses
        splits 1, 2, ... (shuffled with ``seed + split``).  A problem with
        its own splitter (``objective.splitter``: groups, time order, given
        folds) always gets it, with the data's groups.
        """
        if self.objective.splitter is not None:
            return GroupedSplits(self.objective.splitter, self.data.groups)
        cls = StratifiedKFold if self.data.task == CLASSIFICATION else KFold
        return cls(n_splits=self.objective.cv, shuffle=True, random_state=(self.seed or 0) + split)

    @property
    def rungs(self) -> tuple[int, ...]:
        """Rows of each rung a candidate is scored on (:mod:`.rungs`): all rows only, for a table under 20,000
        rows or a problem with its own splitter (groups, time order: a random subsample would break it)."""
        if self.objective.splitter is not None:
            return (len(self.data.y),)
        return rung_sizes(len(self.data.y))

    def rung_rows(self, n: int) -> np.ndarray | None:
        """The training rows of the rung of ``n`` rows (sorted), or None for all of them."""
        if n >= len(self.data.y):
            return None
        if self._order is None:
            self._order = nested_order(np.asarray(self.data.y), self.data.task == CLASSIFICATION, self.seed)
        return np.sort(self._order[:n])

    def __call__(self, config: Config, incumbent: Sequence[float] = (), seconds: float | None = None
                 ) -> Observation:
        """Evaluate one config, rung by rung and fold by fold; a crash becomes a failed observation.

        Each rung (:attr:`rungs`; one, all rows, unless the table is tall) is
        scored by ``cv``-fold cross-validation on its rows.  The evaluation
        stops early, with a ``fidelity`` under 1, when the candidate is
        clearly worse than the incumbent on the folds done of a rung
        (:func:`clearly_worse`), or when the next rung's predicted seconds
        (:func:`~.rungs.predicted_seconds`) exceed the time left.  Its loss
        is then the mean over the folds done of its last rung, its
        ``fidelity`` that rung's share of the rows times its share of folds
        done, and it is not cached.

        Parameters
        ----------
        config : Config
        incumbent : sequence of float
            The step losses of the best evaluation so far (its observation's
            ``step_losses``: ``cv`` fold losses per rung, on the same seeded
            rungs and folds); empty: nothing is compared.
        seconds : float, optional
            Time the evaluation may take; default: what is left of the
            interval timer the worker set (:mod:`admm_tune.parallel`), if any.
        """
        key = self.key(config)
        if key in self.cache:
            return self.cache[key].replayed()
        start = time.perf_counter()
        allowed = seconds if seconds is not None else (signal.getitimer(signal.ITIMER_REAL)[0] or None)
        self._partial = None
        try:
            pipeline = self.build(config)
            # One thread per candidate: parallelism is across candidates, and
            # OpenMP/BLAS pools fighting over busy cores slow fits down by 10-100x.
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                obs = self._climb(key, pipeline, incumbent, start, allowed)
        except Exception as exc:  # any failure of a candidate is recorded, never fatal
            # a class that does not import fails whatever its parameters: the structure is not tried again
            structural = {"structural": ",".join(self.space.module_names)} if isinstance(exc, ImportError) else {}
            obs = Observation.failed(f"error: {type(exc).__name__}: {exc}"[:500], time.perf_counter() - start,
                                     **structural)
        obs.attrs["cache_hit"] = False
        if obs.ok:  # also of one stopped early: a deployment of it is still measured
            self._hold(key, obs)
        self._fitted.pop(key, None)
        if obs.fidelity >= 1.0:  # one stopped early, asked again without an incumbent, is evaluated in full
            self.cache[key] = obs
        return obs

    def _climb(self, key: str, pipeline: Pipeline, incumbent: Sequence[float], start: float,
               allowed: float | None) -> Observation:
        """Score ``pipeline`` up the rungs (see :meth:`__call__`); keep the partial result for :meth:`interrupted`
        (on a tall table fold by fold, else rung by rung) and the last rung's first-fold pipeline in ``_fitted``."""
        cv, sizes = self.objective.cv, self.rungs
        steps: list[float] = []
        done_rows: list[int] = []
        done_seconds: list[float] = []
        self._first = None
        obs = Observation.failed("error: no fold was scored")
        for r, n in enumerate(sizes):
            began, last = time.perf_counter(), r == len(sizes) - 1
            rows = self.rung_rows(n)
            every = np.arange(len(self.data.y)) if rows is None else rows
            scores: list[float] = []
            fits: list[tuple[float, float]] = []
            losses: list[float] = []
            for train, test in self.folds().split(every, self.data.y[every]):
                self.n_fits += 1
                fitted, score, fit_s, score_s = fit_and_score(pipeline, self.data, self.objective.scoring,
                                                              every[train], every[test])
                if not scores:
                    self._fitted[key] = Holdout(fitted, every[test], len(train))
                scores.append(score)
                fits.append((fit_s, score_s))
                if not np.all(np.isfinite(scores)):
                    return Observation.failed("error: non-finite CV score", time.perf_counter() - start)
                losses = [float(self.objective.loss(v)) for v in scores]
                if len(sizes) > 1:  # a tall table's result is kept fold by fold: a time-out answers with it
                    self._keep(key, scores, fits, steps + losses, n, len(train), start)
                if clearly_worse(losses, incumbent[r * cv:(r + 1) * cv], cv, last):
                    break
            steps += losses
            obs = self._keep(key, scores, fits, steps, n, len(train), start)
            if len(scores) < cv:
                obs.attrs["stopped"] = STOPPED_WORSE
                break
            if last:
                break
            done_rows.append(n)
            done_seconds.append(time.perf_counter() - began)
            if allowed is not None and time.perf_counter() - start + predicted_seconds(
                    done_rows, done_seconds, sizes[r + 1]) > allowed:
                break
        return obs

    def _keep(self, key: str, scores: list[float], fits: list[tuple[float, float]], steps: list[float], rows: int,
              fitted_rows: int, start: float) -> Observation:
        """The observation of the folds scored so far, kept as the partial result (:meth:`interrupted`) and as the
        fit times :meth:`climb_refit` predicts from (``fitted_rows``: a fold's training rows)."""
        obs = self._observation(scores, fits, steps, rows, start)
        self._first = obs.duration_s if self._first is None else self._first
        obs.attrs["first_result_s"] = self._first
        self._partial = obs
        self._scored[key] = (fitted_rows, obs.metrics["fit_time_s"])
        return obs

    def _observation(self, scores: list[float], fits: list[tuple[float, float]], steps: list[float], rows: int,
                     start: float) -> Observation:
        """The observation of an evaluation whose last rung (``rows`` rows) scored ``scores``."""
        test, times = np.asarray(scores, dtype=float), np.asarray(fits)
        metrics = {"cv_score": float(test.mean()), "cv_score_std": float(test.std()),
                   "fit_time_s": float(times[:, 0].mean()), "score_time_s": float(times[:, 1].mean())}
        n_rows, cv = len(self.data.y), self.objective.cv
        return Observation(COMPLETE, self.objective.loss(metrics["cv_score"]), metrics,
                           duration_s=time.perf_counter() - start,
                           attrs={"fidelity": rows / n_rows * len(test) / cv, "folds_done": len(test),
                                  "rows": rows, "step_losses": list(steps)})

    def interrupted(self, config: Config, reason: str) -> Observation | None:
        """What the evaluation of ``config`` cut off by its time limit (``reason``) had scored, at its fidelity
        (on a tall table: its folds done; else its rungs done), or None (nothing was); its last rung's first-fold
        pipeline is kept (:attr:`holdouts`) as for an evaluation that returned."""
        obs, self._partial = self._partial, None
        if obs is None or obs.fidelity >= 1.0:
            return None
        self._hold(self.key(config), obs)  # its first-fold pipeline, as for an evaluation that returned
        obs.attrs.update(cache_hit=False, stopped=reason)
        return obs

    def _hold(self, key: str, obs: Observation) -> None:
        """Keep the evaluation's first-fold pipeline (``_fitted``) in :attr:`holdouts`, which keep the
        :data:`KEPT_FOLD_PIPELINES` of the lowest losses unless ``keep_fitted``."""
        fitted = self._fitted.pop(key, None)
        if fitted is None:
            return
        self.holdouts[key] = fitted
        if not self.keep_fitted and len(self.holdouts) > KEPT_FOLD_PIPELINES:  # the worst goes, the
            order = {k: i for i, k in enumerate(self.holdouts)}  # newest of equals (the best is the oldest)
            del self.holdouts[max(self.holdouts, key=lambda k: (
                self.cache[k].loss if k in self.cache else obs.loss, order[k]))]

    def build(self, config: Config) -> Pipeline:
        """The unfitted pipeline of ``config`` (calibrated when the objective asks for probabilities)."""
        return build_pipeline(config, self.space, self.data, self.seed,
                              getattr(self.objective, "probabilities", False))

    def final(self, config: Config, seconds: float | None = None) -> Final | dict[str, Any]:
        """The pipeline of ``config`` refit on all training rows, or on the most rows that ``seconds`` allow
        (:meth:`climb_refit`); given a race (a mapping with ``finalists``), the finalists re-scored
        (:meth:`rescore`): the runner's two final steps, run isolated by ``Pool.final``."""
        if "finalists" in config:
            return self.rescore(config)
        return self.climb_refit(config, seconds)

    def climb_refit(self, config: Config, seconds: float | None = None) -> Final:
        """``config`` refit on all training rows, or, on a tall table under a time limit, up the rungs.

        Without a limit (``seconds``, default what is left of the worker's
        interval timer), or on a table of one rung, all rows.  Else it
        starts at the largest rung whose predicted fit (from the config's
        own fold fits in :meth:`__call__`, :func:`~.rungs.predicted_seconds`)
        takes at most :data:`REFIT_SHARE` of the time (the smallest rung when
        this evaluator never scored the config: a worker started after the
        search's was lost), and fits the next rung while its predicted
        seconds, from the last refit's, fit in that share of the time left.
        The last refit done stands in if the time runs out (:meth:`fallback`).
        """
        key, n, start = self.key(config), len(self.data.y), time.perf_counter()
        self._refitted = None
        left = seconds if seconds is not None else (signal.getitimer(signal.ITIMER_REAL)[0] or None)
        sizes = self.rungs
        if left is None or len(sizes) == 1:
            return Final(self.refit(config), f"refit on all {n} training rows")
        scored = self._scored.get(key)
        fits = [i for i, m in enumerate(sizes)
                if scored is not None and predicted_seconds([scored[0]], [scored[1]], m) <= REFIT_SHARE * left]
        done: tuple[int, float, Final] | None = None  # the last refit: its rows, seconds and result
        for m in sizes[fits[-1] if fits else 0:]:
            remaining = left - (time.perf_counter() - start)
            if done is not None and predicted_seconds([done[0]], [done[1]], m) > REFIT_SHARE * remaining:
                break
            began = time.perf_counter()
            pipeline = self.refit(config, self.rung_rows(m))
            done = (m, time.perf_counter() - began, Final(pipeline, f"refit on all {n} training rows" if m == n
                                                          else f"refit on {m} of {n} training rows"))
            self._refitted = (key, done[2])
        assert done is not None  # the first rung is always fitted
        if done[0] < n:
            done[2].source += f": the time left ({left:.1f} s) allows no more (the fit took {done[1]:.2g} s)"
        return done[2]

    def rescore(self, race: Mapping[str, Any]) -> dict[str, Any]:
        """The finalists' fold losses on fresh CV splits, in interleaved rounds.

        Round ``r`` scores every finalist on split ``r`` (:meth:`folds`), so a
        round cut short by time never compares finalists on different rows.

        Parameters
        ----------
        race : mapping
            ``finalists`` (configs), ``rounds`` (at most this many) and
            ``seconds`` (None: no limit): a round after the first starts only
            when the previous one's duration says it ends within ``seconds``
            of the call's start.

        Returns
        -------
        dict
            ``losses``: per finalist, its ``cv`` fold losses per round done,
            or the error that stopped it (a string); ``rounds``: how many
            ran; ``seconds``: the wall time.
        """
        start = time.perf_counter()
        deadline = math.inf if race.get("seconds") is None else start + float(race["seconds"])
        losses: list[list[list[float]] | str] = [[] for _ in race["finalists"]]
        rounds, took = 0, 0.0
        for split in range(1, int(race["rounds"]) + 1):
            if rounds and time.perf_counter() + took > deadline:
                break
            began = time.perf_counter()
            for i, config in enumerate(race["finalists"]):
                if isinstance(losses[i], str):
                    continue
                try:
                    pipeline = self.build(config)
                    with warnings.catch_warnings(), threadpool_limits(1):
                        warnings.simplefilter("ignore")
                        scores = [fit_and_score(pipeline, self.data, self.objective.scoring, train, test)[1]
                                  for train, test in self.folds(split).split(self.data.X, self.data.y)]
                    losses[i].append([float(self.objective.loss(v)) for v in scores])
                except Exception as exc:  # a finalist that fails now drops out; the others go on
                    losses[i] = f"error: {type(exc).__name__}: {exc}"[:300]
            rounds, took = rounds + 1, time.perf_counter() - began
        return {"losses": losses, "rounds": rounds, "seconds": time.perf_counter() - start}

    def fallback(self, config: Config, reason: str) -> Final | dict[str, Any]:
        """What is left when :meth:`final` could not finish (``reason``): the last refit a climb finished
        (:meth:`climb_refit`), else the first CV fold's pipeline, if kept (for a race: no round)."""
        if "finalists" in config:
            return {"losses": [], "rounds": 0, "seconds": 0.0, "error": reason}
        if self._refitted is not None and self._refitted[0] == self.key(config):
            final = self._refitted[1]
            final.source += f": the refit on more did not finish ({reason})"
            return final
        holdout = self.holdouts.get(self.key(config))
        if holdout is None:
            return Final(None, f"none: the refit on all training rows did not finish ({reason})")
        n = len(self.data.y)
        return Final(holdout.pipeline, f"the first CV fold's pipeline, fitted on {holdout.fitted} of {n} "
                                       f"training rows: the refit on all of them did not finish ({reason})")

    def refit(self, config: Config, rows: np.ndarray | None = None) -> Pipeline:
        """The pipeline of ``config`` fitted on all training data, or on the training ``rows`` given."""
        pipeline = self.build(config)
        X, y, weights = self.data.X, self.data.y, self.data.sample_weight
        if rows is not None:
            X, y, weights = X.iloc[rows], y[rows], None if weights is None else weights[rows]
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            return pipeline.fit(X, y, **fit_params(pipeline, weights))
