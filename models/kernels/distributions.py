"""The distributions the kernels and the reverse process hand out: one small protocol, two families.

Every kernel method that describes a distribution over a state returns one of these, so callers work
with ``dist.sample(generator)``, ``dist.log_prob(x)``, ``dist.entropy()``, ``p.kl(q)``, ``dist.mean``
and ``dist.mode()`` without asking which kernel made it.

Shapes: a distribution over a state ``[B, *S]`` holds parameters of that shape (or broadcastable to it).
``log_prob`` and ``kl`` sum over every dimension but the first and return per-example ``[B]`` nats;
``entropy`` is per element ``[B, *S]`` nats (callers average or sum as their unit needs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI_E = math.log(2 * math.pi * math.e)
LOG_2PI = math.log(2 * math.pi)
EPS = 1e-7  # Bernoulli probabilities are kept in [EPS, 1 − EPS] inside logarithms


def sum_dims(v: torch.Tensor) -> torch.Tensor:
    """Sum every dimension but the first: per-element terms [B, *S] → per-example [B]."""
    if v.dim() < 2:
        return v.reshape(v.shape[0], -1).sum(dim=1)
    return v.sum(dim=tuple(range(1, v.dim())))


def bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(Bernoulli(p)) elementwise, nats (0 at p ∈ {0, 1})."""
    p = p.clamp(0.0, 1.0)
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))


def bernoulli_kl(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """KL(Bern(q) ‖ Bern(p)) elementwise, nats; p is clamped away from 0 and 1."""
    p = p.clamp(EPS, 1 - EPS)
    q = q.clamp(0.0, 1.0)
    return torch.xlogy(q, q) - q * torch.log(p) + torch.xlogy(1 - q, 1 - q) - (1 - q) * torch.log1p(-p)


class Distribution:
    """The protocol shared by :class:`GaussianDist` and :class:`BernoulliDist`.

    ``sample(generator)`` → x [B, *S]; ``log_prob(x)`` → [B] nats (``log_prob_elements(x)``: the same per
    element, [B, *S]); ``entropy()`` → [B, *S] nats; ``kl(other)`` → KL(self ‖ other) [B] nats (same
    family); ``mean`` → E[x] [B, *S]; ``mode()`` → the most probable state [B, *S]; ``pin(known, y)`` →
    the same distribution with the elements where ``known`` is true fixed at ``y`` (a point mass there);
    ``map(fn)`` → the same family with ``fn`` applied to every parameter tensor (each of the state's
    shape), e.g. to select or reorder examples.
    """

    is_gaussian: bool = False

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob_elements(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return sum_dims(self.log_prob_elements(x))

    def entropy(self) -> torch.Tensor:
        raise NotImplementedError

    def kl(self, other: "Distribution") -> torch.Tensor:
        raise NotImplementedError

    def mode(self) -> torch.Tensor:
        raise NotImplementedError

    def pin(self, known: torch.Tensor, y: torch.Tensor) -> "Distribution":
        raise NotImplementedError

    def map(self, fn) -> "Distribution":
        raise NotImplementedError


class _GaussianKL(torch.autograd.Function):
    """KL(N(m_q, v_q) ‖ N(m_p, v_p)) summed over every dimension but the first, [B] nats, with its
    gradient written out per element, d = m_q − m_p, r = (v_q + d²)/v_p:
    ∂/∂m_q = d/v_p = −∂/∂m_p, ∂/∂v_p = (1 − r)/(2v_p), ∂/∂v_q = (1/v_p − 1/v_q)/2, each summed back to
    its input's shape: the gradient autograd takes through the formula, in half the operations (a
    training step of a small network is mostly such operations)."""

    @staticmethod
    def forward(ctx, mq, vq, mp, vp):
        d = mq - mp
        r = torch.addcmul(vq, d, d).div_(vp)
        per = torch.log(vp / vq).add_(r)  # [B, *S]
        ctx.save_for_backward(d, vq, vp, r)
        ctx.shapes = (mq.shape, vq.shape, mp.shape, vp.shape)
        return (sum_dims(per) - (per[0].numel() if per.dim() > 1 else 1)) * 0.5

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        d, vq, vp, r = ctx.saved_tensors
        g = grad.reshape(grad.shape + (1,) * (d.dim() - 1))
        need = ctx.needs_input_grad
        inv = vp.reciprocal()
        out = [None, None, None, None]
        if need[0] or need[2]:
            gm = d * inv * g
            out[0] = gm if need[0] else None
            out[2] = -gm if need[2] else None
        if need[1]:
            out[1] = (inv - vq.reciprocal()) * (0.5 * g)
        if need[3]:
            out[3] = (1 - r) * inv * (0.5 * g)
        return tuple(o if o is None or o.shape == shape else o.sum_to_size(shape) for o, shape in zip(out, ctx.shapes))


@dataclass(frozen=True)
class GaussianDist(Distribution):
    """N(mean, diag var). ``mean`` [B, *S]; ``var`` broadcastable to it (positive)."""

    mean: torch.Tensor
    var: torch.Tensor

    is_gaussian = True

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return torch.addcmul(self.mean, torch.sqrt(self.var), noise)  # mean + √var·noise

    def log_prob_elements(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x_i; mean_i, var_i) per element [B, *S] (nats); :meth:`log_prob` sums it per example."""
        return -0.5 * (LOG_2PI + torch.log(self.var) + (x - self.mean) ** 2 / self.var)

    def entropy(self) -> torch.Tensor:
        """Differential entropy per element, ½ log(2πe·var) (nats)."""
        return 0.5 * (LOG_2PI_E + torch.log(self.var))

    def kl(self, other: "GaussianDist") -> torch.Tensor:
        """KL(self ‖ other) summed over dims [B] (nats): ½Σ_i [log(v_p/v_q) + (v_q + (m_q − m_p)²)/v_p − 1]."""
        return _GaussianKL.apply(self.mean, self.var, other.mean, other.var)

    def mode(self) -> torch.Tensor:
        return self.mean

    def pin(self, known: torch.Tensor, y: torch.Tensor) -> "GaussianDist":
        """Mean ``y`` and variance 0 (a point mass: samples equal ``y``) where ``known``; unchanged elsewhere.
        (A pinned distribution is for sampling; its log_prob is not finite.)"""
        mean = torch.where(known, y.to(self.mean.dtype), self.mean)
        return GaussianDist(mean, torch.where(known, torch.zeros_like(mean), self.var.expand_as(mean)))

    def map(self, fn) -> "GaussianDist":
        return GaussianDist(fn(self.mean), fn(self.var.expand_as(self.mean)))


@dataclass(frozen=True)
class BernoulliDist(Distribution):
    """Independent bits: ``prob`` [B, *S] is each element's probability of a 1."""

    prob: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.prob

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.bernoulli(self.prob, generator=generator)

    def log_prob_elements(self, x: torch.Tensor) -> torch.Tensor:
        """log Bern(x_i; prob_i) per element [B, *S] (nats), prob clamped to [EPS, 1 − EPS]; :meth:`log_prob`
        sums it per example."""
        prob = self.prob.clamp(EPS, 1 - EPS)
        return x * torch.log(prob) + (1 - x) * torch.log1p(-prob)

    def entropy(self) -> torch.Tensor:
        return bernoulli_entropy(self.prob)

    def kl(self, other: "BernoulliDist") -> torch.Tensor:
        """KL(self ‖ other) summed over bits [B] (nats)."""
        return sum_dims(bernoulli_kl(self.prob, other.prob))

    def mode(self) -> torch.Tensor:
        return (self.prob > 0.5).to(self.prob.dtype)

    def pin(self, known: torch.Tensor, y: torch.Tensor) -> "BernoulliDist":
        """Probability ``y`` (0 or 1) where ``known``; unchanged elsewhere."""
        return BernoulliDist(torch.where(known, y.to(self.prob.dtype), self.prob))

    def map(self, fn) -> "BernoulliDist":
        return BernoulliDist(fn(self.prob))
