"""The reverse process p(x^{t−1} | x^t): kernel + schedule + network (spec §2.1, §2.2, §4.3, §4.4).

:class:`DiffusionModel` is the one object the rest of the package passes around. Time-index rule:
``reverse_step(x, k)`` takes x^{k+1} and returns the distribution of x^k, i.e. it reverses the paper's
forward step t = k + 1, uses β_t = ``beta[k]`` and evaluates the network at index ``k``. ``k = 0`` is
the fixed last step p(x^0 | x^1) (App. B edge effect); the network is used for k = 1 .. T−1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .kernels import BinomialKernel, GaussianKernel, ScheduleTensors, gather
from .networks import ConvNet, MLPNet, RBFNet
from .schedules import Schedule, binomial_betas, named_betas


@dataclass(frozen=True)
class StepDistribution:
    """One reverse step's distribution over x^k: Gaussian (``mean``, ``var``, [B, *S]) or binomial
    (``prob`` of a 1, [B, *S])."""

    mean: torch.Tensor | None = None
    var: torch.Tensor | None = None
    prob: torch.Tensor | None = None

    @property
    def is_gaussian(self) -> bool:
        return self.prob is None

    def sample(self, generator=None) -> torch.Tensor:
        if self.prob is not None:
            return torch.bernoulli(self.prob, generator=generator)
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.sqrt(self.var) * noise

    def entropy(self) -> torch.Tensor:
        """Per-element entropy (nats), [B, *S]."""
        if self.prob is not None:
            return BinomialKernel.entropy_of(self.prob)
        return GaussianKernel.entropy_of(self.var)


def build_network(c: ModelConfig) -> nn.Module:
    n_out = 2 if c.kernel == "gaussian" else 1
    if c.arch == "mlp":
        return MLPNet(c.example_shape[0], n_out, c.T, hidden=c.hidden, layers=c.layers, activation=c.activation,
                      readout=c.readout, J=c.J, time_features=c.time_features, skip=c.skip)
    if c.arch == "rbf":
        return RBFNet(c.example_shape[0], n_out, c.T, units=c.rbf_units, readout=c.readout, J=c.J)
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
            if self.is_gaussian:
                mean, var = self.kernel.last_step(x_t, s)
                return StepDistribution(mean=mean, var=var)
            return StepDistribution(prob=self.kernel.last_step(x_t, s))
        B = x_t.shape[0]
        k_vec = torch.full((B,), k, dtype=torch.long, device=x_t.device) if isinstance(k, int) else k
        c = self.config
        if c.param == "posterior" and not self.is_gaussian:
            evidence = self._bit_evidence(x_t, k_vec, s)
            # the net sees each bit's evidence, so the phase-like log-likelihoods it needs are linear in
            # its input at every t (raw bits would need a different weighting at each step)
            z = self.net(evidence / 4, k_vec)
            p0 = torch.sigmoid(z[:, 0] + evidence + math.log(self.kernel.p_bar / (1 - self.kernel.p_bar)))
            one, zero = torch.ones_like(x_t), torch.zeros_like(x_t)
            q1 = self.kernel.q_posterior(one, x_t, k_vec, s)
            q0 = self.kernel.q_posterior(zero, x_t, k_vec, s)
            return StepDistribution(prob=p0 * q1 + (1 - p0) * q0)
        z = self.net(x_t, k_vec)  # [B, n_out, *S]
        beta = gather(s.beta, k_vec, x_t)
        if c.param == "posterior":
            return self._posterior_step(z, x_t, k_vec, s)
        if not self.is_gaussian:
            logit = z[:, 0]
            if c.param == "residual":
                p_stay = self.kernel.step_prob(x_t, beta).clamp(1e-6, 1 - 1e-6)
                logit = logit + torch.log(p_stay) - torch.log1p(-p_stay)
            return StepDistribution(prob=torch.sigmoid(logit))
        z_mu, z_var = z[:, 0], z[:, 1]
        logit_beta = torch.log(beta) - torch.log1p(-beta)
        if c.param == "code":
            var = torch.sigmoid(z_var / math.sqrt(c.T) + logit_beta)
            mean = torch.sqrt(1 - beta) * x_t + torch.sqrt(beta) * z_mu
        else:  # paper, §4.3
            var = torch.sigmoid(z_var + logit_beta)
            mean = (x_t - z_mu) * (1 - var) + z_mu
        return StepDistribution(mean=mean, var=var.clamp_min(1e-12))

    def _bit_evidence(self, x_t: torch.Tensor, k_vec: torch.Tensor, s: ScheduleTensors) -> torch.Tensor:
        """log q(x_i^{k+1} | x_i^0 = 1) − log q(x_i^{k+1} | x_i^0 = 0) per bit: what x^{k+1}'s own bit says
        about x^0's (binomial)."""
        pb = self.kernel.p_bar
        abar = gather(s.alpha_bar, k_vec, x_t)
        m1 = (abar + (1 - abar) * pb).clamp(1e-12, 1 - 1e-12)  # q(x_i^{k+1} = 1 | x_i^0 = 1)
        m0 = ((1 - abar) * pb).clamp(1e-12, 1 - 1e-12)  # q(x_i^{k+1} = 1 | x_i^0 = 0)
        return torch.where(x_t > 0.5, torch.log(m1) - torch.log(m0), torch.log1p(-m1) - torch.log1p(-m0))

    def _posterior_step(self, z: torch.Tensor, x_t: torch.Tensor, k_vec: torch.Tensor,
                        s: ScheduleTensors) -> StepDistribution:
        """param "posterior": the forward posterior q(x^k | x^{k+1}, x^0) at the network's estimate of x^0.

        Gaussian: z^μ predicts the noise ε in x^{k+1} = √ᾱ·x^0 + √(1 − ᾱ)·ε, so
        μ = (x^{k+1} − β/√(1 − ᾱ)·ε̂)/√(1 − β) (= μ̃ at x̂^0), and the variance is interpolated in log
        space between the two entropy bounds of §2.4, Σ = β̃^{1−v}·β^v with v = σ(z^Σ): the model's
        reverse entropy always lies between Eq. 24's bounds.
        Binomial (in :meth:`reverse_step`): the net reads the bits' evidence e (:meth:`_bit_evidence`),
        σ(z + e + logit p̄) is P(x_i^0 = 1 | x^{k+1}) (z = 0: independent Bernoulli(p̄) bits), and f_b
        is the posterior averaged over it, Σ_{x_i^0} q(x_i^k = 1 | x_i^{k+1}, x_i^0)·P(x_i^0 | x^{k+1}),
        exact for each bit's marginal when P is right.
        """
        one_m_abar = 1 - s.alpha_bar
        eps_coef = gather(s.beta / torch.sqrt(one_m_abar), k_vec, x_t)
        inv_sqrt_alpha = gather(1 / torch.sqrt(1 - s.beta), k_vec, x_t)
        log_beta = gather(torch.log(s.beta), k_vec, x_t)
        log_beta_tilde = gather(torch.log(s.beta * (1 - s.alpha_bar_prev) / one_m_abar), k_vec, x_t)
        v = torch.sigmoid(z[:, 1])
        mean = (x_t - eps_coef * z[:, 0]) * inv_sqrt_alpha
        var = torch.exp(v * log_beta + (1 - v) * log_beta_tilde)
        return StepDistribution(mean=mean, var=var.clamp_min(1e-12))

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
