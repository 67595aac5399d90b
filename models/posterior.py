"""Multiplying distributions (paper §2.5, App. C): sampling p̃(x^0) ∝ p(x^0)·r(x^0).

Two families of samplers live here (models/README.md, Conditioning (p·r)):

*Conditions* composed around one reverse step (see :func:`models.sampling.reverse_steps`):
``cond(k, x_t, dist) → dist'`` turns p(x^k | x^{k+1}) into p̃(x^k | x^{k+1}) ∝ p(x^k | x^{k+1})·r_k(x^k)
(Eq. 22), with r_k from ``schedule``:

* ``"constant"``: r_k = r (the paper's choice, Eq. 23);
* ``"annealed"``: r_k = r^{(T−k)/T}, which leaves the start distribution untouched (at k = T it is flat).

These are approximations: the per-step normalisers Z(x^{k+1}) = ∫p(x^k|x^{k+1}) r_k(x^k) dx^k are
dropped, so the chain's output is not p·r. Known biases, measured by ``bench/posterior_bias.py`` with a
model whose reverse steps are exact for a correlated 2-D Gaussian (ρ = 0.8, unit variances, the
reference schedule), conditioning x₁ = 1.5 and reading x₂ against the model's own closed-form
conditional (≈ N(1.2, 0.36)), 2000 chains (standard error ≈ 0.03 sd), T = 200:

* clamp (:class:`Clamp`, paper Fig. 5): x₂'s conditional mean 0.49 sd too low and its variance 41 %
  too high; the error does not shrink with T (T = 50: −0.52 sd, +31 %): the unknown coordinate's path
  was drawn against a known coordinate that jumps to the observation instead of following it.
* annealed r (:class:`GaussianProduct`, ``schedule="annealed"``): as biased (−0.50 sd, +41 %).
* RePaint (:func:`repaint_steps`, jumps of 10 steps, 5 passes): better, still off (−0.31 sd, +17 %).
* the constant-r product chain (denoising, :class:`GaussianProduct`): for N(0, 1) data and an exact
  reverse process it tends to p·r² rather than p·r (y = 1, σ = 1, T = 1000: chain mean 0.666, p·r 0.5,
  p·r² 0.667); that limit is special to N(0, 1) data: for N(1.5, 1) data and y = 1.5 the chain mean
  goes to 1.750, where p·r and p·r² both have 1.5.
* binary models: the clamp's bias applies to fixed bits alike (3-bit table in the bench).

*Sequential Monte Carlo* (:func:`smc_steps`): particles move by the model's own reverse steps and are
weighted and resampled so that, as the particle count grows, they target exactly the model's
p(x^0)·r(x^0) (for exact observations: the model's p(x^0_unknown | y^{0:T}), which is p(·| y) when the
reverse steps are the exact reversal of the forward process, Trippe et al. 2022). It is the one exact
method here; its cost is ``particles`` × the network evaluations of one chain.

Masks: a bool tensor broadcastable to [N, *S], True = known (observed).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Literal, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .kernels import BernoulliDist, GaussianDist
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
    ``schedule="annealed"`` for the soft, annealed variant. Biased (module docstring)."""

    def __init__(self, y: torch.Tensor, known: torch.Tensor):
        self.y, self.known = y, known.bool()

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        return dist.pin(self.known, self.y)


class GaussianProduct:
    """Exact product of one step with a Gaussian r(x) = N(x; y, obs_var) on the ``known`` coordinates
    (all by default). Denoising at SNR 1 (code's CIFAR figure) is y = noisy image, obs_var = σ_d² = 1.

    σ'² = (σ^{−2} + λ_k σ_d^{−2})^{−1}, μ' = σ'²(μ/σ² + λ_k y/σ_d²), λ_k from ``schedule``. The chain of
    such steps is not p·r (module docstring)."""

    def __init__(self, y: torch.Tensor, obs_var: float | torch.Tensor, T: int, known: torch.Tensor | None = None,
                 schedule: RSchedule = "constant"):
        self.y, self.obs_var, self.T, self.schedule = y, obs_var, T, schedule
        self.known = None if known is None else known.bool()
        _weight(0, T, schedule)

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if not dist.is_gaussian:
            raise ValueError("GaussianProduct needs a Gaussian model")
        lam = _weight(k, self.T, self.schedule)
        dvar = dist.var.expand_as(dist.mean)
        var = 1.0 / (1.0 / dvar + lam / self.obs_var)
        mean = var * (dist.mean / dvar + lam * self.y / self.obs_var)
        if self.known is not None:
            mean = torch.where(self.known, mean, dist.mean)
            var = torch.where(self.known, var, dvar)
        return GaussianDist(mean, var)


class SmoothShift:
    """A smooth r (App. C): p̃(x^k | x^{k+1}) ≈ N(μ + Σ'·∇log r(μ), Σ'), Σ' = (Σ^{−1} + λ·h)^{−1}.

    ``log_r`` maps x [N, *S] to log r(x) [N] and must be differentiable with torch autograd.
    ``curvature`` (optional) maps log r(μ) [N] to h [N] ≥ 0, the local −∂²log r (a Laplace step): with it
    the step is the exact Gaussian product where log r is quadratic, and the shift is a contraction
    (factor Σ/(Σ + 1/h) < 1) however large the step variance; without it (h = 0, the paper's
    first-order form) a step variance larger than 2/h overshoots, and a chain of them diverges."""

    def __init__(self, log_r: Callable[[torch.Tensor], torch.Tensor], T: int, schedule: RSchedule = "constant",
                 curvature: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.log_r, self.T, self.schedule, self.curvature = log_r, T, schedule, curvature
        _weight(0, T, schedule)

    def __call__(self, k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
        if not dist.is_gaussian:
            raise ValueError("SmoothShift needs a Gaussian model; use BinomialR for binary data")
        lam = _weight(k, self.T, self.schedule)
        with torch.enable_grad():
            mu = dist.mean.detach().requires_grad_(True)
            value = self.log_r(mu)
            (grad,) = torch.autograd.grad(value.sum(), mu)
        var = dist.var.expand_as(dist.mean)
        if self.curvature is not None:
            h = self.curvature(value.detach()).to(var.dtype).reshape(-1, *([1] * (var.dim() - 1)))
            var = var / (1 + lam * var * h)
        return GaussianDist(dist.mean + lam * var * grad, var)


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
        return BernoulliDist(torch.where(den > 0, num / den.clamp_min(1e-30), fallback))


# ---------------------------------------------------------------------------------------------------
# painted regions on the plane: one grid look-up of log r


def cell_centres(extent: Sequence[float], shape_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(xs [W], ys [H]): the centres of a grid's cells over ``extent`` = (x_min, x_max, y_min, y_max),
    row 0 = y_min. Cell (i, j) covers [x_min + j·Δx, x_min + (j + 1)·Δx] × [y_min + i·Δy, …]: the
    convention of the painted grids and of :class:`GridLogR`'s look-up."""
    H, W = shape_hw
    x0, x1, y0, y1 = (float(v) for v in extent)
    return x0 + (np.arange(W) + 0.5) * (x1 - x0) / W, y0 + (np.arange(H) + 0.5) * (y1 - y0) / H


def region_log_r(weights, extent: Sequence[float], softness: float, floor: float = 1e-3) -> np.ndarray:
    """log r at the cell centres for a painted region ``weights`` [H, W] ≥ 0 (float32 [H, W]).

    ``softness > 0``: 0 inside (weights > ½ max), −d²/(2·softness²) outside, d the distance to the
    nearest painted cell centre (normalised units). ``softness = 0``: log(w/max w + ``floor``), the
    painted soft indicator itself."""
    w = np.asarray(weights, dtype=np.float64)
    if softness == 0:
        return np.log(np.clip(w, 0, None) / max(float(w.max()), 1e-30) + floor).astype(np.float32)
    H, W = w.shape
    xs, ys = cell_centres(extent, (H, W))
    inside = w > 0.5 * w.max()
    px, py = np.meshgrid(xs, ys)  # [H, W]
    cx, cy = px[inside], py[inside]
    q = np.stack([px.ravel(), py.ravel()], 1)
    d2 = np.full(q.shape[0], np.inf)
    for s in range(0, len(cx), 1024):  # bounded temporaries: [H·W, ≤ 1024]
        dd = (q[:, :1] - cx[None, s:s + 1024]) ** 2 + (q[:, 1:] - cy[None, s:s + 1024]) ** 2
        d2 = np.minimum(d2, dd.min(axis=1))
    d2 = d2.reshape(H, W)
    d2[inside] = 0.0
    return (-d2 / (2 * softness**2)).astype(np.float32)


class GridLogR:
    """log r(x) for 2-D x [N, 2], bilinearly interpolated between the cell centres of a grid ``log_r``
    [H, W] over ``extent`` (:func:`cell_centres`; ``align_corners=False``). Outside the extent it
    continues as the border value − (distance to the extent)²/(2·softness²) (with softness = 0: the
    border value), so for softness > 0 ∇log r points back in from everywhere. Differentiable (autograd).

    :meth:`curvature` is the −∂²log r that :class:`SmoothShift` uses for its Laplace step: 1/softness²
    where log r < 0 (outside the region), 0 inside; for softness = 0, 1/cell² where r is below its top.
    :meth:`tempered` is log r seen through extra variance ``spread`` in x (for :func:`smc_steps`)."""

    def __init__(self, log_r, extent: Sequence[float], softness: float):
        self.L = torch.as_tensor(np.asarray(log_r, dtype=np.float32))[None, None]  # [1, 1, H, W]
        self.extent = tuple(float(v) for v in extent)
        self.softness = float(softness)
        H, W = self.L.shape[-2:]
        cell2 = max((self.extent[1] - self.extent[0]) / W, (self.extent[3] - self.extent[2]) / H) ** 2
        self.scale2 = self.softness**2 if self.softness > 0 else cell2
        self.top = float(self.L.max())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1, y0, y1 = self.extent
        gx = 2 * (x[:, 0] - x0) / (x1 - x0) - 1
        gy = 2 * (x[:, 1] - y0) / (y1 - y0) - 1
        grid = torch.stack([gx, gy], dim=-1)[None, :, None, :].to(self.L.dtype)  # [1, N, 1, 2]
        v = F.grid_sample(self.L.to(x.device), grid, mode="bilinear", padding_mode="border", align_corners=False)
        v = v[0, 0, :, 0].to(x.dtype)
        if self.softness <= 0:
            return v
        dx = torch.relu(x0 - x[:, 0]) + torch.relu(x[:, 0] - x1)
        dy = torch.relu(y0 - x[:, 1]) + torch.relu(x[:, 1] - y1)
        return v - (dx**2 + dy**2) / (2 * self.softness**2)

    def curvature(self, value: torch.Tensor) -> torch.Tensor:
        return (value < self.top - 1e-6).to(value.dtype) / self.scale2

    def tempered(self, x: torch.Tensor, spread: float) -> torch.Tensor:
        return self(x) * (self.scale2 / (self.scale2 + spread))


# ---------------------------------------------------------------------------------------------------
# known coordinates: the paper's start and RePaint


def inpaint_start(y: torch.Tensor, known: torch.Tensor, generator=None) -> torch.Tensor:
    """x^T for inpainting (paper, code): the known values where known, N(0, 1) noise elsewhere."""
    noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    return torch.where(known.bool(), y, noise)


def repaint_times(T: int, jump_length: int = 10, jump_n: int = 5) -> list[int]:
    """The paper times RePaint's walk visits, starting at T: down one step at a time, and at every
    t = j·jump_length (0 < t, t + jump_length ≤ T) back up ``jump_length`` steps, ``jump_n − 1`` times
    (computed once and walked, as diffusers' ``RePaintScheduler.set_timesteps``)."""
    if jump_length < 1 or jump_n < 1:
        raise ValueError("jump_length and jump_n must be >= 1")
    jumps = {t: jump_n - 1 for t in range(jump_length, T, jump_length) if t + jump_length <= T}
    times, t = [T], T
    while t > 0:
        t -= 1
        times.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                times.append(t)
    return times


@torch.no_grad()
def repaint_steps(model: DiffusionModel, y: torch.Tensor, known: torch.Tensor, *, jump_length: int = 10,
                  jump_n: int = 5, generator: torch.Generator | None = None) -> Iterator[Step]:
    """RePaint-style resampling (Lugmayr et al. 2022) around this package's reverse step: the known
    coordinates are forward-noised, x^k_known ~ q(x^k | y), the unknown ones come from p(x^k | x^{k+1});
    the walk follows :func:`repaint_times` (a step up is one forward step q(x^{t+1} | x^t)), to
    harmonise. Either kernel. Yields every state (t is not monotone); the last is x^0 with known = y.
    Biased, less than the clamp (module docstring)."""
    s = model.schedule_tensors()
    kern = model.kernel
    known = known.bool()
    times = repaint_times(model.T, jump_length, jump_n)
    x = kern.prior_sample(y.shape, generator=generator, device=y.device, dtype=y.dtype)
    yield Step(times[0], x)
    for t_prev, t in zip(times[:-1], times[1:]):
        if t == t_prev - 1:
            k = t
            x_unknown = model.reverse_step(x, k, s).sample(generator)
            x_known = y if k == 0 else kern.q_marginal(y, k - 1, s).sample(generator)  # q(x^k | x^0)
            x = torch.where(known, x_known.to(x.dtype), x_unknown)
        else:
            x = kern.q_step(x, t_prev, s, generator)
        yield Step(t, x)


# ---------------------------------------------------------------------------------------------------
# sequential Monte Carlo: the exact sampler


class SmoothR(Protocol):
    """A smooth r for :func:`smc_steps`: ``tempered(x0 [B, *S], spread) → log r [B]`` (up to a constant
    that may depend on ``spread`` but not on x0), where ``spread`` ≥ 0 is extra variance in x0
    (Var(x^0 | x^t), for unit-variance data ≈ 1 − ᾱ_t); ``spread = 0`` must be log r itself."""

    def tempered(self, x: torch.Tensor, spread: float) -> torch.Tensor: ...


class GaussianR:
    """r(x) = N(x; y, var) on the ``known`` coordinates (all when None): denoising, soft observations.
    ``tempered`` is log N(y; x, var + spread), the exact smoothed r for N(0, 1) data."""

    def __init__(self, y: torch.Tensor, var: float, known: torch.Tensor | None = None):
        self.y, self.var, self.known = y, float(var), None if known is None else known.bool()

    def tempered(self, x: torch.Tensor, spread: float) -> torch.Tensor:
        v = self.var + spread
        e = -0.5 * (x - self.y.to(x.dtype)) ** 2 / v
        if self.known is not None:
            e = torch.where(self.known, e, torch.zeros_like(e))
        return e.reshape(e.shape[0], -1).sum(1)


def _x0_hat(dist: GaussianDist, x: torch.Tensor, k: int, s) -> tuple[torch.Tensor, float]:
    """The x^0 the step's mean implies, inverting μ̃_t = c₀·x^0 + c_t·x^t (forward posterior, t = k + 1),
    and 1 − ᾱ_t, the spread of x^0 given x^t for unit-variance data."""
    abar, prev, beta = float(s.alpha_bar[k]), float(s.alpha_bar_prev[k]), float(s.beta[k])
    c0 = math.sqrt(prev) * beta / (1 - abar)
    ct = math.sqrt(1 - beta) * (1 - prev) / (1 - abar)
    return (dist.mean - ct * x) / c0, 1 - abar


def _ess(logw: torch.Tensor) -> torch.Tensor:
    """Effective sample size / P per population, logw [n, P] → [n]."""
    w = torch.softmax(logw, dim=1)
    return 1.0 / (w**2).sum(1) / logw.shape[1]


def _systematic(logw: torch.Tensor, generator) -> torch.Tensor:
    """Systematic resampling per population: logw [n, P] → ancestor indices [n, P]."""
    n, P = logw.shape
    c = torch.cumsum(torch.softmax(logw.double(), dim=1), dim=1)
    u = (torch.rand((n, 1), generator=generator, device=logw.device, dtype=torch.float64)
         + torch.arange(P, device=logw.device, dtype=torch.float64)) / P
    return torch.searchsorted(c, u * c[:, -1:]).clamp_max(P - 1)


def _take(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of v [n·P, *S] picked per population by idx [n, m] (indices in 0 .. P − 1) → [n·m, *S]."""
    n = idx.shape[0]
    P = v.shape[0] // n
    flat = (idx + torch.arange(n, device=idx.device)[:, None] * P).reshape(-1)
    return v[flat]


@torch.no_grad()
def smc_steps(model: DiffusionModel, *, n: int, particles: int, generator: torch.Generator | None = None,
              smooth: SmoothR | None = None, observed: tuple[torch.Tensor, torch.Tensor] | None = None,
              example_shape: tuple[int, ...] | None = None, ess_threshold: float = 0.5) -> Iterator[Step]:
    """Sequential Monte Carlo for p(x^0)·r(x^0): ``n`` independent populations of ``particles`` each,
    every particle moved by the model's own reverse step p(x^k | x^{k+1}); one sample per population.

    ``smooth`` (Gaussian models): a :class:`SmoothR`. Incremental weights ρ_t(x^t)/ρ_{t+1}(x^{t+1}) with
    ρ_T = 1, ρ_t = r seen through the step's x^0 estimate with spread 1 − ᾱ_t (:func:`_x0_hat`,
    ``smooth.tempered``) and ρ_0 = r(x^0): the product telescopes to r(x^0), so the weighted particles
    target p(x^{0:T})·r(x^0), whose x^0-marginal is p·r, whatever the ρ_t (they only steer).
    ``observed`` = (y [1, *S] or [*S], known bool broadcastable to it), either kernel (SMCDiff, Trippe
    et al. 2022): per population one forward-noised copy y^{0:T} of y (drawn backwards: y^T ~ q(·|y),
    y^k ~ q(y^k | y^{k+1}, y)); the known coordinates follow it, and each particle is weighted by the
    model's probability of y^k's known coordinates given x^{k+1} before its unknown ones are drawn.

    Systematic resampling of a population when its ESS < ``ess_threshold``·particles. Yields
    Step(t, x [n, *S], ess): x^T, …, x^0; until t = 0 each population shows its heaviest particle, at
    t = 0 a particle drawn by weight (the sample); ``ess`` is the mean ESS fraction before resampling."""
    if (smooth is None) == (observed is None):
        raise ValueError("give exactly one of smooth (a smooth r) or observed (y, known)")
    if n < 1 or particles < 1:
        raise ValueError(f"n and particles must be >= 1, got {n} and {particles}")
    if not 0 <= ess_threshold <= 1:
        raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
    if smooth is not None and not model.is_gaussian:
        raise ValueError("a smooth r needs a Gaussian model; fix bits with observed=(y, known)")
    s = model.schedule_tensors()
    kern, T, P, dev = model.kernel, model.T, int(particles), model.device
    if observed is not None:
        y, known = observed
        S = tuple(y.shape[1:]) if y.dim() == len(model.config.example_shape) + 1 else tuple(y.shape)
        y = y.reshape(1, *S).to(dev)
        known = known.to(dev).bool()
        known = torch.broadcast_to(known[:1] if known.dim() == len(S) + 1 else known, (1, *S))
        yn = y.expand(n, *S)
        y_path = kern.q_marginal(yn, T - 1, s).sample(generator)  # y^T per population [n, *S]
    else:
        S = tuple(example_shape or model.config.example_shape)
    rep = lambda v: v.repeat_interleave(P, dim=0)  # noqa: E731  [n, *S] → [n·P, *S]
    x = kern.prior_sample((n * P, *S), generator=generator, device=dev)
    if observed is not None:
        x = torch.where(known, rep(y_path).to(x.dtype), x)
    logw = torch.zeros(n, P, dtype=torch.float64, device=dev)
    log_rho = torch.zeros(n * P, dtype=torch.float64, device=dev)  # ρ_{t+1}(x^{t+1}) of each particle

    def heaviest(v: torch.Tensor) -> torch.Tensor:
        return _take(v, logw.argmax(1, keepdim=True))

    yield Step(T, heaviest(x), 1.0)
    for k in range(T - 1, -1, -1):
        dist = model.reverse_step(x, k, s)
        if observed is not None:
            y_next = yn if k == 0 else kern.q_posterior(yn, y_path, k, s).sample(generator)
            yk = rep(y_next).to(x.dtype)
            if dist.is_gaussian:
                ll = -0.5 * (math.log(2 * math.pi) + torch.log(dist.var) + (yk - dist.mean) ** 2 / dist.var)
            else:
                p = dist.prob.clamp(1e-12, 1 - 1e-12)
                ll = yk * torch.log(p) + (1 - yk) * torch.log1p(-p)
            ll = torch.where(known, ll, torch.zeros_like(ll))
            logw += ll.reshape(n, P, -1).sum(2).double()
            y_path = y_next
        elif k < T - 1:
            x0_hat, spread = _x0_hat(dist, x, k, s)
            rho = smooth.tempered(x0_hat, spread).double()
            logw += (rho - log_rho).reshape(n, P)
            log_rho = rho
        ess = _ess(logw)
        low = ess < ess_threshold
        if bool(low.any()):
            idx = _systematic(logw, generator)
            idx = torch.where(low[:, None], idx, torch.arange(P, device=dev).expand(n, P))
            x, log_rho = _take(x, idx), _take(log_rho, idx)
            dist = dist.map(lambda v: _take(v, idx))
            logw = torch.where(low[:, None], torch.zeros_like(logw), logw)
        x = dist.sample(generator)
        if observed is not None:
            x = torch.where(known, yk, x)
        if k == 0:
            if smooth is not None:
                logw += (smooth.tempered(x, 0.0).double() - log_rho).reshape(n, P)
            pick = torch.multinomial(torch.softmax(logw, 1).float(), 1, generator=generator)
            yield Step(0, _take(x, pick), float(_ess(logw).mean()))
        else:
            yield Step(k, heaviest(x), float(ess.mean()))
