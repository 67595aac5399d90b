"""Tests of models/kernels/distributions.py: each family against torch.distributions, and the shared protocol
(every kernel method that describes a distribution returns one, so callers need not branch on the kernel)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from models.kernels import BernoulliDist, BinomialKernel, Distribution, GaussianDist, GaussianKernel, ScheduleTensors
from models.kernels.distributions import bernoulli_entropy
from models.schedules import binomial_betas, reference_betas

from math_helpers import assert_close, binomial_model, gaussian_model


def test_gaussian_kl_and_log_prob_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    shape = (5, 3, 4)
    mq, mp = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    vq = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.01
    vp = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.01
    q, p = GaussianDist(mq, vq), GaussianDist(mp, vp)
    ref = kl_divergence(Normal(mq, vq.sqrt()), Normal(mp, vp.sqrt())).reshape(5, -1).sum(1)
    assert_close(q.kl(p), ref)
    assert torch.allclose(q.kl(q), torch.zeros(5, dtype=torch.float64), atol=1e-12)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    assert_close(p.log_prob(x), Normal(mp, vp.sqrt()).log_prob(x).reshape(5, -1).sum(1))
    assert_close(GaussianKernel().prior_log_prob(x), Normal(0.0, 1.0).log_prob(x).reshape(5, -1).sum(1))
    assert_close(q.entropy(), Normal(mq, vq.sqrt()).entropy())
    assert q.mean is mq and q.mode() is mq


def test_bernoulli_kl_entropy_and_log_prob_match_torch_distributions():
    g = torch.Generator().manual_seed(1)
    shape = (6, 20)
    q = torch.rand(shape, generator=g, dtype=torch.float64) * 0.98 + 0.01
    p = torch.rand(shape, generator=g, dtype=torch.float64) * 0.98 + 0.01
    ref = kl_divergence(Bernoulli(probs=q), Bernoulli(probs=p)).sum(1)
    assert_close(BernoulliDist(q).kl(BernoulliDist(p)), ref)
    assert_close(bernoulli_entropy(q), Bernoulli(probs=q).entropy())
    assert_close(BernoulliDist(q).entropy(), Bernoulli(probs=q).entropy())
    x = (torch.rand(shape, generator=g) < 0.3).to(torch.float64)
    assert_close(BernoulliDist(p).log_prob(x), Bernoulli(probs=p).log_prob(x).sum(1))
    for p_bar in (0.2, 0.5):
        assert_close(BinomialKernel(p_bar).prior_log_prob(x),
                     Bernoulli(probs=torch.full_like(x, p_bar)).log_prob(x).sum(1))
    # deterministic q (the posterior is exactly 0 or 1 at some steps): KL(δ_1 ‖ p) = −log p
    q01 = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    p01 = torch.tensor([[0.3, 0.6]], dtype=torch.float64)
    assert float(BernoulliDist(q01).kl(BernoulliDist(p01))) == pytest.approx(-math.log(0.7) - math.log(0.6), abs=1e-12)
    assert torch.all(bernoulli_entropy(torch.tensor([0.0, 1.0])) == 0)
    assert torch.equal(BernoulliDist(p01).mean, p01)
    assert torch.equal(BernoulliDist(p01).mode(), torch.tensor([[0.0, 1.0]], dtype=torch.float64))


def test_samples_have_the_distributions_moments():
    g = torch.Generator().manual_seed(2)
    N = 40000
    mean = torch.tensor([[0.5, -2.0, 3.0]]).expand(N, 3)
    var = torch.tensor([[0.25, 1.0, 4.0]]).expand(N, 3)
    x = GaussianDist(mean, var).sample(g)
    assert torch.all((x.mean(0) - mean[0]).abs() < 5 * (var[0] / N).sqrt())
    assert torch.all((x.var(0) / var[0] - 1).abs() < 5 * math.sqrt(2 / N))
    prob = torch.tensor([[0.0, 0.1, 0.7, 1.0]]).expand(N, 4)
    b = BernoulliDist(prob).sample(g)
    assert torch.all((b == 0) | (b == 1))
    assert torch.all((b.mean(0) - prob[0]).abs() < 5 * (prob[0] * (1 - prob[0]) / N).sqrt() + 1e-12)
    # a generator makes a draw reproducible
    d = GaussianDist(mean[:4], var[:4])
    assert torch.equal(d.sample(torch.Generator().manual_seed(3)), d.sample(torch.Generator().manual_seed(3)))


def test_pin_fixes_the_known_elements_and_leaves_the_rest():
    known = torch.tensor([True, False, True])
    y = torch.tensor([[1.0, 9.0, 0.0]])
    gd = GaussianDist(torch.tensor([[0.3, 0.4, 0.5]]), torch.tensor([[1.0, 2.0, 3.0]])).pin(known, y)
    assert torch.equal(gd.mean, torch.tensor([[1.0, 0.4, 0.0]]))
    assert torch.equal(gd.var, torch.tensor([[0.0, 2.0, 0.0]]))
    x = gd.sample(torch.Generator().manual_seed(0))
    assert torch.equal(x[:, known], y[:, known])
    bd = BernoulliDist(torch.tensor([[0.3, 0.4, 0.5]])).pin(known, y)
    assert torch.equal(bd.prob, torch.tensor([[1.0, 0.4, 0.0]]))


def test_the_families_are_frozen_and_say_which_they_are():
    m, v, p = torch.zeros(2, 3), torch.ones(2, 3), torch.full((2, 3), 0.5)
    assert GaussianDist(m, v).is_gaussian and not BernoulliDist(p).is_gaussian
    with pytest.raises(Exception):  # frozen
        GaussianDist(m, v).mean = v


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_every_kernel_method_that_describes_a_distribution_returns_one(kind):
    """The protocol callers rely on: q_transition, q_marginal, q_posterior, last_step and reverse_step all
    return a Distribution with sample/log_prob/entropy/kl, of the kernel's one family."""
    T = 10
    if kind == "gaussian":
        kern, s, fam = GaussianKernel(), ScheduleTensors.from_beta(torch.as_tensor(reference_betas(T))), GaussianDist
        x0 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        model = gaussian_model(T=T, D=3)
    else:
        kern, s, fam = BinomialKernel(0.3), ScheduleTensors.from_beta(torch.as_tensor(binomial_betas(T))), BernoulliDist
        x0 = (torch.rand(4, 3, generator=torch.Generator().manual_seed(0)) < 0.5).double()
        model = binomial_model(T=T, D=3)
    xt = kern.q_sample(x0, 4, s, kern.noise_like(x0, torch.Generator().manual_seed(1)))
    dists = [kern.q_transition(x0, 4, s), kern.q_marginal(x0, 4, s), kern.q_posterior(x0, xt, 4, s),
             kern.last_step(xt, s), model.reverse_step(xt.float(), 4), model.reverse_step(xt.float(), 0)]
    for d in dists:
        assert isinstance(d, fam) and isinstance(d, Distribution)
        x = d.sample(torch.Generator().manual_seed(2))
        assert x.shape == x0.shape
        assert d.log_prob(x).shape == (4,) and d.entropy().shape == x0.shape
        assert d.kl(d).shape == (4,)


def test_log_prob_elements_sum_to_log_prob_and_map_keeps_the_family():
    g = torch.Generator().manual_seed(4)
    mean, var = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.rand(4, 1, generator=g, dtype=torch.float64) + 0.1
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    gd = GaussianDist(mean, var)
    assert_close(gd.log_prob_elements(x), Normal(mean, var.sqrt()).log_prob(x))
    assert torch.equal(gd.log_prob(x), gd.log_prob_elements(x).sum(1))
    idx = torch.tensor([2, 0])
    sub = gd.map(lambda v: v[idx])
    assert type(sub) is GaussianDist and torch.equal(sub.mean, mean[idx]) and torch.equal(sub.var, var.expand(4, 3)[idx])
    p = torch.rand(4, 3, generator=g, dtype=torch.float64)
    b = (torch.rand(4, 3, generator=g) < 0.5).double()
    bd = BernoulliDist(p)
    assert_close(bd.log_prob_elements(b), Bernoulli(probs=p).log_prob(b))
    assert type(bd.map(lambda v: v[idx])) is BernoulliDist and torch.equal(bd.map(lambda v: v[idx]).prob, p[idx])
