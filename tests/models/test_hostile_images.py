"""Hostile image files (issue "Hostile files and bad days", items 2, 10 and 14): images are opened only
in the supported formats, decided by content, and only the documented error escapes."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from models import data as D
from models.files import DataError, open_image
from models.files.images import IMAGE_FORMATS

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


def test_item14_unexpected_decoder_exceptions_become_the_loaders_error(tmp_path, monkeypatch):
    """A decoder raising TypeError (seen when fuzzing) reaches the caller as DataError naming the file."""
    from PIL import ImageFile

    def broken(self, *a, **k):
        raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'")

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    p = _png(tmp_path)
    with pytest.raises(DataError) as e:
        D.load_image(p)
    assert str(e.value).startswith(str(p)) and "TypeError" in str(e.value)
