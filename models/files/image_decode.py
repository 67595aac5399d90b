"""The one image decoder, run in this process (bundled images) and in the killable image process
(everything else, :mod:`.images`): the same code gives the same pixels in both.

This file imports nothing but the standard library and Pillow, because :mod:`.images` also runs its
text as the child interpreter's program (:func:`serve`), where the ``models`` package (and torch) is
never imported. Every problem raises :class:`Refused` with a message that does not name the file;
the caller adds the path.
"""
from __future__ import annotations

import json
import sys
import warnings

from PIL import Image, ImageOps

# Register exactly the plugins of IMAGE_FORMATS (Image.open's preinit registers only some of them).
from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin  # noqa: E402,F401
from PIL import PpmImagePlugin, TiffImagePlugin  # noqa: E402,F401

try:
    from PIL import WebPImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover - Pillow built without WebP
    pass

#: Pillow format names tried when opening, decided by the file's content. MPO is the multi-picture
#: JPEG many cameras write; PPM covers PBM, PGM, PPM and PNM.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "GIF", "TIFF", "BMP", "WEBP", "PPM")


class Refused(Exception):
    """The image cannot be used; ``str(e)`` says why (without the path)."""


def _load(im: Image.Image) -> None:
    """Decode the pixels of the current frame (the step that can take long)."""
    im.load()


def decode(path: str, max_pixels: int, on_header=None) -> Image.Image:
    """The first frame of the image file at ``path``, decoded, upright (EXIF orientation applied).

    ``on_header(w, h)`` is called once the header passed the checks, before the pixels are decoded.
    Refuses content that is not one of :data:`IMAGE_FORMATS`, images with more than ``max_pixels``
    pixels or none, decompression bombs, and truncated or damaged files.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            with Image.open(path, formats=[f for f in IMAGE_FORMATS if f in Image.OPEN]) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise Refused(f"the image is {w}×{h} = {w * h:,} pixels, more than the limit of {max_pixels:,}")
                if w == 0 or h == 0:
                    raise Refused(f"the image has no pixels ({w}×{h})")
                if on_header is not None:
                    on_header(w, h)
                im.seek(0)
                _load(im)
                upright = ImageOps.exif_transpose(im)
                out = upright if upright is not None and upright is not im else im.copy()
                out.load()
                return out
    except Refused:
        raise
    except Image.UnidentifiedImageError:
        raise Refused("not an image in a supported format (" + ", ".join(IMAGE_FORMATS) + "; recognised by "
                      "content, not by name)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Refused(f"refused as a possible decompression bomb ({e})") from None
    except MemoryError:
        raise Refused("not enough memory to decode the image") from None
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ...
        raise Refused(f"cannot read the image ({type(e).__name__}: {str(e)[:200]}); the file may be "
                      "truncated or damaged") from None


# ---------------------------------------------------------------------------------------------
# Handing a decoded image between processes: its mode, size, palette, transparency and raw pixels.


def describe(im: Image.Image) -> tuple[dict, bytes]:
    """(fields, pixels) that :func:`rebuild` turns back into the same image."""
    fields: dict = {"mode": im.mode, "size": list(im.size)}
    if im.mode in ("P", "PA") and im.palette is not None:
        pm = im.palette.mode
        fields["palette"] = [pm, bytes(im.getpalette(pm) or ()).hex()]
    tr = im.info.get("transparency")
    if isinstance(tr, bytes):
        fields["transparency"] = ["bytes", tr.hex()]
    elif isinstance(tr, int):
        fields["transparency"] = ["int", tr]
    elif isinstance(tr, tuple) and all(isinstance(v, int) for v in tr):
        fields["transparency"] = ["tuple", list(tr)]
    return fields, im.tobytes()


def rebuild(fields: dict, pixels: bytes) -> Image.Image:
    """The image :func:`describe` described; raises :class:`Refused` for anything inconsistent."""
    try:
        mode = str(fields["mode"])
        w, h = (int(v) for v in fields["size"])
        im = Image.frombytes(mode, (w, h), pixels)
        if "palette" in fields:
            pm, hexdata = fields["palette"]
            im.putpalette(bytes.fromhex(hexdata), rawmode=str(pm))
        if "transparency" in fields:
            kind, v = fields["transparency"]
            im.info["transparency"] = {"bytes": lambda: bytes.fromhex(v), "int": lambda: int(v),
                                       "tuple": lambda: tuple(int(u) for u in v)}[kind]()
        return im
    except Exception as e:  # noqa: BLE001 - a malformed answer
        raise Refused(f"the decoded image could not be handed over ({type(e).__name__}: {str(e)[:200]})") from None


# ---------------------------------------------------------------------------------------------
# The child's program (models.files.worker protocol): per request {"path", "max_pixels"}, the answer
# {"header": [w, h]} once the header passed its checks, then {"problem": "..."} or the image's fields
# with "payload_bytes" followed by its pixels.


def _send(out, answer: dict, payload: bytes = b"") -> None:
    if payload:
        answer = {**answer, "payload_bytes": len(payload)}
    out.write(json.dumps(answer).encode() + b"\n")
    if payload:
        out.write(payload)
    out.flush()


def serve() -> None:
    out = sys.stdout.buffer
    _send(out, {"ready": True})
    for line in sys.stdin:
        try:
            q = json.loads(line)
            im = decode(q["path"], int(q["max_pixels"]), on_header=lambda w, h: _send(out, {"header": [w, h]}))
            fields, pixels = describe(im)
            im.close()
        except Refused as e:
            _send(out, {"problem": str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - never leave the parent without an answer
            _send(out, {"problem": f"cannot read the image ({type(e).__name__}: {str(e)[:200]})"})
            continue
        _send(out, fields, pixels)
