"""Forward diffusion kernels (paper §2.1, Table App.1). One process per file,
sharing one small protocol: every method that describes a distribution returns a
:class:`~models.kernels.distributions.GaussianDist` or :class:`~models.kernels.distributions.BernoulliDist`
(``sample``, ``log_prob``, ``entropy``, ``kl``, ``mean``), so callers need not know which kernel they hold.

Every kernel function takes a :class:`ScheduleTensors` (β and ᾱ as float64 tensors, computed once per
forward pass, so a learned schedule back-propagates through them) and a step index ``k`` by the package's
time-index rule (models/__init__.py), an int or a LongTensor ``[B]`` (one step per example).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScheduleTensors:
    """β_t and derived products for one evaluation. All float64 ``[T]``."""

    beta: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_0 = 1

    @staticmethod
    def from_beta(beta: torch.Tensor) -> "ScheduleTensors":
        beta = beta.to(torch.float64)
        abar = torch.cumprod(1.0 - beta, dim=0)
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        return ScheduleTensors(beta=beta, alpha_bar=abar, alpha_bar_prev=prev)

    @property
    def T(self) -> int:
        return int(self.beta.shape[0])


def gather(v: torch.Tensor, k, like: torch.Tensor) -> torch.Tensor:
    """Pick ``v[k]`` and shape it to broadcast against ``like`` ([B, ...]), in ``like``'s dtype."""
    if isinstance(k, int):
        return v[k].to(like.dtype)
    out = v[k].to(like.dtype)
    return out.reshape(out.shape + (1,) * (like.dim() - 1))


from .distributions import BernoulliDist, Distribution, GaussianDist, sum_dims  # noqa: E402
from .binomial import BinomialKernel  # noqa: E402
from .gaussian import GaussianKernel  # noqa: E402

__all__ = ["ScheduleTensors", "GaussianKernel", "BinomialKernel", "Distribution", "GaussianDist", "BernoulliDist",
           "gather", "sum_dims"]
