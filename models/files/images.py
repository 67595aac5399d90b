"""Opening image files the user gives (data, photos to inpaint, masks): only the formats the product
supports, recognised by content, only sizes it can handle, and only for a bounded time
(models/README.md, **Limits**).

Pillow is asked to try only :data:`IMAGE_FORMATS`, so a file whose content is anything else (an EPS
or PostScript file named ``.png``, which would make Pillow start the Ghostscript interpreter; a PDF;
an SVG) is refused as "not an image in a supported format", whatever its name.

Pillow's decoders can loop for a long time on some damaged files, so a user's image is decoded in a
separate Python process that can be killed (:mod:`.worker`; the decoder is :mod:`.image_decode`,
the same code in both processes): its header is read first, then the pixels get
:func:`decode_timeout` seconds for the pixel count the header declares; a decode that takes longer
is killed and refused. The images bundled with the product (resources/) are decoded in this process.

Every problem raises :class:`~models.files.errors.DataError` naming the file, and no other exception
type.
"""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from . import image_decode
from .errors import DataError, check_regular_file
from .image_decode import IMAGE_FORMATS, Refused
from .worker import KillableWorker, WorkerDied, is_bundled
from .worker import available as worker_available

__all__ = ["IMAGE_FORMATS", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "MAX_IMAGE_FILE_BYTES", "DECODE_TIMEOUT_S",
           "DECODE_SECONDS_PER_MEGAPIXEL", "decode_timeout", "open_image"]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm",
)
#: Images with more pixels than this are refused from their header, before decoding.
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_FILE_BYTES = 1024**3
#: The decode's time limit: this many seconds plus :data:`DECODE_SECONDS_PER_MEGAPIXEL` per million
#: pixels the header declares (Pillow decodes tens of megapixels a second on one core, so a limit of
#: 70 s at :data:`MAX_IMAGE_PIXELS` leaves a wide margin on a busy machine).
DECODE_TIMEOUT_S = 20.0
DECODE_SECONDS_PER_MEGAPIXEL = 1.0
#: Seconds the header may take (Pillow reads only the first bytes of the file for it).
HEADER_TIMEOUT_S = 20.0


def decode_timeout(pixels: int) -> float:
    """Seconds the decode of an image of ``pixels`` pixels may take."""
    return DECODE_TIMEOUT_S + DECODE_SECONDS_PER_MEGAPIXEL * pixels / 1e6


def _worker_source() -> str:
    """The image process's program: :mod:`.image_decode` followed by its serving loop."""
    return Path(image_decode.__file__).read_text(encoding="utf-8") + "\nserve()\n"


_WORKER = KillableWorker(lambda: _worker_source(), what="the image decoding process")


def open_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The first frame of the image file at ``path``, decoded, upright (EXIF orientation applied).

    Refuses (DataError naming the file): what is not a regular file (FIFO, device, folder), files over
    :data:`MAX_IMAGE_FILE_BYTES`, content that is not one of :data:`IMAGE_FORMATS`, images with more
    than ``max_pixels`` pixels or none, decompression bombs, truncated or damaged files, and decodes
    that take longer than :func:`decode_timeout`.
    """
    p = check_regular_file(Path(os.fspath(path)).expanduser(), DataError, max_bytes=MAX_IMAGE_FILE_BYTES)
    if is_bundled(p) or not worker_available():
        return _decode_here(p, max_pixels)
    return _decode_in_worker(p, max_pixels)


def _decode_here(p: Path, max_pixels: int) -> Image.Image:
    """Decode in this process (the bundled images: trusted as the code is, and fast)."""
    try:
        return image_decode.decode(os.fspath(p), max_pixels)
    except Refused as e:
        raise DataError(p, str(e)) from None


def _decode_in_worker(p: Path, max_pixels: int) -> Image.Image:
    """Decode in the killable image process (see the module docstring)."""
    limit = HEADER_TIMEOUT_S
    try:
        with _WORKER.talk({"path": os.fspath(p), "max_pixels": int(max_pixels)}) as c:
            answer = c.receive(HEADER_TIMEOUT_S)
            if "header" in answer:
                w, h = (int(v) for v in answer["header"])
                limit = decode_timeout(w * h)
                answer = c.receive(limit)
    except TimeoutError:
        seconds = f"{limit:.0f}" if limit >= 10 else f"{limit:.1f}"
        raise DataError(p, f"decoding took longer than {seconds} s; the file may be damaged") from None
    except WorkerDied:
        raise DataError(p, "the image decoder crashed reading it; the file is damaged") from None
    except OSError as e:
        raise DataError(p, f"cannot start a process to decode the image ({e.strerror or e})") from None
    except (TypeError, ValueError):  # a malformed header answer
        _WORKER.kill()
        raise DataError(p, "the image decoder gave a malformed answer") from None
    if answer.get("problem"):
        raise DataError(p, str(answer["problem"])[:600])
    try:
        return image_decode.rebuild(answer, answer.get("payload", b""))
    except Refused as e:
        raise DataError(p, str(e)) from None
