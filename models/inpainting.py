"""Inpainting, denoising and other conditioned sampling on a trained model (paper §2.5, App. C; spec §6).

Everything here is headless (no Qt): the explorer's inpainting panel and ``dpm inpaint`` / ``dpm denoise``
both drive these generators. The posterior pieces themselves live in :mod:`models.posterior`; this
module prepares images and masks, picks the right composition for each method, and writes results.

Units
-----
* ``pixels``: float32 ``[C, H, W]`` in [0, 1], what an image file holds (8-bit value u → u/255).
* ``z``: the model's normalised units. A pixel p is mapped to the centre of its quantisation bin,
  v = (p·(levels − 1) + ½)/levels (the data pipeline dequantises u → (u + U)/levels, whose mean is
  that centre), then z = (v − mean)/std (:class:`models.data.Normalization`). :func:`to_pixels` is
  the exact inverse, clipped to [0, 1]. A σ in pixel units is σ·(levels − 1)/(levels·std) in z units
  (:func:`sigma_to_normalised`).

Masks
-----
``known``: bool ``[H, W]`` (or broadcastable to the batch ``[N, *S]``), True = observed. Mask files
follow RePaint's convention: white = known, black = to fill.

Methods (:func:`inpaint_steps`)
-------------------------------
* ``"clamp"`` (paper Fig. 5, reference ``sampler.py``): r = δ on the known pixels, constant in t
  (Eq. 23); the known pixels are clamped to their clean values at every t and the chain starts from
  :func:`models.posterior.inpaint_start` (known values, N(0, 1) elsewhere).
* ``"annealed"``: a narrow Gaussian r = N(y, sigma_r²) on the known pixels, annealed as
  r^{(T−k)/T} (the paper's alternative, which leaves x^T untouched), then an exact clamp at the last
  step so the known pixels end exactly at the observation.
* ``"repaint"``: RePaint resampling (:func:`models.posterior.repaint_steps`).

All three end with x^0 equal to the observation on the known pixels, bit for bit.

A note on the product chain (tested in ``tests/models/test_inpainting.py``)
--------------------------------------------------------------------------
For a smooth r, multiplying every reverse step by the same r (Eq. 22 with Eq. 23) does not give
p̃(x^0) ∝ p(x^0)·r(x^0) exactly: the per-step normalisers Z(x^{t+1}) = ∫p(x^t|x^{t+1}) r(x^t) dx^t
are dropped, and since Z ≈ r for small steps, a long chain drifts towards p·r². For N(0, 1) data
with an exact reverse process and r = N(y, σ²) the chain is linear-Gaussian, and
:func:`product_chain_moments` gives its exact output moments: with T = 1000 they are close to
p·r²'s (mean 2y/(2 + σ²)), not p·r's (mean y/(1 + σ²)). :func:`denoise_steps` offers
``start="matched"``, which is exact for a perfect model: y = x^0 + σε has the law of x^{t*}/√ᾱ_{t*}
when (1 − ᾱ_{t*})/ᾱ_{t*} = σ², so the plain reverse chain is started at t* from √ᾱ_{t*}·y (topped up
with a little noise to land exactly on the schedule's noise level).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from PIL import Image

from .checkpoint import atomic_write, save_trajectory
from .data import DataError, Normalization, load_image, numpy_rng
from .io import LoadedModel, load_model
from .posterior import BinomialR, Clamp, GaussianProduct, GridRegion, SmoothShift, inpaint_start, repaint_steps
from .model import DiffusionModel, StepDistribution
from .sampling import Step, reverse_steps

__all__ = [
    "Method",
    "METHODS",
    "DenoiseStart",
    "PreparedImage",
    "normalization",
    "pixels_to_z",
    "to_pixels",
    "sigma_to_normalised",
    "prepare_image",
    "coerce_image",
    "image_geometry",
    "read_mask",
    "write_mask",
    "mask_note",
    "inpaint_steps",
    "count_inpaint_steps",
    "denoise_steps",
    "product_chain_moments",
    "add_noise",
    "save_png",
    "tile",
    "fix_bits_steps",
    "region_steps",
    "region_log_r",
    "GridLogR",
    "gaussian_region_steps",
    "inpaint_image",
    "denoise_image",
]

Method = Literal["clamp", "annealed", "repaint"]
METHODS: tuple[str, ...] = ("clamp", "annealed", "repaint")
DenoiseStart = Literal["observation", "prior", "matched"]
DENOISE_STARTS: tuple[str, ...] = ("observation", "prior", "matched")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as Pillow's "L" conversion


# ---------------------------------------------------------------------------------------------------
# units


def normalization(norm) -> Normalization:
    """A :class:`Normalization` from a LoadedModel, a norm dict {mean, std, levels} (an empty dict or
    None is the identity) or a Normalization."""
    if isinstance(norm, LoadedModel):
        norm = norm.norm
    if isinstance(norm, Normalization):
        return norm
    if not norm:
        return Normalization.identity()
    return Normalization.from_dict(dict(norm))


def _bin_scale(n: Normalization) -> tuple[float, float]:
    """v = a·p + b for a pixel p in [0, 1] (centre of the quantisation bin)."""
    if n.levels is None:
        return 1.0, 0.0
    return (n.levels - 1) / n.levels, 0.5 / n.levels


def pixels_to_z(pixels, norm) -> np.ndarray:
    """Pixels in [0, 1] (any shape) → normalised z, float32."""
    n = normalization(norm)
    a, b = _bin_scale(n)
    return np.asarray(n.forward(np.asarray(pixels, dtype=np.float32) * np.float32(a) + np.float32(b)), dtype=np.float32)


def to_pixels(z, norm) -> np.ndarray:
    """Normalised z (tensor or array, [..., C, H, W]) → float32 pixels in [0, 1] (inverse of
    :func:`pixels_to_z`, clipped)."""
    if isinstance(z, torch.Tensor):
        z = z.detach().cpu().numpy()
    n = normalization(norm)
    a, b = _bin_scale(n)
    v = np.asarray(n.inverse(np.asarray(z, dtype=np.float32)), dtype=np.float32)
    return np.clip((v - np.float32(b)) / np.float32(a), 0.0, 1.0).astype(np.float32, copy=False)


def sigma_to_normalised(sigma_pixels: float, norm) -> float:
    """A noise standard deviation in pixel units ([0, 1] scale) → the model's normalised units."""
    n = normalization(norm)
    a, _ = _bin_scale(n)
    return float(sigma_pixels) * a / n.std


# ---------------------------------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class PreparedImage:
    """An image made ready for a model.

    y: float32 tensor [1, *example_shape'] in normalised units (``[1, C, H, W]`` for image models; a
       conv model keeps the image's own H, W). pixels: float32 [C, H, W] in [0, 1], the same image.
    note: what was done to it, '' when nothing ("converted RGB→grey; resized 512×384→28×28 …").
    """

    y: torch.Tensor
    pixels: np.ndarray
    note: str = ""

    @property
    def shape_hw(self) -> tuple[int, int]:
        return int(self.pixels.shape[-2]), int(self.pixels.shape[-1])


def coerce_image(image, *, max_pixels: int = 50_000_000, what: str = "image") -> np.ndarray:
    """A path or an array → float32 [C, H, W] in [0, 1], C ∈ {1, 3}.

    Arrays: [H, W] (grey), [H, W, C] or [C, H, W] with C ∈ {1, 3, 4} (alpha dropped; [C, H, W] is
    assumed only when the first axis is 1 or 3, or 4 and the last is not a channel count); uint8 (÷255),
    uint16 (÷65535), bool, or float in [0, 1] (clipped). Paths go through
    :func:`models.data.load_image` (Pillow's decompression-bomb guard on). Raises DataError."""
    if isinstance(image, (str, Path)):
        return load_image(image, max_pixels=max_pixels)
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3:
        # [H, W, C] unless the first axis looks like 1 or 3 channels ([C, H, W])
        if a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3):
            a = np.moveaxis(a, -1, 0)
        elif a.shape[0] not in (1, 3, 4):
            raise DataError(f"{what}: expected an image array [H, W], [H, W, C] or [C, H, W] with C in 1, 3, 4; got shape {a.shape}")
    else:
        raise DataError(f"{what}: expected an image array [H, W], [H, W, C] or [C, H, W]; got shape {a.shape}")
    if a.shape[0] == 4:
        a = a[:3]
    C, H, W = a.shape
    if H == 0 or W == 0:
        raise DataError(f"{what}: the image has no pixels ({W}×{H})")
    if H * W > max_pixels:
        raise DataError(f"{what}: the image is {W}×{H} = {W * H:,} pixels, more than the limit of {max_pixels:,}")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / max(1.0, float(a.max()))
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise DataError(f"{what}: the image holds NaN or infinite values")
        a = np.clip(a, 0.0, 1.0)
    else:
        raise DataError(f"{what}: unsupported array dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _resize(pixels: np.ndarray, hw: tuple[int, int], resample=Image.Resampling.BOX) -> np.ndarray:
    """Resize float32 [C, H, W] → [C, h, w] channel by channel (area averaging when shrinking)."""
    h, w = hw
    if pixels.shape[-2:] == (h, w):
        return pixels
    if h > pixels.shape[-2] or w > pixels.shape[-1]:
        resample = Image.Resampling.BICUBIC if resample == Image.Resampling.BOX else resample
    out = [np.asarray(Image.fromarray(c, mode="F").resize((w, h), resample), dtype=np.float32) for c in pixels]
    return np.clip(np.stack(out), 0.0, 1.0).astype(np.float32)


def _crop_centre(px: np.ndarray, h: int, w: int) -> np.ndarray:
    H, W = px.shape[-2:]
    r, c = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(px[..., r:r + h, c:c + w])


def image_geometry(config) -> tuple[int, int | None, int | None, bool]:
    """(C, H, W, flat) for a model: flat models of D = h·h values are square grey images."""
    shape = tuple(config.example_shape)
    if len(shape) == 3:
        return shape[0], shape[1], shape[2], False
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0] and side >= 2:
            return 1, side, side, True
    raise ValueError(f"this model's examples have shape {shape}, which is not an image")


def prepare_image(image, loaded: LoadedModel, *, max_pixels: int = 50_000_000, max_side: int | None = None,
                  fit: Literal["shrink", "crop"] = "shrink") -> PreparedImage:
    """Make ``image`` (a path or an array, see :func:`coerce_image`) ready for ``loaded``'s model.

    Channels: a grey model gets luminance (BT.601) of a colour image; a colour model gets a grey image
    copied into its three channels. Size: a fully convolutional model (``arch == "conv"``) keeps the
    image's own size, limited to ``max_side`` (if given) by shrinking the whole image (``fit="shrink"``)
    or by cutting out the centre at full resolution (``fit="crop"``: a texture model learned its
    texture at one scale); any other model gets its ``example_shape`` (shrunk, or cropped to the
    model's aspect ratio first). Values are normalised with ``loaded.norm``. Raises DataError (bad
    file or array, naming it) or ValueError (a model whose examples are not images, a bad ``fit``)."""
    if fit not in ("shrink", "crop"):
        raise ValueError(f"fit must be 'shrink' or 'crop', got {fit!r}")
    what = str(image) if isinstance(image, (str, Path)) else "image"
    cfg = loaded.config
    C, H, W, flat = image_geometry(cfg)
    px = coerce_image(image, max_pixels=max_pixels, what=what)
    notes: list[str] = []
    if px.shape[0] != C:
        if C == 1:
            px = np.tensordot(_LUMA, px, axes=1)[None].astype(np.float32)
            notes.append("converted colour→grey")
        else:
            px = np.repeat(px[:1], C, axis=0)
            notes.append("converted grey→colour")
    h0, w0 = px.shape[-2:]
    if cfg.arch == "conv":
        if max_side is not None and max(h0, w0) > max_side:
            if fit == "crop":
                h, w = min(h0, max_side), min(w0, max_side)
                px = _crop_centre(px, h, w)
                notes.append(f"cropped the centre {w}×{h} of {w0}×{h0} (longest side {max_side})")
            else:
                s = max_side / max(h0, w0)
                hw = (max(1, round(h0 * s)), max(1, round(w0 * s)))
                px = _resize(px, hw)
                notes.append(f"resized {w0}×{h0}→{hw[1]}×{hw[0]} (longest side {max_side})")
    elif (h0, w0) != (H, W):
        if fit == "crop":  # the largest centred window of the model's aspect ratio, then resize
            s = min(h0 / H, w0 / W)
            ch, cw = max(1, round(H * s)), max(1, round(W * s))
            if (ch, cw) != (h0, w0):
                px = _crop_centre(px, ch, cw)
                notes.append(f"cropped the centre {cw}×{ch} of {w0}×{h0}")
                h0, w0 = ch, cw
        if (h0, w0) != (H, W):
            px = _resize(px, (H, W))
            notes.append(f"resized {w0}×{h0}→{W}×{H} for this model")
    px = np.ascontiguousarray(px, dtype=np.float32)
    z = torch.from_numpy(pixels_to_z(px, loaded.norm))[None]
    if flat:
        z = z.reshape(1, -1)
    return PreparedImage(y=z, pixels=px, note="; ".join(notes))


# ---------------------------------------------------------------------------------------------------
# masks


def read_mask(path, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask image → bool [H, W], True = known (white), False = to fill (black); grey values
    are thresholded at ½ (mean over colour channels). Resized (nearest) to ``shape_hw`` if given and
    different. Raises DataError naming the file."""
    a = load_image(path)  # [C, H, W] in [0, 1]
    known = a.mean(axis=0) >= 0.5
    if shape_hw is not None and tuple(known.shape) != tuple(shape_hw):
        h, w = shape_hw
        im = Image.fromarray(known.astype(np.uint8) * 255, mode="L").resize((w, h), Image.Resampling.NEAREST)
        known = np.asarray(im) >= 128
    return np.ascontiguousarray(known, dtype=bool)


def write_mask(path, known: np.ndarray) -> None:
    """Write a mask PNG atomically: white = known, black = to fill."""
    known = np.asarray(known, dtype=bool)
    if known.ndim != 2:
        raise ValueError(f"a mask must be 2-D [H, W], got shape {known.shape}")
    im = Image.fromarray(known.astype(np.uint8) * 255, mode="L")
    with atomic_write(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")


def mask_note(known) -> str:
    """A message for masks that need one ('' when the mask both keeps and fills something)."""
    k = np.asarray(known.cpu() if isinstance(known, torch.Tensor) else known, dtype=bool)
    if k.size == 0:
        return "the mask is empty"
    if k.all():
        return "nothing to fill: every pixel is known, so the result is the image itself (paint the region to fill)"
    if not k.any():
        return "no pixel is known: this is plain sampling from the model, the image is ignored"
    return ""


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
    if model.config.arch != "conv" and tuple(y.shape[1:]) != S:
        raise ValueError(f"the model expects examples of shape {S}, got {tuple(y.shape[1:])}")
    if model.config.arch == "conv" and y.shape[1] != S[0]:
        raise ValueError(f"the model expects {S[0]} channel(s), got {y.shape[1]}")
    return y.to(model.device).expand(n_samples, *y.shape[1:]).contiguous()


# ---------------------------------------------------------------------------------------------------
# inpainting


def count_inpaint_steps(T: int, method: str = "clamp", *, jump_length: int = 10, jump_n: int = 5) -> int:
    """How many states :func:`inpaint_steps` yields for a model with T steps (for progress bars)."""
    if method == "repaint":
        points = sum(1 for t in range(jump_length, T, jump_length) if t + jump_length <= T)
        return 1 + T + points * (jump_n - 1) * 2 * jump_length
    return 1 + T


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def inpaint_steps(model: DiffusionModel, y, known, *, method: Method = "clamp", n_samples: int = 1,
                  generator: torch.Generator | None = None, sigma_r: float = 0.05, jump_length: int = 10,
                  jump_n: int = 5) -> Iterator[Step]:
    """Sample p̃(x^0) ∝ p(x^0)·r(x^0) with r a delta (or narrow Gaussian) on the ``known`` pixels.

    y: [1, *S] (or [*S]) observation in normalised units; a conv model takes any H, W.
    known: bool [H, W] or broadcastable to [n_samples, *S], True = observed.
    Yields :class:`Step` (t, x [n_samples, *S]); the last is x^0, equal to y on the known pixels
    (exactly, for every method). ``t`` decreases except for RePaint's jumps back up.

    Special masks: every pixel known → a single Step(0, y) (the image itself); no pixel known → plain
    sampling (a ``UserWarning`` is issued; :func:`mask_note` gives the text)."""
    _check_method(method)
    if method != "clamp" and not model.is_gaussian:
        raise ValueError(f"method {method!r} needs a Gaussian model; use 'clamp' (or fix_bits_steps) for a binomial one")
    if sigma_r <= 0:
        raise ValueError(f"sigma_r must be > 0, got {sigma_r}")
    yb = _batch(model, y, n_samples)
    kb = _known_tensor(known, yb)
    return _inpaint_gen(model, yb, kb, method, generator, float(sigma_r), int(jump_length), int(jump_n))


@torch.no_grad()
def _inpaint_gen(model, yb, kb, method, generator, sigma_r, jump_length, jump_n) -> Iterator[Step]:
    if bool(kb.all()):
        yield Step(0, yb.clone())
        return
    if not bool(kb.any()):
        warnings.warn(mask_note(kb), UserWarning, stacklevel=3)
        yield from reverse_steps(model, yb.shape[0], generator=generator, example_shape=tuple(yb.shape[1:]))
        return
    T = model.T
    if method == "clamp":
        if model.is_gaussian:
            x_T = inpaint_start(yb, kb, generator)
        else:
            x_T = torch.where(kb, yb, model.kernel.prior_sample(yb.shape, generator=generator, device=yb.device))
        yield from reverse_steps(model, x_T=x_T, generator=generator, condition=Clamp(yb, kb))
    elif method == "annealed":
        soft = GaussianProduct(yb, sigma_r**2, T, known=kb, schedule="annealed")
        clamp = Clamp(yb, kb)

        def cond(k: int, x_t: torch.Tensor, dist: StepDistribution) -> StepDistribution:
            return clamp(k, x_t, dist) if k == 0 else soft(k, x_t, dist)

        yield from reverse_steps(model, yb.shape[0], generator=generator, condition=cond,
                                 example_shape=tuple(yb.shape[1:]))
    else:
        yield from repaint_steps(model, yb, kb, jump_length=jump_length, jump_n=jump_n, generator=generator)


# ---------------------------------------------------------------------------------------------------
# denoising


def denoise_steps(model: DiffusionModel, y_noisy, sigma: float, *, n_samples: int = 1,
                  generator: torch.Generator | None = None, start: DenoiseStart = "observation") -> Iterator[Step]:
    """Sample the denoising posterior for y = x^0 + σ·ε (σ in normalised units, see
    :func:`sigma_to_normalised`).

    ``start="observation"`` (reference code) and ``"prior"`` (paper): every reverse step is multiplied
    exactly by r(x) = N(x; y, σ²) (spec §6; :class:`models.posterior.GaussianProduct`), starting at
    x^T = y or at x^T ~ π·r = N(y/(1 + σ²), σ²/(1 + σ²)). ``start="matched"``: no product; the plain
    reverse chain starts at the step t* whose noise level matches σ, from x^{t*} = √ᾱ_{t*}·(y + δ),
    δ ~ N(0, (1 − ᾱ_{t*})/ᾱ_{t*} − σ²) (exact posterior sampling for a perfect model; see the module
    docstring). Yields Step(t, x [n_samples, *S]); the last is x^0."""
    if not model.is_gaussian:
        raise ValueError("denoising needs a Gaussian model")
    if start not in DENOISE_STARTS:
        raise ValueError(f"start must be one of {', '.join(DENOISE_STARTS)}; got {start!r}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    yb = _batch(model, y_noisy, n_samples)
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


def add_noise(pixels, sigma: float, generator=None) -> np.ndarray:
    """pixels + σ·N(0, 1) (pixel units, float32, not clipped: clipping would change the likelihood).
    ``generator``: torch.Generator, numpy Generator, int seed or None (fresh entropy)."""
    rng = np.random.default_rng() if generator is None else numpy_rng(generator)
    p = np.asarray(pixels, dtype=np.float32)
    return (p + np.float32(sigma) * rng.standard_normal(p.shape, dtype=np.float32)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# binary and 2-D models


def fix_bits_steps(model: DiffusionModel, bits, n_samples: int = 1,
                   generator: torch.Generator | None = None) -> Iterator[Step]:
    """Binomial model: fix some bits and sample the rest (Table App.1's binomial r).

    bits: [D] with 1 (fixed to 1), 0 (fixed to 0) or −1 (free). r(x_i = 1) is 1, 0 or ½ at every step
    (:class:`models.posterior.BinomialR`, constant in t), so fixed bits are fixed from x^T on; a final
    exact clamp guards the case where the network's probability underflows to exactly 0 or 1."""
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
    value = b.clamp_min(0).expand(n_samples, *S)
    r_prob = torch.where(b >= 0, value[0], torch.full_like(value[0], 0.5))
    return _bits_gen(model, r_prob, fixed, value, n_samples, generator)


@torch.no_grad()
def _bits_gen(model, r_prob, fixed, value, n, generator) -> Iterator[Step]:
    soft = BinomialR(r_prob, model.T, schedule="constant")
    clamp = Clamp(value, fixed)
    x_T = torch.where(fixed, value, model.kernel.prior_sample(value.shape, generator=generator, device=value.device))

    def cond(k, x_t, dist):
        return clamp(k, x_t, soft(k, x_t, dist))

    yield from reverse_steps(model, x_T=x_T, generator=generator, condition=cond)


def _check_2d(model: DiffusionModel) -> None:
    if not model.is_gaussian or tuple(model.config.example_shape) != (2,):
        raise ValueError("regions on the plane need a Gaussian model of 2-D points")


def region_log_r(weights, extent: Sequence[float], softness: float) -> np.ndarray:
    """log r on the grid for a painted region: 0 inside (weights > ½ max), −d²/(2·softness²) outside,
    d the distance to the nearest painted cell centre (normalised units). float32 [H, W]."""
    w = np.asarray(weights, dtype=np.float64)
    H, W = w.shape
    x0, x1, y0, y1 = (float(v) for v in extent)
    xs = x0 + (np.arange(W) + 0.5) * (x1 - x0) / W
    ys = y0 + (np.arange(H) + 0.5) * (y1 - y0) / H
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
    """log r(x) for 2-D x, bilinearly interpolated from a grid ``log_r`` [H, W] over ``extent``
    (row 0 = y_min); outside the extent it continues as −(distance to the extent)²/(2·softness²)
    plus the border value, so ∇log r points back in from everywhere. Differentiable (autograd)."""

    def __init__(self, log_r, extent: Sequence[float], softness: float):
        self.L = torch.as_tensor(np.asarray(log_r, dtype=np.float32))[None, None]  # [1, 1, H, W]
        self.extent = tuple(float(v) for v in extent)
        self.softness = float(softness)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        x0, x1, y0, y1 = self.extent
        gx = 2 * (x[:, 0] - x0) / (x1 - x0) - 1
        gy = 2 * (x[:, 1] - y0) / (y1 - y0) - 1
        grid = torch.stack([gx, gy], dim=-1)[None, :, None, :].to(self.L.dtype)  # [1, N, 1, 2]
        v = F.grid_sample(self.L.to(x.device), grid, mode="bilinear", padding_mode="border", align_corners=False)
        dx = torch.relu(x0 - x[:, 0]) + torch.relu(x[:, 0] - x1)
        dy = torch.relu(y0 - x[:, 1]) + torch.relu(x[:, 1] - y1)
        return v[0, 0, :, 0].to(x.dtype) - (dx**2 + dy**2) / (2 * self.softness**2)


def region_steps(model: DiffusionModel, weights, extent: Sequence[float], n: int = 500,
                 generator: torch.Generator | None = None, *, softness: float = 0.25,
                 floor: float = 1e-3) -> Iterator[Step]:
    """2-D model: samples of p(x)·r(x) for a painted region ``weights`` [H, W] ≥ 0 over ``extent`` =
    (x_min, x_max, y_min, y_max) in normalised units (row 0 = y_min), applied as a smooth r (App. C:
    the mean shifts by Σ·∇log r, :class:`SmoothShift`), constant in t. The chain starts from the prior.

    ``softness > 0`` (default): r = 1 in the region and falls off as exp(−d²/(2·softness²)) with the
    distance d from it (:func:`region_log_r`, :class:`GridLogR`); its gradient reaches every point, so
    the region pulls samples in from anywhere. ``softness = 0``: the painted soft indicator itself
    (:class:`GridRegion`, ``floor`` outside); its gradient is zero except at the region's edge, so it
    only nudges samples that happen to pass there."""
    _check_2d(model)
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or min(w.shape) < 2:
        raise ValueError(f"weights must be a 2-D grid [H, W] with H, W >= 2, got shape {w.shape}")
    if not np.isfinite(w).all() or not (w > 0).any():
        raise ValueError("the region is empty: paint some of the plane first")
    x0, x1, y0, y1 = (float(v) for v in extent)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent must be (x_min, x_max, y_min, y_max) with min < max, got {tuple(extent)}")
    if softness < 0:
        raise ValueError(f"softness must be >= 0, got {softness}")
    w = np.clip(w, 0, None) / w.max()
    if softness > 0:
        log_r = GridLogR(region_log_r(w, (x0, x1, y0, y1), softness), (x0, x1, y0, y1), softness)
    else:
        log_r = GridRegion(torch.from_numpy(w), (x0, x1, y0, y1), floor=floor)
    cond = SmoothShift(log_r, model.T, schedule="constant")
    return reverse_steps(model, n, generator=generator, condition=cond)


def gaussian_region_steps(model: DiffusionModel, centre: Sequence[float], std: float, n: int = 500,
                          generator: torch.Generator | None = None) -> Iterator[Step]:
    """2-D model: samples of p(x)·r(x) with r = N(centre, std²·I), an exact Gaussian product at every
    step (:class:`GaussianProduct`), starting from π·r = N(centre/(1 + std²), std²/(1 + std²))."""
    _check_2d(model)
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a positive number, got {std}")
    c = torch.as_tensor(np.asarray(centre, dtype=np.float32)).reshape(1, 2).to(model.device)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    var_r = float(std) ** 2
    return _gauss_region_gen(model, c.expand(n, 2).contiguous(), var_r, generator)


@torch.no_grad()
def _gauss_region_gen(model, c, var_r, generator) -> Iterator[Step]:
    noise = torch.randn(c.shape, generator=generator, device=c.device, dtype=c.dtype)
    x_T = c / (1 + var_r) + math.sqrt(var_r / (1 + var_r)) * noise
    yield from reverse_steps(model, x_T=x_T, generator=generator,
                             condition=GaussianProduct(c, var_r, model.T, schedule="constant"))


# ---------------------------------------------------------------------------------------------------
# files


def tile(pixels: np.ndarray, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """[N, C, H, W] → [C, H, N·W + (N − 1)·gap], side by side; [C, H, W] is returned as is."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 3:
        return p
    if p.ndim != 4:
        raise ValueError(f"expected [N, C, H, W], got shape {p.shape}")
    N, C, H, W = p.shape
    out = np.full((C, H, N * W + (N - 1) * gap), fill, dtype=np.float32)
    for i in range(N):
        out[:, :, i * (W + gap): i * (W + gap) + W] = p[i]
    return out


def save_png(path, pixels) -> None:
    """Write pixels in [0, 1] as an 8-bit PNG atomically: [H, W], [C, H, W] (C = 1 or 3) or
    [N, C, H, W] (side by side)."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 4:
        p = tile(p)
    if p.ndim == 3:
        if p.shape[0] == 1:
            p = p[0]
        elif p.shape[0] == 3:
            p = np.moveaxis(p, 0, -1)
        else:
            raise ValueError(f"expected 1 or 3 channels, got shape {p.shape}")
    elif p.ndim != 2:
        raise ValueError(f"expected an image array, got shape {p.shape}")
    u8 = np.round(np.clip(np.nan_to_num(p, nan=0.0), 0, 1) * 255).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(u8), mode="L" if u8.ndim == 2 else "RGB")
    with atomic_write(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")


def _trajectory_stride(n_states: int, state_bytes: int, max_bytes: int = 512 * 2**20) -> int:
    return max(1, math.ceil(n_states * state_bytes / max_bytes))


def _run(steps: Iterator[Step], keep_trajectory: bool, stride: int):
    """Drain a step generator → (last x, traj [S, N, *shape] float32 or None, t int64 [S]); keeps every
    ``stride``-th state and always the last."""
    traj, ts, last, last_kept = [], [], None, False
    for i, st in enumerate(steps):
        last = st
        last_kept = keep_trajectory and i % stride == 0
        if last_kept:
            traj.append(st.x.detach().cpu().numpy().astype(np.float32))
            ts.append(st.t)
    if keep_trajectory and not last_kept:
        traj.append(last.x.detach().cpu().numpy().astype(np.float32))
        ts.append(last.t)
    return last.x, (np.stack(traj) if keep_trajectory else None), np.asarray(ts, dtype=np.int64)


def _generator(seed: int | None, device=None) -> torch.Generator:
    g = torch.Generator(device=device or "cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def _device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def inpaint_image(model_path, image_path, mask_path, out_path, *, method: Method = "clamp", seed: int | None = 0,
                  trajectory_path=None, n_samples: int = 1, sigma_r: float = 0.05, jump_length: int = 10,
                  jump_n: int = 5, max_side: int | None = None, device: str | torch.device | None = None) -> dict:
    """``dpm inpaint``: fill the black part of ``mask_path`` in ``image_path`` with ``model_path``'s model
    and write the result as a PNG (``n_samples`` side by side), plus the conditioned trajectory as HDF5
    if ``trajectory_path`` is given (normalised units; thinned to at most ~512 MiB).

    Returns a summary: output, trajectory, model, image, mask, method, seed, n_samples, shape [C, H, W],
    known_fraction, steps, seconds, note. Errors name the offending file (DataError, CheckpointError,
    ValueError)."""
    _check_method(method)
    t0 = time.perf_counter()
    loaded = load_model(model_path, device=_device(device))
    prep = prepare_image(image_path, loaded, max_side=max_side)
    known = read_mask(mask_path, prep.shape_hw)
    notes = [n for n in (prep.note, mask_note(known)) if n]
    g = _generator(seed, loaded.model.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        steps = inpaint_steps(loaded.model, prep.y, known, method=method, n_samples=n_samples, generator=g,
                              sigma_r=sigma_r, jump_length=jump_length, jump_n=jump_n)
        n_states = count_inpaint_steps(loaded.model.T, method, jump_length=jump_length, jump_n=jump_n)
        stride = _trajectory_stride(n_states, prep.y.numel() * n_samples * 4)
        x0, traj, ts = _run(steps, trajectory_path is not None, stride)
    px = to_pixels(x0.reshape(n_samples, *prep.pixels.shape), loaded.norm)
    save_png(out_path, px)
    meta = dict(kind="inpaint", direction="reverse", model=str(model_path), image=str(image_path), mask=str(mask_path),
                method=method, seed=seed, n_samples=n_samples, units="normalised", norm=dict(loaded.norm))
    if trajectory_path is not None:
        save_trajectory(trajectory_path, traj, t=ts, meta=meta)
    return dict(output=str(out_path), trajectory=None if trajectory_path is None else str(trajectory_path),
                model=str(model_path), image=str(image_path), mask=str(mask_path), method=method, seed=seed,
                n_samples=n_samples, shape=list(prep.pixels.shape), known_fraction=float(known.mean()),
                steps=n_states, seconds=round(time.perf_counter() - t0, 3), note="; ".join(notes))


def denoise_image(model_path, image_path, sigma: float, out_path, *, seed: int | None = 0, assume_noisy: bool = False,
                  trajectory_path=None, n_samples: int = 1, start: DenoiseStart = "observation",
                  sigma_units: Literal["normalised", "pixels"] = "normalised", noisy_path=None,
                  max_side: int | None = None, device: str | torch.device | None = None) -> dict:
    """``dpm denoise``: ``sigma`` is the noise standard deviation in the model's normalised units (the
    reference code's SNR-1 experiment is σ = 1), or in pixel units ([0, 1] scale) with
    ``sigma_units="pixels"``. Unless ``assume_noisy``, Gaussian noise of that σ is first added to the
    image (seeded; the noisy image is written to ``noisy_path`` if given, clipped for display). Writes
    the denoised PNG and optionally the trajectory (HDF5). Returns a summary dict like
    :func:`inpaint_image` (plus sigma, sigma_normalised, start, noisy)."""
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    if sigma_units not in ("normalised", "pixels"):
        raise ValueError(f"sigma_units must be 'normalised' or 'pixels', got {sigma_units!r}")
    t0 = time.perf_counter()
    loaded = load_model(model_path, device=_device(device))
    prep = prepare_image(image_path, loaded, max_side=max_side)
    sigma_z = sigma if sigma_units == "normalised" else sigma_to_normalised(sigma, loaded.norm)
    g = _generator(seed, loaded.model.device)
    y = prep.y
    if not assume_noisy:
        y = y + sigma_z * torch.randn(y.shape, generator=g, dtype=y.dtype, device=g.device).cpu()
    if noisy_path is not None:
        save_png(noisy_path, to_pixels(y.reshape(prep.pixels.shape), loaded.norm))
    steps = denoise_steps(loaded.model, y, sigma_z, n_samples=n_samples, generator=g, start=start)
    stride = _trajectory_stride(loaded.model.T + 1, prep.y.numel() * n_samples * 4)
    x0, traj, ts = _run(steps, trajectory_path is not None, stride)
    px = to_pixels(x0.reshape(n_samples, *prep.pixels.shape), loaded.norm)
    save_png(out_path, px)
    meta = dict(kind="denoise", direction="reverse", model=str(model_path), image=str(image_path), sigma=sigma,
                sigma_units=sigma_units, sigma_normalised=sigma_z, start=start, assume_noisy=assume_noisy, seed=seed,
                n_samples=n_samples, units="normalised", norm=dict(loaded.norm))
    if trajectory_path is not None:
        save_trajectory(trajectory_path, traj, t=ts, meta=meta)
    return dict(output=str(out_path), trajectory=None if trajectory_path is None else str(trajectory_path),
                noisy=None if noisy_path is None else str(noisy_path), model=str(model_path), image=str(image_path),
                sigma=sigma, sigma_units=sigma_units, sigma_normalised=sigma_z, start=start, seed=seed,
                n_samples=n_samples, shape=list(prep.pixels.shape), steps=len(ts) if trajectory_path else None,
                seconds=round(time.perf_counter() - t0, 3), note=prep.note)
