"""Array helpers that turn cached states into what the plot items draw (numpy only, no widgets).
All outputs are C-contiguous float32."""
from __future__ import annotations

import math

import numpy as np


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding n tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def tile_images(x: np.ndarray, gap: int = 1, fill: float = 1.0) -> np.ndarray:
    """Images [N, C, H, W] in [0, 1] → one mosaic, row-major: [rows·(H+gap)−gap, cols·(W+gap)−gap]
    for C = 1, with a trailing RGB axis for C = 3 (other C: the first channel)."""
    x = np.asarray(x, dtype=np.float32)
    N, C, H, W = x.shape
    rows, cols = grid_shape(N)
    if C == 3:
        img = np.transpose(x, (0, 2, 3, 1))  # [N, H, W, 3]
    else:
        img = x[:, 0]
    pad = rows * cols - N
    if pad:
        img = np.concatenate([img, np.full((pad, *img.shape[1:]), fill, dtype=np.float32)])
    if gap:
        widths = [(0, 0), (0, gap), (0, gap)] + [(0, 0)] * (img.ndim - 3)
        img = np.pad(img, widths, constant_values=fill)
    Hg, Wg = H + gap, W + gap
    img = img.reshape(rows, cols, Hg, Wg, *img.shape[3:]).swapaxes(1, 2).reshape(rows * Hg, cols * Wg, *img.shape[3:])
    if gap:
        img = img[: rows * Hg - gap, : cols * Wg - gap]
    return np.ascontiguousarray(img, dtype=np.float32)


def arrow_segments(origin: np.ndarray, vec: np.ndarray, max_len: float, head: float = 0.35) -> np.ndarray:
    """Arrows as line-segment pairs for ``connect="pairs"``: shaft plus two barbs per arrow.

    origin, vec: [M, 2]; vectors are scaled together so that the longest is ``max_len``. Returns
    [M·6, 2] (NaN rows where vec is not finite)."""
    vec = np.asarray(vec, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    ln = np.hypot(vec[:, 0], vec[:, 1])
    finite = np.isfinite(ln)
    top = float(ln[finite].max()) if finite.any() else 0.0
    scale = max_len / top if top > 0 else 0.0
    v = np.where(finite[:, None], vec * scale, 0.0)
    tip = origin + v
    out = np.empty((len(origin), 6, 2))
    out[:, 0], out[:, 1] = origin, tip
    for j, ang in ((2, 2.6), (4, -2.6)):
        c, s = math.cos(ang), math.sin(ang)
        barb = np.stack([v[:, 0] * c - v[:, 1] * s, v[:, 0] * s + v[:, 1] * c], axis=1) * head
        out[:, j], out[:, j + 1] = tip, tip + barb
    out[~finite] = np.nan
    return np.ascontiguousarray(out.reshape(-1, 2), dtype=np.float32)


def path_polylines(frames: np.ndarray, lo: int, hi: int, n_paths: int) -> np.ndarray:
    """Per-point paths through frames[lo..hi] ([S, N, 2]) for the first ``n_paths`` points, as one
    array for ``connect="finite"``: [(hi−lo+2)·P, 2] with a NaN row after each path."""
    lo, hi = min(lo, hi), max(lo, hi)
    P = min(n_paths, frames.shape[1])
    seg = frames[lo : hi + 1, :P, :2]  # [L, P, 2]
    L = seg.shape[0]
    out = np.full((P, L + 1, 2), np.nan, dtype=np.float32)
    out[:, :L] = np.swapaxes(seg, 0, 1)
    return out.reshape(-1, 2)
