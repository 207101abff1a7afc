"""The deployment race: the refit pipeline on every deployment worth trying, the fastest admissible one kept."""

from __future__ import annotations

import numpy as np
import pytest

from admm_tune.deployment import BACKEND, PRECISION
from admm_tune.evaluate.deploy import DeploymentEvaluator
from admm_tune.evaluate.race import NOISE, Contender, choose
from admm_tune.evaluate.timing import TimingSettings, measure_call
from admm_tune.problem import load_problem


def contender(precision: str, p95s: list[float], admissible: bool = True, backend: str = "onnxruntime") -> Contender:
    c = Contender({BACKEND: backend, PRECISION: precision}, "test")
    c.rounds = [{"latency_p95_ms": v, "latency_p50_ms": v / 2} for v in p95s]
    c.metrics["_admissible"] = float(admissible)
    return c


def test_fp32_is_kept_unless_a_reduced_precision_is_faster_by_more_than_the_noise():
    fp32 = contender("fp32", [1.0, 1.02, 0.99])
    slightly = contender("int8", [0.95, 0.96, 0.94])  # 5 % faster: within NOISE
    clearly = contender("int8", [0.5, 0.52, 0.49])
    noisy = contender("bf16", [0.5, 2.0, 0.8])  # median 0.8, but its own spread is 300 %
    assert NOISE > 0.05
    assert choose([fp32, slightly]) is fp32
    assert choose([fp32, clearly]) is clearly
    assert choose([fp32, noisy]) is fp32
    assert choose([slightly]) is slightly  # no fp32 contender admissible: the fastest


def test_only_admissible_contenders_can_win():
    fast_but_wrong = contender("fp32", [0.1, 0.1, 0.1], admissible=False)
    slow = contender("fp32", [1.0, 1.0, 1.0], backend="openvino")
    assert choose([fast_but_wrong, slow]) is slow
    assert choose([fast_but_wrong]) is None  # then the search's choice stands


@pytest.fixture(scope="module")
def raced():
    """The search's choice is OpenVINO with the THROUGHPUT hint and two streams: at one row a call, the race
    must find the plain deployments faster."""
    problem = load_problem({"name": "race", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
                            "restrict": {"scaler": ["standard"], "transformer": ["none"],
                                         "estimator": ["logistic_regression"], "precision": ["fp32"]},
                            "deployment": {"timing": {"seconds": 0.15, "min_runs": 20, "max_runs": 2000}},
                            "constraints": {"latency_p95_ms": 100.0}, "budget": 2})
    evaluator = DeploymentEvaluator(problem.space, problem.data, problem.objective, problem.deployment, 0,
                                    problem.constraints)
    searched = problem.space.complete({"scaler": "standard", "transformer": "none", "estimator": "logistic_regression",
                                       "backend": "openvino", "precision": "fp32"})
    searched.update({"backend.openvino.performance_hint": "THROUGHPUT", "backend.openvino.num_streams": 2,
                     "backend.openvino.inference_num_threads": 2})
    return evaluator, searched, evaluator.final(searched)


@pytest.mark.serial
def test_the_race_keeps_the_faster_of_real_deployments(raced):
    evaluator, searched, final = raced
    record = final.race["contenders"]
    assert [c["label"] for c in record][0] == "searched" and len(record) >= 3
    assert all(c["admissible"] for c in record)  # all agree with scikit-learn and meet the loose bound
    chosen = [c for c in record if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["latency_p95_ms"] == min(c["latency_p95_ms"] for c in record)
    assert final.config[BACKEND] == chosen[0]["backend"]
    assert final.deployed.metrics["latency_p95_ms"] == chosen[0]["latency_p95_ms"]
    assert "chosen:" in final.race["note"] and "fastest alternative" in final.race["note"]
    # Re-timed apart from the race, one row a call: the search's THROUGHPUT choice is the slower one.
    X, y, _ = evaluator.verification_rows()
    rows = evaluator.data.examples[:1]
    settings = TimingSettings(seconds=0.15, min_runs=20, max_runs=2000)

    def p95(config) -> float:
        from admm_tune.evaluate.export import export, for_precision

        model = for_precision(export(final.pipeline, evaluator.data.X.iloc[:5]), config[PRECISION])
        session, _, _ = evaluator.compiled(model, config, final.pipeline, X, y)
        served = evaluator.served(model, session, config)
        return float(np.median([measure_call(lambda: served.predict(rows), 1, settings).latency_p95_ms
                                for _ in range(3)]))

    assert p95(searched) > p95(final.config), "the race kept a slower deployment than the search's"


def test_a_refit_deployment_is_written_with_the_race_winner(tmp_path):
    import json

    import admm_tune

    result = admm_tune.fit({"name": "race", "data": "sklearn:breast_cancer", "objective": {"cv": 3},
                            "restrict": {"scaler": ["standard"], "transformer": ["none"],
                                         "estimator": ["logistic_regression"]},
                            "deployment": {"timing": {"seconds": 0.05, "min_runs": 10}}, "budget": 3, "seed": 0},
                           run_dir=tmp_path, progress=False)
    race = result.final["race"]
    chosen = next(c for c in race["contenders"] if c["chosen"])
    spec = json.loads((tmp_path / "deployment.json").read_text())
    assert (spec["backend"], spec["precision"], spec["knobs"]) == (chosen["backend"], chosen["precision"],
                                                                   chosen["knobs"])
    assert result.deployment["backend"] == chosen["backend"]
    assert "deploy race  chosen:" in result.summary()
    from admm_tune.journal import Journal

    assert Journal.open(result.storage).attrs["deployment_race"]["note"] == race["note"]  # journaled
    # What the exported graph measures decides too: a bound its own figure breaks is not met, though the search met it
    from dataclasses import replace

    from admm_tune.settings import Constraint

    searched = result.best.metrics["latency_p95_ms"]
    assert result.feasible and not result.deployed_misses()
    result.problem = replace(result.problem, constraints=(Constraint("latency_p95_ms", 2 * searched),))
    result.final["measured"]["latency_p95_ms"] = 3 * searched
    assert result.deployed_misses() == list(result.problem.constraints) and not result.feasible
    assert "as deployed (the exported graph re-timed after the refit)" in result.shortfalls()[0]
    assert "NOT MET      latency_p95_ms <=" in result.summary()
