"""The metric catalogue (admm_tune/metrics.py): what validation, the deployment layer and deploy problems read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from admm_tune.deployment import DEPLOY_METRICS, deploy_metrics
from admm_tune.errors import ProblemError
from admm_tune.evaluate.onnx_model import METRICS, OBJECTIVES
from admm_tune.metrics import CATALOGUE, DEPLOY, DEPLOYMENT, ML, bound_sense, measured
from admm_tune.problem import ML_METRICS, constraint_list, load_problem

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_each_measurer_reads_its_part_of_the_one_catalogue():
    assert ML_METRICS == measured(ML) and DEPLOY_METRICS == measured(DEPLOYMENT) and METRICS == measured(DEPLOY)
    assert "label_agreement" in deploy_metrics("classification") and "label_agreement" not in deploy_metrics(
        "regression")
    assert "max_output_diff" in deploy_metrics("regression") and "max_proba_diff" not in deploy_metrics("regression")
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)


def test_a_short_bound_goes_the_way_the_metric_is_better():
    assert [bound_sense(m) for m in ("latency_p95_ms", "throughput_rps", "label_agreement", "accuracy",
                                     "users_own_metric")] == ["max", "min", "min", "min", "max"]
    assert constraint_list({"label_agreement": 0.99}) == [{"metric": "label_agreement", "min": 0.99}]
    assert OBJECTIVES == {"latency_p50_ms": "min", "latency_p95_ms": "min", "throughput_rps": "max"}
    problem = load_problem({"data": "sklearn:breast_cancer", "deployment": "cpu",
                            "constraints": {"label_agreement": 0.99}, "budget": {"evaluations": 2}})
    assert [str(c) for c in problem.constraints if c.metric == "label_agreement"] == ["label_agreement >= 0.99"]


def test_an_unknown_metric_is_refused_naming_the_measurable_ones():
    with pytest.raises(ProblemError, match=r"constraints\[0\]\.metric: unknown metric 'p95'.*latency_p95_ms"):
        load_problem({"data": "sklearn:breast_cancer", "deployment": "cpu", "constraints": {"p95": 1.0}})


def test_the_problem_format_lists_every_metric_a_constraint_may_name():
    text = (DOCS / "problem-format.md").read_text()
    section = text[text.index("## constraints"):text.index("## budget")]
    assert {*measured(ML), *measured(DEPLOYMENT)} <= set(re.findall(r"`(\w+)`", section))
