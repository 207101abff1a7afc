"""The ML kind's final re-scoring: the best few candidates on fresh CV splits, the mean over all folds chooses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import cross_validate

import admm_tune
from admm_tune import rescore
from admm_tune.data import load_dataset
from admm_tune.evaluate.pipeline import MLEvaluator, build_pipeline
from admm_tune.problem import Objective
from admm_tune.result import Result
from admm_tune.space import SearchSpace

KNN = {"scaler": "standard", "transformer": "none", "estimator": "knn"}


@pytest.fixture(scope="module")
def evaluator() -> MLEvaluator:
    space = SearchSpace.load("classification")
    return MLEvaluator(space, load_dataset("sklearn:breast_cancer"), Objective("balanced_accuracy", 3), seed=3)


def test_rescore_scores_each_finalist_on_fresh_splits_round_by_round(evaluator):
    space = evaluator.space
    finalists = [space.complete(KNN), space.complete({**KNN, "estimator": "gaussian_nb"})]
    answer = evaluator.final({"finalists": finalists, "rounds": 2, "seconds": None})
    assert answer["rounds"] == 2 and len(answer["losses"]) == 2
    for config, rounds in zip(finalists, answer["losses"]):
        assert [len(r) for r in rounds] == [3, 3]
        for split, losses in enumerate(rounds, start=1):  # round r is split r, shuffled with seed + r
            direct = cross_validate(evaluator.build(config), evaluator.data.X, evaluator.data.y,
                                    cv=evaluator.folds(split), scoring="balanced_accuracy")["test_score"]
            assert losses == pytest.approx([1 - v for v in direct])
        assert rounds[0] != rounds[1]  # two different splits
        assert rounds[0] != evaluator(config).step_losses  # and neither is the search's own
    assert [evaluator.folds(0).random_state, evaluator.folds(2).random_state] == [3, 5]


def test_a_finalist_failing_on_a_fresh_split_drops_out_and_time_bounds_the_rounds(evaluator):
    space = evaluator.space
    broken = space.complete(KNN, {"estimator.knn.n_neighbors": 50})
    broken["estimator.knn.n_neighbors"] = 10_000  # more neighbours than training rows: predict raises
    ok = space.complete(KNN)
    answer = evaluator.final({"finalists": [broken, ok], "rounds": 3, "seconds": 0.0})
    assert answer["rounds"] == 1  # the first round always runs; no time was left for a second
    assert isinstance(answer["losses"][0], str) and answer["losses"][0].startswith("error: ValueError")
    assert len(answer["losses"][1]) == 1
    timed_out = evaluator.fallback({"finalists": [ok], "rounds": 2, "seconds": 1.0}, "timeout: over the 1 s limit")
    assert timed_out["rounds"] == 0 and timed_out["error"].startswith("timeout")


@pytest.fixture(scope="module")
def long_run(tmp_path_factory) -> Result:
    """A run with enough evaluations to be re-scored: five cheap classifiers on a noisy 300-row set."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=10, n_informative=4, flip_y=0.15, random_state=1)
    run_dir = tmp_path_factory.mktemp("rescored")
    table = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y)
    table.to_csv(run_dir / "noisy.csv", index=False)  # a file, so that the run can be loaded back
    problem = {"name": "rescored", "data": {"source": str(run_dir / "noisy.csv"), "target": "label"},
               "objective": {"cv": 3},
               "restrict": {"estimator": ["logistic_regression", "knn", "decision_tree", "gaussian_nb", "lda"],
                            "transformer": ["none", "pca"], "scaler": ["none", "standard"]},
               "budget": {"evaluations": rescore.MIN_EVALUATIONS + 6}, "seed": 2}
    return admm_tune.fit(problem, run_dir=run_dir, progress=False)


def test_a_long_run_is_won_by_the_finalist_with_the_lowest_mean_over_all_splits(long_run):
    race = long_run.race
    assert race["rounds"] == rescore.ROUNDS and race["objective"] == "loss"
    finalists = race["finalists"]
    assert 2 <= len(finalists) <= rescore.FINALISTS
    searched = long_run.trials.set_index("number")
    for f in finalists:
        assert f["search"] == pytest.approx(searched.loc[f["trial"], "loss"])
        assert f["remeasured"] == pytest.approx(np.mean([f["search"], *f["rounds"]]))
    assert finalists[0]["trial"] == race["search_pick"]  # the search's pick: its lowest loss
    assert finalists[0]["search"] == min(f["search"] for f in finalists)
    assert race["chosen"] == min(finalists, key=lambda f: f["remeasured"])["trial"] == long_run.best.trial
    chosen = json.loads(searched.loc[race["chosen"], "config"])
    assert long_run.best.config == chosen
    rebuilt = build_pipeline(chosen, long_run.problem.space, long_run.problem.data, long_run.problem.seed)
    assert repr(long_run.pipeline) == repr(rebuilt)  # the refit pipeline is the chosen config's
    summary = long_run.summary()  # one story: the chosen trial, the rule, the estimate to expect (the mean)
    won = min(finalists, key=lambda f: f["remeasured"])
    assert f"chosen       trial {race['chosen']}: " in summary and "chosen by    re-scoring the search's" in summary
    assert f"(loss {won['remeasured']:.4g}), the mean over {rescore.ROUNDS + 1} CV splits" in summary
    loaded = Result.load(long_run.run_dir)
    assert loaded.race == race and loaded.best.trial == long_run.best.trial


def test_a_short_run_keeps_the_searchs_pick(fast_problem_dict):
    result = admm_tune.fit(fast_problem_dict, storage="memory", progress=False)
    assert result.race["rounds"] == 0 and result.race["chosen"] == result.race["search_pick"] == result.best.trial
    assert result.race["note"].startswith("not re-scored: 10 evaluations")
