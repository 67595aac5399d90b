"""Binomial diffusion for {0, 1} data (paper §2.1, Table App.1, App. D.1.2). Prior π = ∏_i Bernoulli(p̄).

A state is a float tensor of 0s and 1s, ``[B, *S]``. Distributions over a state come back as
:class:`BernoulliDist` (each element's probability of a 1, same shape). Quantities in nats.
"""
from __future__ import annotations

import math

import torch

from . import ScheduleTensors, gather
from .distributions import EPS, BernoulliDist, bernoulli_entropy, bernoulli_kl, sum_dims as _sum_dims

__all__ = ["BinomialKernel", "EPS", "bernoulli_entropy", "bernoulli_kl"]


class BinomialKernel:
    """q(x_i^t = 1 | x^{t−1}) = x_i^{t−1}(1 − β_t) + p̄·β_t. Reversible w.r.t. Bernoulli(p̄)."""

    name = "binomial"

    def __init__(self, p_bar: float = 0.5):
        if not 0.0 < p_bar < 1.0:
            raise ValueError(f"p_bar must lie in (0, 1), got {p_bar}")
        self.p_bar = float(p_bar)

    # ---- forward process --------------------------------------------------------------------
    def step_prob(self, x_prev: torch.Tensor, beta) -> torch.Tensor:
        return x_prev * (1 - beta) + self.p_bar * beta

    def q_transition(self, x_prev: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
        """q(x^{k+1} | x^k): each bit is 1 with probability x^k(1 − β_t) + p̄·β_t, t = k + 1."""
        return BernoulliDist(self.step_prob(x_prev, gather(s.beta, k, x_prev)))

    def q_step(self, x_prev: torch.Tensor, k, s: ScheduleTensors, generator=None) -> torch.Tensor:
        """Sample x^{k+1} ~ q(· | x^k)."""
        return self.q_transition(x_prev, k, s).sample(generator)

    def q_marginal(self, x0: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
        """q(x^{k+1} | x^0): each bit is 1 with probability ᾱ·x^0 + (1 − ᾱ)·p̄."""
        abar = gather(s.alpha_bar, k, x0)
        return BernoulliDist(abar * x0 + (1 - abar) * self.p_bar)

    @staticmethod
    def noise_like(x: torch.Tensor, generator=None) -> torch.Tensor:
        """The noise :meth:`q_sample` takes: u ~ U(0, 1) of ``x``'s shape."""
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def q_sample(self, x0: torch.Tensor, k, s: ScheduleTensors, noise: torch.Tensor) -> torch.Tensor:
        """x^{k+1} with uniform noise ``noise`` ~ U(0, 1) of x0's shape: 1 where noise < marginal."""
        return (noise < self.q_marginal(x0, k, s).prob).to(x0.dtype)

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
        """q(x^k = 1 | x^{k+1}, x^0) by Bayes' rule, per bit (k ≥ 1)."""
        beta = gather(s.beta, k, x0)
        abar_prev = gather(s.alpha_bar_prev, k, x0)
        a = abar_prev * x0 + (1 - abar_prev) * self.p_bar  # q(x^{t−1} = 1 | x^0)
        l1 = torch.where(xt > 0.5, 1 - beta * (1 - self.p_bar), beta * (1 - self.p_bar))
        l0 = torch.where(xt > 0.5, self.p_bar * beta, 1 - self.p_bar * beta)
        num = a * l1
        return BernoulliDist(num / (num + (1 - a) * l0))

    # ---- prior ------------------------------------------------------------------------------
    def prior_sample(self, shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.bernoulli(torch.full(shape, self.p_bar, device=device, dtype=dtype), generator=generator)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return _sum_dims(x * math.log(self.p_bar) + (1 - x) * math.log1p(-self.p_bar))

    # ---- the fixed last reverse step -------------------------------------------------------
    def last_step(self, x1: torch.Tensor, s: ScheduleTensors) -> BernoulliDist:
        """p(x^0 | x^1) = q(x^1 | x^0)π(x^0)/π(x^1) = the forward kernel with β_1 (reversibility)."""
        return BernoulliDist(self.step_prob(x1, s.beta[0].to(x1.dtype)))

    @staticmethod
    def cap_bits_per_dim(beta) -> float | None:
        """No β_1 cap: a bit's entropy is bounded, so a small β_1 sets no ceiling (None)."""
        return None

    # ---- bound pieces -------------------------------------------------------------------------
    def edge_terms(self, x0: torch.Tensor, s: ScheduleTensors) -> dict[str, torch.Tensor]:
        x0 = x0.to(torch.float64)
        lp, lq = math.log(self.p_bar), math.log1p(-self.p_bar)
        beta1 = s.beta[0]
        m1 = x0 * (1 - beta1) + self.p_bar * beta1
        abar_T = s.alpha_bar[-1]
        mT = abar_T * x0 + (1 - abar_T) * self.p_bar
        prior_kl = _sum_dims(bernoulli_kl(mT, torch.full_like(mT, self.p_bar)))
        h1 = _sum_dims(bernoulli_entropy(m1))
        edge = _sum_dims((x0 - m1) * (lp - lq))
        log_prior = _sum_dims(x0 * lp + (1 - x0) * lq)
        return {"prior_kl": prior_kl, "h_x1_given_x0": h1, "edge": edge, "log_prior_x0": log_prior}

    def edge_K(self, x0: torch.Tensor, s: ScheduleTensors) -> torch.Tensor:
        """K's terms other than the KL sum, per example [B] (nats): −prior_kl − h_x1_given_x0 + edge of
        :meth:`edge_terms`."""
        e = self.edge_terms(x0, s)
        return -e["prior_kl"] - e["h_x1_given_x0"] + e["edge"]

    # ---- entropies, per bit averaged over bits, nats [T] ------------------------------------
    def _marginal_entropy(self, abar: torch.Tensor, mu0: torch.Tensor) -> torch.Tensor:
        # E_x0 H_b(ᾱ x0 + (1−ᾱ) p̄) per bit, mu0 = P(x0 = 1) per bit [D]; result [T]
        a = abar[:, None]
        h1 = bernoulli_entropy(a + (1 - a) * self.p_bar)
        h0 = bernoulli_entropy((1 - a) * self.p_bar)
        return (mu0[None] * h1 + (1 - mu0[None]) * h0).mean(dim=1)

    def conditional_entropy(self, s: ScheduleTensors, x0: torch.Tensor) -> torch.Tensor:
        """H_q(X^t | X^0) per bit (averaged over bits), estimated with the bit means of ``x0``. [T]"""
        mu0 = x0.reshape(x0.shape[0], -1).to(torch.float64).mean(dim=0)
        return self._marginal_entropy(s.alpha_bar, mu0)

    def entropy_bounds(self, s: ScheduleTensors, x0: torch.Tensor):
        """Eq. 24 per bit (each bit's own chain, averaged over bits), nats: (lower [T], upper [T]).

        upper = H(X^t | X^{t−1}); lower = upper + H(X^{t−1} | X^0) − H(X^t | X^0).
        """
        mu0 = x0.reshape(x0.shape[0], -1).to(torch.float64).mean(dim=0)  # [D]
        a_prev = s.alpha_bar_prev[:, None]
        m_prev = a_prev * mu0[None] + (1 - a_prev) * self.p_bar  # P(x^{t−1} = 1) [T, D]
        b = s.beta[:, None]
        upper = (m_prev * bernoulli_entropy(1 - b + self.p_bar * b)
                 + (1 - m_prev) * bernoulli_entropy(self.p_bar * b)).mean(dim=1)
        h_prev = self._marginal_entropy(s.alpha_bar_prev, mu0)
        h_t = self._marginal_entropy(s.alpha_bar, mu0)
        lower = torch.clamp(upper + h_prev - h_t, min=0.0)
        return lower, upper
