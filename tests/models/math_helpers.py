"""Shared helpers of the math tests: schedules, tiny models, models whose reverse process is known exactly,
the heartbeat data, and tolerant comparisons. Time-index rule: models/README.md, Time-index rule."""
from __future__ import annotations

import math

import numpy as np
import torch

from models import bound
from models.config import ModelConfig
from models.kernels import BernoulliDist, GaussianDist, ScheduleTensors, gather
from models.model import DiffusionModel
from models.schedules import Schedule, cosine_betas, linear_betas, logit_linear_betas, reference_betas

LN2 = math.log(2.0)
HALF_LOG_2PIE = 0.5 * math.log(2 * math.pi * math.e)
L_NULL_BITS_PER_DIM = -0.5 * math.log2(2 * math.pi * math.e)  # −2.0471

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
        return GaussianDist(torch.sqrt(1 - beta) * x_t, beta * torch.ones_like(x_t))

    model.reverse_step = reverse_step
    return model


def heartbeat_sequences() -> torch.Tensor:
    """The 5 heartbeat sequences (paper §3.1.1; models/README.md, Presets and data sets): length 20, a 1 every 5th bin, phase 0..4. [5, 20]"""
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
        pm = kern.q_marginal(X0, KK, s).prob  # q(x^{k+1} = 1 | x0)
        loglik = (XT * torch.log(pm) + (1 - XT) * torch.log1p(-pm)).sum(1).reshape(B, 5)
        w = torch.softmax(loglik, dim=1)  # q(x0 | x^{k+1})
        post = kern.q_posterior(X0, XT, KK, s).prob.reshape(B, 5, -1)
        return BernoulliDist((w[:, :, None] * post).sum(1).to(x_t.dtype))

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


def transition(beta: float, p_bar: float) -> np.ndarray:
    """M[a, b] = q(x^t = b | x^{t−1} = a) for one bit."""
    p1 = np.array([p_bar * beta, 1 - beta + p_bar * beta])  # P(x^t = 1 | x^{t−1} = 0, 1)
    return np.stack([1 - p1, p1], axis=1)


def exact_gaussian_K(model: DiffusionModel, x0: torch.Tensor) -> torch.Tensor:
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
