"""Gaussian diffusion (paper §2.1, Table App.1; entropies: Eq. 24, App. A). Prior π = N(0, I).

Shapes: ``x`` is ``[B, *S]`` (S the example shape, D = prod(S)); per-example quantities ``[B]``;
per-step arrays ``[T]``. Entropies and KLs are in nats. Distributions come back as :class:`GaussianDist`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import ScheduleTensors, gather
from .distributions import LOG_2PI, LOG_2PI_E, GaussianDist, sum_dims as _sum_dims


def beta1_cap_bits_per_dim(beta) -> float:
    """The cap on K − L_null for Gaussian diffusion that a fixed β_1 sets (models/README.md, Ceilings):
    ½·log2((1 − ᾱ_T)/β_1) bits per dimension. ``beta``: β_t [T] (numpy or torch)."""
    b = np.asarray(beta.detach().cpu() if isinstance(beta, torch.Tensor) else beta, dtype=np.float64)
    return 0.5 * math.log2((1.0 - float(np.prod(1.0 - b))) / float(b[0]))


class GaussianKernel:
    """q(x^t | x^{t−1}) = N(√(1−β_t)·x^{t−1}, β_t·I)."""

    name = "gaussian"

    # ---- forward process --------------------------------------------------------------------
    def q_transition(self, x_prev: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^{k+1} | x^k) = N(√(1−β_t)·x^k, β_t·I), paper step t = k + 1."""
        beta = gather(s.beta, k, x_prev)
        return GaussianDist(torch.sqrt(1 - beta) * x_prev, beta.expand_as(x_prev))

    def q_step(self, x_prev: torch.Tensor, k, s: ScheduleTensors, generator=None) -> torch.Tensor:
        """Sample x^{k+1} ~ q(· | x^k) (one forward step, paper step t = k + 1)."""
        return self.q_transition(x_prev, k, s).sample(generator)

    def q_marginal(self, x0: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^{k+1} | x^0) = N(√ᾱ·x^0, (1 − ᾱ)·I) (mean [B,*S], var expanded to it)."""
        # products of ᾱ are formed in float64 and cast once: in float32, 1 − ᾱ loses most of its digits
        # when β_1 is small (β_1 = 1e-5: ~0.5 %)
        return GaussianDist(gather(torch.sqrt(s.alpha_bar), k, x0) * x0, gather(1 - s.alpha_bar, k, x0).expand_as(x0))

    @staticmethod
    def noise_like(x: torch.Tensor, generator=None) -> torch.Tensor:
        """The noise :meth:`q_sample` takes: ε ~ N(0, I) of ``x``'s shape."""
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def q_sample(self, x0: torch.Tensor, k, s: ScheduleTensors, noise: torch.Tensor) -> torch.Tensor:
        """x^{k+1} = √ᾱ·x^0 + √(1−ᾱ)·ε with given ε (frozen noise: differentiable in β)."""
        return gather(torch.sqrt(s.alpha_bar), k, x0) * x0 + gather(torch.sqrt(1 - s.alpha_bar), k, x0) * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^k | x^{k+1}, x^0) = N(μ̃, β̃·I) for k ≥ 1 (paper t = k + 1 ≥ 2).

        β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t);
        μ̃_t = √ᾱ_{t−1}·β_t/(1 − ᾱ_t)·x^0 + √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x^t.
        """
        # coefficients per step in float64 (s's dtype), cast once by gather: computing 1 − ᾱ from a
        # float32 ᾱ makes the posterior mean wrong by a large fraction of its sd when β_1 ≲ 1e-4
        one_m_abar = 1 - s.alpha_bar
        var = gather(s.beta * (1 - s.alpha_bar_prev) / one_m_abar, k, x0)
        c0 = gather(torch.sqrt(s.alpha_bar_prev) * s.beta / one_m_abar, k, x0)
        ct = gather(torch.sqrt(1 - s.beta) * (1 - s.alpha_bar_prev) / one_m_abar, k, x0)
        return GaussianDist(c0 * x0 + ct * xt, var.expand_as(x0))

    # ---- prior ------------------------------------------------------------------------------
    def prior_sample(self, shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log π(x) [B] (nats)."""
        return _sum_dims(-0.5 * (LOG_2PI + x**2))

    # ---- the fixed last reverse step -------------------------------------------------------
    def last_step(self, x1: torch.Tensor, s: ScheduleTensors) -> GaussianDist:
        """The fixed last reverse step p(x^0 | x^1) = N(√(1−β_1)·x^1, β_1·I) (App. B edge effect)."""
        beta1 = s.beta[0].to(x1.dtype)
        return GaussianDist(torch.sqrt(1 - beta1) * x1, beta1 * torch.ones_like(x1))

    @staticmethod
    def cap_bits_per_dim(beta) -> float | None:
        """The β_1 cap on K − L_null, bits per dimension (see :func:`beta1_cap_bits_per_dim`)."""
        return beta1_cap_bits_per_dim(beta)

    # ---- bound pieces (App. B) ------------------------------------------------------------
    def edge_terms(self, x0: torch.Tensor, s: ScheduleTensors) -> dict[str, torch.Tensor]:
        """Per-example pieces of the exact bound other than the KL sum, nats [B]:

        ``prior_kl`` = KL(q(x^T | x^0) ‖ π), ``h_x1_given_x0`` = H_q(X^1 | X^0),
        ``edge`` = log π(x^0) − E_q log π(x^1), ``log_prior_x0`` = log π(x^0) (the null model).
        """
        D = x0[0].numel()
        x0_64 = x0.to(torch.float64)
        sq = _sum_dims(x0_64**2)
        abar_T = s.alpha_bar[-1]
        beta1 = s.beta[0]
        prior_kl = 0.5 * (D * (1 - abar_T) + abar_T * sq - D - D * torch.log(1 - abar_T))
        h1 = 0.5 * D * (LOG_2PI_E + torch.log(beta1)) * torch.ones_like(sq)
        edge = 0.5 * beta1 * (D - sq)
        log_prior = -0.5 * (D * LOG_2PI + sq)
        return {"prior_kl": prior_kl, "h_x1_given_x0": h1, "edge": edge, "log_prior_x0": log_prior}

    # ---- entropies (Eq. 24, App. A), per dimension, nats [T] ----------------------------------
    def conditional_entropy(self, s: ScheduleTensors, x0: torch.Tensor | None = None) -> torch.Tensor:
        """H_q(X^t | X^0) per dimension = ½ log(2πe(1 − ᾱ_t)). [T]"""
        return 0.5 * (LOG_2PI_E + torch.log(1 - s.alpha_bar))

    def entropy_bounds(self, s: ScheduleTensors, x0: torch.Tensor | None = None):
        """Per-step bounds on H_q(X^{t−1} | X^t) per dimension (Eq. 24), nats: (lower [T], upper [T]).

        upper = ½ log(2πe·β_t); lower = ½ log(2πe·β̃_t) (lower[0] uses β̃_1 = 0 → −inf, clipped to the
        upper value minus nothing: at t = 1 the reverse step is fixed, so we report β_1 for both).
        """
        upper = 0.5 * (LOG_2PI_E + torch.log(s.beta))
        var_post = s.beta * (1 - s.alpha_bar_prev) / (1 - s.alpha_bar)
        var_post = torch.where(var_post > 0, var_post, s.beta)
        lower = 0.5 * (LOG_2PI_E + torch.log(var_post))
        return lower, upper
