"""Tests of models/kernels/: the forward kernels' posteriors (Bayes' rule on a grid or by enumeration),
marginals (Monte Carlo of the composed forward steps), the fixed last step and the Eq. 24 entropy bounds."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import bound
from models.kernels import BernoulliDist, BinomialKernel, GaussianDist, GaussianKernel, gather
from models.schedules import binomial_betas, reference_betas

from math_helpers import (SCHEDULES, assert_close, binomial_model, gaussian_model, heartbeat_sequences, odd_betas,
                          sched, transition, with_exact_reverse)

# ----------------------------------------------------------------------------------------------------
# Gaussian kernel: posterior = Bayes' rule on a grid (Table App.1)


def _grid_posterior(x0: float, xt: float, k: int, beta: np.ndarray):
    """q(x^k | x^{k+1}, x^0) ∝ q(x^k | x^0)·q(x^{k+1} | x^k), evaluated on a 1-D grid, normalised."""
    abar = np.cumprod(1 - beta)
    a_prev = abar[k - 1]  # ᾱ_k: the prior is q(x^k | x^0), forward index k − 1
    m0, v0 = math.sqrt(a_prev) * x0, 1 - a_prev
    b = beta[k]  # the likelihood is the forward step k → k + 1, β_{k+1}
    x = np.linspace(m0 - 12 * math.sqrt(v0), m0 + 12 * math.sqrt(v0), 40001)
    logp = -0.5 * (x - m0) ** 2 / v0 - 0.5 * (xt - math.sqrt(1 - b) * x) ** 2 / b
    p = np.exp(logp - logp.max())
    dx = x[1] - x[0]
    p /= p.sum() * dx
    mean = (x * p).sum() * dx
    var = ((x - mean) ** 2 * p).sum() * dx
    return x, p, mean, var


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_gaussian_posterior_is_bayes_rule_on_a_grid(name):
    T = 30
    beta = SCHEDULES[name](T)
    s = sched(beta)
    kern = GaussianKernel()
    abar = np.cumprod(1 - beta)
    rng = np.random.default_rng(7)
    for k in (1, 2, T // 2, T - 2, T - 1):
        for x0 in (-1.3, 0.0, 2.1):
            # a plausible x^{k+1} ~ q(x^{k+1} | x^0)
            xt = math.sqrt(abar[k]) * x0 + math.sqrt(1 - abar[k]) * rng.normal()
            X0 = torch.tensor([[x0]], dtype=torch.float64)
            XT = torch.tensor([[xt]], dtype=torch.float64)
            q = kern.q_posterior(X0, XT, k, s)
            mean, var = q.mean, q.var
            grid, p, gm, gv = _grid_posterior(x0, xt, k, beta)
            m, v = float(mean), float(var)
            assert m == pytest.approx(gm, abs=1e-7 * max(1.0, math.sqrt(gv)))
            assert v == pytest.approx(gv, rel=1e-6)
            # the whole density, not only its moments
            dens = np.exp(-0.5 * (grid - m) ** 2 / v) / math.sqrt(2 * math.pi * v)
            assert np.max(np.abs(dens - p)) <= 1e-6 * p.max()
            # the closed form β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t)
            ap = abar[k - 1]
            assert v == pytest.approx(beta[k] * (1 - ap) / (1 - abar[k]), rel=1e-12)


def test_gaussian_posterior_per_example_steps_match_scalar_steps():
    """k as a LongTensor [B] (one step per example, as the stochastic bound uses) = k as an int."""
    T = 12
    s = sched(odd_betas(T))
    kern = GaussianKernel()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, 2, generator=g, dtype=torch.float64)
    xt = torch.randn(6, 3, 2, generator=g, dtype=torch.float64)
    k = torch.tensor([1, 3, 5, 7, 9, 11])
    q = kern.q_posterior(x0, xt, k, s)
    mean, var = q.mean, q.var
    for i in range(6):
        q = kern.q_posterior(x0[i:i + 1], xt[i:i + 1], int(k[i]), s)
        m_i, v_i = q.mean, q.var
        assert_close(mean[i:i + 1], m_i)
        assert_close(var[i:i + 1], v_i)
        q = kern.q_marginal(x0[i:i + 1], int(k[i]), s)
        mq, vq = q.mean, q.var
        q = kern.q_marginal(x0, k, s)
        mq2, vq2 = q.mean, q.var
        assert_close(mq2[i:i + 1], mq)
        assert_close(vq2[i:i + 1], vq)


# ----------------------------------------------------------------------------------------------------
# binomial kernel: posterior = Bayes' rule by enumeration (Table App.1)


@pytest.mark.parametrize("p_bar", [0.2, 0.5])
@pytest.mark.parametrize("schedule", ["binomial", "odd"])
def test_binomial_posterior_is_bayes_rule_by_enumeration(p_bar, schedule):
    T = 10
    beta = binomial_betas(T) if schedule == "binomial" else odd_betas(T, seed=4)
    s = sched(beta)
    kern = BinomialKernel(p_bar)
    for k in (1, 2, 5, T - 1):
        for x0 in (0, 1):
            # prior q(x^k | x^0) by multiplying k transition matrices (independent of the ᾱ formula)
            prior = np.eye(2)[x0]
            for j in range(k):
                prior = prior @ transition(beta[j], p_bar)
            like = transition(beta[k], p_bar)  # step k → k + 1
            for xt in (0, 1):
                joint = prior * like[:, xt]
                expected = joint[1] / joint.sum()
                got = kern.q_posterior(torch.tensor([[float(x0)]], dtype=torch.float64),
                                       torch.tensor([[float(xt)]], dtype=torch.float64), k, s)
                assert float(got.prob) == pytest.approx(expected, abs=1e-12)
            # and the marginal q(x^{k+1} = 1 | x^0) = ᾱ x^0 + (1 − ᾱ) p̄
            marg = (prior @ like)[1]
            got_m = kern.q_marginal(torch.tensor([[float(x0)]], dtype=torch.float64), k, s).prob
            assert float(got_m) == pytest.approx(marg, abs=1e-12)


@pytest.mark.parametrize("p_bar", [0.2, 0.5])
def test_binomial_kernel_is_reversible_and_last_step_is_the_exact_reversal(p_bar):
    beta = 0.3
    M = transition(beta, p_bar)
    pi = np.array([1 - p_bar, p_bar])
    np.testing.assert_allclose(pi[:, None] * M, (pi[:, None] * M).T, atol=1e-15)  # detailed balance
    s = sched(np.array([beta, 0.5]))
    kern = BinomialKernel(p_bar)
    x1 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    # p(x^0 = 1 | x^1) = q(x^1 | x^0 = 1) π(1) / π(x^1)
    expected = [M[1, 0] * p_bar / pi[0], M[1, 1] * p_bar / pi[1]]
    np.testing.assert_allclose(kern.last_step(x1, s).prob.flatten().numpy(), expected, atol=1e-15)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_fixed_last_reverse_step_is_bayes_reversal_of_the_first_forward_step(kind):
    """reverse_step(x, 0) is p(x^0 | x^1) = q(x^1 | x^0)·π(x^0)/π(x^1) (App. B), as a density in x^0."""
    g = torch.Generator().manual_seed(0)
    if kind == "gaussian":
        m = gaussian_model(T=10, D=3, beta_1=0.05, perturb=0.5)
        x1 = torch.randn(50, 3, generator=g)
        x0 = torch.randn(50, 3, generator=g)
    else:
        m = binomial_model(T=10, D=20, p_bar=0.2, beta_1=0.3, perturb=0.5)
        x1 = (torch.rand(50, 20, generator=g) < 0.3).float()
        x0 = (torch.rand(50, 20, generator=g) < 0.3).float()
    s = m.schedule_tensors()
    kern = m.kernel
    d = m.reverse_step(x1, 0, s)
    b1 = s.beta[0].float()
    log_p = d.log_prob(x0)
    if kind == "gaussian":
        log_q = GaussianDist(torch.sqrt(1 - b1) * x0, b1 * torch.ones_like(x0)).log_prob(x1)
    else:
        log_q = BernoulliDist(kern.step_prob(x0, b1)).log_prob(x1)
    assert_close(log_p, log_q + kern.prior_log_prob(x0) - kern.prior_log_prob(x1), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------------------------------
# q(x^t | x^0) = the forward step composed t times (Monte Carlo)


def test_gaussian_marginal_matches_composed_forward_steps():
    T, N = 20, 20000
    s = sched(reference_betas(T))
    kern = GaussianKernel()
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([0.8, -1.5, 0.0], dtype=torch.float64).expand(N, 3)
    x = x0
    for k in range(T):
        x = kern.q_step(x, k, s, generator=g)  # x^{k+1}
        if k in (0, 1, 7, T - 1):
            q = kern.q_marginal(x0[:1], k, s)
            mean, var = q.mean, q.var
            se_m = var[0].sqrt() / math.sqrt(N)
            assert torch.all((x.mean(0) - mean[0]).abs() < 5 * se_m), (k, x.mean(0), mean[0])
            assert torch.all((x.var(0) / var[0] - 1).abs() < 5 * math.sqrt(2 / N)), (k, x.var(0), var[0])
            # q_sample with frozen noise has the same law and is exactly √ᾱ x0 + √(1−ᾱ) ε
            eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
            assert_close(kern.q_sample(x0, k, s, eps), mean[0] + var[0].sqrt() * eps)


@pytest.mark.parametrize("p_bar", [0.2, 0.5])
def test_binomial_marginal_matches_composed_forward_steps(p_bar):
    T, N = 10, 20000
    s = sched(binomial_betas(T))
    kern = BinomialKernel(p_bar)
    g = torch.Generator().manual_seed(1)
    x0 = torch.tensor([0.0, 1.0]).expand(N, 2)
    x = x0
    for k in range(T):
        x = kern.q_step(x, k, s, generator=g)
        prob = kern.q_marginal(x0[:1], k, s).prob[0]
        se = torch.sqrt(prob * (1 - prob) / N).clamp_min(1e-4)
        assert torch.all((x.mean(0) - prob).abs() < 5 * se), (k, x.mean(0), prob)
        u = torch.rand(x0.shape, generator=g)
        assert torch.all((kern.q_sample(x0, k, s, u).mean(0) - prob).abs() < 5 * se)
    assert torch.all(x.mean(0).sub(p_bar).abs() < 5 * math.sqrt(p_bar * (1 - p_bar) / N))  # β_T = 1: x^T ~ π


# ----------------------------------------------------------------------------------------------------
# per-step entropy bounds (Eq. 24, App. A)


@pytest.mark.parametrize("name", ["reference", "cosine", "linear", "logit_linear", "odd", "learned"])
@pytest.mark.parametrize("T", [10, 40, 1000])
def test_gaussian_entropy_bounds_are_ordered_and_closed_form(name, T):
    beta = SCHEDULES[name](T)
    s = sched(beta)
    lower, upper = GaussianKernel().entropy_bounds(s)
    assert torch.all(lower <= upper + 1e-12)
    abar = np.cumprod(1 - beta)
    ap = np.concatenate([[1.0], abar[:-1]])
    np.testing.assert_allclose(upper.numpy(), 0.5 * np.log(2 * np.pi * np.e * beta), rtol=1e-12)
    tilde = beta[1:] * (1 - ap[1:]) / (1 - abar[1:])
    np.testing.assert_allclose(lower.numpy()[1:], 0.5 * np.log(2 * np.pi * np.e * tilde), rtol=1e-10, atol=1e-12)
    # Eq. 24's lower bound in its original form: H(X^t|X^{t−1}) + H(X^{t−1}|X^0) − H(X^t|X^0)
    H = GaussianKernel().conditional_entropy(s).numpy()
    np.testing.assert_allclose(lower.numpy()[1:], upper.numpy()[1:] + H[:-1] - H[1:], rtol=1e-10, atol=1e-12)


def test_exact_posterior_reverse_entropy_lies_within_the_bounds():
    """A reverse model with var = β̃_t (the optimum's lower extreme) and one with var = β_t (the exact
    reverse for N(0, I) data, the upper extreme): the reverse entropy curve lies inside [lower, upper]."""
    T = 20
    m = gaussian_model(T=T, D=3)
    s = m.schedule_tensors()
    lower, upper = m.kernel.entropy_bounds(s)
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))

    def posterior_var_reverse(x_t, k, s_=None):
        s_ = m.schedule_tensors() if s_ is None else s_
        beta = gather(s_.beta, k, x_t)
        if isinstance(k, int) and k == 0:
            return GaussianDist(x_t, beta * torch.ones_like(x_t))
        bt = gather(s_.beta * (1 - s_.alpha_bar_prev) / (1 - s_.alpha_bar), k, x_t)
        return GaussianDist(torch.sqrt(1 - beta) * x_t, bt * torch.ones_like(x_t))

    m.reverse_step = posterior_var_reverse
    h = bound.reverse_entropy_per_step(m, x0, torch.Generator().manual_seed(1))
    tol = 1e-6
    assert torch.all(h >= lower - tol) and torch.all(h <= upper + tol)
    assert_close(h, lower, atol=1e-5, rtol=0)  # ½ log(2πe β̃_t) *is* the lower bound
    with_exact_reverse(m)
    h2 = bound.reverse_entropy_per_step(m, x0, torch.Generator().manual_seed(1))
    assert_close(h2, upper, atol=1e-5, rtol=0)


@pytest.mark.parametrize("p_bar, mu0", [(0.2, 0.2), (0.5, 0.5), (0.5, 0.1), (0.5, 0.9), (0.2, 0.05)])
@pytest.mark.parametrize("T", [5, 20, 2000])
def test_binomial_entropy_bounds_are_ordered(p_bar, mu0, T):
    """lower ≤ upper whenever the prior is the maximum-entropy end point for the data's bits (p̄ = ½, or
    mean activity at or below p̄ ≤ ½). (For mean activity far above p̄, e.g. 0.9 vs 0.2, the marginal
    entropy falls along the chain and Eq. 24's upper bound itself no longer holds.)"""
    s = sched(binomial_betas(T))
    kern = BinomialKernel(p_bar)
    # bits with mean activity exactly mu0 (a random draw could land just above p̄, where the bound fails)
    x0 = (torch.arange(1000.0)[:, None] < round(mu0 * 1000)).double().expand(1000, 4)
    x0 = x0[torch.randperm(1000, generator=torch.Generator().manual_seed(0))]
    lower, upper = kern.entropy_bounds(s, x0)
    assert lower.shape == upper.shape == (T,)
    assert torch.all(lower >= 0) and torch.all(lower <= upper + 1e-12)


def test_binomial_entropy_bounds_on_heartbeat_data():
    s = sched(binomial_betas(2000))
    lower, upper = BinomialKernel(0.2).entropy_bounds(s, heartbeat_sequences())
    assert torch.all(lower <= upper + 1e-12)


@pytest.mark.parametrize("p_bar, mu0", [(0.5, 0.3), (0.5, 0.9), (0.2, 0.2), (0.2, 0.05)])
def test_binomial_entropy_bounds_contain_the_true_reverse_entropy_of_one_bit(p_bar, mu0):
    """For one bit, H_q(X^{t−1} | X^t) is computable exactly by enumerating (x^0, x^{t−1}, x^t)."""
    T = 12
    beta = binomial_betas(T)
    s = sched(beta)
    x0 = torch.tensor([[0.0]] * int(round((1 - mu0) * 1000)) + [[1.0]] * int(round(mu0 * 1000)))
    lower, upper = BinomialKernel(p_bar).entropy_bounds(s, x0)
    marg = np.array([1 - float(x0.mean()), float(x0.mean())])  # distribution of x^{t−1}, starting at t−1 = 0
    for k in range(T):
        M = transition(beta[k], p_bar)
        joint = marg[:, None] * M  # [x^{t−1}, x^t]
        pt = joint.sum(0)
        H_joint = -np.sum(joint[joint > 0] * np.log(joint[joint > 0]))
        H_t = -np.sum(pt[pt > 0] * np.log(pt[pt > 0]))
        true_h = H_joint - H_t  # H(X^{t−1} | X^t)
        assert float(lower[k]) <= true_h + 1e-9 <= float(upper[k]) + 2e-9, (k, float(lower[k]), true_h, float(upper[k]))
        marg = pt
