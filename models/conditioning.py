"""Conditioning the reverse chain: tensors in, :class:`models.sampling.Step` out (paper §2.5, App. C).

Samplers of p̃(x^0) ∝ p(x^0)·r(x^0) for the shapes users meet: inpainting an image (:func:`inpaint_steps`),
denoising (:func:`denoise_steps`), fixed bits (:func:`fix_bits_steps`), regions on the plane
(:func:`region_steps`, :func:`gaussian_region_steps`), and fixed coordinates of any vector or binary
model in raw data units (:func:`condition`). The pieces composed around each reverse step, and their
known biases, are in :mod:`models.posterior`; pixels and files are in :mod:`models.images`.

Methods for known coordinates (:data:`METHODS`)
-----------------------------------------------
* ``"clamp"`` (paper Fig. 5, reference ``sampler.py``): r = δ on the known coordinates, constant in t
  (Eq. 23); the known coordinates are clamped to their clean values at every t and the chain starts
  from :func:`models.posterior.inpaint_start` (known values, N(0, 1) elsewhere). Biased.
* ``"annealed"``: a narrow Gaussian r = N(y, sigma_r²) on the known coordinates, annealed as
  r^{(T−k)/T} (the paper's alternative, which leaves x^T untouched), then an exact clamp at the last
  step. As biased as the clamp.
* ``"repaint"``: RePaint resampling (:func:`models.posterior.repaint_steps`). Less biased.
* ``"smc"``: sequential Monte Carlo with ``particles`` particles per sample
  (:func:`models.posterior.smc_steps`): exact as the particle count grows.

All of them end with x^0 equal to the observation on the known coordinates, bit for bit.

The product chain (tested in ``tests/models/test_conditioning.py``)
------------------------------------------------------------------
For a smooth r, multiplying every reverse step by the same r (Eq. 22 with Eq. 23) does not give
p̃(x^0) ∝ p(x^0)·r(x^0): the per-step normalisers Z(x^{t+1}) = ∫p(x^t|x^{t+1}) r(x^t) dx^t are dropped.
For N(0, 1) data with an exact reverse process and r = N(y, σ²) the chain is linear-Gaussian, and
:func:`product_chain_moments` gives its exact output moments: with T = 1000 they are close to p·r²'s
(mean 2y/(2 + σ²)), not p·r's (mean y/(1 + σ²)) — a limit special to N(0, 1) data. :func:`denoise_steps`
offers ``start="matched"``, exact for a perfect model only when σ² equals a grid value (1 − ᾱ_t)/ᾱ_t of
the schedule (elsewhere the start is topped up to the next grid value, and the sample is too wide), and
``start="smc"``, exact as the particle count grows.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import torch

from .config import CONV_ARCHS, METHODS, REGION_METHODS, Method
from .model import DiffusionModel, StepDistribution
from .posterior import (BinomialR, Clamp, GaussianProduct, GaussianR, GridLogR, SmoothShift, inpaint_start,
                        region_log_r, repaint_steps, repaint_times, smc_steps)
from .sampling import Step, reverse_steps

__all__ = [
    "Method",
    "METHODS",
    "DenoiseStart",
    "DENOISE_STARTS",
    "RegionMethod",
    "REGION_METHODS",
    "count_inpaint_steps",
    "observe_steps",
    "inpaint_steps",
    "denoise_steps",
    "matched_start_index",
    "product_chain_moments",
    "fix_bits_steps",
    "region_steps",
    "gaussian_region_steps",
    "condition",
    "parse_fix",
]

DenoiseStart = Literal["observation", "prior", "matched", "smc"]
DENOISE_STARTS: tuple[str, ...] = ("observation", "prior", "matched", "smc")
RegionMethod = Literal["shift", "smc"]
DEFAULT_PARTICLES = 64


def _check(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_particles(particles: int) -> None:
    if int(particles) < 1:
        raise ValueError(f"particles must be >= 1, got {particles}")


def _known_tensor(known, like: torch.Tensor) -> torch.Tensor:
    """A bool mask broadcast to ``like`` [N, *S]: [H, W] masks broadcast over channels (and, for flat
    models of D = H·W values, are flattened)."""
    k = known if isinstance(known, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(np.asarray(known, dtype=bool)))
    k = k.to(device=like.device, dtype=torch.bool)
    S = tuple(like.shape[1:])
    if tuple(k.shape) == S or tuple(k.shape) == tuple(like.shape):
        return torch.broadcast_to(k, like.shape)
    if len(S) == 3 and k.dim() == 2 and tuple(k.shape) == S[1:]:
        return torch.broadcast_to(k[None, None], like.shape)
    if len(S) == 1 and k.numel() == S[0]:
        return torch.broadcast_to(k.reshape(1, -1), like.shape)
    if k.dim() == len(S) + 1 and k.shape[0] == 1:
        try:
            return torch.broadcast_to(k, like.shape)
        except RuntimeError:
            pass
    raise ValueError(f"the mask has shape {tuple(k.shape)}, which does not fit the image of shape {S}")




def _batch(model: DiffusionModel, y, n_samples: int) -> torch.Tensor:
    """y [S] or [1, S] → [n, S] on the model's device, float32."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    y = torch.as_tensor(y, dtype=torch.float32)
    S = tuple(model.config.example_shape)
    if y.dim() == len(S):
        y = y[None]
    if y.dim() != len(S) + 1 or y.shape[0] != 1:
        raise ValueError(f"expected one example [1, *S], got shape {tuple(y.shape)}")
    if model.config.arch not in CONV_ARCHS and tuple(y.shape[1:]) != S:
        raise ValueError(f"the model expects examples of shape {S}, got {tuple(y.shape[1:])}")
    if model.config.arch in CONV_ARCHS and y.shape[1] != S[0]:
        raise ValueError(f"the model expects {S[0]} channel(s), got {y.shape[1]}")
    return y.to(model.device).expand(n_samples, *y.shape[1:]).contiguous()


# ---------------------------------------------------------------------------------------------------
# known coordinates (inpainting, fixed bits, fixed coordinates)


def count_inpaint_steps(T: int, method: str = "clamp", *, jump_length: int = 10, jump_n: int = 5) -> int:
    """How many states :func:`inpaint_steps` yields for a model with T steps (for progress bars)."""
    if method == "repaint":
        return len(repaint_times(T, jump_length, jump_n))
    return 1 + T


def observe_steps(model: DiffusionModel, yb: torch.Tensor, kb: torch.Tensor, *, method: Method = "clamp",
                  generator: torch.Generator | None = None, sigma_r: float = 0.05, jump_length: int = 10,
                  jump_n: int = 5, particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """Sample x^0 given its ``kb`` coordinates equal to ``yb`` (both [N, *S], normalised units or bits),
    either kernel, by ``method`` (module docstring). Yields Step(t, x [N, *S]); the last is x^0."""
    _check("method", method, METHODS)
    if method == "annealed" and sigma_r <= 0:
        raise ValueError(f"sigma_r must be > 0, got {sigma_r}")
    _check_particles(particles)
    return _observe_gen(model, yb, kb.bool(), method, generator, float(sigma_r), int(jump_length), int(jump_n),
                        int(particles))


@torch.no_grad()
def _observe_gen(model, yb, kb, method, generator, sigma_r, jump_length, jump_n, particles) -> Iterator[Step]:
    T = model.T
    clamp = Clamp(yb, kb)
    if method == "clamp":
        if model.is_gaussian:
            x_T = inpaint_start(yb, kb, generator)
            yield from reverse_steps(model, x_T=x_T, generator=generator, condition=clamp)
            return
        # binomial: r(x_i = 1) = 1 or 0 on fixed bits, ½ on free ones (Table App.1), constant in t; the
        # final clamp guards a network probability that underflows to exactly 0 or 1
        r_prob = torch.where(kb, yb, torch.full_like(yb, 0.5))
        soft = BinomialR(r_prob, T, schedule="constant")
        x_T = torch.where(kb, yb, model.kernel.prior_sample(yb.shape, generator=generator, device=yb.device))
        yield from reverse_steps(model, x_T=x_T, generator=generator, condition=lambda k, x, d: clamp(k, x, soft(k, x, d)))
    elif method == "annealed":
        if model.is_gaussian:
            soft = GaussianProduct(yb, sigma_r**2, T, known=kb, schedule="annealed")
        else:
            soft = BinomialR(torch.where(kb, yb, torch.full_like(yb, 0.5)), T, schedule="annealed")

        def cond(k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
            return clamp(k, x_t, dist) if k == 0 else soft(k, x_t, dist)

        yield from reverse_steps(model, yb.shape[0], generator=generator, condition=cond,
                                 example_shape=tuple(yb.shape[1:]))
    elif method == "repaint":
        yield from repaint_steps(model, yb, kb, jump_length=jump_length, jump_n=jump_n, generator=generator)
    else:
        yield from smc_steps(model, n=yb.shape[0], particles=particles, generator=generator,
                             observed=(yb[:1], kb[:1]))


def inpaint_steps(model: DiffusionModel, y, known, *, method: Method = "clamp", n_samples: int = 1,
                  generator: torch.Generator | None = None, sigma_r: float = 0.05, jump_length: int = 10,
                  jump_n: int = 5, particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """Sample p̃(x^0) ∝ p(x^0)·r(x^0) with r a delta (or narrow Gaussian) on the ``known`` pixels.

    y: [1, *S] (or [*S]) observation in normalised units; a conv model takes any H, W.
    known: bool [H, W] or broadcastable to [n_samples, *S], True = observed.
    Yields :class:`Step` (t, x [n_samples, *S]); the last is x^0, equal to y on the known pixels
    (exactly, for every method). ``t`` decreases except for RePaint's jumps back up.

    Special masks: every pixel known → a single Step(0, y) (the image itself); no pixel known → plain
    sampling (a ``UserWarning`` is issued; :func:`models.images.mask_note` gives the text)."""
    _check("method", method, METHODS)
    if method in ("annealed",) and not model.is_gaussian:
        raise ValueError(f"method {method!r} needs a Gaussian model; use 'clamp' (or fix_bits_steps) for a binomial one")
    yb = _batch(model, y, n_samples)
    kb = _known_tensor(known, yb)
    if bool(kb.all()):
        return iter([Step(0, yb.clone())])
    if not bool(kb.any()):
        from .images import mask_note

        warnings.warn(mask_note(kb), UserWarning, stacklevel=2)
        return reverse_steps(model, yb.shape[0], generator=generator, example_shape=tuple(yb.shape[1:]))
    return observe_steps(model, yb, kb, method=method, generator=generator, sigma_r=sigma_r,
                         jump_length=jump_length, jump_n=jump_n, particles=particles)


# ---------------------------------------------------------------------------------------------------
# denoising


def denoise_steps(model: DiffusionModel, y_noisy, sigma: float, *, n_samples: int = 1,
                  generator: torch.Generator | None = None, start: DenoiseStart = "observation",
                  particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """Sample the denoising posterior for y = x^0 + σ·ε (σ in normalised units, see
    :func:`sigma_to_normalised`).

    ``start="observation"`` (reference code) and ``"prior"`` (paper): every reverse step is multiplied
    exactly by r(x) = N(x; y, σ²) (Eq. 22, 23; :class:`models.posterior.GaussianProduct`), starting at
    x^T = y or at x^T ~ π·r = N(y/(1 + σ²), σ²/(1 + σ²)) — biased (module docstring).
    ``start="matched"``: no product; the plain reverse chain starts at the step t* whose noise level
    matches σ, from x^{t*} = √ᾱ_{t*}·(y + δ), δ ~ N(0, (1 − ᾱ_{t*})/ᾱ_{t*} − σ²): exact for a perfect
    model only when σ² is on the schedule's grid (δ = 0); otherwise the start lands on the next grid
    step and the result is off (exact model, reference schedule, T = 100, σ = 1: variance +3.5 %, mean
    ×0.982; T = 1000: +0.24 %; ``bench/posterior_bias.py``). ``start="smc"``: sequential Monte Carlo with ``particles`` particles
    per sample (:func:`models.posterior.smc_steps`, r = :class:`models.posterior.GaussianR`), exact as the
    particle count grows. Yields Step(t, x [n_samples, *S]); the last is x^0."""
    if not model.is_gaussian:
        raise ValueError("denoising needs a Gaussian model")
    _check("start", start, DENOISE_STARTS)
    _check_particles(particles)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    yb = _batch(model, y_noisy, n_samples)
    if start == "smc":
        return smc_steps(model, n=n_samples, particles=particles, generator=generator,
                         smooth=GaussianR(yb[:1], float(sigma) ** 2), example_shape=tuple(yb.shape[1:]))
    return _denoise_gen(model, yb, float(sigma), generator, start)


def matched_start_index(model: DiffusionModel, sigma: float) -> int:
    """The paper time t* ≥ 1 of the first x^t whose noise-to-signal variance (1 − ᾱ_t)/ᾱ_t is at least
    σ² (T if none is)."""
    abar = model.schedule_tensors().alpha_bar.cpu()
    nsr = (1 - abar) / abar
    idx = torch.nonzero(nsr >= sigma**2)
    return int(idx[0, 0]) + 1 if len(idx) else model.T


@torch.no_grad()
def _denoise_gen(model, yb, sigma, generator, start) -> Iterator[Step]:
    T = model.T
    var_r = sigma**2
    noise = lambda: torch.randn(yb.shape, generator=generator, device=yb.device, dtype=yb.dtype)  # noqa: E731
    if start == "matched":
        s = model.schedule_tensors()
        t_star = matched_start_index(model, sigma)
        abar = float(s.alpha_bar[t_star - 1])
        extra = max(0.0, (1 - abar) / abar - var_r)
        x = math.sqrt(abar) * (yb + math.sqrt(extra) * noise())
        yield Step(t_star, x)
        for k in range(t_star - 1, -1, -1):
            x = model.reverse_step(x, k, s).sample(generator)
            yield Step(k, x)
        return
    if start == "observation":
        x_T = yb.clone()
    else:
        x_T = yb / (1 + var_r) + math.sqrt(var_r / (1 + var_r)) * noise()
    cond = GaussianProduct(yb, var_r, T, schedule="constant")
    yield from reverse_steps(model, x_T=x_T, generator=generator, condition=cond)


def product_chain_moments(betas, y: float, sigma: float, *, start: DenoiseStart = "prior",
                          last_step: bool = True) -> tuple[float, float]:
    """Exact (mean, variance) of x^0 from the constant-r product chain of :func:`denoise_steps` for 1-D
    N(0, 1) data and an exact reverse process p(x^{t−1}|x^t) = N(√(1−β_t)x^t, β_t) (reversible kernel).

    Each step is x' = c·x + d + √v'·ε with v' = (1/β + 1/σ²)^{−1}, c = v'√(1−β)/β, d = v'y/σ², so the
    moments follow m ← c·m + d, s ← c²·s + v'. Compare with p·r: N(y/(1+σ²), σ²/(1+σ²))."""
    b = np.asarray(betas, dtype=np.float64)
    var_r = sigma**2
    if start == "prior":
        m, s = y / (1 + var_r), var_r / (1 + var_r)
    elif start == "observation":
        m, s = float(y), 0.0
    else:
        raise ValueError("start must be 'prior' or 'observation'")
    for k in range(len(b) - 1, -1 if last_step else 0, -1):
        beta = b[k]
        v = 1.0 / (1.0 / beta + 1.0 / var_r)
        c = v * math.sqrt(1 - beta) / beta
        d = v * y / var_r
        m, s = c * m + d, c * c * s + v
    return m, s




# ---------------------------------------------------------------------------------------------------
# binary models and fixed coordinates


def fix_bits_steps(model: DiffusionModel, bits, n_samples: int = 1, generator: torch.Generator | None = None, *,
                   method: Method = "clamp", particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """Binomial model: fix some bits and sample the rest (Table App.1's binomial r).

    bits: [D] with 1 (fixed to 1), 0 (fixed to 0) or −1 (free). ``method`` as :func:`observe_steps`
    ("clamp": r(x_i = 1) is 1, 0 or ½ at every step, :class:`models.posterior.BinomialR`, so fixed bits
    are fixed from x^T on; "smc": exact as the particle count grows)."""
    if model.is_gaussian:
        raise ValueError("fixing bits needs a binomial model")
    b = torch.as_tensor(np.asarray(bits), dtype=torch.float32).reshape(-1)
    S = tuple(model.config.example_shape)
    D = int(np.prod(S))
    if b.numel() != D:
        raise ValueError(f"expected {D} bits, got {b.numel()}")
    if not bool(((b == 0) | (b == 1) | (b == -1)).all()):
        raise ValueError("bits must be 0, 1 or -1 (free)")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    b = b.reshape(S).to(model.device)
    fixed = (b >= 0).expand(n_samples, *S)
    value = b.clamp_min(0).expand(n_samples, *S).contiguous()
    return observe_steps(model, value, fixed, method=method, generator=generator, particles=particles)


def parse_fix(text: str) -> dict[int, float]:
    """'I=V[,I=V…]' → {I: V} (coordinate index, value in raw data units); ValueError naming the bad part."""
    fix: dict[int, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        i, sep, v = part.partition("=")
        try:
            if not sep:
                raise ValueError
            idx, val = int(i), float(v)
        except ValueError:
            raise ValueError(f"--fix: expected I=V (an index and a value), got {part!r}") from None
        if not math.isfinite(val):
            raise ValueError(f"--fix: the value of coordinate {idx} is not a finite number ({v!r})")
        fix[idx] = val
    if not fix:
        raise ValueError("--fix: no coordinate given (expected I=V[,I=V…])")
    return fix


@torch.no_grad()
def condition(model, fix: Mapping[int, float], method: Method = "smc", particles: int = DEFAULT_PARTICLES,
              n: int = 1, generator: torch.Generator | None = None, *, norm=None, sigma_r: float = 0.05,
              jump_length: int = 10, jump_n: int = 5,
              track: Callable[[Iterator[Step]], Iterator[Step]] | None = None) -> np.ndarray:
    """Samples of a vector or binary model's x^0 with the coordinates in ``fix`` ({index: value}, raw data
    units: a binary model's values are 0 or 1) held fixed: float32 [n, D] in raw data units.

    ``model``: a :class:`models.files.LoadedModel` (its normalisation is used) or a DiffusionModel with
    ``norm`` (a :class:`models.data.Normalization` or its dict; None = identity). ``method`` from
    :data:`METHODS` (module docstring; "smc" is the exact one, with ``particles`` per sample). ``track``
    wraps the step iterator (a progress display; :func:`count_inpaint_steps` states)."""
    from .images import normalization

    if hasattr(model, "model") and hasattr(model, "norm"):
        norm, model = model.norm, model.model
    nrm = normalization(norm)
    S = tuple(model.config.example_shape)
    if len(S) != 1:
        raise ValueError(f"condition() is for vector and binary models; this model's examples have shape {S}")
    D = S[0]
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not fix:
        raise ValueError("nothing to condition on: fix is empty")
    raw = np.zeros(D, dtype=np.float64)
    known = np.zeros(D, dtype=bool)
    for i, v in fix.items():
        if not 0 <= int(i) < D:
            raise ValueError(f"coordinate {i} is out of range: this model has {D} coordinates (0 .. {D - 1})")
        if not model.is_gaussian and v not in (0, 1):
            raise ValueError(f"coordinate {i}: a binary model's values are 0 or 1, got {v}")
        raw[int(i)], known[int(i)] = float(v), True
    z = raw if not model.is_gaussian else np.asarray(nrm.forward(raw[None]), dtype=np.float64)[0]
    if model.is_gaussian and method == "annealed" and sigma_r <= 0:
        raise ValueError(f"sigma_r must be > 0, got {sigma_r}")
    yb = torch.as_tensor(z, dtype=torch.float32, device=model.device)[None].expand(n, D).contiguous()
    kb = torch.as_tensor(known, device=model.device)[None].expand(n, D)
    x = None
    steps = observe_steps(model, yb, kb, method=method, generator=generator, sigma_r=sigma_r,
                          jump_length=jump_length, jump_n=jump_n, particles=particles)
    for st in steps if track is None else track(steps):
        x = st.x
    out = x.detach().cpu().numpy().astype(np.float64)
    if model.is_gaussian:
        out = np.asarray(nrm.inverse(out), dtype=np.float64)
        out[:, known] = raw[known]  # exactly the given values (no round trip through the units)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# regions on the plane


def _check_2d(model: DiffusionModel) -> None:
    if not model.is_gaussian or tuple(model.config.example_shape) != (2,):
        raise ValueError("regions on the plane need a Gaussian model of 2-D points")


def region_steps(model: DiffusionModel, weights, extent: Sequence[float], n: int = 500,
                 generator: torch.Generator | None = None, *, softness: float = 0.25, floor: float = 1e-3,
                 method: RegionMethod = "shift", particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """2-D model: samples of p(x)·r(x) for a painted region ``weights`` [H, W] ≥ 0 over ``extent`` =
    (x_min, x_max, y_min, y_max) in normalised units (row 0 = y_min; cells as
    :func:`models.posterior.cell_centres`). The chain starts from the prior.

    ``softness > 0`` (default): r = 1 in the region and falls off as exp(−d²/(2·softness²)) with the
    distance d from it; its gradient reaches every point, so the region pulls samples in from anywhere.
    ``softness = 0``: the painted soft indicator itself (``floor`` outside); its gradient is zero except
    at the region's edge. Both are one :class:`models.posterior.GridLogR`.
    ``method="shift"``: r applied at every step as a smooth r (App. C, :class:`SmoothShift` with its
    Laplace curvature, so a step never overshoots), constant in t — approximate. ``"smc"``: sequential
    Monte Carlo with ``particles`` particles per sample, exact as the particle count grows."""
    _check_2d(model)
    _check("method", method, REGION_METHODS)
    _check_particles(particles)
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or min(w.shape) < 2:
        raise ValueError(f"weights must be a 2-D grid [H, W] with H, W >= 2, got shape {w.shape}")
    if not np.isfinite(w).all() or not (w > 0).any():
        raise ValueError("the region is empty: paint some of the plane first")
    x0, x1, y0, y1 = (float(v) for v in extent)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max) with min < max, got {tuple(extent)}")
    if not (softness >= 0 and math.isfinite(softness)):
        raise ValueError(f"softness must be >= 0, got {softness}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    w = np.clip(w, 0, None) / w.max()
    ext = (x0, x1, y0, y1)
    log_r = GridLogR(region_log_r(w, ext, softness, floor=floor), ext, softness)
    if method == "smc":
        return smc_steps(model, n=n, particles=particles, generator=generator, smooth=log_r)
    cond = SmoothShift(log_r, model.T, schedule="constant", curvature=log_r.curvature)
    return reverse_steps(model, n, generator=generator, condition=cond)


def gaussian_region_steps(model: DiffusionModel, centre: Sequence[float], std: float, n: int = 500,
                          generator: torch.Generator | None = None, *, method: RegionMethod = "shift",
                          particles: int = DEFAULT_PARTICLES) -> Iterator[Step]:
    """2-D model: samples of p(x)·r(x) with r = N(centre, std²·I). ``method="shift"``: an exact
    Gaussian product at every step (:class:`GaussianProduct`, constant r — the product chain of the
    module docstring, not p·r), starting from π·r = N(centre/(1 + std²), std²/(1 + std²)); ``"smc"``:
    sequential Monte Carlo, exact as the particle count grows."""
    _check_2d(model)
    _check("method", method, REGION_METHODS)
    _check_particles(particles)
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a positive number, got {std}")
    c = torch.as_tensor(np.asarray(centre, dtype=np.float32)).reshape(1, 2).to(model.device)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    var_r = float(std) ** 2
    if method == "smc":
        return smc_steps(model, n=n, particles=particles, generator=generator, smooth=GaussianR(c, var_r))
    return _gauss_region_gen(model, c.expand(n, 2).contiguous(), var_r, generator)


@torch.no_grad()
def _gauss_region_gen(model, c, var_r, generator) -> Iterator[Step]:
    noise = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
    x_T = c / (1 + var_r) + math.sqrt(var_r / (1 + var_r)) * noise
    yield from reverse_steps(model, x_T=x_T, generator=generator,
                             condition=GaussianProduct(c, var_r, model.T, schedule="constant"))
