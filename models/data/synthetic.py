"""Generated data sets: the Swiss roll, the binary heartbeat and dead leaves (models/README.md,
**Presets and data sets**). Each generator takes a generator (torch or numpy) and returns raw values.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .dataset import _positive_int, numpy_rng

__all__ = ["SWISSROLL_THETA", "HEARTBEAT_LENGTH", "HEARTBEAT_PERIOD", "swiss_roll", "heartbeat", "dead_leaves"]

SWISSROLL_THETA = (1.5 * math.pi, 4.5 * math.pi)
HEARTBEAT_LENGTH = 20
HEARTBEAT_PERIOD = 5
DEADLEAVES_R_MIN = 1.0
DEADLEAVES_R_MAX = 32.0


def swiss_roll(n: int, generator, noise: float = 0.0) -> np.ndarray:
    """Raw Swiss-roll points, float64 [n, 2]: θ ~ U(1.5π, 4.5π), (θ·cos θ, θ·sin θ) (the (x, z) plane
    of scikit-learn's make_swiss_roll), plus noise·N(0, I) when noise > 0 (the paper's §3.1; models/README.md, **Presets and data sets**)."""
    rng = numpy_rng(generator)
    theta = rng.uniform(*SWISSROLL_THETA, size=n)
    x = np.stack([theta * np.cos(theta), theta * np.sin(theta)], axis=1)
    if noise:
        x += noise * rng.standard_normal((n, 2))
    return x


def heartbeat(n: int, generator) -> np.ndarray:
    """Binary heartbeat sequences, float32 [n, 20] in {0, 1}: a 1 every 5th bin, the phase uniform over
    the first 5 bins, so exactly 5 equiprobable sequences with 4 ones each (the paper's App. D.1.2; models/README.md, **Presets and data sets**)."""
    rng = numpy_rng(generator)
    phase = rng.integers(0, HEARTBEAT_PERIOD, size=n)
    x = np.zeros((n, HEARTBEAT_LENGTH), dtype=np.float32)
    cols = phase[:, None] + HEARTBEAT_PERIOD * np.arange(HEARTBEAT_LENGTH // HEARTBEAT_PERIOD)[None, :]
    x[np.arange(n)[:, None], cols] = 1.0
    return x


def _dead_leaves_radii(n: int, rng: np.random.Generator, r_min: float, r_max: float, span: float) -> np.ndarray:
    """Radii of the disks that can touch an image, float64 [n].

    Disks have radius density ∝ r^−3 on [r_min, r_max] and centres uniform over the image grown by
    r_max. A disk of radius r can cover a pixel centre only if its centre lies in the square grown by
    r around the pixel-centre grid, of side span + 2r (span = size − 1). Conditioned on that, the
    radius density is ∝ r^−3·(span + 2r)² = span²·r^−3 + 4·span·r^−2 + 4·r^−1: a mixture of three
    power laws, each sampled by its inverse CDF. Disks that cannot touch the image paint nothing, so
    skipping them leaves the image distribution unchanged.
    """
    a, b = r_min, r_max
    w = np.array([span * span * (a**-2 - b**-2) / 2, 4 * span * (1 / a - 1 / b), 4 * math.log(b / a)])
    comp = rng.choice(3, size=n, p=w / w.sum())
    u = rng.random(n)
    r = np.empty(n)
    m = comp == 0
    r[m] = (a**-2 - u[m] * (a**-2 - b**-2)) ** -0.5
    m = comp == 1
    r[m] = 1 / (1 / a - u[m] * (1 / a - 1 / b))
    m = comp == 2
    r[m] = a * (b / a) ** u[m]
    return r


def _dead_leaves_render(
    n: int,
    size: int,
    rng: np.random.Generator,
    r_min: float = DEADLEAVES_R_MIN,
    r_max: float = DEADLEAVES_R_MAX,
    record: list | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front-to-back dead leaves, all images at once.

    Returns (first [n, size, size] int32: index of the first disk covering each pixel,
    intensity [n_disks] float64 in [0, 1), and the uint8 images). Disks are drawn in rounds of m per
    unfinished image; disks whose bounding box holds no pixel still uncovered at the start of the
    round are dropped (a summed-area table tells), the others are cut into row segments (exact chords
    through pixel centres), segments lying wholly on covered pixels are dropped (per-row prefix
    sums), and the rest are expanded to pixels and np.minimum.at keeps, per pixel, the
    earliest disk. Disk indices increase with draw order within every image, so the minimum is the
    front-most disk. ``record`` (tests only) receives, per round, (image, r, cx, cy, disk index or
    −1 if dropped) for every disk drawn.
    """
    H = W = size
    P = H * W
    big = np.iinfo(np.int32).max
    first = np.full(n * P, big, dtype=np.int32)
    intensities: list[np.ndarray] = []
    n_disks = 0
    active = np.arange(n)
    m = max(32, P // 32)  # disks per unfinished image per round
    span = size - 1.0
    uncovered = None  # [len(active), H, W] bool, pixels not yet covered
    while active.size:
        na = active.size
        r = _dead_leaves_radii(na * m, rng, r_min, r_max, span)
        cx = rng.random(na * m) * (span + 2 * r) + 0.5 - r
        cy = rng.random(na * m) * (span + 2 * r) + 0.5 - r
        pos = np.repeat(np.arange(na), m)  # position of each disk's image in `active`
        # pixels uncovered at the start of this round: per-row prefix sums and their 2-D integral
        if uncovered is None:
            uncovered = np.ones((na, H, W), dtype=bool)
        row_cum = np.zeros((na, H + 1, W + 1), dtype=np.int32)
        np.cumsum(uncovered, axis=2, out=row_cum[:, 1:, 1:])
        box_cum = np.cumsum(row_cum, axis=1, dtype=np.int32).reshape(-1)  # [na, H+1, W+1]
        row_cum = row_cum.reshape(-1)
        # bounding box of the pixel centres each disk can cover; drop disks with none uncovered
        y0 = np.maximum(np.ceil(cy - r - 0.5), 0).astype(np.int64)
        y1 = np.minimum(np.floor(cy + r - 0.5), H - 1).astype(np.int64)
        x0 = np.maximum(np.ceil(cx - r - 0.5), 0).astype(np.int64)
        x1 = np.minimum(np.floor(cx + r - 0.5), W - 1).astype(np.int64)
        ok = (y1 >= y0) & (x1 >= x0)
        y0c, y1c, x0c, x1c = (np.where(ok, v, 0) for v in (y0, y1, x0, x1))
        b = pos * ((H + 1) * (W + 1))
        n_box = (
            box_cum[b + (y1c + 1) * (W + 1) + x1c + 1] - box_cum[b + y0c * (W + 1) + x1c + 1]
            - box_cum[b + (y1c + 1) * (W + 1) + x0c] + box_cum[b + y0c * (W + 1) + x0c]
        )
        live = np.flatnonzero(ok & (n_box > 0))
        # rows y with |y + 0.5 − cy| <= r, clipped to the image
        h = y1[live] - y0[live] + 1
        d = np.repeat(live, h)  # disk of each row segment
        y = y0[d] + (np.arange(d.size) - np.repeat(np.cumsum(h) - h, h))
        dy = y + 0.5 - cy[d]
        half = np.sqrt(np.maximum(r[d] ** 2 - dy * dy, 0.0))
        cxd = cx[d]
        xl = np.maximum(np.ceil(cxd - half - 0.5), 0).astype(np.int64)
        xr = np.minimum(np.floor(cxd + half - 0.5), W - 1).astype(np.int64)
        # drop row segments with no uncovered pixel
        base = pos[d] * ((H + 1) * (W + 1)) + (y + 1) * (W + 1)
        nonempty = xr >= xl
        n_unc = row_cum[base + np.where(nonempty, xr + 1, 0)] - row_cum[base + np.where(nonempty, xl, 0)]
        s = np.flatnonzero(n_unc > 0)
        ds = d[s]
        kept = np.zeros(na * m, dtype=bool)
        kept[ds] = True
        disk_id = np.cumsum(kept, dtype=np.int64) - 1 + n_disks
        n_kept = int(kept.sum())
        intensities.append(rng.random(n_kept))
        if record is not None:
            record.append((active[pos], r, cx, cy, np.where(kept, disk_id, -1)))
        n_disks += n_kept
        # expand surviving segments to pixels
        length = xr[s] - xl[s] + 1
        offset = np.cumsum(length) - length
        pid = np.repeat(active[pos[ds]] * P + y[s] * W + xl[s] - offset, length) + np.arange(int(length.sum()))
        np.minimum.at(first, pid, np.repeat(disk_id[ds].astype(np.int32), length))
        uncovered = first.reshape(n, H, W)[active] == big  # [na, H, W]
        unfinished = uncovered.any(axis=(1, 2))
        active, uncovered = active[unfinished], uncovered[unfinished]
    intensity = np.concatenate(intensities) if intensities else np.zeros(0)
    q = np.minimum(np.floor(intensity * 256), 255).astype(np.uint8)
    first = first.reshape(n, H, W)
    return first, intensity, q[first]


def dead_leaves(
    n: int,
    size: int = 32,
    generator=None,
    *,
    seed: int | None = None,
    r_min: float = DEADLEAVES_R_MIN,
    r_max: float = DEADLEAVES_R_MAX,
) -> np.ndarray:
    """Dead-leaves images, uint8 [n, size, size] (models/README.md, **Presets and data sets**).

    Grey occluding disks, radius density ∝ r^−3 on [r_min, r_max] px, intensity U(0, 1), centres
    uniform over the image grown by r_max, laid front to back until every pixel is covered (a pixel is
    covered when its centre lies in a disk), then quantized to 8 bits (⌊256·I⌋). Randomness from
    ``generator`` (torch or numpy Generator, or int) or ``seed``: exactly one must be given.
    """
    if (generator is None) == (seed is None):
        raise ValueError("dead_leaves needs exactly one of generator or seed")
    n = _positive_int(n, "n")
    size = _positive_int(size, "size")
    if not 0 < r_min <= r_max:
        raise ValueError(f"need 0 < r_min <= r_max, got {r_min}, {r_max}")
    rng = numpy_rng(generator if generator is not None else seed)
    chunk = max(1, (1 << 22) // (size * size))  # bounds the renderer's memory to ~100 MB
    parts = [_dead_leaves_render(min(chunk, n - i), size, rng, r_min, r_max)[2] for i in range(0, n, chunk)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@functools.lru_cache(maxsize=8)
def _dead_leaves_cached(n: int, size: int, seed: int) -> np.ndarray:
    x = dead_leaves(n, size, seed=seed)
    x.flags.writeable = False
    return x
