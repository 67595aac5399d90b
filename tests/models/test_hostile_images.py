"""Hostile image files (issue "Hostile files and bad days", items 2, 10 and 14): images are opened only
in the supported formats, decided by content, and only the documented error escapes."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from models import data as D
from models.files import DataError, image_decode, images, open_image
from models.files.images import IMAGE_FORMATS
from models.files.worker import KillableWorker

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 8 8
%%EndComments
newpath 0 0 moveto 8 0 lineto 8 8 lineto closepath fill
showpage
%%EOF
"""


def _png(tmp_path, name="ok.png"):
    p = tmp_path / name
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(p)
    return p


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg", "mask.png"])
def test_item2_postscript_named_as_an_image_never_reaches_an_interpreter(tmp_path, monkeypatch, name):
    """An EPS file named .png: Pillow would hand it to Ghostscript. It is refused by content instead."""
    from PIL import EpsImagePlugin

    called = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: called.append(a) or (_ for _ in ()).throw(
        AssertionError("Ghostscript was started")))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    p = tmp_path / name
    p.write_bytes(EPS)
    for fn in (D.load_image, open_image):
        with pytest.raises(DataError, match="supported format") as e:
            fn(p)
        assert str(e.value).startswith(str(p))
    assert not called


def test_item2_every_supported_format_still_opens(tmp_path):
    a = (np.arange(48 * 32 * 3) % 251).astype(np.uint8).reshape(32, 48, 3)
    for fmt, ext in [("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("TIFF", ".tif"), ("BMP", ".bmp"),
                     ("WEBP", ".webp"), ("PPM", ".ppm")]:
        if fmt not in Image.SAVE:
            continue
        p = tmp_path / f"im{ext}"
        Image.fromarray(a).save(p, format=fmt)
        im = open_image(p)
        assert im.size == (48, 32), fmt
        assert fmt in IMAGE_FORMATS or fmt == "MPO"


def test_item2_pixel_limit_is_checked_from_the_header(tmp_path):
    p = _png(tmp_path)
    with pytest.raises(DataError, match="limit"):
        open_image(p, max_pixels=63)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_item10_fifo_as_an_image_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        open_image(fifo)


# ---------------------------------------------------------------------------------------------
# item 14: a user's image is decoded in a killable process, bounded in time, with the same pixels


def _worker_with(monkeypatch, code: str | None = None):
    """images._WORKER replaced by a fresh image process whose decoder has ``code`` appended (e.g. a
    ``_load`` that sleeps or raises); ``source[0] = None`` restores the real decoder at the next start."""
    source = [code]
    real = images._worker_source
    w = KillableWorker(lambda: real() if source[0] is None else real().replace("\nserve()\n", f"\n{source[0]}\nserve()\n"))
    monkeypatch.setattr(images, "_WORKER", w)
    return w, source


def test_item14_a_decode_that_takes_too_long_is_killed_and_named(tmp_path, monkeypatch):
    """A decoder that never finishes (as Pillow looping on a damaged file): the decode is cut off after
    the limit for the declared pixel count (0.5 s + 1 s per megapixel here: 1.5 s for 1000×1000), the
    process is killed, and the next image decodes in a fresh one."""
    w, source = _worker_with(monkeypatch, "import time\ndef _load(im):\n    time.sleep(3600)\n")
    monkeypatch.setattr(images, "DECODE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(images, "DECODE_SECONDS_PER_MEGAPIXEL", 1.0)
    p = tmp_path / "hangs.png"
    Image.new("L", (1000, 1000)).save(p)
    with pytest.raises(DataError) as e:
        D.load_image(p)
    assert str(e.value) == f"{p}: decoding took longer than 1.5 s; the file may be damaged"
    assert w.proc is None  # killed
    source[0] = None
    expected = np.arange(64, dtype=np.float32).reshape(8, 8) / np.float32(255)
    np.testing.assert_array_equal(D.load_image(_png(tmp_path))[0], expected)


def test_item14_a_decoder_crash_is_the_loaders_error(tmp_path, monkeypatch):
    _worker_with(monkeypatch, "import os\ndef _load(im):\n    os.abort()\n")
    p = _png(tmp_path)
    with pytest.raises(DataError, match="crashed") as e:
        open_image(p)
    assert str(e.value).startswith(str(p))


def test_item14_unexpected_decoder_exceptions_become_the_loaders_error(tmp_path, monkeypatch):
    """A decoder raising TypeError (seen when fuzzing) reaches the caller as DataError naming the file,
    in the image process and in this one (bundled images)."""
    _worker_with(monkeypatch, "def _load(im):\n    raise TypeError(\"unsupported operand type(s) for -: 'NoneType' and 'int'\")\n")
    p = _png(tmp_path)
    with pytest.raises(DataError) as e:
        D.load_image(p)
    assert str(e.value).startswith(str(p)) and "TypeError" in str(e.value)

    def broken(im):
        raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'")

    monkeypatch.setattr(image_decode, "_load", broken)
    with pytest.raises(DataError) as e:
        images._decode_here(p, images.MAX_IMAGE_PIXELS)
    assert str(e.value).startswith(str(p)) and "TypeError" in str(e.value)


def _every_kind(tmp_path):
    """One small file per format and pixel mode the loaders meet (8-bit grey, RGB, RGBA, palettes with
    transparency, 16-bit grey, 1-bit, float TIFF, CMYK JPEG, an EXIF-rotated JPEG, ...)."""
    rng = np.random.default_rng(14)
    rgb = rng.integers(0, 256, (21, 34, 3)).astype(np.uint8)
    grey = Image.fromarray(rgb[..., 0])
    out = []

    def save(im, name, **kw):
        p = tmp_path / name
        im.save(p, **kw)
        out.append(p)

    save(grey, "grey.png")
    save(Image.fromarray(rgb), "rgb.png")
    save(Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "rgba.png")
    pal = Image.fromarray(rgb).quantize(16)
    save(pal, "pal.png", transparency=3)
    save(grey.convert("LA"), "la.png")
    save(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "grey16.png")
    save(grey.convert("1"), "bits.png")
    save(grey.convert("1"), "bits.pbm")
    save(Image.fromarray(rgb), "rgb.ppm")
    save(Image.fromarray(rgb), "rgb.jpg", quality=90)
    save(Image.fromarray(rgb).convert("CMYK"), "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated
    save(Image.fromarray(rgb), "rotated.jpg", exif=exif)
    save(pal, "pal.gif", transparency=3)
    save(Image.fromarray(rgb), "rgb.bmp")
    save(Image.fromarray(rgb), "rgb.tif", compression="tiff_lzw")
    save(Image.fromarray(rgb[..., 0].astype(np.float32) / 255), "float.tif")
    if "WEBP" in Image.SAVE:
        save(Image.fromarray(rgb), "rgb.webp", quality=80)
    return out


def test_item14_the_image_process_gives_exactly_the_pixels_of_this_process(tmp_path):
    from models.data.readers import _pil_to_array

    for p in _every_kind(tmp_path):
        here = images._decode_here(p, images.MAX_IMAGE_PIXELS)
        there = images._decode_in_worker(p, images.MAX_IMAGE_PIXELS)
        assert (there.mode, there.size) == (here.mode, here.size), p.name
        assert there.tobytes() == here.tobytes(), p.name
        assert there.getpalette() == here.getpalette(), p.name
        assert there.info.get("transparency") == here.info.get("transparency"), p.name
        a, ma = _pil_to_array(here, p)
        b, mb = _pil_to_array(there, p)
        assert ma == mb and a.dtype == b.dtype, p.name
        np.testing.assert_array_equal(a, b, err_msg=p.name)
    assert images._decode_here(tmp_path / "rotated.jpg", 10**6).size == (21, 34)  # EXIF applied in both


def test_item14_bundled_images_are_decoded_in_this_process(monkeypatch):
    from models.paths import DATA_DIR

    def refuse(*a, **k):
        raise AssertionError("a bundled image went to the image process")

    monkeypatch.setattr(images, "_decode_in_worker", refuse)
    im = open_image(DATA_DIR / "textures" / "brick.png")
    assert im.size[0] > 0
