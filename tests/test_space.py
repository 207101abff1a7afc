"""The search space: parameters, conditional structure, forbidden clauses, bundled files."""

from __future__ import annotations

import numpy as np
import pytest

from admm_tune import ProblemError, SearchSpace
from admm_tune.space import Float, Int

REQUIRED = {
    "classification": {
        "scaler": {"none", "standard", "minmax", "robust", "maxabs", "quantile", "normalizer"},
        "transformer": {"none", "pca", "truncated_svd", "select_k_best", "polynomial"},
        "estimator": {"logistic_regression", "linear_svc", "sgd", "ridge", "knn", "gaussian_nb", "lda", "qda",
                      "decision_tree", "random_forest", "extra_trees", "gradient_boosting",
                      "hist_gradient_boosting", "adaboost", "mlp", "svc"},
    },
    "regression": {
        "scaler": {"none", "standard", "minmax", "robust", "maxabs", "quantile", "normalizer"},
        "estimator": {"ridge", "knn", "decision_tree", "random_forest", "extra_trees", "gradient_boosting",
                      "hist_gradient_boosting", "adaboost", "mlp", "svr"},
    },
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_bundled_spaces_hold_the_required_algorithms(name):
    space = SearchSpace.load(name)
    assert space.module_names == ("scaler", "transformer", "estimator")
    for module, algos in REQUIRED[name].items():
        assert algos <= set(space.module(module).names)


def test_int_relaxation_and_log_scale():
    p = Int("n", 1, 1000, log=True)
    assert p.to_unit(1) == 0.0 and p.to_unit(1000) == 1.0
    assert abs(p.from_unit(0.5) - np.sqrt(1000)) < 1e-9
    assert p.cast(31.4) == 31 and p.cast(2.5) == 3 and p.cast(5000) == 1000
    f = Float("x", -1.0, 1.0)
    assert f.from_unit(f.to_unit(0.25)) == pytest.approx(0.25)


def test_config_carries_only_the_chosen_algorithms_parameters(rng):
    space = SearchSpace.load("classification")
    for _ in range(20):
        config = space.sample(rng)
        space.validate_config(config)
        chosen = {config[m] for m in space.module_names}
        for key in config:
            if "." in key:
                assert key.split(".")[1] in chosen


def test_defaults_and_completion():
    space = SearchSpace.load("classification")
    choice = {"scaler": "standard", "transformer": "none", "estimator": "random_forest"}
    config = space.complete(choice)
    space.validate_config(config)
    assert config["estimator.random_forest.n_estimators"] == space.module("estimator").algorithm(
        "random_forest").param("n_estimators").default


def test_forbidden_clause_is_never_sampled(rng):
    raw = {"modules": [
        {"name": "a", "algorithms": [{"name": "x"}, {"name": "y"}]},
        {"name": "b", "algorithms": [{"name": "u"}, {"name": "v"}]}],
        "forbidden": [{"when": {"a": "x", "b": ["u", "v"]}}]}
    space = SearchSpace.from_dict(raw)
    assert all(space.sample(rng)["a"] == "y" for _ in range(50))
    with pytest.raises(ProblemError, match="forbidden"):
        space.validate_config({"a": "x", "b": "u"})


@pytest.mark.parametrize("raw, field", [
    ({"modules": []}, "search_space.modules"),
    ({"modules": [{"name": "m", "algorithms": [{"name": "a", "params": {"p": {"type": "float", "low": 2,
                                                                              "high": 1}}}]}]},
     "search_space.modules[0].algorithms[0].params.p.low"),
    ({"modules": [{"name": "m", "algorithms": [{"name": "a", "params": {"p": {"type": "int", "low": 0, "high": 3,
                                                                              "log": True}}}]}]},
     "search_space.modules[0].algorithms[0].params.p.low"),
    ({"modules": [{"name": "m", "algorithms": [{"name": "a"}, {"name": "a"}]}]},
     "search_space.modules[0].algorithms[1]"),
    ({"modules": [{"name": "m", "algorithms": [{"name": "a", "params": {"p": {"type": "weird"}}}]}]},
     "search_space.modules[0].algorithms[0].params.p.type"),
    ({"modules": [{"name": "m", "algorithms": [{"name": "a"}]}], "forbidden": [{"when": {"m": "zzz"}}]},
     "search_space.forbidden[0].when.m"),
])
def test_malformed_spaces_name_the_field(raw, field):
    with pytest.raises(ProblemError) as err:
        SearchSpace.from_dict(raw)
    assert err.value.field == field


def test_initial_values_are_admissible():
    assert Int("n", 0, 3).initial() == 2 and isinstance(Int("n", 0, 3).initial(), int)
    assert Float("x", 0.0, 1.0).initial() == 0.5


def test_a_parameter_that_takes_no_effect_is_left_out_of_the_described_config():
    space = SearchSpace.load("classification")
    svc = {"scaler": "standard", "transformer": "none", "estimator": "svc"}
    poly = space.complete(svc, {"estimator.svc.kernel": "poly"})
    rbf = space.complete(svc, {"estimator.svc.kernel": "rbf"})
    sigmoid = space.complete(svc, {"estimator.svc.kernel": "sigmoid"})
    assert {"estimator.svc.degree", "estimator.svc.coef0"} <= set(space.applicable(poly))
    assert not {"estimator.svc.degree", "estimator.svc.coef0"} & set(space.applicable(rbf))
    assert "estimator.svc.coef0" in space.applicable(sigmoid)
    assert "estimator.svc.degree" not in space.applicable(sigmoid)
    assert set(space.applicable(rbf)) | {"estimator.svc.degree", "estimator.svc.coef0"} == set(rbf)  # only those
    assert "estimator.svc.degree" in rbf  # still searched and passed to the estimator


@pytest.mark.parametrize("applies, field, reason", [
    ({"kernel2": ["poly"]}, "applies.kernel2", "must name another categorical parameter"),
    ({"C": [1.0]}, "applies.C", "must name another categorical parameter"),
    ({"kernel": ["cubic"]}, "applies.kernel", "'cubic' is not one of"),
    ({}, "applies", "needs at least one condition"),
    ({"kernel": []}, "applies.kernel", "needs at least one value"),
])
def test_a_malformed_applies_is_refused_naming_it(applies, field, reason):
    raw = {"modules": [{"name": "estimator", "algorithms": [{"name": "svc", "params": {
        "C": {"type": "float", "low": 0.1, "high": 10.0},
        "kernel": {"type": "categorical", "choices": ["rbf", "poly"]},
        "degree": {"type": "int", "low": 2, "high": 5, "applies": applies}}}]}]}
    with pytest.raises(ProblemError) as err:
        SearchSpace.from_dict(raw)
    assert err.value.field.endswith(field) and reason in err.value.reason
