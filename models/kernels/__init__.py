"""Forward diffusion kernels (paper §2.1, Table App.1). One process per file,
sharing one small protocol: every method that describes a distribution returns a
:class:`~models.kernels.distributions.GaussianDist` or :class:`~models.kernels.distributions.BernoulliDist`
(``sample``, ``log_prob``, ``entropy``, ``kl``, ``mean``), so callers need not know which kernel they hold.

Every kernel function takes a :class:`ScheduleTensors` (β and ᾱ as float64 tensors, computed once per
forward pass, so a learned schedule back-propagates through them) and a step index ``k`` by the package's
time-index rule (models/__init__.py), an int or a LongTensor ``[B]`` (one step per example).

Per-step coefficients (√ᾱ_t, the posterior's weights, …) are functions of the schedule alone: each is
a product of powers of β_t, 1 − β_t, ᾱ_t, 1 − ᾱ_t, ᾱ_{t−1} and 1 − ᾱ_{t−1} (:data:`BASE`), or the
logarithm of one (:class:`Coefficient`). A call site picks the ones it needs at its steps with
:func:`coefficients`: their table over all T steps is formed once per :class:`ScheduleTensors` in
float64 (as exp of one matrix product of the base quantities' logarithms, which keeps a learned
schedule's gradient to a handful of operations), cast once, and read by one index.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: the schedule's quantities every per-step coefficient is a product of powers of (float64 [T], all ≥ 0)
BASE = ("beta", "alpha_bar", "alpha_bar_prev", "one_m_beta", "one_m_alpha_bar", "one_m_alpha_bar_prev")


@dataclass(frozen=True)
class Coefficient:
    """A per-step coefficient: ∏ q^p over (q, p) in ``powers`` (q named in :data:`BASE`), or with
    ``log`` the logarithm of that product."""

    powers: tuple[tuple[str, float], ...]
    log: bool = False


def monomial(log: bool = False, **powers: float) -> Coefficient:
    """``monomial(beta=1, one_m_alpha_bar=-0.5)`` = β_t/√(1 − ᾱ_t); with ``log=True`` its logarithm."""
    unknown = set(powers) - set(BASE)
    if unknown:
        raise ValueError(f"unknown base quantities {sorted(unknown)}; choose from {', '.join(BASE)}")
    return Coefficient(tuple(powers.items()), log)


#: name → the per-step coefficient it names (see :func:`coefficients`)
Columns = dict[str, Coefficient]

#: where a base quantity is exactly 0 (1 − ᾱ_0; 1 − β_t at β_t = 1) its logarithm is taken at this
#: value instead: every power of it then rounds to 0 (or its inverse to inf) as before, and no NaN
#: enters a gradient
_TINY = 1e-300


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
    # what per-step coefficients derive from this schedule, kept with it (:meth:`log_base`, :func:`coefficients`,
    # :func:`prefetch`), apart for computations that back-propagate into β and those that don't
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
        return torch.is_grad_enabled() and self.beta.requires_grad

    def log_base(self) -> torch.Tensor:
        """log of the :data:`BASE` quantities, float64 [len(BASE), T], computed once for this schedule."""
        key = ("log base", self._tracks_grad())
        out = self._memo.get(key)
        if out is None:
            q = torch.stack([self.beta, self.alpha_bar, self.alpha_bar_prev])
            out = self._memo[key] = torch.cat([q, 1 - q]).clamp_min(_TINY).log()  # in BASE's order
        return out


_EXPONENTS: dict = {}  # (id(columns), names, device) → (columns, what _exponents returns): kept alive, so ids stay theirs


def _exponents(columns: Columns, names: tuple[str, ...], device: torch.device):
    """The exponents of the coefficients ``names`` as a matrix [len(BASE), C] (float64), which columns are
    logarithms ([C] bool; None when none is), and whether all are; made once per (columns, names, device)."""
    key = (id(columns), names, device)
    got = _EXPONENTS.get(key)
    if got is None:
        coefs = [columns[n] for n in names]
        w = torch.zeros(len(BASE), len(coefs), dtype=torch.float64)
        for c, coef in enumerate(coefs):
            for q, p in coef.powers:
                w[BASE.index(q), c] = p
        logs = [coef.log for coef in coefs]
        got = _EXPONENTS[key] = (columns, (w.to(device), torch.tensor(logs, device=device) if any(logs) else None,
                                           all(logs)))
    return got[1]


def _table(s: ScheduleTensors, names: tuple[str, ...], columns: Columns, dtype: torch.dtype) -> torch.Tensor:
    """The coefficients ``names`` at every step, [T, C] in ``dtype``: exp(log-base quantities · exponents)."""
    w, logs, all_logs = _exponents(columns, names, s.beta.device)
    m = s.log_base().t() @ w  # [T, C], the logarithms
    out = m if all_logs else m.exp() if logs is None else torch.where(logs, m, m.exp())
    return out.to(dtype)


def _table_entry(s: ScheduleTensors, names: tuple[str, ...], columns: Columns, dtype: torch.dtype, grad: bool) -> list:
    """[the table of ``names`` (:func:`_table`), its rows as Python floats or None], made once per schedule."""
    key = ("table", id(columns), names, dtype, grad)
    entry = s._memo.get(key)
    if entry is None:
        entry = s._memo[key] = [_table(s, names, columns, dtype), None]
    return entry


def coefficients(s: ScheduleTensors, k, like: torch.Tensor, names: tuple[str, ...], columns: Columns) -> tuple:
    """The per-step coefficients ``names`` (of ``columns``) at step index ``k``, in ``like``'s dtype, each
    shaped to broadcast against ``like`` [B, ...]: for a LongTensor ``k`` [B], tensors [B, 1, …] taken from
    one table [T, C] by one index (or from what :func:`prefetch` gathered at this ``k``); for an int ``k``,
    Python floats when no gradient flows into the schedule (the table read to the host once per
    schedule), else 0-d tensors. The table is formed in float64 and cast to ``like``'s dtype once per
    schedule."""
    grad = torch.is_grad_enabled() and s.beta.requires_grad  # (ScheduleTensors._tracks_grad)
    memo = s._memo
    is_tensor = isinstance(k, torch.Tensor)
    if is_tensor and k.dim() == 1:
        got = memo.get(("rows", id(columns), like.dtype, tuple(like.shape[1:]), grad))
        if got is not None and got[0] is k and all(n in got[1] for n in names):
            return tuple(got[1][n] for n in names)
    entry = _table_entry(s, names, columns, like.dtype, grad)
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


#: :func:`prefetch` hands out coefficients at the full shape of states of at most this many numbers
FULL_ROWS_MAX = 64
FULL_ROWS = True  # (False: as coefficients() shapes them; tests and benchmarks compare the two)


def _full_rows(s: ScheduleTensors, k: torch.Tensor, like: torch.Tensor, names: tuple[str, ...],
               columns: Columns) -> tuple:
    """The coefficients ``names`` at the steps ``k`` [B], each a contiguous tensor of ``like``'s shape
    [B, *S]: from one index into the table and one copy."""
    table = _table_entry(s, names, columns, like.dtype, s._tracks_grad())[0]
    C, n = len(names), like[0].numel()
    full = table.index_select(0, k).t().unsqueeze(-1).expand(C, k.shape[0], n).contiguous()
    return full.view(C, *like.shape).unbind(0)


def prefetch(s: ScheduleTensors, k: torch.Tensor, like: torch.Tensor, names: tuple[str, ...], columns: Columns) -> None:
    """Gather ``names`` at the steps ``k`` [B] now, from one table by one index, for the calls of
    :func:`coefficients` that follow at the same ``k`` (the same tensor), for tensors of ``like``'s dtype and
    rank: a step of the bound needs a few coefficients in each of several functions, and one gather (one
    backward) serves them all. The latest prefetch per schedule is kept."""
    names = tuple(dict.fromkeys(names))
    n = like[0].numel() if like.dim() > 1 else 0
    if FULL_ROWS and 0 < n <= FULL_ROWS_MAX:
        # a small state: each coefficient as a contiguous tensor of ``like``'s shape, so that the operations
        # it enters take same-shaped operands (on [B, 2], a [B, 1] operand broadcast along the last dimension
        # costs about three times as much) and their backward needs no reduction each: one, over all columns
        # together, where the copy's gradient is summed back to the rows
        values = _full_rows(s, k, like, names, columns)
    else:
        values = coefficients(s, k, like, names, columns)
    s._memo[("rows", id(columns), like.dtype, tuple(like.shape[1:]), s._tracks_grad())] = (k, dict(zip(names, values)))


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
    """y + sign·a·x for a coefficient ``a`` from :func:`coefficients` (a float or a tensor): one operation
    where no gradient is recorded (addcmul's gradient takes more operations than a product's and a sum's,
    so those are used where one is)."""
    if isinstance(a, float):
        return torch.add(y, x, alpha=sign * a)
    if torch.is_grad_enabled() and (a.requires_grad or x.requires_grad or y.requires_grad):
        return y + a * x if sign == 1.0 else y - a * x
    return torch.addcmul(y, a, x, value=sign)


from .distributions import BernoulliDist, Distribution, GaussianDist, sum_dims  # noqa: E402
from .binomial import BinomialKernel  # noqa: E402
from .gaussian import GaussianKernel  # noqa: E402

__all__ = ["ScheduleTensors", "GaussianKernel", "BinomialKernel", "Distribution", "GaussianDist", "BernoulliDist",
           "BASE", "Coefficient", "monomial", "Columns", "coefficients", "prefetch", "gather", "filled", "axpy",
           "sum_dims"]
