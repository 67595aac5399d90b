"""Tests for models/data.py: generators, presets, bundled files, CIFAR reader, own files, images."""
from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from models import data as D
from models.data import DataError, Normalization
from models.paths import DATA_DIR


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


# ------------------------------------------------------------------------------------------------
# presets


@pytest.mark.parametrize("name", ["swissroll", "heartbeat", "digits", "mnist5k", "deadleaves", "bark"])
def test_preset_shapes_normalization_and_determinism(name):
    ds = D.load_preset(name)
    expected = {
        "swissroll": ("points", (2,), "bits/point", 10_000),
        "heartbeat": ("binary", (20,), "bits/seq", 1000),
        "digits": ("images", (1, 8, 8), "bits/pixel", 297),
        "mnist5k": ("images", (1, 28, 28), "bits/pixel", 500),
        "deadleaves": ("images", (1, 32, 32), "bits/pixel", 500),
        "bark": ("images", (1, 32, 32), "bits/pixel", 1000),
    }[name]
    assert (ds.kind, ds.example_shape, ds.unit, ds.n_heldout) == expected
    assert ds.name == name and ds.source
    x = ds.sample_train(3000, gen(0))
    assert x.shape == (3000, *ds.example_shape) and x.dtype == torch.float32
    assert torch.equal(x, ds.sample_train(3000, gen(0)))
    assert not torch.equal(x, ds.sample_train(3000, gen(1)))
    if ds.kind != "binary":
        assert abs(float(x.mean())) < 0.05 and abs(float(x.var()) - 1) < 0.06
    else:
        assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    h = ds.heldout()
    assert h.shape == (ds.n_heldout, *ds.example_shape) and h.dtype == torch.float32
    assert torch.equal(h, ds.heldout())
    assert torch.equal(ds.heldout(7), h[:7])
    assert torch.equal(D.load_preset(name).heldout(), h)  # a fresh load gives the same held-out set
    assert torch.equal(ds.heldout(ds.n_heldout + 1), h)  # at most n_heldout
    with pytest.raises(ValueError):
        ds.heldout(0)
    v = ds.display(x[:5])
    assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (5, *ds.example_shape)
    if ds.kind == "images":
        assert v.min() >= 0 and v.max() <= 1
        assert ds.units_per_example == ds.example_shape[1] * ds.example_shape[2]
        quarter = ds.norm.forward(torch.full((1, *ds.example_shape), 0.25))
        np.testing.assert_allclose(ds.display(quarter), 0.25, atol=1e-6)
    elif ds.kind == "binary":
        np.testing.assert_array_equal(v, x[:5].numpy())


def test_generated_presets_are_unlimited_and_finite_ones_counted():
    assert D.load_preset("swissroll").n_train == 0 and D.load_preset("swissroll").unlimited
    assert D.load_preset("heartbeat").n_train == 0
    assert D.load_preset("digits").n_train == 1797 - 297
    assert D.load_preset("mnist5k").n_train == 4500
    assert D.load_preset("deadleaves").n_train == 5000
    assert D.load_preset("bark").n_train == 3 * (512 - 64 - 32 + 1) * (512 - 32 + 1)


def test_swissroll_display_gives_raw_points_on_the_curve():
    ds = D.load_preset("swissroll")
    p = ds.display(ds.heldout(100))
    theta = np.hypot(p[:, 0], p[:, 1])
    np.testing.assert_allclose(p[:, 0], theta * np.cos(theta), atol=1e-3)


def test_dequantized_images_stay_in_their_bins():
    ds = D.load_preset("digits")
    v = ds.display(ds.heldout())  # v = (u + U) / 17
    u = np.floor(v * 17 + 1e-6)
    assert np.all((v * 17 - u) < 1 + 1e-5)
    raw = D.registry._read_bundled_h5("digits.h5")
    assert set(np.unique(u).astype(int)) <= set(range(17)) and raw.max() == 16
    assert ds.norm.levels == 17


def test_preset_options_and_errors():
    ds = D.load_preset("bark", image_size=16)
    assert ds.example_shape == (1, 16, 16) and ds.sample_train(4, gen()).shape == (4, 1, 16, 16)
    ds = D.load_preset("deadleaves", image_size=8)
    assert ds.example_shape == (1, 8, 8)
    noisy = D.load_preset("swissroll", swissroll_noise=0.5)
    assert noisy.norm.std > D.load_preset("swissroll").norm.std
    with pytest.raises(DataError, match="valid presets: swissroll, heartbeat"):
        D.load_preset("mnist")
    with pytest.raises(DataError, match="cifar_dir"):
        D.load_preset("cifar10")
    with pytest.raises(DataError, match="image_size"):
        D.load_preset("bark", image_size=1000)
    with pytest.raises(DataError, match="swissroll_noise"):
        D.load_preset("swissroll", swissroll_noise=-1)


def test_sampling_leaves_global_random_state_alone():
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    D.load_preset("digits").sample_train(10, gen(5))
    D.load_preset("swissroll").sample_train(10, gen(5))
    assert torch.equal(torch_state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])


def test_bundled_files():
    with h5py.File(DATA_DIR / "digits.h5") as f:
        assert f["images"].shape == (1797, 8, 8) and f["images"].dtype == np.uint8
        assert f["labels"].shape == (1797,) and int(f["images"][()].max()) == 16
    with h5py.File(DATA_DIR / "mnist5k.h5") as f:
        assert f["images"].shape == (5000, 28, 28) and f["images"].dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(f["labels"][()]), np.full(10, 500))
    for name in D.registry.TEXTURES:
        a = D.load_image(DATA_DIR / "textures" / f"{name}.png")
        assert a.shape == (1, 512, 512) and a.dtype == np.float32
    assert (DATA_DIR.parent / "LICENSES.md").is_file()


# ------------------------------------------------------------------------------------------------
# normalization


def test_normalization_round_trips():
    n = Normalization(0.3, 0.2, 256)
    v32 = np.linspace(0, 1, 11, dtype=np.float32)
    z = n.forward(v32)
    assert z.dtype == np.float32
    np.testing.assert_allclose(n.inverse(z), v32, atol=1e-6)
    t = torch.linspace(0, 1, 11)
    assert n.forward(t).dtype == torch.float32
    assert torch.allclose(n.inverse(n.forward(t)), t, atol=1e-6)
    p = Normalization((1.0, -2.0), 3.0, None)
    np.testing.assert_allclose(p.forward(np.array([[4.0, 1.0]])), [[1.0, 1.0]])
    assert torch.allclose(p.inverse(torch.tensor([[1.0, 1.0]])), torch.tensor([[4.0, 1.0]]))
    for norm in (n, p, Normalization.identity()):
        assert Normalization.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    assert Normalization.identity().is_identity
    with pytest.raises(ValueError):
        Normalization(0.0, 0.0, None)
    with pytest.raises(ValueError, match="unknown"):
        Normalization.from_dict({"mean": 0, "std": 1, "levels": None, "extra": 1})


# ------------------------------------------------------------------------------------------------
# CIFAR-10 binary


def _write_cifar(path, n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    path.write_bytes(np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1).tobytes())
    return images, labels


def test_cifar_reader_round_trip_and_preset(tmp_path):
    written = [_write_cifar(tmp_path / f"data_batch_{i}.bin", 3, i) for i in range(1, 6)]
    test_images, test_labels = _write_cifar(tmp_path / "test_batch.bin", 4, 9)
    images, labels = D.read_cifar10_binary(tmp_path / "data_batch_2.bin")
    np.testing.assert_array_equal(images, written[1][0])
    np.testing.assert_array_equal(labels, written[1][1])
    images, labels = D.read_cifar10_binary(tmp_path)
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.concatenate([w[0] for w in written]))
    images, labels = D.read_cifar10_binary(tmp_path, split="test")
    np.testing.assert_array_equal(images, test_images)
    ds = D.load_preset("cifar10", cifar_dir=tmp_path)
    assert (ds.example_shape, ds.channels, ds.n_train, ds.n_heldout, ds.unit) == ((3, 32, 32), 3, 15, 4, "bits/pixel")
    assert ds.units_per_example == 1024
    np.testing.assert_allclose(ds.display(ds.heldout()), (test_images + 0.5) / 256, atol=0.5 / 256 + 1e-6)


def test_cifar_reader_rejects_bad_files(tmp_path):
    _write_cifar(tmp_path / "data_batch_1.bin", 2, 0)
    bad = tmp_path / "data_batch_1.bin"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataError, match="data_batch_1.bin.*3,073"):
        D.read_cifar10_binary(bad)
    with pytest.raises(DataError, match="missing data_batch_2.bin"):
        D.read_cifar10_binary(tmp_path)
    labels = tmp_path / "labels.bin"
    labels.write_bytes(bytes([42]) + bytes(3072))
    with pytest.raises(DataError, match="labels.bin.*label byte 42"):
        D.read_cifar10_binary(labels)
    with pytest.raises(DataError, match="no such file"):
        D.read_cifar10_binary(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------
# own files


def test_load_npy_points_binary_and_images(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pts.npy", rng.normal(5.0, 3.0, (200, 3)))
    ds = D.load_file(tmp_path / "pts.npy")
    assert (ds.kind, ds.example_shape, ds.n_train, ds.n_heldout, ds.unit) == ("points", (3,), 180, 20, "bits/point")
    x = ds.sample_train(4000, gen())
    assert abs(float(x.mean())) < 0.1 and abs(float(x.var()) - 1) < 0.15
    assert torch.equal(ds.heldout(), ds.heldout())

    np.save(tmp_path / "bits.npy", rng.integers(0, 2, (50, 4, 5)).astype(np.uint8))
    ds = D.load_file(tmp_path / "bits.npy")
    assert (ds.kind, ds.example_shape, ds.norm.is_identity) == ("binary", (20,), True)
    assert set(torch.unique(ds.sample_train(100, gen())).tolist()) == {0.0, 1.0}

    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 12, 10), dtype=np.uint8))
    ds = D.load_file(tmp_path / "imgs.npy")
    assert (ds.kind, ds.example_shape, ds.channels, ds.norm.levels, ds.n_heldout) == ("images", (1, 12, 10), 1, 256, 3)

    np.save(tmp_path / "rgb.npy", rng.random((20, 3, 8, 8)).astype(np.float32) * 4 - 2)
    ds = D.load_file(tmp_path / "rgb.npy")
    assert (ds.kind, ds.example_shape, ds.channels, ds.norm.levels) == ("images", (3, 8, 8), 3, None)
    v = ds.display(ds.heldout())
    assert v.min() >= 0 and v.max() <= 1


def test_load_csv_and_h5(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(40, 2))
    (tmp_path / "h.csv").write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in pts))
    (tmp_path / "n.csv").write_text("\n".join(f"{a},{b}" for a, b in pts) + "\n")
    for name in ("h.csv", "n.csv"):
        ds = D.load_file(tmp_path / name)
        assert (ds.kind, ds.example_shape, ds.n_train + ds.n_heldout) == ("points", (2,), 40)
        np.testing.assert_allclose(ds.display(ds.heldout()), pts[D.dataset._split(40, 4)[1]], atol=1e-5)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = rng.integers(0, 256, (15, 1, 6, 6)).astype(np.int64)
    ds = D.load_file(tmp_path / "d.h5")
    assert (ds.kind, ds.example_shape, ds.norm.levels) == ("images", (1, 6, 6), 256)


def test_load_single_image_and_folder(tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (100, 90), dtype=np.uint8)).save(tmp_path / "big.png")
    ds = D.load_file(tmp_path / "big.png")
    assert (ds.kind, ds.example_shape, ds.norm.levels) == ("images", (1, 32, 32), 256)
    assert ds.n_heldout == D.dataset.PATCHES_N_HELDOUT
    assert ds.sample_train(5, gen()).shape == (5, 1, 32, 32)
    assert D.load_file(tmp_path / "big.png", patch_size=16).example_shape == (1, 16, 16)
    with pytest.raises(DataError, match="big.png.*64×64 patches"):
        D.load_file(tmp_path / "big.png", patch_size=64)

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("ignored")
    ds = D.load_file(folder)
    assert (ds.kind, ds.example_shape, ds.channels, ds.n_train, ds.n_heldout) == ("images", (3, 9, 7), 3, 11, 1)
    Image.fromarray(rng.integers(0, 256, (5, 5), dtype=np.uint8)).save(folder / "odd.png")
    with pytest.raises(DataError, match="differ in size") as e:
        D.load_file(folder)
    assert str(folder) in str(e.value) and "odd.png" in str(e.value)


def _bad_inputs(tmp_path):
    """(path, expected fragment of the message) for every rejected input."""
    cases = []
    p = tmp_path / "missing.npy"
    cases.append((p, "no such file"))
    p = tmp_path / "empty.csv"
    p.write_text("")
    cases.append((p, "empty"))
    p = tmp_path / "noarray.npy"
    np.save(p, np.zeros((0, 3)))
    cases.append((p, "empty"))
    p = tmp_path / "nan.npy"
    a = np.ones((20, 2))
    a[3, 1] = np.nan
    np.save(p, a)
    cases.append((p, "NaN or infinite"))
    p = tmp_path / "inf.csv"
    p.write_text("\n".join(["1,2"] * 12 + ["inf,3"]))
    cases.append((p, "NaN or infinite"))
    p = tmp_path / "flat.npy"
    np.save(p, np.arange(30.0))
    cases.append((p, "1-D"))
    p = tmp_path / "deep.npy"
    np.save(p, np.zeros((10, 1, 2, 2, 2)))
    cases.append((p, "5-D"))
    p = tmp_path / "few.npy"
    np.save(p, np.random.default_rng(0).normal(size=(9, 2)))
    cases.append((p, "only 9 examples"))
    p = tmp_path / "data.txt"
    p.write_text("1,2\n")
    cases.append((p, "unsupported file type"))
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    cases.append((p, "pickle"))
    p = tmp_path / "words.csv"
    p.write_text("a,b\n1,2\n3,x\n")
    cases.append((p, "not a numeric CSV"))
    p = tmp_path / "nox.h5"
    with h5py.File(p, "w") as f:
        f["y"] = np.zeros((20, 2))
    cases.append((p, "no dataset named 'x' (found: y)"))
    p = tmp_path / "fake.h5"
    p.write_text("not hdf5")
    cases.append((p, "not an HDF5 file"))
    p = tmp_path / "fake.npy"
    p.write_text("not npy")
    cases.append((p, "not a valid .npy"))
    p = tmp_path / "const.npy"
    np.save(p, np.full((20, 2), 3.5))
    cases.append((p, "the same"))
    p = tmp_path / "channels_last.npy"
    np.save(p, np.zeros((12, 8, 8, 3), dtype=np.uint8))
    cases.append((p, "channels"))
    p = tmp_path / "fewimgs"
    p.mkdir()
    for i in range(3):
        Image.new("L", (4, 4)).save(p / f"{i}.png")
    cases.append((p, "only 3 images"))
    p = tmp_path / "noimgs"
    p.mkdir()
    cases.append((p, "no image files"))
    p = tmp_path / "small.png"
    Image.new("L", (20, 20)).save(p)
    cases.append((p, "patches need"))
    return cases


def test_load_file_rejects_bad_inputs_naming_the_path(tmp_path):
    for path, fragment in _bad_inputs(tmp_path):
        with pytest.raises(DataError) as e:
            D.load_file(path)
        msg = str(e.value)
        assert str(path) in msg, msg
        assert fragment in msg, (fragment, msg)


def test_load_file_refuses_huge_files(tmp_path, monkeypatch):
    p = tmp_path / "pts.npy"
    np.save(p, np.zeros((100, 2)))
    monkeypatch.setattr(D.readers, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DataError, match="files over 1000 bytes are refused") as e:
        D.load_file(p)
    assert str(p) in str(e.value)


# ------------------------------------------------------------------------------------------------
# images


def test_load_image_modes(tmp_path):
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    a = D.load_image(tmp_path / "g.png")
    assert a.shape == (1, 6, 5) and a.dtype == np.float32
    np.testing.assert_allclose(a[0], grey / 255, atol=1e-7)

    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(D.load_image(tmp_path / "c.png"), rgb.transpose(2, 0, 1) / 255, atol=1e-7)

    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(D.load_image(tmp_path / "a.png"), rgb.transpose(2, 0, 1) / 255, atol=1e-7)

    pal = Image.fromarray(rgb).quantize(colors=8)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB")).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(D.load_image(tmp_path / "p.png"), expected, atol=1e-7)
    Image.fromarray(grey).convert("P").save(tmp_path / "gp.png")  # a grey palette stays one channel
    assert D.load_image(tmp_path / "gp.png").shape == (1, 6, 5)

    g16 = (rng.integers(0, 65536, (6, 5))).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "s.png")
    a = D.load_image(tmp_path / "s.png")
    assert a.shape == (1, 6, 5)
    np.testing.assert_allclose(a[0], g16 / 65535, atol=1e-6)

    Image.fromarray(grey > 128).save(tmp_path / "b.png")  # 1-bit
    np.testing.assert_array_equal(D.load_image(tmp_path / "b.png")[0], (grey > 128).astype(np.float32))

    frames = [Image.fromarray(np.full((6, 5), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "m.gif", save_all=True, append_images=frames[1:])
    a = D.load_image(tmp_path / "m.gif")
    assert a.shape == (1, 6, 5)
    np.testing.assert_allclose(a, 10 / 255, atol=1e-6)  # first frame


def test_load_image_errors(tmp_path):
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("hello, not an image")
    for name, fragment in (("trunc.png", "truncated"), ("text.png", "not an image"), ("none.png", "no such file")):
        with pytest.raises(DataError, match=fragment) as e:
            D.load_image(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)
    with pytest.raises(DataError, match="more than the limit") as e:
        D.load_image(tmp_path / "full.png", max_pixels=1000)
    assert "full.png" in str(e.value)
