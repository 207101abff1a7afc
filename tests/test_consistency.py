"""Small consistency items: one spelling of budgets and constraints everywhere, replayable seeds, the progress bar."""

from __future__ import annotations

import io
import json
import math

import pytest
import yaml

import admm_tune
from admm_tune.problem import load_problem
from admm_tune.progress import Progress


def test_budget_seconds_takes_a_duration_in_yaml_as_on_the_command_line(tmp_path):
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump({"data": "sklearn:iris", "budget": {"seconds": "30s"}}))
    assert load_problem(file).budget.seconds == 30.0
    assert load_problem({"data": "sklearn:iris", "budget": {"seconds": "2m", "evaluations": 9}}).budget.seconds == 120
    with pytest.raises(admm_tune.ProblemError, match="budget.seconds"):
        load_problem({"data": "sklearn:iris", "budget": {"seconds": "soon"}})


def test_constraints_as_a_mapping_in_a_problem_dict_as_in_the_estimator():
    problem = load_problem({"data": "sklearn:iris", "constraints": {"fit_time_s": 0.5, "cv_score_std": 0.1}})
    assert [str(c) for c in problem.constraints] == ["fit_time_s <= 0.5 s", "cv_score_std <= 0.1"]
    with pytest.raises(admm_tune.ProblemError, match=r"constraints\[0\].metric"):
        load_problem({"data": "sklearn:iris", "constraints": {"latency_p95_ms": 1.0}})


def test_a_run_without_a_seed_records_the_seed_it_drew_and_replays_with_it(quadratic_problem, tmp_path):
    first = admm_tune.fit(quadratic_problem, budget=6, run_dir=tmp_path / "a", progress=False)
    seed = first.problem.seed
    assert isinstance(seed, int) and first.to_dict()["seed"] == seed
    again = admm_tune.fit(quadratic_problem, budget=6, seed=seed, run_dir=tmp_path / "b", progress=False)
    assert list(again.trials["config"]) == list(first.trials["config"])


def test_the_progress_bar_starts_a_resumed_run_at_its_iteration_and_evaluations():
    stream = io.StringIO()
    bar = Progress(40, None, stream=stream, iteration=3, done=12)
    bar.update(13, 0.25, True)
    bar.close()
    text = stream.getvalue()
    assert "12/40 evals |###       | iter 3" in text.split("\r")[1]
    assert "13/40 evals" in text and "best loss 0.25 |" in text


def test_the_progress_bar_never_wraps_on_a_narrow_terminal():
    stream = io.StringIO()
    bar = Progress(400, 3600.0, stream=stream, iteration=12)
    bar._bar.dynamic_ncols, bar._bar.ncols = False, 80  # as tqdm measures an 80-column terminal
    bar.update(399, 0.123456, False)
    bar.close()
    last = stream.getvalue().split("\r")[-1].rstrip("\n")
    assert len(last) <= 80 and last.startswith("399/400 evals |#")
    assert "iter 12 | best loss 0.1235 infeasible | ~" in last and " left [" in last


def test_result_json_holds_the_test_scores_of_the_pipeline(tmp_path):
    result = admm_tune.fit({"name": "held_out", "data": {"source": "sklearn:iris", "test_size": 0.3},
                            "objective": {"cv": 3}, "restrict": {"estimator": ["logistic_regression", "knn"]},
                            "budget": {"evaluations": 3}, "seed": 0}, run_dir=tmp_path, progress=False)
    result.save(tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert 0.8 < saved["test"]["pipeline"] <= 1.0 and saved["feasible"] is True
    assert "test score   pipeline" in result.summary() and "45 held-out rows" in result.summary()
    assert "test score, pipeline" in (tmp_path / "report.html").read_text()


def test_a_resumed_run_shows_its_evaluations_and_iteration_from_the_start(quadratic_problem, tmp_path, capsys):
    first = admm_tune.fit(quadratic_problem, budget=12, seed=0, run_dir=tmp_path, progress=False)
    capsys.readouterr()
    admm_tune.fit(quadratic_problem, budget=16, seed=0, run_dir=tmp_path, resume=True, progress=True)
    drawn = capsys.readouterr().err.split("\r")
    start = next(line for line in drawn if "evals" in line)
    assert start.startswith("12/16 evals") and f"iter {len(first.trace)} |" in start, start


def test_the_deployed_graph_is_scored_on_the_test_split_too(tmp_path):
    result = admm_tune.fit({"name": "held_out_deployed", "data": {"source": "sklearn:breast_cancer", "test_size": 0.3},
                            "objective": {"cv": 3}, "restrict": {"estimator": ["logistic_regression"],
                                                                 "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.02, "min_runs": 5}}, "budget": {"evaluations": 2},
                            "seed": 0}, run_dir=tmp_path, progress=False)
    scores = result.test_scores
    assert set(scores) == {"pipeline", "deployed"} and scores["pipeline"] > 0.85
    assert abs(scores["deployed"] - scores["pipeline"]) <= 0.02  # the graph agrees with the pipeline
    assert "deployed" in result.summary().split("test score")[1].splitlines()[0]


def test_the_progress_line_counts_down_the_runs_own_estimate_of_the_time_left():
    stream = io.StringIO()
    bar = Progress(50, None, stream=stream)
    bar._bar.mininterval = 0  # redraw at every update
    bar.update(16, 0.03, True, seconds_left=21.0)  # the run's pace says 21 s, whatever the share done says
    bar.close()
    text = stream.getvalue()
    assert "16/50 evals" in text and any(f"~0:{n} left" in text for n in (20, 21))  # not ~0:00 (elapsed / share)


def test_the_time_left_counts_a_slow_structure_once_not_once_per_evaluation_of_it():
    from admm_tune.runner import evaluations_left_s

    # The default problem's first evaluations are the portfolio's boosting (~6 s each here), then the search pulls
    # cheap structures: 10 slow evaluations do not make each of the 34 left cost 6 s.
    seen = {("hgb",): [6.0] * 10, ("svc",): [0.2, 0.3, 0.25], ("nb",): [0.1]}
    assert evaluations_left_s(seen, 34, 1, 3.0) == pytest.approx(34 * (6.0 + 0.25 + 0.1) / 3 + 3.0)
    assert evaluations_left_s(seen, 34, 2, math.inf) == pytest.approx(34 * (6.0 + 0.25 + 0.1) / 3 / 2)
    assert evaluations_left_s(seen, 0, 1, 3.0) == 3.0


def test_a_run_gives_the_progress_line_its_own_estimate_once_it_has_one(quadratic_problem, monkeypatch):
    estimates: list[float | None] = []
    original = Progress.update

    def spy(self, done, best, feasible, seconds_left=None):
        estimates.append(seconds_left)
        return original(self, done, best, feasible, seconds_left)

    monkeypatch.setattr(Progress, "update", spy)
    admm_tune.fit(quadratic_problem, budget=8, seed=0, storage="memory", progress=False)
    assert len(estimates) == 8 and all(e is not None and e >= 0 for e in estimates)
