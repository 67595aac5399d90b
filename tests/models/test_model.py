"""Tests of models/model.py: each reverse parameterisation against its formula (§4.3, App. D.2.1)."""
from __future__ import annotations

import math

import pytest
import torch

from models.kernels import GaussianKernel

from math_helpers import (assert_close, binomial_model, exact_gaussian_K, gaussian_model, heartbeat_batch,
                          heartbeat_sequences, with_heartbeat_oracle)

# ----------------------------------------------------------------------------------------------------
# reverse parameterisations (App. D.2.1; models/README.md, Parameterisations)


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
    if param == "code":  # z = 0 is the exact reverse for N(0, I) data (detailed balance): K = log π(x^0) exactly
        x0 = torch.randn(16, D, generator=g, dtype=torch.float64)
        m.net = _FixedNet(torch.zeros(1, 2, D, dtype=torch.float64))
        assert_close(exact_gaussian_K(m, x0), GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-9)


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
            q = m.kernel.q_posterior(x0.expand_as(xt), xt, k, s)
            mq, vq = q.mean, q.var
            assert_close(d.mean, mq, rtol=1e-9, atol=1e-9)
            b, bt = float(s.beta[k]), float(vq[0, 0])
            v = {"lower": bt, "upper": b, "middle": math.sqrt(b * bt)}[want]
            assert_close(d.var, torch.full_like(xt, v), rtol=1e-9, atol=0)
            # the reverse entropy always lies within the Eq. 24 bounds
            lo, up = m.kernel.entropy_bounds(s)
            h = float(d.entropy()[0, 0])
            assert float(lo[k]) - 1e-9 <= h <= float(up[k]) + 1e-9
    # N(0, I) data: ε̂ = √(1 − ᾱ)·x^t and Σ = β is the exact reverse (detailed balance), so K = log π(x^0)
    x0 = torch.randn(16, D, generator=g, dtype=torch.float64)
    sq = torch.sqrt(1 - s.alpha_bar)
    m.net = _FnNet(lambda x, kk: torch.stack([sq[kk][:, None] * x, torch.full_like(x, 80.0)], dim=1))
    assert_close(exact_gaussian_K(m, x0), GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-8)


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
        l1 = m.kernel.q_marginal(torch.ones_like(x), k, s).prob
        l0 = m.kernel.q_marginal(torch.zeros_like(x), k, s).prob
        lik1 = torch.where(x > 0.5, l1, 1 - l1)
        lik0 = torch.where(x > 0.5, l0, 1 - l0)
        post = pb * lik1 / (pb * lik1 + (1 - pb) * lik0)
        p0 = torch.sigmoid(torch.logit(post) + z[:, 0])
        want = (p0 * m.kernel.q_posterior(torch.ones_like(x), x, k, s).prob
                + (1 - p0) * m.kernel.q_posterior(torch.zeros_like(x), x, k, s).prob)
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
# the time-index rule (models/README.md, Time-index rule; models/__init__.py)


def test_the_time_index_rule():
    """Arrays over steps have index k = t − 1: beta[0] is β_1 and alpha_bar[k] is ᾱ_{k+1}; q_marginal(x0, k)
    is q(x^{k+1} | x^0); q_posterior(x0, x, k) is q(x^k | x^{k+1}, x^0); reverse_step(x, k) takes x^{k+1},
    uses β_{k+1} = beta[k] and the network at index k, and k = 0 is the fixed step p(x^0 | x^1) with β_1;
    reverse_steps yields paper times T, T − 1, …, 0."""
    T, D = 6, 2
    betas = [0.01, 0.02, 0.05, 0.1, 0.2, 0.4]
    m = gaussian_model(T=T, D=D, betas=betas, param="code")
    s = m.schedule_tensors()
    assert float(s.beta[0]) == pytest.approx(0.01)  # β_1
    abar = [math.prod(1 - b for b in betas[:t]) for t in range(1, T + 1)]  # ᾱ_1 … ᾱ_T
    for k in range(T):
        assert float(s.alpha_bar[k]) == pytest.approx(abar[k], rel=1e-12)
    x0 = torch.ones(1, D, dtype=torch.float64)
    for k in range(T):  # q(x^{k+1} | x^0) = N(√ᾱ_{k+1} x^0, 1 − ᾱ_{k+1})
        q = m.kernel.q_marginal(x0, k, s)
        assert float(q.var[0, 0]) == pytest.approx(1 - abar[k], rel=1e-12)
    for k in range(1, T):  # q(x^k | x^{k+1}, x^0) has variance β̃_{k+1} = β_{k+1}(1 − ᾱ_k)/(1 − ᾱ_{k+1})
        q = m.kernel.q_posterior(x0, x0, k, s)
        assert float(q.var[0, 0]) == pytest.approx(betas[k] * (1 - abar[k - 1]) / (1 - abar[k]), rel=1e-12)
    seen = []
    m.net = _FnNet(lambda x, kk: (seen.append(kk.clone()), torch.zeros(x.shape[0], 2, D))[1])
    x = torch.full((3, D), 2.0)
    for k in range(1, T):  # z = 0 under "code": the mean is √(1 − β_{k+1})·x^{k+1}
        d = m.reverse_step(x, k, s)
        assert torch.equal(seen[-1], torch.full((3,), k))
        assert_close(d.mean, math.sqrt(1 - betas[k]) * x)
    n_calls = len(seen)
    d0 = m.reverse_step(x, 0, s)  # the fixed last step: β_1, no network
    assert len(seen) == n_calls
    assert_close(d0.mean, math.sqrt(1 - betas[0]) * x)
    assert_close(d0.var, torch.full_like(x, betas[0]))
    from models import sampling
    assert [st.t for st in sampling.reverse_steps(m, 2, generator=torch.Generator().manual_seed(0))] == list(range(T, -1, -1))
