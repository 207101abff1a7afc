"""The problem's own cross-validation: groups, time order, any scikit-learn splitter or given folds.

A shuffled k-fold leaks when rows of one group (a patient) or of one period fall on both sides: the search then
picks and reports a score the model cannot reach on new groups or later rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, PredefinedSplit, StratifiedGroupKFold, TimeSeriesSplit

import admm_tune
from admm_tune import AutoPipelineClassifier, AutoPipelineRegressor, ProblemError, load_problem

RNG = np.random.default_rng(0)
PATIENTS = np.repeat(np.arange(40), 6)
X_PATIENTS = (RNG.normal(size=(40, 5)) * 3)[PATIENTS] + 0.1 * RNG.normal(size=(240, 5))
Y_PATIENTS = RNG.integers(0, 2, 40)[PATIENTS]
"""40 patients x 6 rows, features close within a patient, a label drawn per patient: nothing to learn across
patients, everything to memorise within one."""


def test_grouped_cv_reports_what_new_groups_get_where_shuffled_cv_leaks():
    grouped = AutoPipelineClassifier(cv=GroupKFold(3), max_evals=6, random_state=0).fit(X_PATIENTS, Y_PATIENTS,
                                                                                       groups=PATIENTS)
    leaky = AutoPipelineClassifier(cv=3, max_evals=6, random_state=0).fit(X_PATIENTS, Y_PATIENTS)
    assert leaky.best_score_ > 0.95 and grouped.best_score_ < 0.75, (leaky.best_score_, grouped.best_score_)
    assert grouped.result_.race["note"].startswith("not re-scored: the CV splits are the problem's own")


def test_a_forward_split_on_a_random_walk_scores_far_below_a_shuffled_one():
    steps = np.cumsum(RNG.normal(size=300))
    X = np.c_[np.arange(300), RNG.normal(size=300)]
    forward = AutoPipelineRegressor(cv=TimeSeriesSplit(4), max_evals=4, random_state=0).fit(X, steps)
    shuffled = AutoPipelineRegressor(cv=3, max_evals=4, random_state=0).fit(X, steps)
    assert forward.best_score_ < shuffled.best_score_ - 0.5, (forward.best_score_, shuffled.best_score_)


@pytest.mark.parametrize("cv", [
    StratifiedGroupKFold(3),
    GroupKFold(40),  # one group per fold
    "uneven",  # (train, test) pairs of different sizes
    PredefinedSplit(np.arange(240) % 2),
])
def test_every_kind_of_split_is_taken_and_used(cv):
    if cv == "uneven":
        order = np.arange(240)
        cv = [(order[60:], order[:60]), (order[np.r_[0:60, 200:240]], order[60:200])]
    problem = load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS, "groups": PATIENTS},
                            "objective": {"cv": cv}})
    splits = list(admm_tune.data.GroupedSplits(problem.objective.splitter, problem.data.groups).split(
        problem.data.X, problem.data.y))
    assert problem.objective.cv == len(splits) >= 2
    result = admm_tune.fit(problem, budget=2, seed=0, storage="memory", progress=False)
    assert result.n_failed == 0 and len(result.trials) == 2


def test_splitters_groups_and_their_mistakes_are_named():
    with pytest.raises(ProblemError, match=r"data.groups: GroupKFold: The 'groups' parameter"):
        load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS}, "objective": {"cv": GroupKFold(3)}})
    with pytest.raises(ProblemError, match="data.groups: groups need a group-aware splitter"):
        load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS, "groups": PATIENTS}, "objective": {"cv": 3}})
    with pytest.raises(ProblemError, match="data.groups: expected one group per row"):
        load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS, "groups": PATIENTS[:10]},
                      "objective": {"cv": GroupKFold(3)}})
    with pytest.raises(ProblemError, match="objective.cv.splitter: unknown scikit-learn splitter 'Nope'"):
        load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS}, "objective": {"cv": {"splitter": "Nope"}}})
    with pytest.raises(ProblemError, match="objective.cv: the splitter gives 1 split"):
        load_problem({"data": {"X": X_PATIENTS, "y": Y_PATIENTS}, "objective": {"cv": [(np.arange(100), np.arange(
            100, 240))]}})


def test_a_problem_file_names_the_splitter_and_the_group_column(tmp_path):
    frame = pd.DataFrame(X_PATIENTS, columns=[f"f{i}" for i in range(5)]).assign(patient=PATIENTS, target=Y_PATIENTS)
    frame.to_csv(tmp_path / "visits.csv", index=False)
    (tmp_path / "p.yaml").write_text(
        "data: {source: visits.csv, target: target, groups: patient, test_size: 0.25}\n"
        "objective: {cv: {splitter: GroupKFold, n_splits: 3}}\nbudget: 2\nseed: 0\n")
    problem = load_problem(tmp_path / "p.yaml")
    assert "patient" not in problem.data.X.columns and len(problem.data.groups) == len(problem.data.y)
    # the held-out split keeps whole patients: every training patient has all 6 of its rows
    assert len(set(problem.data.groups)) * 6 == len(problem.data.y) and len(problem.data.y_test) % 6 == 0
