"""Diffusion-rate schedules β_t (paper §2.4.1; models/README.md, Schedules).

A schedule is an array ``beta`` of shape ``[T]`` indexed by the package's time-index rule (models/__init__.py):
``beta[k]`` is β_{k+1}.

Schedules are float64 (numpy for named schedules, torch for the learned one) and cast once, where used.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import nn

ScheduleName = Literal["reference", "linear", "cosine", "binomial", "logit_linear"]
SCHEDULE_NAMES: tuple[str, ...] = ("reference", "linear", "cosine", "binomial", "logit_linear")


def _check_T(T: int) -> None:
    if not isinstance(T, (int, np.integer)) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def reference_betas(T: int, beta_1: float | None = None, step1_beta: float = 0.001) -> np.ndarray:
    """The reference code's ``generate_beta_arr`` (models/README.md, Schedules): baseline 1/linspace(T, 2, T).

    β_k = 1e-6 + σ(logit(baseline_k))·(1 − 1e-6 − 1e-5), plus ``step1_beta`` on β_1. If ``beta_1`` is
    given, β_1 is set to it instead. Returns float64 [T]; β_1 ≈ 0.002 and β_T ≈ 0.5 at T = 1000.
    """
    _check_T(T)
    baseline = 1.0 / np.linspace(T, 2, T)
    beta = 1e-6 + _sigmoid(_logit(baseline)) * (1.0 - 1e-6 - 1e-5)
    beta[0] += step1_beta
    if beta_1 is not None:
        beta[0] = beta_1
    return beta


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> np.ndarray:
    """β linear from β_1 to β_T (DDPM's schedule, scaled to T). float64 [T]."""
    _check_T(T)
    return np.linspace(beta_1, beta_T, T, dtype=np.float64)


def logit_linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.5) -> np.ndarray:
    """β_t = σ(linspace(logit β_1, logit β_T, T)): the shape of the popular Swiss-roll ports. [T]"""
    _check_T(T)
    return _sigmoid(np.linspace(_logit(np.float64(beta_1)), _logit(np.float64(beta_T)), T))


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: ᾱ(t) = cos²(((t/T)+s)/(1+s)·π/2). float64 [T]."""
    _check_T(T)
    f = lambda u: np.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    t = np.arange(T + 1, dtype=np.float64) / T
    abar = f(t) / f(0.0)
    return np.clip(1.0 - abar[1:] / abar[:-1], 1e-8, max_beta)


def binomial_betas(T: int) -> np.ndarray:
    """The paper's binomial schedule β_t = 1/(T − t + 1), t = 1..T: ᾱ_t = (T − t)/T, β_T = 1. [T]"""
    _check_T(T)
    t = np.arange(1, T + 1, dtype=np.float64)
    return 1.0 / (T - t + 1.0)


def named_betas(name: str, T: int, beta_1: float | None = None) -> np.ndarray:
    """Look a schedule up by name; ``beta_1`` overrides β_1 (fixed first step) where given."""
    if name == "reference":
        return reference_betas(T, beta_1=beta_1)
    if name == "binomial":
        b = binomial_betas(T)
    elif name == "linear":
        b = linear_betas(T) if beta_1 is None else linear_betas(T, beta_1=beta_1)
    elif name == "logit_linear":
        b = logit_linear_betas(T) if beta_1 is None else logit_linear_betas(T, beta_1=beta_1)
    elif name == "cosine":
        b = cosine_betas(T)
    else:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    if beta_1 is not None:
        b = b.copy()
        b[0] = beta_1
    return b


def alpha_bar(beta: np.ndarray | torch.Tensor):
    """ᾱ_t = ∏_{s ≤ t}(1 − β_s), same shape [T] and type as ``beta``."""
    if isinstance(beta, torch.Tensor):
        return torch.cumprod(1.0 - beta, dim=0)
    return np.cumprod(1.0 - beta)


def bump_basis(T: int, J: int = 10) -> np.ndarray:
    """Normalised Gaussian bump functions g_j(t) (App. D.2.1, in the reference code's form). float64 [T, J].

    Time axis linspace(−1, 1, T); J centres at linspace(−1, 1, J); width = half the centre spacing
    (the paper says "the spacing"; the code uses half); each row sums to 1.
    """
    _check_T(T)
    if J < 1:
        raise ValueError(f"J must be >= 1, got {J}")
    t = np.linspace(-1.0, 1.0, T)[:, None]
    if J == 1:
        return np.ones((T, 1))
    centres = np.linspace(-1.0, 1.0, J)[None, :]
    width = 0.5 * (centres[0, 1] - centres[0, 0])
    logits = -((t - centres) ** 2) / (2 * width**2)
    logits -= logits.max(axis=1, keepdims=True)
    g = np.exp(logits)
    return g / g.sum(axis=1, keepdims=True)


class Schedule(nn.Module):
    """β_t as a module: fixed, or learned as in the paper (§2.4.1; models/README.md, Schedules).

    Learned: logit β_t = logit(base_t) + Σ_j c_j g_j(t) for t ≥ 2, with bump-basis coefficients ``c``
    (float64, initialised to 0 so training starts on ``base``); β_1 stays fixed. A learned β_t (t ≥ 2)
    lies in [1e-6, 1 − 1e-5], so a base below 1e-6 starts at that floor (β_1 itself may be smaller).
    Calling the module returns β as float64 [T], differentiable in ``c``.
    """

    def __init__(self, base_beta: np.ndarray, learn: bool = False, J: int = 10):
        super().__init__()
        base = np.asarray(base_beta, dtype=np.float64)
        if base.ndim != 1 or len(base) < 2:
            raise ValueError("base_beta must be a 1-D array of length T >= 2")
        if not np.all(np.isfinite(base)) or np.any(base <= 0) or np.any(base > 1):
            raise ValueError("every β_t must lie in (0, 1]")
        self.learn = bool(learn)
        self.register_buffer("base_beta", torch.from_numpy(base.copy()))
        if self.learn:
            if np.any(base[1:] >= 1):
                raise ValueError("a learned schedule needs β_t < 1 for t ≥ 2")
            self.register_buffer("basis", torch.from_numpy(bump_basis(len(base), J)))
            self.coeffs = nn.Parameter(torch.zeros(J, dtype=torch.float64))
        self._fixed_part = None  # (base_beta, its version, basis, its version, constants of forward())

    @property
    def T(self) -> int:
        return int(self.base_beta.shape[0])

    #: a learned β_t (t ≥ 2) lies in [_LO, _LO + _SPAN] = [1e-6, 1 − 1e-5]
    _LO, _SPAN = 1e-6, 1.0 - 1e-6 - 1e-5

    def _constants(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What forward() needs of the buffers alone: the base's logits (t ≥ 2), the basis rows (t ≥ 2)
        and β_1, recomputed only when a buffer is replaced or written to (loading a state, moving)."""
        f = self._fixed_part
        b, g = self.base_beta, self.basis
        if f is None or f[0] is not b or f[1] != b._version or f[2] is not g or f[3] != g._version:
            with torch.no_grad():
                # the base mapped through the inverse of the squashing, so that c = 0 gives exactly
                # β = base (where the base lies in that range)
                u = ((b[1:] - self._LO) / self._SPAN).clamp(1e-12, 1 - 1e-12)
                consts = (torch.log(u) - torch.log1p(-u), g[1:], b[:1])
            f = self._fixed_part = (b, b._version, g, g._version, consts)
        return f[4]

    def forward(self) -> torch.Tensor:
        if not self.learn:
            return self.base_beta
        # keep β in a numerically safe range, [1e-6, 1 − 1e-5]: logit β_t = logit(base_t) + Σ_j c_j g_j(t)
        base_logit, basis, beta_1 = self._constants()
        rest = torch.sigmoid(torch.addmv(base_logit, basis, self.coeffs)) * self._SPAN + self._LO
        return torch.cat([beta_1, rest])
