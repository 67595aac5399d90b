"""Multiplying distributions (paper §2.5, App. C; spec §6): p̃(x^0) ∝ p(x^0)·r(x^0).

Each class here is a *condition* composed around one reverse step (see
:func:`models.sampling.reverse_steps`): ``cond(k, x_t, dist) → dist'`` turns p(x^k | x^{k+1}) into
p̃(x^k | x^{k+1}) ∝ p(x^k | x^{k+1})·r_k(x^k) (Eq. 22). ``schedule`` picks r_k:

* ``"constant"``: r_k = r (the paper's choice, Eq. 23);
* ``"annealed"``: r_k = r^{(T−k)/T}, which leaves the start distribution untouched (at k = T it is flat).

Masks: a bool tensor broadcastable to [N, *S], True = known (observed). Image files follow RePaint's
convention: white = known, black = to fill.
"""
from __future__ import annotations

from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F

from .model import DiffusionModel, StepDistribution
from .sampling import Step

RSchedule = Literal["constant", "annealed"]


def _weight(k: int, T: int, schedule: str) -> float:
    if schedule == "constant":
        return 1.0
    if schedule == "annealed":
        return (T - k) / T
    raise ValueError(f"schedule must be 'constant' or 'annealed', got {schedule!r}")


class Clamp:
    """Inpainting with r = δ on the known coordinates, constant elsewhere (paper Fig. 5; code sampler).

    Known coordinates get mean = the clean observed value and variance 0 at every step (the reference
    code clamps to x^0 at all t). For a delta r, r^λ is the same delta for any λ > 0, so there is no
    separate annealed form here: use :class:`GaussianProduct` with a small ``obs_var`` and
    ``schedule="annealed"`` for the soft, annealed variant."""

    def __init__(self, y: torch.Tensor, known: torch.Tensor):
        self.y, self.known = y, known.bool()

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if dist.is_gaussian:
            mean = torch.where(self.known, self.y.to(dist.mean.dtype), dist.mean)
            var = torch.where(self.known, torch.zeros_like(dist.var), dist.var)
            return StepDistribution(mean=mean, var=var)
        prob = torch.where(self.known, self.y.to(dist.prob.dtype), dist.prob)
        return StepDistribution(prob=prob)


class GaussianProduct:
    """Exact product with a Gaussian r(x) = N(x; y, obs_var) on the ``known`` coordinates (all by
    default). Denoising at SNR 1 (code's CIFAR figure) is y = noisy image, obs_var = σ_d² = 1.

    σ'² = (σ^{−2} + λ_k σ_d^{−2})^{−1}, μ' = σ'²(μ/σ² + λ_k y/σ_d²), λ_k from ``schedule``."""

    def __init__(self, y: torch.Tensor, obs_var: float | torch.Tensor, T: int, known: torch.Tensor | None = None,
                 schedule: RSchedule = "constant"):
        self.y, self.obs_var, self.T, self.schedule = y, obs_var, T, schedule
        self.known = None if known is None else known.bool()
        _weight(0, T, schedule)

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if not dist.is_gaussian:
            raise ValueError("GaussianProduct needs a Gaussian model")
        lam = _weight(k, self.T, self.schedule)
        prec = 1.0 / dist.var + lam / self.obs_var
        var = 1.0 / prec
        mean = var * (dist.mean / dist.var + lam * self.y / self.obs_var)
        if self.known is not None:
            mean = torch.where(self.known, mean, dist.mean)
            var = torch.where(self.known, var, dist.var)
        return StepDistribution(mean=mean, var=var)


class SmoothShift:
    """A smooth r (App. C): p̃(x^k | x^{k+1}) ≈ N(μ + Σ·∇log r(x)|_{x=μ}, Σ). ``log_r`` maps x [N, *S] to
    log r(x) [N] and must be differentiable with torch autograd."""

    def __init__(self, log_r: Callable[[torch.Tensor], torch.Tensor], T: int, schedule: RSchedule = "constant"):
        self.log_r, self.T, self.schedule = log_r, T, schedule
        _weight(0, T, schedule)

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if not dist.is_gaussian:
            raise ValueError("SmoothShift needs a Gaussian model; use BinomialR for binary data")
        lam = _weight(k, self.T, self.schedule)
        with torch.enable_grad():
            mu = dist.mean.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.log_r(mu).sum(), mu)
        return StepDistribution(mean=dist.mean + lam * dist.var * grad, var=dist.var)


class BinomialR:
    """Binomial r (Table App.1): p̃(x_i = 1) = c·d / (c·d + (1 − c)(1 − d)), c = f_b, d = r(x_i = 1).
    Fixing a bit to 1 is d = 1, to 0 is d = 0; d = ½ leaves it free. ``r_prob`` [*S] or [N, *S]."""

    def __init__(self, r_prob: torch.Tensor, T: int, schedule: RSchedule = "constant"):
        self.r_prob, self.T, self.schedule = r_prob, T, schedule
        _weight(0, T, schedule)

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if dist.is_gaussian:
            raise ValueError("BinomialR needs a binomial model")
        lam = _weight(k, self.T, self.schedule)
        # r^λ for a Bernoulli r: d^λ vs (1 − d)^λ, renormalised
        d1 = self.r_prob.clamp(0, 1) ** lam
        d0 = (1 - self.r_prob.clamp(0, 1)) ** lam
        c = dist.prob
        num = c * d1
        den = num + (1 - c) * d0
        # den = 0 only where the model is certain (c ∈ {0, 1} exactly, as σ saturates in float32) and r
        # forbids that value: r is the constraint, so it wins there
        fallback = d1 / (d1 + d0).clamp_min(1e-30)
        return StepDistribution(prob=torch.where(den > 0, num / den.clamp_min(1e-30), fallback))


class GridRegion:
    """log r(x) for a 2-D model from a painted grid: r is a soft indicator ``weights`` [H, W] ≥ 0 over the
    rectangle ``extent`` = (x_min, x_max, y_min, y_max), bilinearly interpolated (row 0 = y_min).
    Differentiable in x, for :class:`SmoothShift`; ``floor`` keeps log r finite outside the region."""

    def __init__(self, weights: torch.Tensor, extent: tuple[float, float, float, float], floor: float = 1e-3):
        self.w = (weights.float().clamp_min(0) + floor)[None, None]  # [1, 1, H, W]
        self.extent = extent

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, y0, y1 = self.extent
        gx = 2 * (x[:, 0] - x0) / (x1 - x0) - 1
        gy = 2 * (x[:, 1] - y0) / (y1 - y0) - 1
        grid = torch.stack([gx, gy], dim=-1)[None, :, None, :].to(self.w.dtype)  # [1, N, 1, 2]
        v = F.grid_sample(self.w.to(x.device), grid, mode="bilinear", padding_mode="border", align_corners=True)
        return torch.log(v[0, 0, :, 0]).to(x.dtype)


def inpaint_start(y: torch.Tensor, known: torch.Tensor, generator=None) -> torch.Tensor:
    """x^T for inpainting (paper, code): the known values where known, N(0, 1) noise elsewhere."""
    noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    return torch.where(known.bool(), y, noise)


@torch.no_grad()
def repaint_steps(model: DiffusionModel, y: torch.Tensor, known: torch.Tensor, *, jump_length: int = 10,
                  jump_n: int = 5, generator: torch.Generator | None = None) -> Iterator[Step]:
    """RePaint-style resampling (Lugmayr et al. 2022) around this package's reverse step: the known
    coordinates are forward-noised, x^k_known ~ q(x^k | y), the unknown ones come from p(x^k | x^{k+1});
    every ``jump_length`` steps the chain goes back up ``jump_length`` forward steps, ``jump_n − 1``
    times, to harmonise. Yields every state (t is not monotone); the last is x^0 with known = y."""
    if not model.is_gaussian:
        raise ValueError("RePaint resampling needs a Gaussian model")
    if jump_length < 1 or jump_n < 1:
        raise ValueError("jump_length and jump_n must be >= 1")
    s = model.schedule_tensors()
    kern = model.kernel
    known = known.bool()
    T = model.T
    x = kern.prior_sample(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    yield Step(T, x)
    t = T
    jumps_done: dict[int, int] = {}
    while t > 0:
        k = t - 1
        dist = model.reverse_step(x, k, s)
        x_unknown = dist.sample(generator)
        if k == 0:
            x_known = y
        else:
            mean, var = kern.q_marginal(y, k - 1, s)  # q(x^k | x^0): forward index k − 1
            x_known = mean + torch.sqrt(var) * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        x = torch.where(known, x_known, x_unknown)
        t = k
        yield Step(t, x)
        if t > 0 and t % jump_length == 0 and t + jump_length <= T and jumps_done.get(t, 0) < jump_n - 1:
            jumps_done[t] = jumps_done.get(t, 0) + 1
            for kk in range(t, t + jump_length):
                x = kern.q_step(x, kk, s, generator)
                yield Step(kk + 1, x)
            t = t + jump_length
