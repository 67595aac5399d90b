"""Tests of models/config.py: the vocabularies and ModelConfig's validation and JSON round trip."""
from __future__ import annotations

import pytest

from models import config
from models.config import ModelConfig
from models.model import PARAMETERISATIONS


def test_every_kernel_parameterisation_pair_has_one_reverse_function():
    pairs = {(k, p) for k, ps in config.KERNEL_PARAMS.items() for p in ps}
    assert pairs == set(PARAMETERISATIONS)
    assert set(config.KERNEL_PARAMS) == set(config.KERNELS)
    assert {p for ps in config.KERNEL_PARAMS.values() for p in ps} == set(config.PARAMS)
    assert set(config.UNITS) == set(config.KINDS)


@pytest.mark.parametrize("kernel, param", [("binomial", "code"), ("gaussian", "residual")])
def test_a_parameterisation_of_the_other_kernel_is_refused_by_name(kernel, param):
    with pytest.raises(ValueError, match=f"param '{param}' is not for the {kernel} kernel"):
        ModelConfig(kernel=kernel, param=param, learn_beta=False)


@pytest.mark.parametrize("bad, match", [
    (dict(kernel="poisson"), "kernel must be one of"),
    (dict(T=1), "T must be an integer >= 2"),
    (dict(arch="mlp", example_shape=(1, 4, 4)), "needs example_shape"),
    (dict(beta_1=1.5), "beta_1 must lie in"),
    (dict(p_bar=1.0), "p_bar must lie in"),
    (dict(kernel="binomial", learn_beta=True), "learn_beta must be False"),
])
def test_bad_configs_are_refused_with_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**bad)


def test_json_round_trip_and_unknown_keys():
    c = ModelConfig(kernel="binomial", T=12, example_shape=(20,), param="residual", p_bar=0.2)
    assert ModelConfig.from_dict(c.to_dict()) == c
    assert ModelConfig.from_dict(__import__("json").loads(c.to_json())) == c
    with pytest.raises(ValueError, match="unknown config keys: colour"):
        ModelConfig.from_dict({**c.to_dict(), "colour": 1})
