"""Tests of models/schedules.py: the named β schedules, the bump basis, the learned schedule (§2.4.1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.schedules import Schedule, alpha_bar, binomial_betas, bump_basis, named_betas, reference_betas

# ----------------------------------------------------------------------------------------------------
# schedules (§2.4.1; models/README.md, Schedules)


@pytest.mark.parametrize("T, b1, b2, bT, abarT", [(1000, 0.00200, 0.00100, 0.49999, 9.9e-4),
                                                  (500, 0.00300, 0.00200, 0.49999, 2.0e-3)])
def test_reference_schedule_matches_the_reference_codes_values(T, b1, b2, bT, abarT):
    b = reference_betas(T)
    assert b.shape == (T,) and b.dtype == np.float64
    assert b[0] == pytest.approx(b1, abs=5e-6)
    assert b[1] == pytest.approx(b2, abs=5e-6)
    assert b[-1] == pytest.approx(bT, abs=1e-5)  # 1e-6 + ½(1 − 1.1e-5) = 0.4999955, printed 0.49999
    assert alpha_bar(b)[-1] == pytest.approx(abarT, rel=0.03)
    # the baseline is 1/linspace(T, 2, T), monotone, and β_1 carries the extra step1_beta
    assert np.all(np.diff(b[1:]) > 0)
    assert reference_betas(T, beta_1=0.01)[0] == 0.01


@pytest.mark.parametrize("T", [2, 5, 20, 2000])
def test_binomial_schedule_erases_1_over_T_per_step(T):
    b = binomial_betas(T)
    assert b[-1] == 1.0
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(alpha_bar(b), (T - t) / T, atol=1e-12)
    np.testing.assert_allclose(b, 1.0 / (T - t + 1))


@pytest.mark.parametrize("name", ["reference", "linear", "cosine", "logit_linear", "binomial"])
def test_named_schedules_are_valid_and_beta1_override(name):
    for T in (2, 40, 1000):
        b = named_betas(name, T)
        assert b.shape == (T,) and np.all(b > 0) and np.all(b <= 1)
        assert named_betas(name, T, beta_1=0.0123)[0] == 0.0123
    with pytest.raises(ValueError):
        named_betas("nope", 10)


@pytest.mark.parametrize("T, J", [(2, 10), (40, 10), (1000, 10), (40, 1), (40, 3)])
def test_bump_basis_rows_sum_to_one(T, J):
    g = bump_basis(T, J)
    assert g.shape == (T, J)
    assert np.all(g >= 0)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-12)
    if J > 1:  # bump j peaks at its centre: at t = 0 the first bump dominates, at t = T−1 the last
        assert g[0].argmax() == 0 and g[-1].argmax() == J - 1


@pytest.mark.parametrize("name", ["reference", "linear", "cosine", "logit_linear"])
def test_learned_schedule_starts_on_base_keeps_beta1_and_is_differentiable(name):
    T = 40
    base = named_betas(name, T)
    s = Schedule(base, learn=True)
    b0 = s().detach().numpy()
    # coefficients start at 0, and then the learned schedule *is* the base schedule
    np.testing.assert_allclose(b0, base, rtol=1e-10, atol=0)
    # gradient flows to the coefficients (through ᾱ, as the bound does) and not into β_1
    loss = torch.log(1 - torch.cumprod(1 - s(), 0)[-1]) + (s()[1:] ** 2).sum()
    loss.backward()
    assert s.coeffs.grad is not None and torch.all(torch.isfinite(s.coeffs.grad))
    assert float(s.coeffs.grad.abs().max()) > 0
    # any coefficients: β_1 stays fixed, every β_t stays strictly inside (0, 1)
    g = torch.Generator().manual_seed(3)
    for scale in (1.0, 30.0, 1e3):
        with torch.no_grad():
            s.coeffs.copy_(torch.randn(s.coeffs.shape, generator=g, dtype=torch.float64) * scale)
        b = s().detach()
        assert float(b[0]) == base[0]
        assert torch.all(b > 0) and torch.all(b < 1)
        ab = torch.cumprod(1 - b, 0)
        assert torch.all(ab > 0) and torch.all(torch.diff(ab) < 0)


def test_fixed_schedule_is_the_base_and_has_no_parameters():
    base = reference_betas(20)
    s = Schedule(base, learn=False)
    assert list(s.parameters()) == []
    np.testing.assert_array_equal(s().numpy(), base)
