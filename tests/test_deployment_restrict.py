"""``restrict`` applies to the deployment modules (backend, precision) as to the ML ones."""

from __future__ import annotations

import pytest

from admm_tune.errors import ProblemError
from admm_tune.problem import load_problem


def problem(restrict: dict) -> dict:
    return {"name": "r", "data": "sklearn:breast_cancer", "objective": {"cv": 3}, "restrict": restrict,
            "deployment": "cpu", "budget": {"evaluations": 4}, "seed": 0}


def test_restrict_keeps_only_the_named_backend_and_precisions():
    loaded = load_problem(problem({"backend": ["openvino"], "precision": ["fp32"], "estimator": ["random_forest"]}))
    assert loaded.space.module("backend").names == ("openvino",)
    assert loaded.space.module("precision").names == ("fp32",)
    assert loaded.space.module("estimator").names == ("random_forest",)  # a tree ensemble on OpenVINO (lowered)


@pytest.mark.parametrize("restrict, message", [
    ({"backend": ["tensorflow"]}, r"restrict\.backend: 'tensorflow' is not a backend of this deployment space"),
    ({"precision": []}, r"restrict\.precision: keeps no precision"),
    ({"backnd": ["openvino"]}, r"restrict\.backnd: unknown module"),
])
def test_restrict_of_deployment_modules_names_the_field(restrict, message):
    with pytest.raises(ProblemError, match=message):
        load_problem(problem(restrict))


def test_restrict_of_a_deployment_module_without_a_deployment_is_an_unknown_module():
    raw = problem({"backend": ["openvino"]})
    del raw["deployment"]
    with pytest.raises(ProblemError, match=r"restrict\.backend: unknown module"):
        load_problem(raw)
