"""Tests for models/data/registry.py: the named data sets, bundled files."""
import h5py
import numpy as np
import pytest
import torch

from models import data as D
from models.data import DataError
from models.paths import DATA_DIR


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
