"""Analytic tests of the model library's mathematics (spec §2, §3, §6, §7, §12).

Every check compares the code with an independent computation: Bayes' rule on a grid or by
enumeration, torch.distributions, Monte Carlo of the forward chain, closed-form entropies, or a model
whose reverse process is known exactly. Sizes are small (T = 10..40, D ≤ 20) so the file runs in
seconds on one CPU thread.

Time-index rule (models/__init__.py): arrays have index k = t − 1; ``q_posterior(x0, xt, k)`` is
q(x^k | x^{k+1}, x^0); ``reverse_step(x, k)`` is p(x^k | x^{k+1}); ``q_marginal(x0, k)`` is q(x^{k+1} | x^0).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from models import bound, posterior, sampling
from models.config import ModelConfig
from models.kernels import BinomialKernel, GaussianKernel, ScheduleTensors, gather
from models.kernels.binomial import bernoulli_entropy
from models.model import DiffusionModel, StepDistribution
from models.schedules import (
    Schedule,
    alpha_bar,
    binomial_betas,
    bump_basis,
    cosine_betas,
    linear_betas,
    logit_linear_betas,
    named_betas,
    reference_betas,
)

torch.set_num_threads(1)

LN2 = math.log(2.0)
HALF_LOG_2PIE = 0.5 * math.log(2 * math.pi * math.e)
L_NULL_BITS_PER_DIM = -0.5 * math.log2(2 * math.pi * math.e)  # −2.0471


# ----------------------------------------------------------------------------------------------------
# helpers


def sched(beta) -> ScheduleTensors:
    return ScheduleTensors.from_beta(torch.as_tensor(np.asarray(beta), dtype=torch.float64))


def odd_betas(T: int, seed: int = 0) -> np.ndarray:
    """An irregular schedule: the reference one pushed around in logit space, β_1 small."""
    rng = np.random.default_rng(seed)
    b = reference_betas(T)
    z = np.log(b) - np.log1p(-b) + rng.normal(0, 0.8, T)
    out = 1 / (1 + np.exp(-z))
    out[0] = 0.004
    return out


def learned_betas(T: int, seed: int = 1) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    s = Schedule(reference_betas(T), learn=True)
    with torch.no_grad():
        s.coeffs.copy_(torch.randn(s.coeffs.shape, generator=g, dtype=torch.float64) * 1.5)
    return s().detach().numpy()


SCHEDULES = {
    "reference": lambda T: reference_betas(T),
    "cosine": lambda T: cosine_betas(T),
    "linear": lambda T: linear_betas(T),
    "logit_linear": lambda T: logit_linear_betas(T),
    "odd": odd_betas,
    "learned": learned_betas,
}


def gaussian_model(T=10, D=2, seed=0, perturb=0.0, betas=None, **kw) -> DiffusionModel:
    torch.manual_seed(seed)
    cfg = dict(kernel="gaussian", T=T, example_shape=(D,), arch="mlp", hidden=16, layers=2, activation="tanh")
    cfg.update(kw)
    m = DiffusionModel(ModelConfig(**cfg), betas=betas)
    if perturb:
        with torch.no_grad():
            for p in m.net.parameters():
                p.add_(torch.randn_like(p) * perturb)
    return m


def binomial_model(T=10, D=20, seed=0, p_bar=0.2, perturb=0.0, **kw) -> DiffusionModel:
    torch.manual_seed(seed)
    cfg = dict(kernel="binomial", T=T, example_shape=(D,), arch="mlp", hidden=16, layers=2,
               activation="sigmoid", p_bar=p_bar, schedule="binomial", param="residual")
    cfg.update(kw)
    m = DiffusionModel(ModelConfig(**cfg))
    if perturb:
        with torch.no_grad():
            for p in m.net.parameters():
                p.add_(torch.randn_like(p) * perturb)
    return m


def with_exact_reverse(model: DiffusionModel) -> DiffusionModel:
    """Monkeypatch reverse_step to the exact reverse process for data x^0 ~ N(0, I).

    The forward kernel N(√(1−β)x, β) satisfies detailed balance w.r.t. N(0, I); with x^0 ~ N(0, I)
    every marginal is N(0, I) and the time reversal of each step is the same kernel:
    p(x^k | x^{k+1}) = N(√(1−β_{k+1})·x^{k+1}, β_{k+1}·I), for every k including the fixed k = 0."""

    def reverse_step(x_t, k, s=None):
        s = model.schedule_tensors() if s is None else s
        beta = gather(s.beta, k, x_t)
        return StepDistribution(mean=torch.sqrt(1 - beta) * x_t, var=beta * torch.ones_like(x_t))

    model.reverse_step = reverse_step
    return model


def heartbeat_sequences() -> torch.Tensor:
    """The 5 heartbeat sequences of spec §4.2: length 20, a 1 every 5th bin, phase 0..4. [5, 20]"""
    x = torch.zeros(5, 20)
    for ph in range(5):
        x[ph, ph::5] = 1.0
    return x


def heartbeat_batch(n: int, g: torch.Generator) -> torch.Tensor:
    return heartbeat_sequences()[torch.randint(0, 5, (n,), generator=g)]


def with_heartbeat_oracle(model: DiffusionModel) -> DiffusionModel:
    """Monkeypatch reverse_step to the per-bit marginals of the *true* reverse process of heartbeat data:
    q(x_i^k = 1 | x^{k+1}) = Σ_{x0} q(x0 | x^{k+1})·q(x_i^k = 1 | x^{k+1}, x0), with q(x0 | x^{k+1})
    over the 5 sequences. The true reverse is a mixture (not factorised), so this factorised model is
    good but not exact: its K must stay below the ceiling −log 5."""
    seqs = heartbeat_sequences()
    kern = model.kernel
    fixed = model.reverse_step

    def reverse_step(x_t, k, s=None):
        s = model.schedule_tensors() if s is None else s
        if isinstance(k, int) and k == 0:
            return fixed(x_t, 0, s)
        B = x_t.shape[0]
        kv = torch.full((B,), k, dtype=torch.long) if isinstance(k, int) else k
        X0 = seqs.to(torch.float64).repeat(B, 1)  # [B·5, 20]
        XT = x_t.to(torch.float64).repeat_interleave(5, dim=0)
        KK = kv.repeat_interleave(5)
        pm = kern.q_marginal_prob(X0, KK, s)  # q(x^{k+1} = 1 | x0)
        loglik = (XT * torch.log(pm) + (1 - XT) * torch.log1p(-pm)).sum(1).reshape(B, 5)
        w = torch.softmax(loglik, dim=1)  # q(x0 | x^{k+1})
        post = kern.q_posterior(X0, XT, KK, s).reshape(B, 5, -1)
        return StepDistribution(prob=(w[:, :, None] * post).sum(1).to(x_t.dtype))

    model.reverse_step = reverse_step
    return model


def assert_close(actual, expected, rtol=None, atol=None):
    """torch.testing.assert_close's contract (same shape, defaults by dtype) without its slow first call."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    single = torch.float32 in (actual.dtype, expected.dtype)
    rtol = (1.3e-6 if single else 1e-7) if rtol is None else rtol
    atol = (1e-5 if single else 1e-7) if atol is None else atol
    a, e = actual.to(torch.float64), expected.to(torch.float64)
    bad = (a - e).abs() > atol + rtol * e.abs()
    assert not bool(bad.any()), f"max abs diff {float((a - e).abs().max()):.3g}; actual {a[bad][:5]}, expected {e[bad][:5]}"


def mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.to(torch.float64).flatten()
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(v.numel()))


# ----------------------------------------------------------------------------------------------------
# schedules (spec §3)


@pytest.mark.parametrize("T, b1, b2, bT, abarT", [(1000, 0.00200, 0.00100, 0.49999, 9.9e-4),
                                                  (500, 0.00300, 0.00200, 0.49999, 2.0e-3)])
def test_reference_schedule_matches_spec_table(T, b1, b2, bT, abarT):
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


# ----------------------------------------------------------------------------------------------------
# Gaussian kernel: posterior = Bayes' rule on a grid (spec §2.1)


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
            mean, var = kern.q_posterior(X0, XT, k, s)
            grid, p, gm, gv = _grid_posterior(x0, xt, k, beta)
            m, v = float(mean), float(var)
            assert m == pytest.approx(gm, abs=1e-7 * max(1.0, math.sqrt(gv)))
            assert v == pytest.approx(gv, rel=1e-6)
            # the whole density, not only its moments
            dens = np.exp(-0.5 * (grid - m) ** 2 / v) / math.sqrt(2 * math.pi * v)
            assert np.max(np.abs(dens - p)) <= 1e-6 * p.max()
            # spec §2.1 closed forms
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
    mean, var = kern.q_posterior(x0, xt, k, s)
    for i in range(6):
        m_i, v_i = kern.q_posterior(x0[i:i + 1], xt[i:i + 1], int(k[i]), s)
        assert_close(mean[i:i + 1], m_i)
        assert_close(var[i:i + 1], v_i)
        mq, vq = kern.q_marginal(x0[i:i + 1], int(k[i]), s)
        mq2, vq2 = kern.q_marginal(x0, k, s)
        assert_close(mq2[i:i + 1], mq)
        assert_close(vq2[i:i + 1], vq)


# ----------------------------------------------------------------------------------------------------
# binomial kernel: posterior = Bayes' rule by enumeration (spec §2.2)


def _transition(beta: float, p_bar: float) -> np.ndarray:
    """M[a, b] = q(x^t = b | x^{t−1} = a) for one bit."""
    p1 = np.array([p_bar * beta, 1 - beta + p_bar * beta])  # P(x^t = 1 | x^{t−1} = 0, 1)
    return np.stack([1 - p1, p1], axis=1)


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
                prior = prior @ _transition(beta[j], p_bar)
            like = _transition(beta[k], p_bar)  # step k → k + 1
            for xt in (0, 1):
                joint = prior * like[:, xt]
                expected = joint[1] / joint.sum()
                got = kern.q_posterior(torch.tensor([[float(x0)]], dtype=torch.float64),
                                       torch.tensor([[float(xt)]], dtype=torch.float64), k, s)
                assert float(got) == pytest.approx(expected, abs=1e-12)
            # and the marginal q(x^{k+1} = 1 | x^0) = ᾱ x^0 + (1 − ᾱ) p̄
            marg = (prior @ like)[1]
            got_m = kern.q_marginal_prob(torch.tensor([[float(x0)]], dtype=torch.float64), k, s)
            assert float(got_m) == pytest.approx(marg, abs=1e-12)


@pytest.mark.parametrize("p_bar", [0.2, 0.5])
def test_binomial_kernel_is_reversible_and_last_step_is_the_exact_reversal(p_bar):
    beta = 0.3
    M = _transition(beta, p_bar)
    pi = np.array([1 - p_bar, p_bar])
    np.testing.assert_allclose(pi[:, None] * M, (pi[:, None] * M).T, atol=1e-15)  # detailed balance
    s = sched(np.array([beta, 0.5]))
    kern = BinomialKernel(p_bar)
    x1 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    # p(x^0 = 1 | x^1) = q(x^1 | x^0 = 1) π(1) / π(x^1)
    expected = [M[1, 0] * p_bar / pi[0], M[1, 1] * p_bar / pi[1]]
    np.testing.assert_allclose(kern.last_step(x1, s).flatten().numpy(), expected, atol=1e-15)


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
    if kind == "gaussian":
        log_p = kern.log_prob(x0, d.mean, d.var)
        log_q = kern.log_prob(x1, torch.sqrt(1 - b1) * x0, b1 * torch.ones_like(x0))
    else:
        log_p = kern.log_prob(x0, d.prob)
        log_q = kern.log_prob(x1, kern.step_prob(x0, b1))
    assert_close(log_p, log_q + kern.prior_log_prob(x0) - kern.prior_log_prob(x1), rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------------------------------
# KL divergences and densities against torch.distributions


def test_gaussian_kl_and_log_prob_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    shape = (5, 3, 4)
    mq, mp = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    vq = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.01
    vp = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.01
    ref = kl_divergence(Normal(mq, vq.sqrt()), Normal(mp, vp.sqrt())).reshape(5, -1).sum(1)
    assert_close(GaussianKernel.kl(mq, vq, mp, vp), ref)
    assert torch.allclose(GaussianKernel.kl(mq, vq, mq, vq), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    assert_close(GaussianKernel.log_prob(x, mp, vp), Normal(mp, vp.sqrt()).log_prob(x).reshape(5, -1).sum(1))
    assert_close(GaussianKernel().prior_log_prob(x), Normal(0.0, 1.0).log_prob(x).reshape(5, -1).sum(1))
    assert_close(GaussianKernel.entropy_of(vq), Normal(mq, vq.sqrt()).entropy())


def test_bernoulli_kl_entropy_and_log_prob_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    shape = (6, 20)
    q = torch.rand(shape, generator=g, dtype=torch.float64) * 0.98 + 0.01
    p = torch.rand(shape, generator=g, dtype=torch.float64) * 0.98 + 0.01
    ref = kl_divergence(Bernoulli(probs=q), Bernoulli(probs=p)).sum(1)
    assert_close(BinomialKernel.kl(q, p), ref)
    assert_close(bernoulli_entropy(q), Bernoulli(probs=q).entropy())
    x = (torch.rand(shape, generator=g) < 0.3).to(torch.float64)
    assert_close(BinomialKernel.log_prob(x, p), Bernoulli(probs=p).log_prob(x).sum(1))
    for p_bar in (0.2, 0.5):
        assert_close(BinomialKernel(p_bar).prior_log_prob(x),
                                   Bernoulli(probs=torch.full_like(x, p_bar)).log_prob(x).sum(1))
    # deterministic q (the posterior is exactly 0 or 1 at some steps): KL(δ_1 ‖ p) = −log p
    q01 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    p01 = torch.tensor([[0.3, 0.6]], dtype=torch.float64)
    assert float(BinomialKernel.kl(q01, p01)) == pytest.approx(-math.log(0.7) - math.log(0.6), abs=1e-12)
    assert torch.all(bernoulli_entropy(torch.tensor([0.0, 1.0])) == 0)


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
            mean, var = kern.q_marginal(x0[:1], k, s)
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
        prob = kern.q_marginal_prob(x0[:1], k, s)[0]
        se = torch.sqrt(prob * (1 - prob) / N).clamp_min(1e-4)
        assert torch.all((x.mean(0) - prob).abs() < 5 * se), (k, x.mean(0), prob)
        u = torch.rand(x0.shape, generator=g)
        assert torch.all((kern.q_sample(x0, k, s, u).mean(0) - prob).abs() < 5 * se)
    assert torch.all(x.mean(0).sub(p_bar).abs() < 5 * math.sqrt(p_bar * (1 - p_bar) / N))  # β_T = 1: x^T ~ π


# ----------------------------------------------------------------------------------------------------
# per-step entropy bounds (Eq. 24, spec §2.4)


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
            return StepDistribution(mean=x_t, var=beta * torch.ones_like(x_t))
        bt = gather(s_.beta * (1 - s_.alpha_bar_prev) / (1 - s_.alpha_bar), k, x_t)
        return StepDistribution(mean=torch.sqrt(1 - beta) * x_t, var=bt * torch.ones_like(x_t))

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
        M = _transition(beta[k], p_bar)
        joint = marg[:, None] * M  # [x^{t−1}, x^t]
        pt = joint.sum(0)
        H_joint = -np.sum(joint[joint > 0] * np.log(joint[joint > 0]))
        H_t = -np.sum(pt[pt > 0] * np.log(pt[pt > 0]))
        true_h = H_joint - H_t  # H(X^{t−1} | X^t)
        assert float(lower[k]) <= true_h + 1e-9 <= float(upper[k]) + 2e-9, (k, float(lower[k]), true_h, float(upper[k]))
        marg = pt


# ----------------------------------------------------------------------------------------------------
# reverse parameterisations (spec §4.3, §4.4, §10)


class _FixedNet(torch.nn.Module):
    """Stands in for the network: returns the given raw outputs z [B, n_out, D] whatever (x, k)."""

    def __init__(self, z):
        super().__init__()
        self.z = z

    def forward(self, x, k):
        return self.z.expand(x.shape[0], *self.z.shape[1:])


@pytest.mark.parametrize("param", ["paper", "code"])
def test_gaussian_reverse_parameterisations(param):
    T, D = 16, 3
    m = gaussian_model(T=T, D=D, param=param, schedule="cosine")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 2, D, generator=g)
    m.net = _FixedNet(z)
    x = torch.randn(4, D, generator=g)
    s = m.schedule_tensors()
    for k in (1, 7, T - 1):
        d = m.reverse_step(x, k, s)
        b = float(s.beta[k])
        lb = math.log(b) - math.log1p(-b)
        if param == "paper":  # Σ = σ(z^Σ + logit β_t), μ = (x − z^μ)(1 − Σ) + z^μ
            var = torch.sigmoid(z[:, 1] + lb)
            mean = (x - z[:, 0]) * (1 - var) + z[:, 0]
        else:  # reference code: σ(z^Σ/√T + logit β), μ = √(1−β)x + √β z^μ
            var = torch.sigmoid(z[:, 1] / math.sqrt(T) + lb)
            mean = math.sqrt(1 - b) * x + math.sqrt(b) * z[:, 0]
        assert_close(d.var, var.expand_as(x), rtol=1e-5, atol=1e-7)
        assert_close(d.mean, mean, rtol=1e-5, atol=1e-6)
        # per-example steps give the same as one shared step
        dk = m.reverse_step(x, torch.full((4,), k), s)
        assert_close(dk.mean, d.mean)
        assert_close(dk.var, d.var)
    if param == "code":  # z = 0 is the exact reverse for N(0, I) data (spec §2.1): K = log π(x^0) exactly
        x0 = torch.randn(16, D, generator=g, dtype=torch.float64)
        m.net = _FixedNet(torch.zeros(1, 2, D, dtype=torch.float64))
        assert_close(_exact_gaussian_K(m, x0), GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("param", ["paper", "residual"])
def test_binomial_reverse_parameterisations(param):
    T, D = 12, 20
    m = binomial_model(T=T, D=D, param=param)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 1, D, generator=g)
    m.net = _FixedNet(z)
    x = (torch.rand(4, D, generator=g) < 0.4).float()
    s = m.schedule_tensors()
    for k in (1, 5, T - 1):
        d = m.reverse_step(x, k, s)
        if param == "paper":
            prob = torch.sigmoid(z[:, 0]).expand_as(x)
        else:  # f_b = σ(z + logit q(x^k = 1 | x^{k−1} = x^{k+1})), the forward kernel's "stay" probability
            ps = m.kernel.step_prob(x, float(s.beta[k])).clamp(1e-6, 1 - 1e-6)
            prob = torch.sigmoid(z[:, 0] + torch.log(ps) - torch.log1p(-ps))
        assert_close(d.prob, prob, rtol=1e-5, atol=1e-6)


class _FnNet(torch.nn.Module):
    """Stands in for the network: z = fn(x, k)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, k):
        return self.fn(x, k)


def test_gaussian_posterior_param_is_the_forward_posterior_at_the_estimated_x0():
    T, D = 12, 3
    m = gaussian_model(T=T, D=D, param="posterior", schedule="logit_linear", beta_1=1e-5)
    s = m.schedule_tensors()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, D, generator=g, dtype=torch.float64)
    for k in (1, 5, T - 1):
        ab = float(s.alpha_bar[k])
        xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(6, D, generator=g, dtype=torch.float64)
        for zv, want in ((-60.0, "lower"), (60.0, "upper"), (0.0, "middle")):
            # a net that knows x^0 predicts ε exactly → the mean is μ̃(x^0, x^t)
            m.net = _FnNet(lambda x, kk: torch.stack([(x - math.sqrt(ab) * x0) / math.sqrt(1 - ab),
                                                     torch.full_like(x, zv)], dim=1))
            d = m.reverse_step(xt, k, s)
            mq, vq = m.kernel.q_posterior(x0.expand_as(xt), xt, k, s)
            assert_close(d.mean, mq, rtol=1e-9, atol=1e-9)
            b, bt = float(s.beta[k]), float(vq[0, 0])
            v = {"lower": bt, "upper": b, "middle": math.sqrt(b * bt)}[want]
            assert_close(d.var, torch.full_like(xt, v), rtol=1e-9, atol=0)
            # the reverse entropy always lies within the Eq. 24 bounds
            lo, up = m.kernel.entropy_bounds(s)
            h = float(d.entropy()[0, 0])
            assert float(lo[k]) - 1e-9 <= h <= float(up[k]) + 1e-9
    # N(0, I) data: ε̂ = √(1 − ᾱ)·x^t and Σ = β is the exact reverse (spec §2.1), so K = log π(x^0)
    x0 = torch.randn(16, D, generator=g, dtype=torch.float64)
    sq = torch.sqrt(1 - s.alpha_bar)
    m.net = _FnNet(lambda x, kk: torch.stack([sq[kk][:, None] * x, torch.full_like(x, 80.0)], dim=1))
    assert_close(_exact_gaussian_K(m, x0), GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-8)


def test_binomial_posterior_param_matches_bayes_by_enumeration():
    T, D, pb = 12, 20, 0.2
    m = binomial_model(T=T, D=D, p_bar=pb, param="posterior")
    s = m.schedule_tensors()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 1, D, generator=g, dtype=torch.float64)
    x = (torch.rand(4, D, generator=g) < 0.4).double()
    seen = []
    m.net = _FnNet(lambda xx, kk: (seen.append(xx), z.expand(xx.shape[0], 1, D))[1])
    for k in (1, 5, T - 2, T - 1):
        d = m.reverse_step(x, k, s)
        # P(x_i^0 = 1 | x_i^{k+1}) by enumeration for a Bernoulli(p̄) prior, then tilted by the net's z
        l1 = m.kernel.q_marginal_prob(torch.ones_like(x), k, s)
        l0 = m.kernel.q_marginal_prob(torch.zeros_like(x), k, s)
        lik1 = torch.where(x > 0.5, l1, 1 - l1)
        lik0 = torch.where(x > 0.5, l0, 1 - l0)
        post = pb * lik1 / (pb * lik1 + (1 - pb) * lik0)
        p0 = torch.sigmoid(torch.logit(post) + z[:, 0])
        want = (p0 * m.kernel.q_posterior(torch.ones_like(x), x, k, s)
                + (1 - p0) * m.kernel.q_posterior(torch.zeros_like(x), x, k, s))
        assert_close(d.prob, want, rtol=1e-9, atol=1e-12)
        # the net reads the evidence/4, not the raw bits
        assert_close(seen[-1] * 4, torch.log(lik1) - torch.log(lik0), rtol=1e-9, atol=1e-9)


def test_binomial_posterior_param_with_the_true_x0_posterior_is_the_heartbeat_oracle():
    """Fed the exact P(x_i^0 = 1 | x^t) of heartbeat data, the "posterior" parameterisation gives the
    per-bit marginals of the true reverse process (the factorised oracle) at every step."""
    T = 30
    m = binomial_model(T=T, D=20, p_bar=0.2, param="posterior")
    oracle = with_heartbeat_oracle(binomial_model(T=T, D=20, p_bar=0.2))
    s = m.schedule_tensors()
    seqs = heartbeat_sequences().double()

    def true_z(ev4, kk):
        ev = ev4 * 4
        xt = (ev > 0).double()
        ab = s.alpha_bar[kk][:, None, None]
        pm = ab * seqs[None] + (1 - ab) * 0.2  # q(x^{k+1} = 1 | sequence) [B, 5, 20]
        ll = (xt[:, None] * torch.log(pm) + (1 - xt[:, None]) * torch.log1p(-pm)).sum(-1)
        p0 = torch.einsum("bs,sd->bd", torch.softmax(ll, 1), seqs).clamp(1e-15, 1 - 1e-15)
        return (torch.logit(p0) - ev - math.log(0.2 / 0.8))[:, None]

    m.net = _FnNet(true_z)
    g = torch.Generator().manual_seed(2)
    x0 = heartbeat_batch(64, g).double()
    for k in (1, 3, T // 2, T - 2, T - 1):
        xt = m.kernel.q_sample(x0, k, s, torch.rand(x0.shape, generator=g, dtype=torch.float64))
        assert_close(m.reverse_step(xt, k, s).prob, oracle.reverse_step(xt, k, s).prob, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------------
# the bound K (Eq. 14, App. B, spec §2.3)


def _exact_gaussian_K(model: DiffusionModel, x0: torch.Tensor) -> torch.Tensor:
    """K per example with the expectation over x^t done exactly: when the reverse mean is linear in x^t
    and its variance does not depend on x^t, each KL term is a quadratic in the noise ε of x^t, so the
    two-point rule E f(ε) = ½(f(+1) + f(−1)) is exact (per dimension, and KL sums over dimensions)."""
    s = model.schedule_tensors()
    B = x0.shape[0]
    kl = torch.zeros(B, dtype=torch.float64)
    for k in range(1, model.T):
        kk = torch.full((B,), k, dtype=torch.long)
        for sign in (1.0, -1.0):
            kl += 0.5 * bound.step_kl(model, x0, kk, s, sign * torch.ones_like(x0)).to(torch.float64)
    e = model.kernel.edge_terms(x0, s)
    return -kl - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]


def test_K_nats_is_the_sum_of_its_reported_terms():
    m = gaussian_model(T=12, D=3, perturb=0.3)
    x0 = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(1))
    assert t.kl_nats.shape == (32, 12) and torch.all(t.kl_nats[:, 0] == 0) and torch.all(t.kl_nats[:, 1:] >= 0)
    expected = -t.kl_nats.sum(1) - t.prior_kl_nats - t.h_x1_given_x0_nats + t.edge_nats
    assert_close(t.K_nats, expected, rtol=0, atol=1e-12)
    # and the edge pieces are the closed forms of spec §2.3 (Gaussian, per example)
    D = 3
    S = (x0.double() ** 2).sum(1)
    s = m.schedule_tensors()
    aT, b1 = float(s.alpha_bar[-1]), float(s.beta[0])
    assert_close(t.h_x1_given_x0_nats, torch.full((32,), D * 0.5 * math.log(2 * math.pi * math.e * b1),
                                                                dtype=torch.float64))
    assert_close(t.prior_kl_nats, 0.5 * (D * (1 - aT) + aT * S - D - D * math.log(1 - aT)))
    assert_close(t.log_null_nats, Normal(0.0, 1.0).log_prob(x0.double()).sum(1))


def test_edge_term_is_log_pi_x0_minus_expected_log_pi_x1():
    """edge = log π(x^0) − E_{q(x^1|x^0)} log π(x^1), checked by Monte Carlo for both kernels."""
    g = torch.Generator().manual_seed(0)
    N = 40000
    mg = gaussian_model(T=10, D=2)
    s = mg.schedule_tensors()
    x0 = torch.tensor([[1.7, -0.4]], dtype=torch.float64)
    x1 = mg.kernel.q_step(x0.expand(N, 2), 0, s, generator=g)
    lp1 = mg.kernel.prior_log_prob(x1)
    mc = float(mg.kernel.prior_log_prob(x0)) - float(lp1.mean())
    assert float(mg.kernel.edge_terms(x0, s)["edge"]) == pytest.approx(mc, abs=5 * float(lp1.std()) / math.sqrt(N))
    mb = binomial_model(T=10, D=20, p_bar=0.2, beta_1=0.3)
    sb = mb.schedule_tensors()
    xb = heartbeat_sequences()[:1].double()
    xb[0, 10:17] = 1.0  # mean activity ≠ p̄ (on heartbeat data the edge term is exactly 0)
    x1 = mb.kernel.q_step(xb.expand(N, 20), 0, sb, generator=g)
    mc = float(mb.kernel.prior_log_prob(xb)) - float(mb.kernel.prior_log_prob(x1).mean())
    se = float(mb.kernel.prior_log_prob(x1).std()) / math.sqrt(N)
    assert float(mb.kernel.edge_terms(xb, sb)["edge"]) == pytest.approx(mc, abs=5 * se)
    # H(X^1 | X^0) and KL(q(x^T|x^0) ‖ π): β_T = 1 makes the latter exactly 0
    e = mb.kernel.edge_terms(xb, sb)
    assert abs(float(e["edge"])) > 0.1
    m1 = xb * (1 - 0.3) + 0.2 * 0.3
    assert_close(e["h_x1_given_x0"], Bernoulli(probs=m1).entropy().sum(1))
    assert float(e["prior_kl"]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_stochastic_K_is_unbiased_for_the_exact_K(kind):
    T = 12
    g = torch.Generator().manual_seed(0)
    if kind == "gaussian":
        m = gaussian_model(T=T, D=2, perturb=0.4)
        x0 = torch.randn(16, 2, generator=g)
    else:
        m = binomial_model(T=T, D=20, perturb=0.4)
        x0 = heartbeat_batch(16, g)
    R = 300
    xr = x0.repeat(R, 1)
    st = bound.stochastic_K_nats(m, xr, torch.Generator().manual_seed(1)).detach()
    ex = bound.bound_terms(m, x0.repeat(20, 1), torch.Generator().manual_seed(2)).K_nats
    m1, se1 = mean_se(st)
    m2, se2 = mean_se(ex)
    assert abs(m1 - m2) < 4 * math.hypot(se1, se2), (m1, se1, m2, se2)


def test_K_relates_to_the_paper_eq14_form():
    """Per example, K = −ΣKL − KL(q(x^T|x^0)‖π) − H_q(X^1|X^0) + log π(x^0) − E log π(x^1), whereas Eq. 14 is
    K₁₄ = −ΣKL + H_q(X^T|X^0) − H_q(X^1|X^0) − H_p(X^T). Algebra (spec §2.3): K − K₁₄ = ½(ᾱ_T + β_1)(D − |x^0|²),
    which vanishes in expectation exactly when E|x^0|² = D."""
    T, D, N = 15, 3, 4000
    m = gaussian_model(T=T, D=D, perturb=0.3)
    s = m.schedule_tensors()
    x0 = torch.randn(N, D, generator=torch.Generator().manual_seed(0))
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(1))
    x0 = x0.double()
    H_T = D * float(m.kernel.conditional_entropy(s)[-1])
    H_1 = D * HALF_LOG_2PIE + 0.5 * D * math.log(float(s.beta[0]))
    H_p = D * HALF_LOG_2PIE
    assert H_1 == pytest.approx(float(t.h_x1_given_x0_nats[0]), rel=1e-12)
    K14 = -t.kl_nats.sum(1) + H_T - H_1 - H_p
    diff = t.K_nats - K14
    aT, b1 = float(s.alpha_bar[-1]), float(s.beta[0])
    assert_close(diff, 0.5 * (aT + b1) * (D - (x0**2).sum(1)), rtol=1e-9, atol=1e-9)
    mu, se = mean_se(diff)
    assert abs(mu) < 4 * se
    mu_K, se_K = mean_se(t.K_nats)
    mu_14, se_14 = mean_se(K14)
    assert abs(mu_K - mu_14) < 4 * max(se_K, se_14)


def test_image_models_bound_units_and_shapes():
    """A tiny conv model: the bound's pieces per example, the unit "bits/pixel" (channels summed, divided by
    H·W), the cap per pixel, and sampling at another image size (fully convolutional)."""
    T = 6
    torch.manual_seed(0)
    m = DiffusionModel(ModelConfig(kernel="gaussian", T=T, example_shape=(2, 4, 4), arch="conv", hidden=4,
                                   conv_layers=1, n_scales=2, dense_layers=1, dense_hidden=4, J=3))
    x0 = torch.randn(8, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(2))
    assert t.kl_nats.shape == (8, T) and torch.all(torch.isfinite(t.K_nats))
    assert_close(t.log_null_nats, Normal(0.0, 1.0).log_prob(x0.double()).reshape(8, -1).sum(1))
    summ = bound.evaluate_bound(m, x0, "bits/pixel", torch.Generator().manual_seed(2), batch_size=8)
    assert bound.evaluate_bound(m, x0, "bits/pixel", batch_size=3).n_eval == 8
    assert summ.K_bits == pytest.approx(float(t.K_nats.mean()) / LN2 / 16, rel=1e-9)
    assert summ.L_null_bits == pytest.approx(float(t.log_null_nats.mean()) / LN2 / 16, rel=1e-9)
    assert summ.n_eval == 8 and len(summ.kl_bits_per_step) == T
    s = m.schedule_tensors()
    assert summ.cap_bits == pytest.approx(2 * 0.5 * math.log2((1 - float(s.alpha_bar[-1])) / float(s.beta[0])))
    st = bound.stochastic_K_nats(m, x0, torch.Generator().manual_seed(3))
    assert st.shape == (8,) and torch.all(torch.isfinite(st))
    x = sampling.sample(m, 2, generator=torch.Generator().manual_seed(4), example_shape=(2, 6, 5))
    assert x.shape == (2, 2, 6, 5) and torch.all(torch.isfinite(x))


# ----------------------------------------------------------------------------------------------------
# the ideal reverse process: data ~ N(0, I)


@pytest.mark.parametrize("name", ["reference", "odd", "learned"])
def test_exact_reverse_for_gaussian_data_makes_the_bound_tight(name):
    """With p(x^{t−1}|x^t) = N(√(1−β_t)x^t, β_t) and p(x^T) = N(0, I), the model's joint over x^{0..T}
    equals the forward process started at N(0, I), so p(x^{1..T}|x^0) = q(x^{1..T}|x^0): Jensen's gap is
    zero and K(x^0) = log p(x^0) = log π(x^0) for *every* x^0 (not only on average).

    The KL terms do not vanish (they compare with q(x^{t−1}|x^t, x^0), which knows x^0); they sum to
    −log π(x^0) − KL_T − H_1 + edge, and for |x^0|² = D to exactly the β_1 cap ½·D·log((1−ᾱ_T)/β_1)."""
    T, D = 25, 3
    m = with_exact_reverse(gaussian_model(T=T, D=D, betas=SCHEDULES[name](T)))
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, D, generator=g, dtype=torch.float64) * 1.7 + 0.3  # any x^0 at all
    K = _exact_gaussian_K(m, x0)
    assert_close(K, GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-9)
    # on unit-norm data (|x0|² = D) the KL sum is exactly the cap, and K = L_null
    xs = torch.where(torch.rand(8, D, generator=g) < 0.5, -1.0, 1.0).double()
    s = m.schedule_tensors()
    e = m.kernel.edge_terms(xs, s)
    kl_sum = -_exact_gaussian_K(m, xs) - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]
    cap = 0.5 * D * math.log((1 - float(s.alpha_bar[-1])) / float(s.beta[0]))
    assert_close(kl_sum, torch.full((8,), cap, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    assert_close(_exact_gaussian_K(m, xs) / LN2 / D,
                               torch.full((8,), L_NULL_BITS_PER_DIM, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    # the Monte Carlo estimators agree: bound_terms (one draw per step) and AIS (exact: every weight equal)
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(1))
    mu, se = mean_se(t.K_nats - t.log_null_nats)
    assert abs(mu) < 4 * se
    ais = bound.ais_log_likelihood_nats(m, x0, n_traj=4, generator=torch.Generator().manual_seed(2))
    assert_close(ais, t.log_null_nats, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("beta_1", [1e-3, 1e-5])
def test_float32_bound_is_accurate_for_a_small_beta_1(beta_1):
    """Models run in float32. With β_1 = 1e-5 (the Swiss-roll preset's), 1 − ᾱ_t formed from a float32 ᾱ
    loses ~0.5 % at t = 1, which moved q(x^{t−1}|x^t, x^0)'s mean by up to ~0.9 of its sd and K by up to
    0.8 nats per example. The per-step coefficients must be formed in float64 and cast once."""
    T = 40
    beta = logit_linear_betas(T, beta_1=beta_1)
    m = with_exact_reverse(gaussian_model(T=T, D=2, betas=beta))
    s = m.schedule_tensors()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(500, 2, generator=g)
    K32 = _exact_gaussian_K(m, x0)
    assert float((K32 - GaussianKernel().prior_log_prob(x0.double())).abs().max()) < 1e-3
    kern = m.kernel
    eps = torch.randn(500, 2, generator=g)
    for k in (1, 2, 5):
        xt = kern.q_sample(x0, k, s, eps)
        xt64 = kern.q_sample(x0.double(), k, s, eps.double())
        mean64, var64 = kern.q_marginal(x0.double(), k, s)
        mean32, var32 = kern.q_marginal(x0, k, s)
        assert float(((xt.double() - xt64) / var64.sqrt()).abs().max()) < 1e-3
        assert float((var32.double() / var64 - 1).abs().max()) < 1e-5
        pm32, pv32 = kern.q_posterior(x0, xt, k, s)
        pm64, pv64 = kern.q_posterior(x0.double(), xt.double(), k, s)
        assert float(((pm32.double() - pm64) / pv64.sqrt()).abs().max()) < 1e-3
        assert float((pv32.double() / pv64 - 1).abs().max()) < 1e-5


# ----------------------------------------------------------------------------------------------------
# ceilings (spec §12)


def _train(model, draw, steps=200, lr=3e-3, batch=128, seed=0):
    """Maximise the stochastic K (the training objective, with frozen noise for a learned β) with Adam,
    written out: merely constructing a torch.optim optimiser imports torch._dynamo, ~5 s on this machine."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    for i in range(1, steps + 1):
        loss = -bound.stochastic_K_nats(model, draw(batch, g), g).mean()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, gr, a, b in zip(params, grads, m1, m2):
                a.mul_(0.9).add_(gr, alpha=0.1)
                b.mul_(0.999).addcmul_(gr, gr, value=0.001)
                p.sub_(lr * (a / (1 - 0.9**i)) / ((b / (1 - 0.999**i)).sqrt() + 1e-8))
    return model


@pytest.fixture(scope="module")
def trained_gaussian():
    """A small Gaussian model (learned β, paper parameterisation) trained 200 Adam steps on N(0, I) data."""
    m = gaussian_model(T=20, D=2, hidden=32, learn_beta=True, beta_1=0.01)
    return _train(m, lambda n, g: torch.randn(n, 2, generator=g), steps=200, lr=3e-3)


def test_untrained_gaussian_model_never_beats_the_null_on_gaussian_data():
    D = 2
    m = gaussian_model(T=20, D=D, perturb=0.2)
    x0 = torch.randn(2000, D, generator=torch.Generator().manual_seed(5))
    summ = bound.evaluate_bound(m, x0, "bits/point", torch.Generator().manual_seed(6))
    assert summ.L_null_bits == pytest.approx(L_NULL_BITS_PER_DIM * D, abs=0.1)
    assert summ.K_bits <= L_NULL_BITS_PER_DIM * D + 3 * summ.K_stderr_bits
    assert summ.K_minus_Lnull_bits < 0
    # the β_1 cap of spec §2.3
    s = m.schedule_tensors()
    assert summ.cap_bits == pytest.approx(0.5 * D * math.log2((1 - float(s.alpha_bar[-1])) / float(s.beta[0])))
    assert summ.K_minus_Lnull_bits <= summ.cap_bits


def test_trained_gaussian_model_never_beats_the_null_on_gaussian_data(trained_gaussian):
    model = trained_gaussian
    D = 2
    x0 = torch.randn(2000, D, generator=torch.Generator().manual_seed(7))
    # what the app reports (evaluate_bound: exact K over all steps, bits per point, with its standard error)
    summ = bound.evaluate_bound(model, x0, "bits/point", torch.Generator().manual_seed(8), batch_size=2000)
    assert summ.beta_1 == pytest.approx(0.01)
    assert summ.K_bits <= L_NULL_BITS_PER_DIM * D + 3 * summ.K_stderr_bits
    assert summ.K_minus_Lnull_bits <= summ.cap_bits
    # exact K paired with log π(x^0) to cancel the data's own variance
    t = bound.bound_terms(model, x0, torch.Generator().manual_seed(8))
    mu, se = mean_se((t.K_nats - t.log_null_nats) / LN2)
    assert mu == pytest.approx(summ.K_minus_Lnull_bits, abs=1e-9)
    assert mu <= 3 * se, (mu, se)
    assert mu > -1.0  # and training got it close to the ceiling from below (untrained: several bits)


def test_binomial_heartbeat_K_never_beats_log_5():
    """K ≤ E_q log p ≤ −H(q) = −log2 5 bits/seq (spec §12) for an untrained model, a briefly trained one, and
    the oracle of :func:`with_heartbeat_oracle`. The oracle's per-bit marginals are the KL-optimal factorised
    reverse at every step (KL sums over bits), so for a fixed T no model of this family can beat its K:
    untrained < trained ≤ oracle ≤ ceiling, and the oracle approaches the ceiling as T grows."""
    ceiling = -math.log2(5)
    T = 20
    g = torch.Generator().manual_seed(0)
    x0 = heartbeat_batch(500, g)
    net = dict(hidden=50, layers=3, readout="per_step", activation="tanh")
    untrained = binomial_model(T=T, **net)
    trained = _train(binomial_model(T=T, seed=1, **net), heartbeat_batch, steps=200, lr=3e-3)
    oracle = with_heartbeat_oracle(binomial_model(T=T))
    Ks, ses = {}, {}
    for name, m in (("untrained", untrained), ("trained", trained), ("oracle", oracle)):
        t = bound.bound_terms(m, x0, torch.Generator().manual_seed(1))
        Ks[name], ses[name] = mean_se(t.K_nats / LN2)
        assert Ks[name] <= ceiling + 3 * ses[name], (name, Ks[name], ses[name])
        # L_null with p̄ = 0.2: 4 log2 0.2 + 16 log2 0.8 = −14.438 bits/seq (spec §1.1)
        assert float(t.log_null_nats.mean() / LN2) == pytest.approx(-14.438, abs=1e-3)
    assert Ks["untrained"] < Ks["trained"] - 3
    assert Ks["trained"] <= Ks["oracle"] + 3 * math.hypot(ses["trained"], ses["oracle"]), Ks
    # a longer chain: the optimal factorised reverse gets close to the ceiling, never above it
    t100 = bound.bound_terms(with_heartbeat_oracle(binomial_model(T=100)), x0[:200], torch.Generator().manual_seed(3))
    k100, se100 = mean_se(t100.K_nats / LN2)
    assert Ks["oracle"] < k100 <= ceiling + 3 * se100
    assert k100 > ceiling - 1.0
    # AIS with the oracle: above K, and still not above the ceiling (E AIS ≤ log p ≤ −log 5 on average)
    ais = bound.ais_log_likelihood_nats(oracle, x0[:100], n_traj=16, generator=torch.Generator().manual_seed(2))
    mu_a, se_a = mean_se(ais / LN2)
    assert mu_a <= ceiling + 3 * se_a + 0.05
    assert mu_a >= Ks["oracle"] - 3 * math.hypot(se_a, ses["oracle"])


def test_ais_is_at_least_K_and_equals_it_in_expectation_with_one_trajectory(trained_gaussian):
    """E log w = K for one trajectory (it is the same Jensen bound), and logsumexp over M trajectories
    can only raise it: K ≤ AIS(M) ≤ log p (in expectation)."""
    model = trained_gaussian
    for m in (model, gaussian_model(T=20, D=2, perturb=0.5)):
        x0 = torch.randn(200, 2, generator=torch.Generator().manual_seed(3))
        K = bound.bound_terms(m, x0, torch.Generator().manual_seed(4)).K_nats
        ais1 = bound.ais_log_likelihood_nats(m, x0.repeat(5, 1), n_traj=1, generator=torch.Generator().manual_seed(5))
        ais32 = bound.ais_log_likelihood_nats(m, x0, n_traj=32, generator=torch.Generator().manual_seed(6))
        mk, sk = mean_se(K)
        m1, s1 = mean_se(ais1)
        m32, s32 = mean_se(ais32 - K)
        assert abs(m1 - mk) < 4 * math.hypot(sk, s1), (m1, mk)
        assert m32 >= -3 * s32, (m32, s32)
        gap, se_gap = mean_se(ais32 - GaussianKernel().prior_log_prob(x0.double()))
        assert gap <= 3 * se_gap + 0.05, (gap, se_gap)  # E log p ≤ −H(q) = E log π on N(0, I) data


# ----------------------------------------------------------------------------------------------------
# posterior conditions (spec §6)


def test_clamp_inpainting_keeps_known_coordinates_exactly():
    m = gaussian_model(T=10, D=4, perturb=0.3)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(8, 4, generator=g)
    known = torch.tensor([True, False, True, False])
    for last_step in (True, False):
        steps = list(sampling.reverse_steps(m, x_T=posterior.inpaint_start(y, known, g), generator=g,
                                            condition=posterior.Clamp(y, known), last_step=last_step))
        assert [st.t for st in steps] == list(range(10, -1, -1))
        for st in steps:
            assert torch.equal(st.x[:, known], y[:, known])
        assert not torch.allclose(steps[-1].x[:, ~known], y[:, ~known])
    # all known: the result is y
    allk = torch.ones(4, dtype=torch.bool)
    x = sampling.sample(m, 8, generator=g, x_T=posterior.inpaint_start(y, allk, g), condition=posterior.Clamp(y, allk))
    assert torch.equal(x, y)
    # binomial clamp
    mb = binomial_model(T=10, D=20, perturb=0.3)
    yb = heartbeat_batch(6, g)
    kb = torch.zeros(20, dtype=torch.bool)
    kb[:10] = True
    xb = sampling.sample(mb, 6, generator=g, condition=posterior.Clamp(yb, kb))
    assert torch.equal(xb[:, kb], yb[:, kb])


def _gp_chain_moments(beta: np.ndarray, y: float, obs_var: float, lam) -> tuple[float, float]:
    """Mean and variance of x^0 from the chain x^T ~ N(0, 1), x^k ~ N(√(1−β)x^{k+1}, β)·N(x^k; y, obs_var/λ_k)
    (normalised per x^{k+1}), for the exact reverse of N(0, 1) data: a linear-Gaussian recursion."""
    m, v = 0.0, 1.0
    for k in range(len(beta) - 1, -1, -1):
        c = 1.0 / (1.0 / beta[k] + lam(k) / obs_var)
        a = c * math.sqrt(1 - beta[k]) / beta[k]
        m, v = a * m + c * lam(k) * y / obs_var, a * a * v + c
    return m, v


@pytest.mark.parametrize("schedule", ["constant", "annealed"])
def test_gaussian_product_denoising_with_an_exact_reverse(schedule):
    """Denoising y with r(x) = N(x; y, σ²) for data N(0, 1), where the true posterior is
    N(y/(1+σ²), σ²/(1+σ²)).

    Finding (documented here, reported): the paper's recipe (Eq. 22–23) — multiply every normalised reverse
    step by the same r and start at the prior — does *not* sample p·r. For a reversible step K and a tilt r,
    the normalised tilted kernel K̃(x'|x) = K(x'|x)r(x')/Z(x) has stationary density ∝ π(x)·r(x)·Z(x), and
    Z(x) = ∫K(x'|x)r(x')dx' → r(x) for small steps: the chain converges to ∝ π·r², i.e. the observation is
    counted twice (mean 2y/(2+σ²), variance σ²/(2+σ²)). With the reference schedule at T = 20 and σ² = 1 the
    chain gives N(0.649·y, 0.349) (p·r²: N(0.667·y, 0.333)) instead of the posterior N(0.5·y, 0.5); starting
    at x^T = y (the reference code) or at p̃(x^T) ∝ π·r changes this only slightly (0.666·y, 0.657·y). The test checks the implementation against that
    exact recursion (so GaussianProduct itself is right), and documents the gap to the true posterior.
    A time-dependent r_k(x^k) = p(y | x^k) = N(y; √ᾱ_k x^k, σ² + 1 − ᾱ_k), started from p(x^T | y), does give
    the exact posterior (last check)."""
    T, N, obs_var = 20, 20000, 1.0
    beta = reference_betas(T)
    m = with_exact_reverse(gaussian_model(T=T, D=2, betas=beta))
    yv = torch.tensor([1.5, -0.5])
    y = yv.expand(N, 2)
    g = torch.Generator().manual_seed(0)
    cond = posterior.GaussianProduct(y, obs_var, T, schedule=schedule)
    x = sampling.sample(m, N, generator=g, condition=cond)
    lam = (lambda k: 1.0) if schedule == "constant" else (lambda k: (T - k) / T)
    for d in range(2):
        mu, var = _gp_chain_moments(beta, float(yv[d]), obs_var, lam)
        assert float(x[:, d].mean()) == pytest.approx(mu, abs=5 * math.sqrt(var / N))
        assert float(x[:, d].var()) == pytest.approx(var, rel=5 * math.sqrt(2 / N))
        if schedule == "constant":
            exact_mu, exact_var = float(yv[d]) / (1 + obs_var), obs_var / (1 + obs_var)
            r2_mu, r2_var = 2 * float(yv[d]) / (2 + obs_var), obs_var / (2 + obs_var)
            assert abs(var - exact_var) > 0.1  # not the posterior p·r …
            assert abs(var - r2_var) < 0.03  # … but close to p·r² already at T = 20
            assert abs(mu - r2_mu) < 0.05 * abs(r2_mu) + 1e-9
    if schedule == "constant":
        # the exact alternative: r_k(x) = N(y; √ᾱ_k x, σ² + 1 − ᾱ_k) and x^T ~ p(x^T | y)
        s = m.schedule_tensors()
        abar_at = torch.cat([torch.ones(1, dtype=torch.float64), s.alpha_bar])  # ᾱ at paper time t = 0..T

        def exact_condition(k, x_t, dist):
            a = float(abar_at[k])
            v_r = (obs_var + 1 - a) / a  # as a Gaussian in x: N(x; y/√a, (σ²+1−a)/a)
            prec = 1 / dist.var + 1 / v_r
            return StepDistribution(mean=(dist.mean / dist.var + y / math.sqrt(a) / v_r) / prec, var=1 / prec)

        aT = float(abar_at[-1])
        x_T = math.sqrt(aT) * y / (1 + obs_var) + math.sqrt(1 - aT / (1 + obs_var)) * torch.randn(N, 2, generator=g)
        x = sampling.sample(m, N, generator=g, x_T=x_T, condition=exact_condition)
        for d in range(2):
            exact_mu, exact_var = float(yv[d]) / (1 + obs_var), obs_var / (1 + obs_var)
            assert float(x[:, d].mean()) == pytest.approx(exact_mu, abs=5 * math.sqrt(exact_var / N))
            assert float(x[:, d].var()) == pytest.approx(exact_var, rel=5 * math.sqrt(2 / N))


def test_gaussian_product_step_is_the_exact_product_of_gaussians():
    g = torch.Generator().manual_seed(0)
    mean, var = torch.randn(5, 3, generator=g), torch.rand(5, 3, generator=g) + 0.1
    y = torch.randn(5, 3, generator=g)
    known = torch.tensor([True, True, False])
    d = posterior.GaussianProduct(y, 0.5, 10, known=known)(3, None, StepDistribution(mean=mean, var=var))
    v = 1 / (1 / var + 1 / 0.5)
    mu = v * (mean / var + y / 0.5)
    assert_close(d.mean[:, :2], mu[:, :2])
    assert_close(d.var[:, :2], v[:, :2])
    assert_close(d.mean[:, 2], mean[:, 2])
    assert_close(d.var[:, 2], var[:, 2])


def test_binomial_r_fixes_bits():
    T = 10
    mb = binomial_model(T=T, D=20, perturb=0.5)
    r = torch.full((20,), 0.5)
    r[[0, 3, 7]] = 1.0
    r[[1, 2, 19]] = 0.0
    g = torch.Generator().manual_seed(0)
    for schedule in ("constant", "annealed"):
        x = sampling.sample(mb, 64, generator=g, condition=posterior.BinomialR(r, T, schedule=schedule))
        assert torch.all(x[:, [0, 3, 7]] == 1) and torch.all(x[:, [1, 2, 19]] == 0)
        free = x[:, 4:7]
        assert 0 < float(free.mean()) < 1
    # the Table App.1 formula at one step
    c = torch.tensor([[0.3, 0.6, 0.9]])
    d = torch.tensor([0.2, 0.5, 0.7])
    out = posterior.BinomialR(d, T)(4, None, StepDistribution(prob=c)).prob
    assert_close(out, c * d / (c * d + (1 - c) * (1 - d)))


def test_binomial_r_fixes_bits_even_where_the_model_is_certain():
    """A confident model outputs probabilities that round to exactly 0 or 1 in float32 (σ(z) = 1 for
    z ≳ 17); fixing a bit against it must still fix the bit (r is a hard constraint)."""
    T = 6
    mb = binomial_model(T=T, D=4)

    def certain(x_t, k, s=None):
        return StepDistribution(prob=torch.tensor([1.0, 0.0, 1.0, 0.0]).expand(x_t.shape[0], 4).clone())

    mb.reverse_step = certain
    r = torch.tensor([0.0, 1.0, 0.5, 0.5])
    x = sampling.sample(mb, 16, generator=torch.Generator().manual_seed(0), condition=posterior.BinomialR(r, T))
    assert torch.all(x[:, 0] == 0) and torch.all(x[:, 1] == 1)
    assert torch.all(x[:, 2] == 1) and torch.all(x[:, 3] == 0)


def test_smooth_shift_moves_means_toward_a_gaussian_r():
    """log r = −|x − c|²/(2s²): App. C's shift is μ + Σ∇log r(μ) = μ + Σ(c − μ)/s², toward c."""
    g = torch.Generator().manual_seed(0)
    c, s2 = torch.tensor([2.0, -1.0]), 4.0

    def log_r(x):
        return -((x - c) ** 2).sum(1) / (2 * s2)

    mean, var = torch.randn(10, 2, generator=g), torch.rand(10, 2, generator=g) * 0.5 + 0.01
    d = posterior.SmoothShift(log_r, 10)(5, None, StepDistribution(mean=mean, var=var))
    assert_close(d.mean, mean + var * (c - mean) / s2)
    assert_close(d.var, var)
    assert torch.all((d.mean - c).abs() < (mean - c).abs())
    # along a whole chain (exact reverse of N(0, 1) data): the samples' mean moves toward c
    T, N = 20, 4000
    m = with_exact_reverse(gaussian_model(T=T, D=2))
    plain = sampling.sample(m, N, generator=torch.Generator().manual_seed(1))
    shifted = sampling.sample(m, N, generator=torch.Generator().manual_seed(1), condition=posterior.SmoothShift(log_r, T))
    assert torch.all((shifted.mean(0) - c).abs() < (plain.mean(0) - c).abs() - 0.2)
    with pytest.raises(ValueError):
        posterior.SmoothShift(log_r, T, schedule="sometimes")


def test_repaint_ends_with_known_equal_to_y():
    T = 20
    m = gaussian_model(T=T, D=4, perturb=0.3)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, 4, generator=g)
    known = torch.tensor([False, True, True, False])
    steps = list(posterior.repaint_steps(m, y, known, jump_length=5, jump_n=3, generator=g))
    ts = [st.t for st in steps]
    assert ts[0] == T and ts[-1] == 0
    assert all(abs(a - b) == 1 for a, b in zip(ts[:-1], ts[1:]))
    assert len(ts) > T + 1  # it did jump back
    assert torch.equal(steps[-1].x[:, known], y[:, known])
    assert not torch.allclose(steps[-1].x[:, ~known], y[:, ~known])
    # on the way down, the known coordinates are forward-noised observations: x^t_known ~ q(x^t | y)
    N = 4000
    yy = y[:1].expand(N, 4)
    first_visit = {}
    for st in posterior.repaint_steps(m, yy, known, jump_length=5, jump_n=2, generator=g):
        first_visit.setdefault(st.t, st.x)
    s = m.schedule_tensors()
    for t in (T - 1, 12, 3, 1):
        mean, var = m.kernel.q_marginal(y[:1], t - 1, s)  # q(x^t | x^0 = y)
        xk = first_visit[t][:, known]
        assert torch.all((xk.mean(0) - mean[0, known]).abs() < 5 * (var[0, known] / N).sqrt()), t
        assert torch.all((xk.var(0) / var[0, known] - 1).abs() < 5 * math.sqrt(2 / N)), t


# ----------------------------------------------------------------------------------------------------
# sampling (spec §5.3)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_sampling_generators_order_and_reproducibility(kind):
    T = 8
    m = gaussian_model(T=T, D=3, perturb=0.3) if kind == "gaussian" else binomial_model(T=T, D=20, perturb=0.3)
    D = m.config.D

    def run(seed):
        return list(sampling.reverse_steps(m, 5, generator=torch.Generator().manual_seed(seed)))

    a, b, c = run(1), run(1), run(2)
    assert [st.t for st in a] == list(range(T, -1, -1))
    assert all(st.x.shape == (5, D) for st in a)
    assert all(torch.equal(p.x, q.x) for p, q in zip(a, b))
    assert not torch.equal(a[-1].x, c[-1].x)
    x0 = a[-1].x
    fa = list(sampling.forward_steps(m, x0, generator=torch.Generator().manual_seed(3)))
    fb = list(sampling.forward_steps(m, x0, generator=torch.Generator().manual_seed(3)))
    assert [st.t for st in fa] == list(range(T + 1))
    assert torch.equal(fa[0].x, x0)
    assert all(torch.equal(p.x, q.x) for p, q in zip(fa, fb))
    if kind == "binomial":
        assert all(torch.all((st.x == 0) | (st.x == 1)) for st in a + fa)
    traj, ts = sampling.collect(iter(a), T, stride=3)
    assert ts == sorted(set(range(0, T + 1, 3)) | {0, T})
    assert torch.equal(traj[0], a[-1].x) and torch.equal(traj[-1], a[0].x)
    assert_close(sampling.sample(m, 5, generator=torch.Generator().manual_seed(1)), a[-1].x)


def test_exact_reverse_chain_samples_the_data_distribution():
    """Sanity of reverse_steps itself: with the exact reverse for N(0, I) data, x^0 ~ N(0, I)."""
    T, N = 20, 20000
    m = with_exact_reverse(gaussian_model(T=T, D=2))
    x = sampling.sample(m, N, generator=torch.Generator().manual_seed(0))
    assert torch.all(x.mean(0).abs() < 5 / math.sqrt(N))
    assert torch.all((x.var(0) - 1).abs() < 5 * math.sqrt(2 / N))
