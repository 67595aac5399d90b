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
                      readout=c.readout, J=c.J, time_features=c.time_features)
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
        z = self.net(x_t, k_vec)  # [B, n_out, *S]
        beta = gather(s.beta, k_vec, x_t)
        c = self.config
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

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
