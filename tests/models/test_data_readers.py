"""Tests for models/data/readers.py: CIFAR-10 batches, own files, images."""
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from models import data as D
from models.data import DataError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
