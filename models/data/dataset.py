"""Data sets: the :class:`DataSet` every preset and own file becomes, and its value pipeline.

Every data set is a :class:`DataSet`: it draws normalized float32 training batches with an explicit
``torch.Generator`` and returns a fixed held-out set, both as tensors ``[n, *example_shape]``.

Value pipeline (models/README.md, **Units and the null model**; the paper's §2.4 and App. B)::

    raw u (integers 0..levels-1)  --dequantize-->  v = (u + U(0, 1)) / levels  --Normalization-->  z
    raw v (continuous points)                                                   --Normalization-->  z
    raw {0, 1} (binary)                                                          (identity)     -->  z

* Dequantization is in raw units (one whole quantization bin, the width the paper intends), applied to
  training batches afresh every time and to the held-out set with a FIXED seed, so that
  :meth:`DataSet.heldout` is identical on every call.
* Normalization is one scalar z-score (``std``), estimated on the full training set; for images the
  mean and variance of v are computed exactly from the integer data (E[U] = 1/2, Var[U] = 1/12), so
  they do not depend on a noise draw. Points are centred per dimension and divided by one scalar so
  the per-dimension variance averages 1.

Randomness: library functions never seed globally. A ``torch.Generator`` is turned into a numpy
``Generator`` by drawing one seed from it (:func:`numpy_rng`); numpy does the actual sampling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..config import KINDS, UNITS, Kind
from ..files.errors import DataError

__all__ = ["Kind", "KINDS", "UNITS", "MIN_EXAMPLES", "HELDOUT_FRACTION", "PATCHES_N_HELDOUT", "DataError",
           "Normalization", "DataSet", "numpy_rng"]

#: Own data needs at least this many examples (rows, images).
MIN_EXAMPLES = 10
#: Fraction of own data held out (at least one example), chosen by a fixed-seed permutation.
HELDOUT_FRACTION = 0.1
#: Held-out patches of a patch data set (bark, one own image).
PATCHES_N_HELDOUT = 1000

# Fixed seeds. Each has one purpose, so changing how one thing is drawn never shifts another.
_SEED_SPLIT = 20150101            # train / held-out permutation of finite data sets
_SEED_HELDOUT_NOISE = 20150102    # dequantization noise of every held-out set
_SEED_HELDOUT_PATCHES = 20150103  # positions of held-out patches (bark, own image)


# ---------------------------------------------------------------------------------------------------
# randomness


def numpy_rng(generator: torch.Generator | np.random.Generator | int) -> np.random.Generator:
    """A numpy Generator from a ``torch.Generator`` (one seed drawn from it), a numpy Generator
    (returned as is) or an integer seed. Never touches global random state."""
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        return np.random.default_rng(seed)
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"expected a torch.Generator, numpy Generator or int seed, got {type(generator).__name__}")


# ---------------------------------------------------------------------------------------------------
# normalization


@dataclass(frozen=True)
class Normalization:
    """z = (v − mean) / std, where v is the raw value after dequantization and division by ``levels``.

    mean: one float, or (points only) one float per dimension, broadcast along the last axis.
    std: one scalar for every dimension, pixel and channel.
    levels: number of quantization levels of the raw integers (17 for digits, 256 for 8-bit images),
        or None for continuous and binary data. Binary data: mean 0, std 1 (the identity).

    Per example, log p(v) = log p(z) − D·log(std); a K in nats of z becomes one of v by subtracting
    D·log(std) (D = number of values per example).
    """

    mean: float | tuple[float, ...]
    std: float
    levels: float | None = None

    def __post_init__(self):
        if isinstance(self.mean, (list, tuple, np.ndarray)):
            mean = tuple(float(m) for m in np.asarray(self.mean, dtype=np.float64).ravel())
            if not mean:
                raise ValueError("Normalization.mean must not be empty")
        else:
            mean = float(self.mean)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", float(self.std))
        if not all(math.isfinite(m) for m in (mean if isinstance(mean, tuple) else (mean,))):
            raise ValueError(f"Normalization.mean must be finite, got {self.mean}")
        if not (math.isfinite(self.std) and self.std > 0):
            raise ValueError(f"Normalization.std must be finite and > 0, got {self.std}")
        if self.levels is not None:
            levels = float(self.levels)
            if not (math.isfinite(levels) and levels >= 2):
                raise ValueError(f"Normalization.levels must be None or >= 2, got {self.levels}")
            object.__setattr__(self, "levels", levels)

    @staticmethod
    def identity() -> "Normalization":
        return Normalization(0.0, 1.0, None)

    @property
    def is_identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0

    def _mean_like(self, x):
        if isinstance(self.mean, float):
            return self.mean
        if isinstance(x, torch.Tensor):
            return torch.tensor(self.mean, dtype=x.dtype, device=x.device)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        return np.asarray(self.mean, dtype=dtype)

    def forward(self, v):
        """Raw (already dequantized and divided) values → z. Works on numpy arrays and tensors and
        keeps a floating dtype (float32 stays float32)."""
        if not isinstance(v, torch.Tensor):
            v = np.asarray(v)
        return (v - self._mean_like(v)) / self.std

    def inverse(self, z):
        """z → raw values v (images: roughly [0, 1])."""
        if not isinstance(z, torch.Tensor):
            z = np.asarray(z)
        return z * self.std + self._mean_like(z)

    def to_dict(self) -> dict:
        mean = list(self.mean) if isinstance(self.mean, tuple) else self.mean
        return {"mean": mean, "std": self.std, "levels": self.levels}

    @staticmethod
    def from_dict(d: dict) -> "Normalization":
        if not isinstance(d, dict):
            raise ValueError(f"normalization must be a dict, got {type(d).__name__}")
        missing = {"mean", "std", "levels"} - set(d)
        unknown = set(d) - {"mean", "std", "levels"}
        if missing or unknown:
            raise ValueError(
                "normalization dict needs exactly the keys mean, std, levels"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(unknown)}" if unknown else "")
            )
        return Normalization(d["mean"], d["std"], d["levels"])


def _chunks(a: np.ndarray, max_elements: int = 1 << 22):
    """Views of ``a`` along axis 0 with at most ~max_elements values each (bounded temporaries)."""
    per = max(1, a[0].size if a.ndim > 1 and len(a) else 1)
    step = max(1, max_elements // per)
    for i in range(0, len(a), step):
        yield a[i : i + step]


def _moments(a: np.ndarray) -> tuple[float, float]:
    """Mean and variance over all values of ``a`` in float64, in bounded memory."""
    n = a.size
    s = s2 = 0.0
    for c in _chunks(a):
        c = c.astype(np.float64)
        s += float(c.sum())
        s2 += float(np.square(c).sum())
    mean = s / n
    return mean, max(s2 / n - mean * mean, 0.0)


def _discrete_norm(u_train: np.ndarray, levels: float, what: str) -> Normalization:
    """Exact z-score of v = (u + U(0,1)) / levels over the training integers u."""
    mean_u, var_u = _moments(u_train)
    mean = (mean_u + 0.5) / levels
    std = math.sqrt(var_u + 1.0 / 12.0) / levels
    return Normalization(mean, std, levels)


def _continuous_norm(v_train: np.ndarray, what: str) -> Normalization:
    mean, var = _moments(v_train)
    if not var > 0:
        raise DataError(f"{what}: every value is the same ({mean:g}); there is nothing to model")
    return Normalization(mean, math.sqrt(var), None)


def _points_norm(x: np.ndarray, what: str) -> Normalization:
    """Centre each dimension; one scalar so the per-dimension variance averages 1. x: [N, D]."""
    x = x.astype(np.float64)
    var = float(x.var(axis=0).mean())
    if not var > 0:
        raise DataError(f"{what}: every point is the same; there is nothing to model")
    return Normalization(tuple(x.mean(axis=0)), math.sqrt(var), None)


def _dequantize(u: np.ndarray, rng: np.random.Generator, levels: float | None) -> np.ndarray:
    """(u + U(0, 1)) / levels as float32, or u as float32 when levels is None. u: [n, ...]."""
    if levels is None:
        return np.asarray(u, dtype=np.float32)
    v = u.astype(np.float32)
    v += rng.random(u.shape, dtype=np.float32)
    v /= np.float32(levels)
    return v


# ---------------------------------------------------------------------------------------------------
# the data set


@dataclass(eq=False)
class DataSet:
    """A data set ready for training: normalized float32 batches and a fixed held-out set.

    kind: "points" (example_shape (D,)), "binary" ((D,), values {0, 1}) or "images" ((C, H, W)).
    unit: the unit K is reported in ("bits/point", "bits/seq", "bits/pixel"); for images divide the
        per-example bits (all channels summed) by :attr:`units_per_example` = H·W.
    n_train: number of distinct training examples; 0 means unlimited (a generator draws fresh
        examples every batch: swissroll, heartbeat). For patch data sets: the number of distinct
        patch positions.
    n_heldout: size of the fixed held-out set.
    source: human-readable provenance.
    """

    name: str
    kind: Kind
    unit: str
    example_shape: tuple[int, ...]
    norm: Normalization
    channels: int
    n_train: int
    n_heldout: int
    source: str
    # draw_train(n, rng) → raw values v, float32 [n, *example_shape] (dequantized where discrete)
    _draw_train: Callable[[int, np.random.Generator], np.ndarray] = field(repr=False)
    # draw_heldout(n) → the first n held-out raw values v, float32 [n, *example_shape], deterministic
    _draw_heldout: Callable[[int], np.ndarray] = field(repr=False)
    # images only: raw range mapped to [0, 1] by display()
    _display_range: tuple[float, float] = field(default=(0.0, 1.0), repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        self.example_shape = tuple(int(s) for s in self.example_shape)

    @property
    def dims(self) -> int:
        """Values per example: D, or C·H·W."""
        return int(np.prod(self.example_shape))

    @property
    def units_per_example(self) -> int:
        """What per-example bits are divided by to give :attr:`unit`: H·W for images, else 1."""
        if self.kind == "images":
            return self.example_shape[1] * self.example_shape[2]
        return 1

    @property
    def unlimited(self) -> bool:
        """True when every training batch is freshly generated (n_train == 0)."""
        return self.n_train == 0

    def sample_train(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A training batch: float32 [n, *example_shape], normalized; images freshly dequantized,
        generated data freshly generated, patch data sets random patches."""
        n = _positive_int(n, "n")
        v = self._draw_train(n, numpy_rng(generator))
        return _to_tensor(self.norm.forward(v))

    def heldout(self, n: int | None = None) -> torch.Tensor:
        """The fixed held-out set, or its first min(n, n_heldout) examples (asking for more than there
        are returns them all): float32 [n, *example_shape], normalized, dequantized with a fixed seed,
        so repeated calls return identical values and heldout(k) == heldout()[:k]."""
        n = self.n_heldout if n is None else min(_positive_int(n, "n"), self.n_heldout)
        return _to_tensor(self.norm.forward(self._draw_heldout(n)))

    def display(self, z) -> np.ndarray:
        """Inverse normalization for viewing, float32, same shape as z: images → [0, 1] (clipped),
        points → raw coordinates, binary → unchanged."""
        if isinstance(z, torch.Tensor):
            z = z.detach().to("cpu", torch.float32).numpy()
        v = self.norm.inverse(np.asarray(z, dtype=np.float32))
        if self.kind == "images":
            lo, hi = self._display_range
            if (lo, hi) != (0.0, 1.0):
                v = (v - lo) / (hi - lo)
            v = np.clip(v, 0.0, 1.0)
        return np.ascontiguousarray(v, dtype=np.float32)


def _positive_int(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def _to_tensor(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))


def _finite_dataset(
    *,
    name: str,
    kind: Kind,
    train: np.ndarray,
    heldout: np.ndarray,
    levels: float | None,
    norm: Normalization,
    source: str,
    display_range: tuple[float, float] = (0.0, 1.0),
) -> DataSet:
    """A data set from fixed arrays: train [N, *shape], heldout [M, *shape] (integers if levels)."""
    for a in (train, heldout):
        a.flags.writeable = False

    def draw_train(n: int, rng: np.random.Generator) -> np.ndarray:
        return _dequantize(train[rng.integers(0, len(train), n)], rng, levels)

    def draw_heldout(n: int) -> np.ndarray:
        return _dequantize(heldout[:n], np.random.default_rng(_SEED_HELDOUT_NOISE), levels)

    shape = train.shape[1:]
    return DataSet(
        name=name,
        kind=kind,
        unit=UNITS[kind],
        example_shape=shape,
        norm=norm,
        channels=shape[0] if kind == "images" else 1,
        n_train=len(train),
        n_heldout=len(heldout),
        source=source,
        _draw_train=draw_train,
        _draw_heldout=draw_heldout,
        _display_range=display_range,
    )


def _split(n: int, n_heldout: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-seed permutation → (train indices (sorted), held-out indices (in shuffled order, so that
    any prefix heldout(k) is a random subset even when the file is sorted by class))."""
    perm = np.random.default_rng(_SEED_SPLIT).permutation(n)
    return np.sort(perm[n_heldout:]), perm[:n_heldout]


def _patch_dataset(
    *,
    name: str,
    images: Sequence[np.ndarray],
    levels: float | None,
    patch: int,
    source: str,
    what: str,
) -> DataSet:
    """Random patch×patch training patches from large images ([C, H, W] each, same C).

    The bottom max(H // 8, patch) rows of each image are held out: the held-out set is a fixed set of
    PATCHES_N_HELDOUT patches from those strips (images taken in turn, positions from a fixed seed);
    training patches come from the rows above. n_train counts the distinct training positions.
    """
    regions = []
    for k, img in enumerate(images):
        C, H, W = img.shape
        hh = max(H // 8, patch)
        if H - hh < patch or W < patch:
            raise DataError(
                f"{what}: image{'' if len(images) == 1 else f' {k}'} is {W}×{H} pixels; {patch}×{patch} patches "
                f"need at least {patch}×{2 * patch} (the bottom rows are held out)"
            )
        regions.append((img, H - hh))
    train_positions = [(top - patch + 1) * (img.shape[2] - patch + 1) for img, top in regions]
    weights = np.asarray(train_positions, dtype=np.float64) / sum(train_positions)
    ar = np.arange(patch)

    def cut(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        rows = (ys[:, None] + ar)[:, :, None]  # [n, p, 1]
        cols = (xs[:, None] + ar)[:, None, :]  # [n, 1, p]
        return np.moveaxis(img[:, rows, cols], 0, 1)  # [n, C, p, p]

    held_rng = np.random.default_rng(_SEED_HELDOUT_PATCHES)
    held = np.empty((PATCHES_N_HELDOUT, images[0].shape[0], patch, patch), dtype=images[0].dtype)
    for k, (img, top) in enumerate(regions):
        idx = np.arange(k, PATCHES_N_HELDOUT, len(regions))
        ys = held_rng.integers(top, img.shape[1] - patch + 1, size=idx.size)
        xs = held_rng.integers(0, img.shape[2] - patch + 1, size=idx.size)
        held[idx] = cut(img, ys, xs)
    held.flags.writeable = False

    # normalization over every training-region pixel
    train_pixels = np.concatenate([img[:, :top].reshape(-1) for img, top in regions])
    if levels is not None:
        norm = _discrete_norm(train_pixels, levels, what)
    else:
        norm = _continuous_norm(train_pixels, what)
    del train_pixels

    def draw_train(n: int, rng: np.random.Generator) -> np.ndarray:
        which = rng.choice(len(regions), size=n, p=weights)
        out = np.empty((n, images[0].shape[0], patch, patch), dtype=images[0].dtype)
        for k, (img, top) in enumerate(regions):
            idx = np.flatnonzero(which == k)
            if idx.size:
                ys = rng.integers(0, top - patch + 1, size=idx.size)
                xs = rng.integers(0, img.shape[2] - patch + 1, size=idx.size)
                out[idx] = cut(img, ys, xs)
        return _dequantize(out, rng, levels)

    def draw_heldout(n: int) -> np.ndarray:
        return _dequantize(held[:n], np.random.default_rng(_SEED_HELDOUT_NOISE), levels)

    C = images[0].shape[0]
    return DataSet(
        name=name,
        kind="images",
        unit=UNITS["images"],
        example_shape=(C, patch, patch),
        norm=norm,
        channels=C,
        n_train=int(sum(train_positions)),
        n_heldout=PATCHES_N_HELDOUT,
        source=source,
        _draw_train=draw_train,
        _draw_heldout=draw_heldout,
    )
