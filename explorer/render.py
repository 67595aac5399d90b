"""Array helpers that turn cached states into what the plot items draw (numpy only, no widgets).
All outputs are C-contiguous float32."""
from __future__ import annotations

import math

import numpy as np

from models.images import tile


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding n tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def tile_images(x: np.ndarray, gap: int = 1, fill: float = 1.0) -> np.ndarray:
    """Images [N, C, H, W] in [0, 1] → one near-square mosaic (:func:`models.images.tile`), row-major:
    [rows·(H+gap)−gap, cols·(W+gap)−gap] for C = 1, with a trailing RGB axis for C = 3 (other C: the
    first channel) — the layout pyqtgraph's ImageItem draws."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    img = tile(x, ncol=grid_shape(x.shape[0])[1], gap=gap, fill=fill)  # [C, H', W']
    return np.ascontiguousarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))


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
