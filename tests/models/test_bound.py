"""Tests of models/bound.py: the bound K (Eq. 14, App. B), its terms, its estimators, AIS (Eq. 9), and the
ceilings no model may beat (models/README.md, Ceilings)."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from models import bound, sampling
from models.config import ModelConfig
from models.evaluation import exact_K
from models.kernels import GaussianKernel
from models.model import DiffusionModel
from models.schedules import logit_linear_betas

from math_helpers import (LN2, HALF_LOG_2PIE, L_NULL_BITS_PER_DIM, SCHEDULES, assert_close, binomial_model,
                          exact_gaussian_K, gaussian_model, heartbeat_batch, heartbeat_sequences, mean_se,
                          with_exact_reverse, with_heartbeat_oracle)

# ----------------------------------------------------------------------------------------------------
# the bound K (Eq. 14, App. B)


@pytest.mark.parametrize("kind", ["gaussian", "binomial"])
def test_K_nats_is_the_expected_log_ratio_along_forward_trajectories(kind):
    """K(x^0) = E_{q(x^{1..T}|x^0)}[log p(x^T) + Σ_t log p(x^{t−1}|x^t) − log q(x^t|x^{t−1})] (the Jensen bound
    of Eq. 11–13, before App. B's rewriting into KL terms). Checked per example against a direct Monte Carlo
    of that log ratio over forward trajectories, every density written out with torch.distributions: an
    error in any reported term (a KL, the prior KL, H_q(X^1|X^0), the edge term) shows up here."""
    T, n_ex, N, R = 8, 4, 6000, 400
    g = torch.Generator().manual_seed(0)
    if kind == "gaussian":
        m = gaussian_model(T=T, D=3, perturb=0.3)
        x0 = torch.randn(n_ex, 3, generator=g) * 1.4 + 0.3  # not unit variance: the edge term matters
    else:
        m = binomial_model(T=T, D=20, p_bar=0.2, perturb=0.3, beta_1=0.3)
        x0 = heartbeat_batch(n_ex, g)
        x0[:, 8:16] = 1.0  # mean activity ≠ p̄: the edge term matters
    s = m.schedule_tensors()
    x = x0.repeat_interleave(N, dim=0)
    log_w = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for k in range(T):
            b = float(s.beta[k])
            if kind == "gaussian":
                q = Normal(math.sqrt(1 - b) * x, math.sqrt(b))
                x_next = math.sqrt(1 - b) * x + math.sqrt(b) * torch.randn(x.shape, generator=g)
            else:
                q = Bernoulli(probs=x * (1 - b) + 0.2 * b)
                x_next = torch.bernoulli(q.probs, generator=g)
            d = m.reverse_step(x_next, k, s)
            if kind == "gaussian":
                log_p = Normal(d.mean, d.var.sqrt()).log_prob(x)
            else:
                log_p = Bernoulli(probs=d.prob.clamp(1e-7, 1 - 1e-7)).log_prob(x)
            log_w += (log_p - q.log_prob(x_next)).sum(1).double()
            x = x_next
        prior = Normal(0.0, 1.0) if kind == "gaussian" else Bernoulli(probs=torch.tensor(0.2))
        log_w += prior.log_prob(x).sum(1).double()
    lw = log_w.reshape(n_ex, N)
    K = bound.bound_terms(m, x0.repeat(R, 1), torch.Generator().manual_seed(1)).K_nats.reshape(R, n_ex)
    for i in range(n_ex):
        mu_w, se_w = mean_se(lw[i])
        mu_k, se_k = mean_se(K[:, i])
        assert abs(mu_w - mu_k) < 4 * math.hypot(se_w, se_k), (i, mu_w, se_w, mu_k, se_k)
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(2))
    assert t.kl_nats.shape == (n_ex, T) and torch.all(t.kl_nats[:, 0] == 0) and torch.all(t.kl_nats[:, 1:] >= 0)


def test_gaussian_edge_pieces_are_their_closed_forms():
    """H_q(X^1|X^0) = ½D·log(2πe·β_1), KL(q(x^T|x^0) ‖ π) and L_null = log π(x^0), per example (App. B)."""
    m = gaussian_model(T=12, D=3, perturb=0.3)
    x0 = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    t = bound.bound_terms(m, x0, torch.Generator().manual_seed(1))
    D = 3
    s = m.schedule_tensors()
    aT, b1 = float(s.alpha_bar[-1]), float(s.beta[0])
    assert_close(t.h_x1_given_x0_nats, torch.full((32,), D * 0.5 * math.log(2 * math.pi * math.e * b1),
                                                  dtype=torch.float64))
    prior_kl = kl_divergence(Normal(math.sqrt(aT) * x0.double(), math.sqrt(1 - aT)), Normal(0.0, 1.0)).sum(1)
    assert_close(t.prior_kl_nats, prior_kl)
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
    K₁₄ = −ΣKL + H_q(X^T|X^0) − H_q(X^1|X^0) − H_p(X^T). Algebra (App. B): K − K₁₄ = ½(ᾱ_T + β_1)(D − |x^0|²),
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
    summ = exact_K(m, x0, "bits/pixel", torch.Generator().manual_seed(2), batch_size=8)
    assert exact_K(m, x0, "bits/pixel", batch_size=3).n == 8
    assert summ.K_bits == pytest.approx(float(t.K_nats.mean()) / LN2 / 16, rel=1e-9)
    assert summ.L_null_bits == pytest.approx(float(t.log_null_nats.mean()) / LN2 / 16, rel=1e-9)
    assert summ.n == 8 and len(summ.kl_bits_per_step) == T
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
    K = exact_gaussian_K(m, x0)
    assert_close(K, GaussianKernel().prior_log_prob(x0), rtol=1e-9, atol=1e-9)
    # on unit-norm data (|x0|² = D) the KL sum is exactly the cap, and K = L_null
    xs = torch.where(torch.rand(8, D, generator=g) < 0.5, -1.0, 1.0).double()
    s = m.schedule_tensors()
    e = m.kernel.edge_terms(xs, s)
    kl_sum = -exact_gaussian_K(m, xs) - e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]
    cap = 0.5 * D * math.log((1 - float(s.alpha_bar[-1])) / float(s.beta[0]))
    assert_close(kl_sum, torch.full((8,), cap, dtype=torch.float64), rtol=1e-9, atol=1e-9)
    assert_close(exact_gaussian_K(m, xs) / LN2 / D,
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
    K32 = exact_gaussian_K(m, x0)
    assert float((K32 - GaussianKernel().prior_log_prob(x0.double())).abs().max()) < 1e-3
    kern = m.kernel
    eps = torch.randn(500, 2, generator=g)
    for k in (1, 2, 5):
        xt = kern.q_sample(x0, k, s, eps)
        xt64 = kern.q_sample(x0.double(), k, s, eps.double())
        var64 = kern.q_marginal(x0.double(), k, s).var
        var32 = kern.q_marginal(x0, k, s).var
        assert float(((xt.double() - xt64) / var64.sqrt()).abs().max()) < 1e-3
        assert float((var32.double() / var64 - 1).abs().max()) < 1e-5
        q = kern.q_posterior(x0, xt, k, s)
        pm32, pv32 = q.mean, q.var
        q = kern.q_posterior(x0.double(), xt.double(), k, s)
        pm64, pv64 = q.mean, q.var
        assert float(((pm32.double() - pm64) / pv64.sqrt()).abs().max()) < 1e-3
        assert float((pv32.double() / pv64 - 1).abs().max()) < 1e-5


# ----------------------------------------------------------------------------------------------------
# ceilings (models/README.md, Ceilings)


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
    summ = exact_K(m, x0, "bits/point", torch.Generator().manual_seed(6))
    assert summ.L_null_bits == pytest.approx(L_NULL_BITS_PER_DIM * D, abs=0.1)
    assert summ.K_bits <= L_NULL_BITS_PER_DIM * D + 3 * summ.K_stderr_bits
    assert summ.K_minus_Lnull_bits < 0
    # the β_1 cap (models/README.md, Ceilings)
    s = m.schedule_tensors()
    assert summ.cap_bits == pytest.approx(0.5 * D * math.log2((1 - float(s.alpha_bar[-1])) / float(s.beta[0])))
    assert summ.K_minus_Lnull_bits <= summ.cap_bits


def test_trained_gaussian_model_never_beats_the_null_on_gaussian_data(trained_gaussian):
    model = trained_gaussian
    D = 2
    x0 = torch.randn(2000, D, generator=torch.Generator().manual_seed(7))
    # what the app reports (exact_K: exact K over all steps, bits per point, with its standard error)
    summ = exact_K(model, x0, "bits/point", torch.Generator().manual_seed(8), batch_size=2000)
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
    """K ≤ E_q log p ≤ −H(q) = −log2 5 bits/seq (models/README.md, Ceilings) for an untrained model, a briefly trained one, and
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
        # L_null with p̄ = 0.2: 4 log2 0.2 + 16 log2 0.8 = −14.438 bits/seq (paper Table 1; models/README.md, Units and the null model)
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
