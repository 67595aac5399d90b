"""Opening image files the user gives (data, photos to inpaint, masks): only the formats the product
supports, recognised by content, and only sizes it can handle (models/README.md, **Limits**).

Pillow is asked to try only :data:`IMAGE_FORMATS`, so a file whose content is anything else (an EPS
or PostScript file named ``.png``, which would make Pillow start the Ghostscript interpreter; a PDF;
an SVG) is refused as "not an image in a supported format", whatever its name. Every problem raises
:class:`~models.files.errors.DataError` naming the file, and no other exception type.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from .errors import DataError, check_regular_file

# Register exactly the plugins of IMAGE_FORMATS (Image.open's preinit registers only some of them).
from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin  # noqa: E402,F401
from PIL import PpmImagePlugin, TiffImagePlugin  # noqa: E402,F401

try:
    from PIL import WebPImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover - Pillow built without WebP
    pass

__all__ = ["IMAGE_FORMATS", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "MAX_IMAGE_FILE_BYTES", "open_image"]

#: Pillow format names tried when opening, decided by the file's content. MPO is the multi-picture
#: JPEG many cameras write; PPM covers PBM, PGM, PPM and PNM.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "GIF", "TIFF", "BMP", "WEBP", "PPM")
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm",
)
#: Images with more pixels than this are refused from their header, before decoding.
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_FILE_BYTES = 1024**3


def open_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The first frame of the image file at ``path``, decoded, upright (EXIF orientation applied).

    Refuses (DataError naming the file): what is not a regular file (FIFO, device, folder), files over
    :data:`MAX_IMAGE_FILE_BYTES`, content that is not one of :data:`IMAGE_FORMATS`, images with more
    than ``max_pixels`` pixels or none, decompression bombs, and truncated or damaged files.
    """
    p = check_regular_file(Path(os.fspath(path)).expanduser(), DataError, max_bytes=MAX_IMAGE_FILE_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", category=UserWarning)
            with Image.open(p, formats=[f for f in IMAGE_FORMATS if f in Image.OPEN]) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise DataError(p, f"the image is {w}×{h} = {w * h:,} pixels, more than the limit of "
                                       f"{max_pixels:,}")
                if w == 0 or h == 0:
                    raise DataError(p, f"the image has no pixels ({w}×{h})")
                im.seek(0)
                im.load()
                upright = ImageOps.exif_transpose(im)
                out = upright if upright is not None and upright is not im else im.copy()
                out.load()
                return out
    except DataError:
        raise
    except Image.UnidentifiedImageError:
        raise DataError(p, "not an image in a supported format (" + ", ".join(IMAGE_FORMATS) + "; recognised by "
                           "content, not by name)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(p, f"refused as a possible decompression bomb ({e})") from None
    except MemoryError:
        raise DataError(p, "not enough memory to decode the image") from None
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ...
        raise DataError(p, f"cannot read the image ({type(e).__name__}: {str(e)[:200]}); the file may be "
                           "truncated or damaged") from None
