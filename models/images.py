"""Images for a model: pixels ↔ model units, preparing a picture, mask files, tiles and PNG writers.

Qt-free; the inpainting panel, ``dpm inpaint`` / ``dpm denoise`` and the benches share it. The
conditioning of the reverse chain itself (tensors in, :class:`models.sampling.Step` out) is in
:mod:`models.conditioning`.

Units (models/README.md, Units and the null model)
-------------------------------------------------
* ``pixels``: float32 ``[C, H, W]`` in [0, 1], what an image file holds (8-bit value u → u/255).
* ``z``: the model's normalised units. A pixel p is mapped to the centre of its quantisation bin,
  v = (p·(levels − 1) + ½)/levels (the data pipeline dequantises u → (u + U)/levels, whose mean is
  that centre), then z = (v − mean)/std (:class:`models.data.Normalization`). :func:`to_pixels` is
  the exact inverse, clipped to [0, 1]. A σ in pixel units is σ·(levels − 1)/(levels·std) in z units
  (:func:`sigma_to_normalised`).

Masks
-----
``known``: bool ``[H, W]``, True = observed. Mask files follow RePaint's convention: white = known,
black = to fill.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from .config import CONV_ARCHS
from .data import DataError, Normalization, load_image, numpy_rng
from .files import LoadedModel, atomic_write

__all__ = [
    "FITS",
    "Fit",
    "PreparedImage",
    "normalization",
    "pixels_to_z",
    "to_pixels",
    "sigma_to_normalised",
    "coerce_image",
    "resize_mask",
    "image_geometry",
    "prepare_image",
    "read_mask",
    "write_mask",
    "mask_note",
    "add_noise",
    "tile",
    "save_png",
]

#: How a picture is made to fit a model: "whole" (default) shrinks (or grows) the whole picture;
#: "crop" cuts out its centre (at full resolution for a fully convolutional model).
Fit = Literal["whole", "crop"]
FITS: tuple[str, ...] = ("whole", "crop")

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
                  fit: Fit = "whole") -> PreparedImage:
    """Make ``image`` (a path or an array, see :func:`coerce_image`) ready for ``loaded``'s model.

    Channels: a grey model gets luminance (BT.601) of a colour image; a colour model gets a grey image
    copied into its three channels. Size: a fully convolutional model (``arch`` in :data:`models.config.CONV_ARCHS`) keeps the
    image's own size, limited to ``max_side`` (if given) by shrinking the whole image (``fit="whole"``)
    or by cutting out the centre at full resolution (``fit="crop"``: a texture model learned its
    texture at one scale); any other model gets its ``example_shape`` (the whole image resized, or
    cropped to the model's aspect ratio first). Colour stays colour for a colour model; a grey model
    gets the luminance, with a note. Values are normalised with ``loaded.norm``. Raises DataError (bad
    file or array, naming it) or ValueError (a model whose examples are not images, a bad ``fit``)."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}; got {fit!r}")
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
    if cfg.arch in CONV_ARCHS:
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
    return known if shape_hw is None else resize_mask(known, shape_hw)


def resize_mask(known: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """A bool mask [H, W] resized (nearest) to ``shape_hw`` (as it is when different)."""
    known = np.ascontiguousarray(known, dtype=bool)
    if tuple(known.shape) == tuple(shape_hw):
        return known
    h, w = shape_hw
    im = Image.fromarray(known.astype(np.uint8) * 255, mode="L").resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(im) >= 128


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


def add_noise(pixels, sigma: float, generator=None) -> np.ndarray:
    """pixels + σ·N(0, 1) (pixel units, float32, not clipped: clipping would change the likelihood).
    ``generator``: torch.Generator, numpy Generator, int seed or None (fresh entropy)."""
    rng = np.random.default_rng() if generator is None else numpy_rng(generator)
    p = np.asarray(pixels, dtype=np.float32)
    return (p + np.float32(sigma) * rng.standard_normal(p.shape, dtype=np.float32)).astype(np.float32)



# ---------------------------------------------------------------------------------------------------
# tiles and PNG files


def tile(pixels: np.ndarray, ncol: int | None = None, gap: int = 2, fill: float = 1.0, border: int = 0) -> np.ndarray:
    """Images [N, C, H, W] → one image [C, H', W'], row-major in ``ncol`` columns (default: one row),
    ``gap`` pixels of ``fill`` between tiles and ``border`` around them; [C, H, W] is returned as is.
    The one image tiler of the package (PNG writers, ``dpm sample``, the inpainting panel)."""
    p = np.asarray(pixels, dtype=np.float32)
    if p.ndim == 3:
        return p
    if p.ndim != 4:
        raise ValueError(f"expected [N, C, H, W], got shape {p.shape}")
    N, C, H, W = p.shape
    ncol = N if ncol is None else max(1, min(int(ncol), N))
    nrow = max(1, math.ceil(N / ncol))
    out = np.full((C, 2 * border + nrow * H + (nrow - 1) * gap, 2 * border + ncol * W + (ncol - 1) * gap), fill,
                  dtype=np.float32)
    for i in range(N):
        r, c = divmod(i, ncol)
        y, x = border + r * (H + gap), border + c * (W + gap)
        out[:, y:y + H, x:x + W] = p[i]
    return out


def save_png(path, pixels) -> None:
    """Write pixels in [0, 1] as an 8-bit PNG atomically: [H, W], [C, H, W] (C = 1 or 3) or
    [N, C, H, W] (side by side, :func:`tile`)."""
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
