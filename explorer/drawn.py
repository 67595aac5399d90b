"""A 2-D data set painted by hand on the plane ("Draw" mode), with the interface of
:class:`models.data.DataSet` so that :class:`models.training.Trainer` trains on it unchanged.

Points are raw plane coordinates ``[N, 2]``. As for the user's own point files (models/README.md, Presets
and data sets), each dimension is centred and one scalar makes the per-dimension variance average 1; 10 % is
held out with a fixed seed.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from models.data import Normalization

HELDOUT_FRACTION = 0.1
MIN_POINTS = 20
_SEED_SPLIT = 20150101


def spray(centre: tuple[float, float], radius: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points scattered around ``centre`` like an airbrush: Gaussian with σ = radius / 2, so
    most land inside the brush circle. float32 [n, 2]."""
    return (np.asarray(centre, dtype=np.float64)[None] + rng.normal(0.0, radius / 2, (int(n), 2))).astype(np.float32)


class DrawnDataSet:
    """Hand-painted points as a data set. ``points``: float [N, 2], N ≥ 20."""

    kind = "points"
    unit = "bits/point"
    channels = 1

    def __init__(self, points: np.ndarray, name: str = "drawn"):
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"drawn points must have shape [N, 2], got {pts.shape}")
        if len(pts) < MIN_POINTS:
            raise ValueError(f"paint at least {MIN_POINTS} points to train on (have {len(pts)})")
        if not np.all(np.isfinite(pts)):
            raise ValueError("drawn points must be finite")
        self.name = name
        self.example_shape = (2,)
        n_held = max(1, int(round(HELDOUT_FRACTION * len(pts))))
        perm = np.random.default_rng(_SEED_SPLIT).permutation(len(pts))
        self._held = pts[perm[:n_held]]
        self._train = pts[perm[n_held:]]
        x = self._train.astype(np.float64)
        var = float(x.var(axis=0).mean())
        if not var > 0:
            raise ValueError("every drawn point is the same; paint a spread of points")
        self.norm = Normalization(tuple(x.mean(axis=0)), math.sqrt(var), None)
        self.n_train = len(self._train)
        self.n_heldout = n_held
        self.source = f"drawn by hand: {len(pts)} points"

    @property
    def points(self) -> np.ndarray:
        """All painted points, raw [N, 2]."""
        return np.concatenate([self._train, self._held])

    @property
    def dims(self) -> int:
        return 2

    @property
    def units_per_example(self) -> int:
        return 1

    @property
    def unlimited(self) -> bool:
        return False

    def sample_train(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A batch drawn with replacement from the painted training points: float32 [n, 2], normalised."""
        idx = torch.randint(0, self.n_train, (int(n),), generator=generator)
        return torch.from_numpy(np.ascontiguousarray(self.norm.forward(self._train[idx.numpy()]), dtype=np.float32))

    def heldout(self, n: int | None = None) -> torch.Tensor:
        """The fixed held-out points (or the first n): float32 [n, 2], normalised."""
        n = self.n_heldout if n is None else int(n)
        if not 1 <= n <= self.n_heldout:
            raise ValueError(f"{self.name}: only {self.n_heldout} held-out points, asked for {n}")
        return torch.from_numpy(np.ascontiguousarray(self.norm.forward(self._held[:n]), dtype=np.float32))

    def display(self, z) -> np.ndarray:
        if isinstance(z, torch.Tensor):
            z = z.detach().to("cpu", torch.float32).numpy()
        return np.ascontiguousarray(self.norm.inverse(np.asarray(z, dtype=np.float32)), dtype=np.float32)
