"""Tests for models/data/synthetic.py: the Swiss roll, the heartbeat and dead leaves."""
import math

import numpy as np
import torch
import pytest

from models import data as D


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# generators


def test_swiss_roll_lies_on_the_curve():
    x = D.swiss_roll(5000, gen(1))
    assert x.shape == (5000, 2)
    theta = np.hypot(x[:, 0], x[:, 1])  # |(θ cos θ, θ sin θ)| = θ
    lo, hi = D.SWISSROLL_THETA
    assert theta.min() >= lo - 1e-9 and theta.max() <= hi + 1e-9
    assert theta.min() < lo + 0.05 and theta.max() > hi - 0.05  # the whole range is used
    np.testing.assert_allclose(x[:, 0], theta * np.cos(theta), atol=1e-9)
    np.testing.assert_allclose(x[:, 1], theta * np.sin(theta), atol=1e-9)
    # reproducible from the generator, and noise moves points off the curve
    np.testing.assert_array_equal(x, D.swiss_roll(5000, gen(1)))
    y = D.swiss_roll(5000, gen(1), noise=0.5)
    r = np.hypot(y[:, 0], y[:, 1])
    assert np.abs(y[:, 0] - r * np.cos(r)).max() > 0.1


def test_swissroll_normalization_is_exact():
    for noise in (0.0, 0.7):
        norm = D.registry._swissroll_norm(noise)
        x = D.swiss_roll(400_000, 5, noise)
        np.testing.assert_allclose(norm.mean, x.mean(axis=0), atol=0.05)
        assert norm.std == pytest.approx(math.sqrt(x.var(axis=0).mean()), rel=2e-3)
    assert D.registry._swissroll_norm(0.0).mean == pytest.approx((2.0, 2 / (3 * math.pi)))


def test_heartbeat_has_exactly_five_sequences():
    x = D.heartbeat(2000, gen(2))
    assert x.shape == (2000, 20) and x.dtype == np.float32
    rows = {tuple(r) for r in x.astype(int)}
    assert len(rows) == 5
    for r in rows:
        ones = np.flatnonzero(r)
        assert len(ones) == 4 and ones[0] < 5 and np.all(np.diff(ones) == 5)
    phases = np.argmax(x, axis=1)
    assert np.all(np.bincount(phases, minlength=5) > 300)  # roughly uniform phase


def test_dead_leaves_shape_coverage_and_intensities():
    x = D.dead_leaves(20, 32, gen(3))
    assert x.shape == (20, 32, 32) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, D.dead_leaves(20, 32, gen(3)))
    assert not np.array_equal(x, D.dead_leaves(20, 32, gen(4)))
    assert all(len(np.unique(im)) >= 4 for im in x)
    assert x.std() > 40  # intensities U(0, 1) spread over 0..255
    first, intensity, img = D.synthetic._dead_leaves_render(20, 32, np.random.default_rng(3))
    assert (first >= 0).all() and (first < len(intensity)).all()  # every pixel covered by a disk
    np.testing.assert_array_equal(img, np.minimum(np.floor(intensity * 256), 255).astype(np.uint8)[first])
    assert D.dead_leaves(3, 17, seed=1).shape == (3, 17, 17)
    with pytest.raises(ValueError):
        D.dead_leaves(3, 17)


def test_dead_leaves_is_front_to_back():
    """Brute force: paint every recorded disk in draw order, first one wins; compare with the fast path."""
    record: list = []
    first, _, _ = D.synthetic._dead_leaves_render(4, 24, np.random.default_rng(7), record=record)
    img_id, r, cx, cy, disk = (np.concatenate([rec[j] for rec in record]) for j in range(5))
    yc, xc = np.mgrid[0:24, 0:24] + 0.5
    for i in range(4):
        sel = img_id == i
        best = np.full((24, 24), -2)
        for rj, xj, yj, kj in zip(r[sel], cx[sel], cy[sel], disk[sel]):
            cover = ((xc - xj) ** 2 + (yc - yj) ** 2 <= rj**2) & (best == -2)
            best[cover] = kj
        np.testing.assert_array_equal(best, first[i])


def test_dead_leaves_radius_law():
    span, a, b = 31.0, 1.0, 32.0
    r = D.synthetic._dead_leaves_radii(200_000, np.random.default_rng(0), a, b, span)
    assert r.min() >= a and r.max() <= b
    # radii of disks that can touch the image: density ∝ r^-3 (span + 2r)^2; compare CDFs on a grid
    grid = np.linspace(a, b, 20001)
    dens = grid**-3 * (span + 2 * grid) ** 2
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    cdf /= cdf[-1]
    emp = np.searchsorted(np.sort(r), grid) / r.size
    assert np.abs(emp - cdf).max() < 0.01
    # undo the conditioning: weights 1/(span + 2r)^2 give the r^-3 law on [1, 32]
    w = (span + 2 * r) ** -2.0
    frac_small = w[r < 2].sum() / w.sum()
    assert frac_small == pytest.approx((1 - 1 / 4) / (1 - 1 / 1024), abs=0.01)
    # and the disks that end up in the images: many more small than large
    record: list = []
    D.synthetic._dead_leaves_render(10, 32, np.random.default_rng(1), record=record)
    kept_r = np.concatenate([rec[1][rec[4] >= 0] for rec in record])
    assert (kept_r < 2).sum() > 5 * (kept_r > 8).sum() > 0
