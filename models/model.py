"""The reverse process p(x^{t−1} | x^t): kernel + schedule + network (paper §2.2, App. D.2.1).

:class:`DiffusionModel` is the one object the rest of the package passes around. By the time-index rule
(models/__init__.py), ``reverse_step(x, k)`` takes x^{k+1} and returns p(x^k | x^{k+1}); ``k = 0`` is the
fixed last step p(x^0 | x^1) (App. B), the network serves k = 1 … T − 1.

Each reverse parameterisation (models/README.md, Parameterisations) is one small function below, looked
up in :data:`PARAMETERISATIONS` by (kernel, param).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .config import ModelConfig
from .kernels import (BernoulliDist, BinomialKernel, Distribution, GaussianDist, GaussianKernel, ScheduleTensors,
                      axpy, coefficients, gather, prefetch)
from .kernels.gaussian import COLUMNS as GAUSSIAN_COLUMNS
from .networks import ConvNet, MLPNet, RBFNet, UNet
from .schedules import Schedule, binomial_betas, named_betas

#: What :meth:`DiffusionModel.reverse_step` returns: a :class:`GaussianDist` or a :class:`BernoulliDist`.
StepDistribution = Distribution

def build_network(c: ModelConfig) -> nn.Module:
    n_out = 2 if c.kernel == "gaussian" else 1
    if c.arch == "mlp":
        return MLPNet(c.example_shape[0], n_out, c.T, hidden=c.hidden, layers=c.layers, activation=c.activation,
                      readout=c.readout, J=c.J, time_features=c.time_features, skip=c.skip)
    if c.arch == "rbf":
        return RBFNet(c.example_shape[0], n_out, c.T, units=c.rbf_units, readout=c.readout, J=c.J)
    if c.arch == "unet":  # conv_layers = residual blocks per resolution, n_scales = resolutions
        return UNet(c.example_shape[0], n_out, c.T, hidden=c.hidden, n_scales=c.n_scales, blocks=c.conv_layers,
                    time_features=c.time_features)
    return ConvNet(c.example_shape[0], n_out, c.T, hidden=c.hidden, conv_layers=c.conv_layers,
                   n_scales=c.n_scales, dense_layers=c.dense_layers, dense_hidden=c.dense_hidden,
                   conv_activation=c.conv_activation, dense_activation=c.activation, J=c.J,
                   time_features=c.time_features)


def initial_betas(c: ModelConfig):
    if c.kernel == "binomial":
        b = binomial_betas(c.T)
        if c.beta_1 is not None:
            b[0] = c.beta_1
        return b
    return named_betas(c.schedule, c.T, beta_1=c.beta_1)


class DiffusionModel(nn.Module):
    """A complete diffusion probabilistic model: forward kernel, β schedule and reverse network."""

    def __init__(self, config: ModelConfig, betas=None):
        super().__init__()
        self.config = config
        self.kernel = GaussianKernel() if config.kernel == "gaussian" else BinomialKernel(config.p_bar)
        self.schedule = Schedule(initial_betas(config) if betas is None else betas, learn=config.learn_beta, J=config.J)
        self.net = build_network(config)

    @property
    def T(self) -> int:
        return self.config.T

    @property
    def is_gaussian(self) -> bool:
        return self.config.kernel == "gaussian"

    @property
    def device(self) -> torch.device:
        return self.schedule.base_beta.device

    def schedule_tensors(self) -> ScheduleTensors:
        return ScheduleTensors.from_beta(self.schedule())

    def network_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("schedule.")]

    def reverse_step(self, x_t: torch.Tensor, k, s: ScheduleTensors | None = None) -> StepDistribution:
        """p(x^k | x^{k+1}). ``k`` an int (all examples at one step) or LongTensor [B] with k ≥ 1,
        or the int 0 for the fixed last step."""
        s = self.schedule_tensors() if s is None else s
        if isinstance(k, int) and k == 0:
            return self.kernel.last_step(x_t, s)
        return PARAMETERISATIONS[self.config.kernel, self.config.param](self, x_t, k, s)

    def prefetch_coefficients(self, s: ScheduleTensors, k: torch.Tensor, like: torch.Tensor,
                              extra: tuple[str, ...] = ()) -> None:
        """Gather every per-step coefficient that a step of the bound at ``k`` [B] needs
        (``kernel.q_sample``, ``kernel.q_posterior``, :meth:`reverse_step`, and the Gaussian ``extra``
        names) in one index, for those calls at this ``k`` (:func:`models.kernels.prefetch`). Kernels
        whose steps gather their own coefficients need none."""
        if self.is_gaussian:
            kern = self.kernel
            prefetch(s, k, like, kern.SAMPLE_COLUMNS + kern.POSTERIOR_COLUMNS + PARAM_COLUMNS[self.config.param]
                     + tuple(extra), GAUSSIAN_COLUMNS)

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- reverse parameterisations: f(model, x^{k+1} [B, *S], k ≥ 1 (an int or [B]), s) → p(x^k | x^{k+1}) ----------
# Gaussian ones read their per-step coefficients (PARAM_COLUMNS, of models.kernels.gaussian.COLUMNS) with
# models.kernels.coefficients.

def _net(m: DiffusionModel, x_t: torch.Tensor, k) -> torch.Tensor:
    """The network's raw outputs at x^{k+1} and step ``k`` (an int: the same step for every example)."""
    if not isinstance(k, torch.Tensor):
        k = torch.full((x_t.shape[0],), int(k), dtype=torch.long, device=x_t.device)
    return m.net(x_t, k)


def _gaussian_coefficients(m: DiffusionModel, x_t: torch.Tensor, k, s: ScheduleTensors) -> tuple:
    return coefficients(s, k, x_t, PARAM_COLUMNS[m.config.param], GAUSSIAN_COLUMNS)


def _paper_moments(T: int, z: torch.Tensor, x_t: torch.Tensor, c: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """App. D.2.1: Σ = σ(z^Σ + logit β_t), μ = (x^t − z^μ)(1 − Σ) + z^μ."""
    z_mu, z_sigma = z.unbind(1)  # [B, *S] each
    (logit_beta,) = c
    var = torch.sigmoid(z_sigma + logit_beta)
    mean = (x_t - z_mu) * (1 - var) + z_mu
    return mean, var.clamp_min(1e-12)


def _code_moments(T: int, z: torch.Tensor, x_t: torch.Tensor, c: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference code's: Σ = σ(z^Σ/√T + logit β_t), μ = √(1 − β_t)·x^t + √β_t·z^μ."""
    z_mu, z_sigma = z.unbind(1)
    logit_beta, sqrt_one_m_beta, sqrt_beta = c
    var = torch.sigmoid(z_sigma / math.sqrt(T) + logit_beta)
    mean = axpy(sqrt_beta, z_mu, sqrt_one_m_beta * x_t)
    return mean, var.clamp_min(1e-12)


def _posterior_moments(T: int, z: torch.Tensor, x_t: torch.Tensor, c: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward posterior q(x^k | x^{k+1}, x^0) at the network's estimate of x^0.

    z^μ predicts the noise ε in x^{k+1} = √ᾱ·x^0 + √(1 − ᾱ)·ε, so μ = (x^{k+1} − β/√(1 − ᾱ)·ε̂)/√(1 − β)
    (= μ̃ at x̂^0), and the variance is interpolated in log space between the two entropy bounds of
    Eq. 24, Σ = β̃^{1−v}·β^v with v = σ(z^Σ): the model's reverse entropy always lies between Eq. 24's
    bounds."""
    z_eps, z_v = z.unbind(1)
    eps_coef, inv_sqrt_alpha, log_beta, log_beta_tilde = c
    v = torch.sigmoid(z_v)
    mean = axpy(eps_coef, z_eps, x_t, sign=-1.0) * inv_sqrt_alpha
    var = torch.exp(v * log_beta + (1 - v) * log_beta_tilde)
    return mean, var.clamp_min(1e-12)


#: Gaussian parameterisation → (T, network outputs z [B, 2, *S], x^{k+1}, its PARAM_COLUMNS coefficients)
#: → (mean, variance) of p(x^k | x^{k+1}); reverse_step and the sampler's fast step (models/sampling.py)
GAUSSIAN_MOMENTS = {"paper": _paper_moments, "code": _code_moments, "posterior": _posterior_moments}


def _gaussian(m: DiffusionModel, x_t: torch.Tensor, k, s: ScheduleTensors) -> GaussianDist:
    """p(x^k | x^{k+1}) of a Gaussian model, by its parameterisation (:data:`GAUSSIAN_MOMENTS`)."""
    mean, var = GAUSSIAN_MOMENTS[m.config.param](m.config.T, _net(m, x_t, k), x_t,
                                                 _gaussian_coefficients(m, x_t, k, s))
    return GaussianDist(mean, var)


def _binomial_paper(m: DiffusionModel, x_t: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
    """Table App.1: f_b = σ(z)."""
    return BernoulliDist(torch.sigmoid(_net(m, x_t, k)[:, 0]))


def _binomial_residual(m: DiffusionModel, x_t: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
    """f_b = σ(z + logit of the forward kernel's probability of a 1): z = 0 is the forward kernel itself."""
    z = _net(m, x_t, k)[:, 0]
    p_stay = m.kernel.step_prob(x_t, gather(s.beta, k, x_t)).clamp(1e-6, 1 - 1e-6)
    return BernoulliDist(torch.sigmoid(z + torch.log(p_stay) - torch.log1p(-p_stay)))


def bit_evidence(m: DiffusionModel, x_t: torch.Tensor, k: torch.Tensor, s: ScheduleTensors) -> torch.Tensor:
    """log q(x_i^{k+1} | x_i^0 = 1) − log q(x_i^{k+1} | x_i^0 = 0) per bit [B, *S]: what x^{k+1}'s own bit
    says about x^0's (binomial)."""
    pb = m.kernel.p_bar
    abar = gather(s.alpha_bar, k, x_t)
    m1 = (abar + (1 - abar) * pb).clamp(1e-12, 1 - 1e-12)  # q(x_i^{k+1} = 1 | x_i^0 = 1)
    m0 = ((1 - abar) * pb).clamp(1e-12, 1 - 1e-12)  # q(x_i^{k+1} = 1 | x_i^0 = 0)
    return torch.where(x_t > 0.5, torch.log(m1) - torch.log(m0), torch.log1p(-m1) - torch.log1p(-m0))


def _binomial_posterior(m: DiffusionModel, x_t: torch.Tensor, k, s: ScheduleTensors) -> BernoulliDist:
    """The forward posterior averaged over the network's belief about x^0.

    The net reads the bits' evidence e (:func:`bit_evidence`), σ(z + e + logit p̄) is
    P(x_i^0 = 1 | x^{k+1}) (z = 0: independent Bernoulli(p̄) bits), and f_b is the posterior averaged over
    it, Σ_{x_i^0} q(x_i^k = 1 | x_i^{k+1}, x_i^0)·P(x_i^0 | x^{k+1}), exact for each bit's marginal when P
    is right."""
    evidence = bit_evidence(m, x_t, k, s)
    # the net sees each bit's evidence, so the phase-like log-likelihoods it needs are linear in its
    # input at every t (raw bits would need a different weighting at each step)
    z = _net(m, evidence / 4, k)
    pb = m.kernel.p_bar
    p0 = torch.sigmoid(z[:, 0] + evidence + math.log(pb / (1 - pb)))
    q1 = m.kernel.q_posterior(torch.ones_like(x_t), x_t, k, s).prob
    q0 = m.kernel.q_posterior(torch.zeros_like(x_t), x_t, k, s).prob
    return BernoulliDist(p0 * q1 + (1 - p0) * q0)


ReverseFn = Callable[[DiffusionModel, torch.Tensor, "int | torch.Tensor", ScheduleTensors], Distribution]

#: (kernel, param) → the function computing p(x^k | x^{k+1}) for k ≥ 1. ModelConfig refuses other pairs.
PARAMETERISATIONS: dict[tuple[str, str], ReverseFn] = {
    ("gaussian", "paper"): _gaussian,
    ("gaussian", "code"): _gaussian,
    ("gaussian", "posterior"): _gaussian,
    ("binomial", "paper"): _binomial_paper,
    ("binomial", "residual"): _binomial_residual,
    ("binomial", "posterior"): _binomial_posterior,
}

#: Gaussian param → the per-step coefficients (models.kernels.gaussian.COLUMNS) its function uses, in order
PARAM_COLUMNS: dict[str, tuple[str, ...]] = {
    "paper": ("logit_beta",),
    "code": ("logit_beta", "sqrt_one_m_beta", "sqrt_beta"),
    "posterior": ("eps_coef", "inv_sqrt_one_m_beta", "log_beta", "log_post_var"),
}
