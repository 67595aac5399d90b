"""Gaussian diffusion (paper §2.1, Table App.1; entropies: Eq. 24, App. A). Prior π = N(0, I).

Shapes: ``x`` is ``[B, *S]`` (S the example shape, D = prod(S)); per-example quantities ``[B]``;
per-step arrays ``[T]``. Entropies and KLs are in nats. Distributions come back as :class:`GaussianDist`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from . import Columns, ScheduleTensors, axpy, coefficients, filled, monomial
from .distributions import LOG_2PI, LOG_2PI_E, GaussianDist, sum_dims as _sum_dims


#: The Gaussian kernel's per-step coefficients (see :func:`models.kernels.coefficients`), the reverse
#: parameterisations' (models/model.py) included. Products of ᾱ are formed in float64 and cast once where
#: used: in float32, 1 − ᾱ loses most of its digits when β_1 is small (β_1 = 1e-5: ~0.5 %), which makes
#: the posterior mean wrong by a large fraction of its sd when β_1 ≲ 1e-4.
COLUMNS: Columns = {
    "beta": monomial(beta=1),
    "sqrt_beta": monomial(beta=0.5),
    "log_beta": monomial(log=True, beta=1),
    "one_m_beta": monomial(one_m_beta=1),
    "logit_beta": monomial(log=True, beta=1, one_m_beta=-1),
    "sqrt_one_m_beta": monomial(one_m_beta=0.5),
    "inv_sqrt_one_m_beta": monomial(one_m_beta=-0.5),
    "sqrt_abar": monomial(alpha_bar=0.5),
    "one_m_abar": monomial(one_m_alpha_bar=1),
    "sqrt_one_m_abar": monomial(one_m_alpha_bar=0.5),
    # q(x^{t−1} | x^t, x^0) = N(c0·x^0 + ct·x^t, β̃_t): β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t),
    # c0 = √ᾱ_{t−1}·β_t/(1 − ᾱ_t), ct = √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)
    "post_var": monomial(beta=1, one_m_alpha_bar_prev=1, one_m_alpha_bar=-1),
    "log_post_var": monomial(log=True, beta=1, one_m_alpha_bar_prev=1, one_m_alpha_bar=-1),
    "post_c0": monomial(alpha_bar_prev=0.5, beta=1, one_m_alpha_bar=-1),
    "post_ct": monomial(one_m_beta=0.5, one_m_alpha_bar_prev=1, one_m_alpha_bar=-1),
    # ε-style means: x^{k+1} = √ᾱ·x^0 + √(1 − ᾱ)·ε, so μ̃ = (x^{k+1} − eps_coef·ε)/√(1 − β)
    "eps_coef": monomial(beta=1, one_m_alpha_bar=-0.5),
    "eps_scale": monomial(one_m_beta=0.5, one_m_alpha_bar=0.5, beta=-1),
}


def beta1_cap_bits_per_dim(beta) -> float:
    """The cap on K − L_null for Gaussian diffusion that a fixed β_1 sets (models/README.md, Ceilings):
    ½·log2((1 − ᾱ_T)/β_1) bits per dimension. ``beta``: β_t [T] (numpy or torch)."""
    b = np.asarray(beta.detach().cpu() if isinstance(beta, torch.Tensor) else beta, dtype=np.float64)
    return 0.5 * math.log2((1.0 - float(np.prod(1.0 - b))) / float(b[0]))


class GaussianKernel:
    """q(x^t | x^{t−1}) = N(√(1−β_t)·x^{t−1}, β_t·I)."""

    name = "gaussian"

    # ---- forward process --------------------------------------------------------------------
    #: the per-step coefficients (:data:`COLUMNS`) of q_sample and q_posterior
    SAMPLE_COLUMNS = ("sqrt_abar", "sqrt_one_m_abar")
    POSTERIOR_COLUMNS = ("post_c0", "post_ct", "post_var")

    def q_transition(self, x_prev: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^{k+1} | x^k) = N(√(1−β_t)·x^k, β_t·I), paper step t = k + 1."""
        a, beta = coefficients(s, k, x_prev, ("sqrt_one_m_beta", "beta"), COLUMNS)
        return GaussianDist(a * x_prev, filled(beta, x_prev))

    def q_step(self, x_prev: torch.Tensor, k, s: ScheduleTensors, generator=None) -> torch.Tensor:
        """Sample x^{k+1} ~ q(· | x^k) (one forward step, paper step t = k + 1)."""
        return self.q_transition(x_prev, k, s).sample(generator)

    def q_marginal(self, x0: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^{k+1} | x^0) = N(√ᾱ·x^0, (1 − ᾱ)·I) (mean [B,*S], var expanded to it)."""
        a, v = coefficients(s, k, x0, ("sqrt_abar", "one_m_abar"), COLUMNS)
        return GaussianDist(a * x0, filled(v, x0))

    @staticmethod
    def noise_like(x: torch.Tensor, generator=None) -> torch.Tensor:
        """The noise :meth:`q_sample` takes: ε ~ N(0, I) of ``x``'s shape."""
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def q_sample(self, x0: torch.Tensor, k, s: ScheduleTensors, noise: torch.Tensor) -> torch.Tensor:
        """x^{k+1} = √ᾱ·x^0 + √(1−ᾱ)·ε with given ε (frozen noise: differentiable in β)."""
        a, b = coefficients(s, k, x0, self.SAMPLE_COLUMNS, COLUMNS)
        return axpy(b, noise, a * x0)

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
        """q(x^k | x^{k+1}, x^0) = N(μ̃, β̃·I) for k ≥ 1 (paper t = k + 1 ≥ 2).

        β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t);
        μ̃_t = √ᾱ_{t−1}·β_t/(1 − ᾱ_t)·x^0 + √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x^t.
        Coefficients per step in float64, cast once (:data:`COLUMNS`).
        """
        c0, ct, var = coefficients(s, k, x0, self.POSTERIOR_COLUMNS, COLUMNS)
        return GaussianDist(axpy(ct, xt, c0 * x0), filled(var, x0))

    # ---- prior ------------------------------------------------------------------------------
    def prior_sample(self, shape, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log π(x) [B] (nats)."""
        return _sum_dims(-0.5 * (LOG_2PI + x**2))

    # ---- the fixed last reverse step -------------------------------------------------------
    def last_step(self, x1: torch.Tensor, s: ScheduleTensors) -> GaussianDist:
        """The fixed last reverse step p(x^0 | x^1) = N(√(1−β_1)·x^1, β_1·I) (App. B edge effect)."""
        a, beta1 = coefficients(s, 0, x1, ("sqrt_one_m_beta", "beta"), COLUMNS)
        return GaussianDist(a * x1, filled(beta1, x1))

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

    def edge_K(self, x0: torch.Tensor, s: ScheduleTensors) -> torch.Tensor:
        """K's terms other than the KL sum, per example [B] (nats): −prior_kl − h_x1_given_x0 + edge of
        :meth:`edge_terms`, collected as −½(ᾱ_T + β_1)·|x^0|² + ½D·(ᾱ_T + log(1 − ᾱ_T) − log(2πe·β_1) + β_1)."""
        D = x0[0].numel()
        x0_64 = x0.to(torch.float64)
        sq = _sum_dims(x0_64 * x0_64)
        abar_T, beta1 = s.alpha_bar[-1], s.beta[0]
        a = abar_T + beta1
        const = (a + torch.log((1 - abar_T) / beta1) - LOG_2PI_E) * (0.5 * D)
        return torch.addcmul(const, a, sq, value=-0.5)

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
