"""The bound K on the log-likelihood (paper §2.3, Eq. 14, App. B), its per-step terms, and AIS (Eq. 9).

For one data point x^0 the exact Jensen bound, with the last reverse step fixed to the forward kernel
(p(x^0|x^1) = q(x^1|x^0)π(x^0)/π(x^1)), is

    K(x^0) = − Σ_{t=2}^{T} E_q KL(q(x^{t−1}|x^t, x^0) ‖ p(x^{t−1}|x^t))
             − KL(q(x^T|x^0) ‖ π) − H_q(X^1|X^0) + [log π(x^0) − E_q log π(x^1)].

Averaged over data scaled to unit variance this equals the paper's Eq. 14,
K = −ΣKL + H_q(X^T|X^0) − H_q(X^1|X^0) − H_p(X^T): the paper's step "−E_q log π(x^t) is constant in t"
holds exactly in expectation when E|x^0|² = D (Gaussian) or the data's mean activity is p̄ (binomial).
We keep the per-example terms so K is a true lower bound for any data set.

All terms are nats per example. ``kl_nats[:, k]`` is the term of paper step t = k + 1; column 0 is 0.
Units (models/README.md, Units and the null model): bits = nats / ln 2; "per pixel" divides by H·W
(colour channels summed), "per point" and "per sequence" are per example.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .kernels import coefficients
from .kernels.gaussian import COLUMNS as GAUSSIAN_COLUMNS, beta1_cap_bits_per_dim
from .model import DiffusionModel

__all__ = ["LN2", "L_NULL_PER_DIM_BITS", "BoundTerms", "beta1_cap_bits_per_dim", "unit_divisor",
           "step_kl", "stochastic_K_nats", "sampled_K_nats", "bound_terms",
           "ais_log_likelihood_nats", "reverse_entropy_per_step"]

LN2 = math.log(2.0)
L_NULL_PER_DIM_BITS = -0.5 * math.log2(2 * math.pi * math.e)  # −2.0471 bits, N(0,1) on unit-variance data


def unit_divisor(example_shape: tuple[int, ...]) -> int:
    """Divisor that turns per-example bits into the paper's unit: H·W for images [C, H, W], else 1."""
    return int(example_shape[1] * example_shape[2]) if len(example_shape) == 3 else 1


@dataclass(frozen=True)
class BoundTerms:
    """Per-example pieces of K, nats. ``kl_nats`` [B, T]; the rest [B]."""

    kl_nats: torch.Tensor
    prior_kl_nats: torch.Tensor
    h_x1_given_x0_nats: torch.Tensor
    edge_nats: torch.Tensor
    log_null_nats: torch.Tensor  # log π(x^0): the null model's log-likelihood, L_null

    @property
    def K_nats(self) -> torch.Tensor:
        """K per example [B] (nats): exactly the sum of the reported terms."""
        return -self.kl_nats.sum(dim=1) - self.prior_kl_nats - self.h_x1_given_x0_nats + self.edge_nats


def _edge(model: DiffusionModel, x0: torch.Tensor, s) -> dict[str, torch.Tensor]:
    return model.kernel.edge_terms(x0, s)


def step_kl(model: DiffusionModel, x0: torch.Tensor, k: torch.Tensor, s, noise: torch.Tensor) -> torch.Tensor:
    """KL(q(x^k|x^{k+1},x^0) ‖ p(x^k|x^{k+1})) for x^{k+1} = q_sample(x^0, k, noise); k ≥ 1, [B] nats.

    The KL is analytic in x^k and uses frozen noise for x^{k+1}, so it is differentiable in the network
    and in a learned β (reparameterisation, §2.4.1)."""
    model.prefetch_coefficients(s, k, x0)  # every per-step coefficient of this step, in one gather
    x_t = model.kernel.q_sample(x0, k, s, noise)
    p = model.reverse_step(x_t, k, s)
    return model.kernel.q_posterior(x0, x_t, k, s).kl(p)


@functools.lru_cache(maxsize=16)
def _arange(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, device=device)


def _stratified_steps(B: int, m: int, T: int, device: torch.device, generator) -> torch.Tensor:
    """Step indices [B·m] (example-major): example b takes k = 1 + ⌊(j + u_b)(T − 1)/m⌋, j = 0..m−1,
    u_b ~ U(0, 1), so each k ∈ {1 … T−1} is included with probability m/(T − 1)."""
    u = torch.rand(B, 1, generator=generator, device=device)
    k = (u + _arange(m, device)[None]).mul_(T - 1).div_(m).long().add_(1)  # (.long() floors: the values are ≥ 0)
    return k.clamp_(1, T - 1).view(-1)


@functools.lru_cache(maxsize=16)
def _repeat_index(B: int, m: int, device: torch.device) -> torch.Tensor:
    return torch.arange(B, device=device).repeat_interleave(m)


def _repeat_rows(x: torch.Tensor, m: int) -> torch.Tensor:
    """Each example of ``x`` [B, *S] ``m`` times in a row, [B·m, *S] (``x.repeat_interleave(m, dim=0)``)."""
    return x if m == 1 else x.index_select(0, _repeat_index(x.shape[0], m, x.device))


def _noise_like(model: DiffusionModel, x0: torch.Tensor, generator) -> torch.Tensor:
    return model.kernel.noise_like(x0, generator)


def stochastic_K_nats(model: DiffusionModel, x0: torch.Tensor, generator=None, s=None) -> torch.Tensor:
    """Unbiased one-random-t estimate of K per example [B] (nats): each example draws its own
    k ∈ {1..T−1} and its KL is weighted by T − 1 (the reference code shares one k per batch and weights
    by T; models/README.md, Evaluation protocol)."""
    s = model.schedule_tensors() if s is None else s
    T = model.T
    k = torch.randint(1, T, (x0.shape[0],), generator=generator, device=x0.device)
    kl = step_kl(model, x0, k, s, _noise_like(model, x0, generator))
    return torch.add(model.kernel.edge_K(x0, s), kl.to(torch.float64), alpha=-(T - 1))


def check_objective(objective: str, config) -> str:
    """``objective`` if the model ``config`` can train with it, else a ValueError saying why."""
    from .config import OBJECTIVES

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "hybrid" and (config.kernel != "gaussian" or config.param != "posterior"):
        raise ValueError("the hybrid objective needs the Gaussian kernel and the 'posterior' (ε-style) "
                         f"parameterisation; this model has kernel {config.kernel!r}, param {config.param!r}")
    return objective


def hybrid_terms(model: DiffusionModel, x0: torch.Tensor, n_steps: int = 1, generator=None, s=None):
    """The pieces of the hybrid objective for an ε-style Gaussian model, per example [B]: the mean
    squared noise error ‖ε̂ − ε‖²/D and the estimate of K (nats) with the reverse mean held fixed
    (its value is K's; only its gradient differs). Steps as :func:`stochastic_K_nats` (``n_steps`` = 1)
    or :func:`sampled_K_nats`.

    ε̂ − ε is read off the means: with x^{k+1} = √ᾱ·x^0 + √(1 − ᾱ)·ε, the forward posterior mean is
    μ̃ = (x^{k+1} − β/√(1 − ᾱ)·ε)/√(1 − β) and the model's is the same with ε̂, so
    ε̂ − ε = (μ̃ − μ)·√(1 − β)·√(1 − ᾱ)/β."""
    s = model.schedule_tensors() if s is None else s
    T, B = model.T, x0.shape[0]
    m = max(1, min(int(n_steps), T - 1))
    if m == 1:
        k = torch.randint(1, T, (B,), generator=generator, device=x0.device)
        x_rep = x0
    else:
        k = _stratified_steps(B, m, T, x0.device, generator)
        x_rep = _repeat_rows(x0, m)
    noise = _noise_like(model, x_rep, generator)
    model.prefetch_coefficients(s, k, x_rep, extra=("eps_scale",))
    x_t = model.kernel.q_sample(x_rep, k, s, noise)
    p = model.reverse_step(x_t, k, s)
    q = model.kernel.q_posterior(x_rep, x_t, k, s)
    (inv_scale,) = coefficients(s, k, x_rep, ("eps_scale",), GAUSSIAN_COLUMNS)  # √(1 − β)·√(1 − ᾱ)/β
    dims = tuple(range(1, x_rep.dim()))
    mse = ((q.mean - p.mean) * inv_scale).pow(2).mean(dim=dims).reshape(B, m).mean(1)
    kl = q.kl(type(p)(p.mean.detach(), p.var)).reshape(B, m)
    K = torch.add(model.kernel.edge_K(x0, s), kl.to(torch.float64).sum(1), alpha=-((T - 1) / m))
    return mse, K


def sampled_K_nats(model: DiffusionModel, x0: torch.Tensor, n_steps: int, generator=None, s=None) -> torch.Tensor:
    """Stratified estimate of K per example [B] (nats) from ``n_steps`` step indices per example.

    Example b evaluates k = 1 + ⌊(j + u_b)(T − 1)/m⌋ for j = 0..m−1 with u_b ~ U(0, 1): each k ≥ 1 is
    then included with probability m/(T − 1), so weighting every term by (T − 1)/m is unbiased. With
    m = T − 1 this is the exact sum over all steps (one x^t draw per step); with m = 1 it is the
    one-random-t estimator. All m·B evaluations go through the network as one batch."""
    s = model.schedule_tensors() if s is None else s
    T, B = model.T, x0.shape[0]
    m = max(1, min(int(n_steps), T - 1))
    if m == T - 1:
        k = torch.arange(1, T, device=x0.device).repeat(B)
    else:
        k = _stratified_steps(B, m, T, x0.device, generator)
    x_rep = _repeat_rows(x0, m)
    kl = step_kl(model, x_rep, k, s, _noise_like(model, x_rep, generator)).reshape(B, m)
    return torch.add(model.kernel.edge_K(x0, s), kl.to(torch.float64).sum(1), alpha=-((T - 1) / m))


@torch.no_grad()
def bound_terms(model: DiffusionModel, x0: torch.Tensor, generator=None, s=None, steps=None) -> BoundTerms:
    """Every per-step KL term [B, T], one x^t draw per (example, step): K summed over all t.

    ``steps`` (optional iterable of k ≥ 1) restricts the evaluation to those columns (others are 0)
    for quick live previews; leave it None for the exact sum."""
    s = model.schedule_tensors() if s is None else s
    B, T = x0.shape[0], model.T
    kl = torch.zeros(B, T, dtype=torch.float64, device=x0.device)
    for k in (range(1, T) if steps is None else steps):
        kk = torch.full((B,), int(k), dtype=torch.long, device=x0.device)
        kl[:, int(k)] = step_kl(model, x0, kk, s, _noise_like(model, x0, generator)).to(torch.float64)
    e = _edge(model, x0, s)
    return BoundTerms(kl_nats=kl, prior_kl_nats=e["prior_kl"], h_x1_given_x0_nats=e["h_x1_given_x0"],
                      edge_nats=e["edge"], log_null_nats=e["log_prior_x0"])


@torch.no_grad()
def ais_log_likelihood_nats(model: DiffusionModel, x0: torch.Tensor, n_traj: int = 16, generator=None) -> torch.Tensor:
    """The Jarzynski/AIS estimate of log p(x^0) (Eq. 9; models/README.md, Evaluation protocol), nats per
    example [B].

    log w = log π(x^T) + Σ_{t=1}^{T} [log p(x^{t−1}|x^t) − log q(x^t|x^{t−1})] over ``n_traj`` forward
    trajectories; log p̂ = logsumexp(log w) − log M. In expectation K ≤ AIS ≤ log p(x^0)."""
    s = model.schedule_tensors()
    kern = model.kernel
    B = x0.shape[0]
    x_prev = x0.repeat_interleave(n_traj, dim=0)
    log_w = torch.zeros(B * n_traj, dtype=torch.float64, device=x0.device)
    for k in range(model.T):
        q = kern.q_transition(x_prev, k, s)
        x_next = q.sample(generator)
        log_q = q.log_prob(x_next)
        log_p = model.reverse_step(x_next, k, s).log_prob(x_prev)
        log_w += (log_p - log_q).to(torch.float64)
        x_prev = x_next
    log_w += kern.prior_log_prob(x_prev).to(torch.float64)
    log_w = log_w.reshape(B, n_traj)
    return torch.logsumexp(log_w, dim=1) - math.log(n_traj)


@torch.no_grad()
def reverse_entropy_per_step(model: DiffusionModel, x0: torch.Tensor, generator=None, steps=None) -> torch.Tensor:
    """The model's own reverse-step entropy per dimension at each step, nats [T] (x^t ~ q(x^t|x^0)),
    to draw inside the entropy bounds of Eq. 24. Steps not in ``steps`` are NaN."""
    s = model.schedule_tensors()
    T = model.T
    out = torch.full((T,), float("nan"), dtype=torch.float64)
    first = model.reverse_step(x0, 0, s)  # fixed step: entropy of β_1
    out[0] = float(first.entropy().mean())
    for k in (range(1, T) if steps is None else steps):
        k = int(k)
        x_t = model.kernel.q_sample(x0, k, s, _noise_like(model, x0, generator))
        out[k] = float(model.reverse_step(x_t, k, s).entropy().mean())
    return out
