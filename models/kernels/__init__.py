"""Forward diffusion kernels (paper §2.1, Table App.1). One process per file,
sharing one small protocol: every method that describes a distribution returns a
:class:`~models.kernels.distributions.GaussianDist` or :class:`~models.kernels.distributions.BernoulliDist`
(``sample``, ``log_prob``, ``entropy``, ``kl``, ``mean``), so callers need not know which kernel they hold.

Every kernel function takes a :class:`ScheduleTensors` (β and ᾱ as float64 tensors, computed once per
forward pass, so a learned schedule back-propagates through them) and a step index ``k`` by the package's
time-index rule (models/__init__.py), an int or a LongTensor ``[B]`` (one step per example).

Per-step coefficients (√ᾱ_t, the posterior's weights, …) are functions of the schedule alone: each is
computed once per :class:`ScheduleTensors` over all T steps in float64, and a call site picks the ones it
needs at its steps with :func:`coefficients` (one table, one index, cast once).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

#: name → the per-step quantity it names, float64 [T], as a function of the schedule (see :func:`coefficients`)
Columns = dict[str, Callable[["ScheduleTensors"], torch.Tensor]]


class _CumProd(torch.autograd.Function):
    """ᾱ = cumprod(α) of a 1-D α [T] whose gradient is wanted: torch.cumprod's values, and torch's own
    gradient for an α without zeros, Σ_{t ≥ s} g_t·ᾱ_t / α_s (torch computes it after some thirty
    operations that handle zeros). A learned schedule keeps 1 − β_t = α_t > 0 wherever a gradient flows
    in (β_1, where a schedule may have β = 1, is fixed)."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor) -> torch.Tensor:
        out = torch.cumprod(alpha, dim=0)
        ctx.save_for_backward(alpha, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        alpha, out = ctx.saved_tensors
        return (grad * out).flip(0).cumsum(0).flip(0) / alpha


@dataclass(frozen=True)
class ScheduleTensors:
    """β_t and derived products for one evaluation. All float64 ``[T]``."""

    beta: torch.Tensor
    alpha_bar: torch.Tensor
    alpha_bar_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_0 = 1
    # per-step coefficient columns and tables derived from this schedule (see :func:`coefficients`)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @staticmethod
    def from_beta(beta: torch.Tensor) -> "ScheduleTensors":
        beta = beta.to(torch.float64)
        alpha = 1.0 - beta
        abar = _CumProd.apply(alpha) if alpha.requires_grad and torch.is_grad_enabled() else torch.cumprod(alpha, dim=0)
        prev = torch.cat([abar.new_ones(1), abar[:-1]])
        return ScheduleTensors(beta=beta, alpha_bar=abar, alpha_bar_prev=prev)

    @property
    def T(self) -> int:
        return int(self.beta.shape[0])

    def _tracks_grad(self) -> bool:
        # derived tensors are kept apart for computations that back-propagate into β and those that don't
        return torch.is_grad_enabled() and self.beta.requires_grad

    def column(self, name: str, columns: Columns) -> torch.Tensor:
        """The per-step quantity ``columns[name](self)``, float64 [T], computed once for this schedule."""
        key = ("column", name, self._tracks_grad())
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = columns[name](self)
        return out


def coefficients(s: ScheduleTensors, k, like: torch.Tensor, names: tuple[str, ...], columns: Columns) -> tuple:
    """The per-step quantities ``names`` (see :meth:`ScheduleTensors.column`) at step index ``k``, in ``like``'s
    dtype, each shaped to broadcast against ``like`` [B, ...]: for a LongTensor ``k`` [B], tensors [B, 1, …]
    taken from one table [T, C] by one index (or from what :func:`prefetch` gathered at this ``k``); for an
    int ``k``, Python floats when no gradient flows into the schedule (the table read to the host once per
    schedule), else 0-d tensors. The table is built in float64 and cast to ``like``'s dtype once per
    schedule."""
    grad = torch.is_grad_enabled() and s.beta.requires_grad  # (ScheduleTensors._tracks_grad)
    memo = s._memo
    is_tensor = isinstance(k, torch.Tensor)
    if is_tensor and k.dim() == 1:
        got = memo.get(("rows", id(columns), like.dtype, like.dim(), grad))
        if got is not None and got[0] is k and all(n in got[1] for n in names):
            return tuple(got[1][n] for n in names)
    key = ("table", id(columns), names, like.dtype, grad)
    entry = memo.get(key)
    if entry is None:
        table = torch.stack([s.column(n, columns) for n in names], dim=1).to(like.dtype)  # [T, C]
        entry = memo[key] = [table, None]
    if not is_tensor:
        if grad:
            return entry[0][int(k)].unbind(0)
        rows = entry[1]
        if rows is None:
            rows = entry[1] = [tuple(r) for r in entry[0].tolist()]
        return rows[k]
    table = entry[0]
    if k.dim() == 0:
        return table[k].unbind(0)
    return table.view(table.shape[0], len(names), *((1,) * (like.dim() - 1)))[k].unbind(1)


def prefetch(s: ScheduleTensors, k: torch.Tensor, like: torch.Tensor, names: tuple[str, ...], columns: Columns) -> None:
    """Gather ``names`` at the steps ``k`` [B] now, from one table by one index, for the calls of
    :func:`coefficients` that follow at the same ``k`` (the same tensor), for tensors of ``like``'s dtype and
    rank: a step of the bound needs a few coefficients in each of several functions, and one gather (one
    backward) serves them all. The latest prefetch per schedule is kept."""
    names = tuple(dict.fromkeys(names))
    values = coefficients(s, k, like, names, columns)
    s._memo[("rows", id(columns), like.dtype, like.dim(), s._tracks_grad())] = (k, dict(zip(names, values)))


def gather(v: torch.Tensor, k, like: torch.Tensor) -> torch.Tensor:
    """Pick ``v[k]`` and shape it to broadcast against ``like`` ([B, ...]), in ``like``'s dtype."""
    if isinstance(k, int):
        return v[k].to(like.dtype)
    out = v[k].to(like.dtype)
    return out.reshape(out.shape + (1,) * (like.dim() - 1))


def filled(v, like: torch.Tensor) -> torch.Tensor:
    """A coefficient from :func:`coefficients` (a float or a tensor broadcastable to ``like``) as a tensor
    of ``like``'s shape (a view where it can be)."""
    return v.expand_as(like) if isinstance(v, torch.Tensor) else torch.full_like(like, v)


def axpy(a, x: torch.Tensor, y: torch.Tensor, sign: float = 1.0) -> torch.Tensor:
    """y + sign·a·x in one operation, for a coefficient ``a`` from :func:`coefficients` (a float or a tensor)."""
    return torch.add(y, x, alpha=sign * a) if isinstance(a, float) else torch.addcmul(y, a, x, value=sign)


from .distributions import BernoulliDist, Distribution, GaussianDist, sum_dims  # noqa: E402
from .binomial import BinomialKernel  # noqa: E402
from .gaussian import GaussianKernel  # noqa: E402

__all__ = ["ScheduleTensors", "GaussianKernel", "BinomialKernel", "Distribution", "GaussianDist", "BernoulliDist",
           "Columns", "coefficients", "prefetch", "gather", "filled", "axpy", "sum_dims"]
