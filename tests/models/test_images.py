"""Tests of models/images.py: pixel units, preparing images for a model, mask files, the tiler and PNG
writers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models import images as I
from models.config import ModelConfig
from models.data import DataError
from models.model import DiffusionModel

from image_helpers import NORM, conv_model, hole, image, loaded  # noqa: F401


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""
    yield




# ------------------------------------------------------------------------------------------------
# images and units


def test_sigma_units_and_noise():
    assert I.sigma_to_normalised(0.1, NORM) == pytest.approx(0.1 * 255 / 256 / 0.25)
    assert I.sigma_to_normalised(0.1, {}) == pytest.approx(0.1)
    p = np.full((1, 50, 50), 0.5, np.float32)
    a = I.add_noise(p, 0.1, 7)
    np.testing.assert_array_equal(a, I.add_noise(p, 0.1, 7))
    assert a.dtype == np.float32 and abs(float(a.std()) - 0.1) < 0.01



def test_pixel_units_round_trip():
    p = np.linspace(0, 1, 256, dtype=np.float32).reshape(1, 16, 16)
    z = I.pixels_to_z(p, NORM)
    np.testing.assert_allclose(I.to_pixels(z, NORM), p, atol=1e-6)
    # a pixel maps to the centre of its quantisation bin
    assert z[0, 0, 0] == pytest.approx((0.5 / 256 - 0.45) / 0.25)


def test_prepare_image_converts_and_resizes_for_fixed_size_models():
    cfg = ModelConfig(kernel="gaussian", T=5, example_shape=(64,), arch="mlp", hidden=4, layers=1)
    lm = loaded(DiffusionModel(cfg))
    prep = I.prepare_image(image(24, 32, c=3), lm)
    assert prep.y.shape == (1, 64) and prep.pixels.shape == (1, 8, 8)
    assert "colour→grey" in prep.note and "32×24→8×8" in prep.note
    # a conv model keeps its size, shrinks only with max_side
    m = conv_model()
    assert I.prepare_image(image(24, 32), loaded(m)).y.shape == (1, 1, 24, 32)
    prep = I.prepare_image(image(24, 32), loaded(m), max_side=16)
    assert prep.y.shape == (1, 1, 12, 16) and "longest side 16" in prep.note
    prep = I.prepare_image(image(24, 32), loaded(m), max_side=16, fit="crop")
    assert prep.y.shape == (1, 1, 16, 16) and "cropped the centre 16×16 of 32×24" in prep.note
    np.testing.assert_allclose(prep.pixels[0], image(24, 32)[4:20, 8:24] / 255, atol=1e-6)
    prep = I.prepare_image(image(24, 32, c=3), lm, fit="crop")  # 8×8 model: centre 24×24, then shrink
    assert prep.pixels.shape == (1, 8, 8) and "cropped the centre 24×24" in prep.note
    with pytest.raises(ValueError, match="fit"):
        I.prepare_image(image(), lm, fit="stretch")
    # luminance
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255
    assert I.prepare_image(rgb, loaded(m)).pixels[0, 0, 0] == pytest.approx(0.587, abs=1e-4)
    # grey → colour model
    m3 = conv_model(C=3)
    prep = I.prepare_image(image(), loaded(m3))
    assert prep.y.shape == (1, 3, 8, 8) and "grey→colour" in prep.note


def test_prepare_image_refuses_non_images():
    cfg = ModelConfig(kernel="gaussian", T=5, example_shape=(3,), arch="mlp", hidden=4, layers=1)
    with pytest.raises(ValueError, match="not an image"):
        I.prepare_image(image(), loaded(DiffusionModel(cfg)))
    with pytest.raises(DataError, match="NaN"):
        I.prepare_image(np.full((4, 4), np.nan, np.float32), loaded(conv_model()))


def test_bad_image_files_are_clear_errors(tmp_path):
    m = conv_model()
    good = tmp_path / "good.png"
    Image.fromarray(image(32, 32)).save(good)
    data = good.read_bytes()
    bad = {
        "truncated.png": data[: len(data) // 2],
        "notes.png": b"this is not an image at all\n" * 10,
        "empty.png": b"",
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError) as e:
            I.prepare_image(tmp_path / name, loaded(m))
        assert name in str(e.value)
    with pytest.raises(DataError, match="missing.png"):
        I.prepare_image(tmp_path / "missing.png", loaded(m))
    with pytest.raises(DataError, match="more than the limit"):
        I.prepare_image(good, loaded(m), max_pixels=100)


# ------------------------------------------------------------------------------------------------
# masks


def test_mask_round_trip_and_resize(tmp_path):
    known = hole(10, 14)
    known[0, 0] = False
    p = tmp_path / "mask.png"
    I.write_mask(p, known)
    np.testing.assert_array_equal(I.read_mask(p), known)
    np.testing.assert_array_equal(I.read_mask(p, (10, 14)), known)
    big = I.read_mask(p, (20, 28))
    assert big.shape == (20, 28) and big.dtype == bool
    np.testing.assert_array_equal(big[::2, ::2], known)
    # white = known (RePaint convention)
    with Image.open(p) as im:
        a = np.asarray(im)
    assert a[5, 0] == 255 and a[5, 7] == 0
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary


def test_bad_mask_files_are_clear_errors(tmp_path):
    p = tmp_path / "mask.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="mask.png"):
        I.read_mask(p, (8, 8))
    with pytest.raises(ValueError, match="2-D"):
        I.write_mask(tmp_path / "m.png", np.ones((2, 2, 2), bool))


def test_save_png_layouts(tmp_path):
    I.save_png(tmp_path / "a.png", np.zeros((3, 4, 5), np.float32))
    I.save_png(tmp_path / "b.png", np.ones((4, 5), np.float32))
    I.save_png(tmp_path / "c.png", np.ones((3, 1, 4, 5), np.float32))
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "c.png") as c:
        assert a.mode == "RGB" and a.size == (5, 4)
        assert c.size == (3 * 5 + 4, 4)


def test_a_photo_is_fitted_whole_by_default_and_cropped_on_request():
    # a 640×480 photo for a fully convolutional model with a 128-pixel limit: the whole picture, shrunk
    m = conv_model()
    photo = image(480, 640, c=3)
    prep = I.prepare_image(photo, loaded(m), max_side=128)
    assert prep.pixels.shape == (1, 96, 128) and "resized 640×480→128×96" in prep.note
    assert "colour→grey" in prep.note  # a grey model: converted, with a note
    crop = I.prepare_image(photo, loaded(m), max_side=128, fit="crop")
    assert crop.pixels.shape == (1, 128, 128) and "cropped" in crop.note
    # a colour model keeps the colour, without a note about it
    prep3 = I.prepare_image(photo, loaded(conv_model(C=3)), max_side=128)
    assert prep3.pixels.shape == (3, 96, 128) and "grey" not in prep3.note
    np.testing.assert_allclose(prep3.pixels.mean(axis=(1, 2)), photo.reshape(-1, 3).mean(0) / 255, atol=0.01)


def test_tile_lays_out_rows_and_grids():
    p = np.stack([np.full((1, 2, 3), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])  # [5, 1, 2, 3]
    row = I.tile(p, gap=1, fill=1.0)
    assert row.shape == (1, 2, 5 * 3 + 4) and row[0, 0, 0] == pytest.approx(0.1) and row[0, 0, 3] == 1.0
    grid = I.tile(p, ncol=2, gap=1, fill=0.0, border=2)
    assert grid.shape == (1, 2 * 2 + 3 * 2 + 2, 2 * 2 + 2 * 3 + 1)
    assert grid[0, 2, 2] == pytest.approx(0.1) and grid[0, 2, 6] == pytest.approx(0.2)
    assert grid[0, 2 + 2 * 3, 2] == pytest.approx(0.5) and grid[0, 2 + 2 * 3, 6] == 0.0  # the empty cell
    assert I.tile(p[0]).shape == (1, 2, 3)
    with pytest.raises(ValueError, match="N, C, H, W"):
        I.tile(np.zeros((2, 2)))
