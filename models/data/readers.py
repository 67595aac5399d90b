"""The user's own data: ``.npy``, ``.csv``, HDF5 (through :mod:`models.files.hdf5`), one image, a
folder of images (through :func:`models.files.images.open_image`), and the CIFAR-10 binary batches.
Every problem raises :class:`DataError` naming the file; sizes are checked before anything is
allocated (models/README.md, **Limits**).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
from PIL import Image

from ..files.errors import check_regular_file
from ..files.hdf5 import keys_listing, open_hdf5
from ..files.images import IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, open_image
from .dataset import (HELDOUT_FRACTION, MIN_EXAMPLES, DataError, DataSet, Normalization, _chunks, _continuous_norm,
                      _discrete_norm, _finite_dataset, _patch_dataset, _points_norm, _positive_int, _split)

__all__ = ["MAX_FILE_BYTES", "MAX_ARRAY_BYTES", "MAX_IMAGES", "IMAGE_EXTENSIONS", "CIFAR_RECORD_BYTES",
           "load_file", "load_image", "read_cifar10_binary"]

#: Data files larger than this are refused before they are opened.
MAX_FILE_BYTES = 2 * 1024**3
#: The declared size of an own array (.npy, HDF5 'x') and the decoded images of a folder.
MAX_ARRAY_BYTES = 1024**3
#: Image files in one folder.
MAX_IMAGES = 100_000
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32


def _check_file(path: Path) -> Path:
    return check_regular_file(path, DataError, max_bytes=MAX_FILE_BYTES)


# ---------------------------------------------------------------------------------------------------
# images


def _pil_to_array(im: Image.Image, path: Path) -> tuple[np.ndarray, int | None]:
    """A loaded PIL image → (array [C, H, W], maxval): uint8 with maxval 255, uint16 with maxval
    65535, or float32 in [0, 1] with maxval None."""
    mode = im.mode
    if mode in ("1", "L", "LA", "La"):
        a = np.asarray(im.convert("L"), dtype=np.uint8)[None]
        return a, 255
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)[None], 65535
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise DataError(f"{path}: 32-bit integer image with values outside 0..65535 is not supported")
        return a.astype(np.uint16)[None], 65535
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise DataError(f"{path}: floating-point image with values outside [0, 1] is not supported")
        return a[None].copy(), None
    if mode in ("P", "PA"):
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
        if (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
            return a[None, :, :, 0].copy(), 255  # a grey palette
        return a.transpose(2, 0, 1).copy(), 255
    # RGB, RGBA (alpha dropped), CMYK, YCbCr, LAB, HSV, …
    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return a.transpose(2, 0, 1).copy(), 255


def _read_image_raw(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, int | None]:
    """Decode an image file (first frame, through :func:`~models.files.images.open_image`) → (array
    [C, H, W], maxval); see :func:`_pil_to_array`. C is 1 (grey) or 3 (colour)."""
    p = Path(path).expanduser()
    im = open_image(p, max_pixels=max_pixels)
    try:
        return _pil_to_array(im, p)
    except DataError:
        raise
    except MemoryError:
        raise DataError(p, "not enough memory to decode the image") from None
    except Exception as e:  # a mode conversion of a damaged image
        raise DataError(p, f"cannot read the image ({type(e).__name__}: {str(e)[:200]})") from None
    finally:
        im.close()


def load_image(path: str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file → float32 [C, H, W] in [0, 1] (C = 1 for grey, 3 for colour).

    Grey, RGB, RGBA (alpha dropped), palette (grey palettes give C = 1), 1-bit, 16-bit (÷ 65535) and
    the first frame of a GIF or multi-page TIFF. Raises DataError naming the file for non-images,
    truncated files, images over ``max_pixels`` and decompression bombs.
    """
    a, maxval = _read_image_raw(path, max_pixels)
    if maxval is None:
        return a.astype(np.float32)
    return (a.astype(np.float32) / np.float32(maxval)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 (binary version; never unpickled)


def _read_cifar_file(f: Path) -> tuple[np.ndarray, np.ndarray]:
    _check_file(f)
    size = f.stat().st_size
    if size % CIFAR_RECORD_BYTES:
        raise DataError(
            f"{f}: {size:,} bytes is not a whole number of CIFAR-10 records (1 label byte + 3,072 pixel "
            f"bytes = {CIFAR_RECORD_BYTES:,} bytes each); the file is truncated or not a CIFAR-10 binary batch"
        )
    raw = np.frombuffer(f.read_bytes(), dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = raw[:, 0].copy()
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(
            f"{f}: record {bad[0]} has label byte {labels[bad[0]]}, not 0..9; not a CIFAR-10 binary batch "
            "(CIFAR-100 files have two label bytes)"
        )
    return raw[:, 1:].reshape(-1, 3, 32, 32), labels


def read_cifar10_binary(
    dir_or_file: str | Path, *, split: Literal["train", "test"] = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Read the official "CIFAR-10 binary version" as raw bytes (numpy.frombuffer, never pickle).

    A file: that batch. A folder (or its ``cifar-10-batches-bin`` subfolder): ``data_batch_1..5.bin``
    for split "train", ``test_batch.bin`` for split "test".
    Returns (images uint8 [N, 3, 32, 32] (CHW, as stored), labels uint8 [N]).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    p = Path(dir_or_file).expanduser()
    if p.is_dir():
        if (p / "cifar-10-batches-bin").is_dir():
            p = p / "cifar-10-batches-bin"
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
        files = [p / name for name in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise DataError(
                f"{p}: missing {', '.join(missing)}; expected the CIFAR-10 binary version "
                "(cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), unpacked"
            )
    elif p.exists():
        files = [p]
    else:
        raise DataError(f"{p}: no such file or folder")
    parts = [_read_cifar_file(f) for f in files]
    images = np.concatenate([a for a, _ in parts]) if len(parts) > 1 else parts[0][0].copy()
    labels = np.concatenate([b for _, b in parts])
    return images, labels


# ---------------------------------------------------------------------------------------------------
# own files


def _read_npy(p: Path) -> np.ndarray:
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"PK":
        raise DataError(f"{p}: holds an .npz archive, not a single array; save one array with numpy.save")
    if magic != b"\x93NUMPY":
        raise DataError(f"{p}: not a valid .npy file (no NumPy header)")
    # Check the header before np.load: it allocates the declared shape up front (a 100-byte file can
    # claim terabytes) and its header parser can raise TypeError and the like on a forged header.
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
            data_bytes = p.stat().st_size - f.tell()
    except Exception as e:  # a forged header: ValueError, TypeError, SyntaxError, RecursionError, ...
        raise DataError(f"{p}: not a valid .npy file (bad header: {type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise DataError(f"{p}: the array holds Python objects (would need pickle, which is refused)")
    if any(s < 0 for s in shape):
        raise DataError(f"{p}: not a valid .npy file (negative shape {shape})")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(
            f"{p}: the array {shape} {dtype} would need {nbytes / 1024**3:.1f} GiB; "
            f"the limit is {MAX_ARRAY_BYTES / 1024**3:.0f} GiB"
        )
    if nbytes > data_bytes:
        raise DataError(
            f"{p}: not a valid .npy file (the header declares {shape} {dtype} = {nbytes:,} bytes but only "
            f"{max(data_bytes, 0):,} follow; the file is truncated)"
        )
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataError(f"{p}: the array holds Python objects (would need pickle, which is refused)") from None
        raise DataError(f"{p}: not a valid .npy file ({e})") from None
    except (OSError, EOFError, TypeError, MemoryError) as e:
        raise DataError(f"{p}: not a valid .npy file ({e})") from None
    if not isinstance(a, np.ndarray):
        raise DataError(f"{p}: holds an .npz archive, not a single array; save one array with numpy.save")
    return a


def _read_csv(p: Path) -> np.ndarray:
    try:
        with open(p, encoding="utf-8-sig") as f:
            lines = [line for line in (f.readline() for _ in range(2)) if line]
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{p}: not a readable text file ({e})") from None
    first = lines[0].strip() if lines else ""
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)

    def numeric(line: str) -> bool:
        try:
            [float(v) for v in (line.split(delimiter) if delimiter else line.split())]
            return True
        except ValueError:
            return False

    skip = 0 if (not first or numeric(first)) else 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(
                p, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64, comments="#", encoding="utf-8-sig"
            )
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{p}: not a numeric CSV file (one point per row, optional header): {e}") from None
    return a


def _read_h5(p: Path) -> np.ndarray:
    """Dataset ``x`` of an HDF5 file, read through :func:`~models.files.hdf5.open_hdf5` (no links,
    virtual or external storage; declared size checked against :data:`MAX_ARRAY_BYTES` first)."""
    with open_hdf5(p, DataError, max_dataset_bytes=MAX_ARRAY_BYTES, max_total_bytes=MAX_ARRAY_BYTES) as r:
        if r.f.get("x", getlink=True) is None:
            raise DataError(p, f"no dataset named 'x' (found: {keys_listing(r.f)})")
        ds = r.child(r.f, "x", "'x'")
        if not isinstance(ds, h5py.Dataset):
            raise DataError(p, "'x' is a group, not a dataset")
        if ds.dtype.kind not in "biuf":
            raise DataError(p, f"dataset 'x' has type {ds.dtype}, not numbers")
        if ds.shape is None:
            raise DataError(p, "dataset 'x' is empty (no dataspace)")
        return r.numeric(ds, "dataset 'x'")


def _check_normalizable(x: np.ndarray, norm: Normalization, p: Path) -> Normalization:
    """``norm`` if z = norm.forward(x) is finite for every value of x (train and held out) in the
    float32 arithmetic that training batches use; else DataError."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ok = all(bool(np.isfinite(norm.forward(c)).all()) for c in _chunks(x))
    if not ok:
        raise DataError(
            f"{p}: the values span too wide a range (or lie too close together, std {norm.std:.3g}) to "
            "normalize in 32-bit floats; rescale the data"
        )
    return norm


def _array_dataset(a: np.ndarray, p: Path) -> DataSet:
    """An own array → points, binary or images (kind detected); 10% held out with a fixed seed."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{p}: the array has type {a.dtype}, not numbers")
    if a.size == 0:
        raise DataError(f"{p}: the array is empty (shape {a.shape})")
    if a.ndim == 0:
        raise DataError(f"{p}: a single number, not an array; expected [N, D] points or [N, H, W] / [N, C, H, W] images")
    if a.ndim == 1:
        raise DataError(
            f"{p}: a 1-D array of shape {a.shape}; expected [N, D] points or [N, H, W] / [N, C, H, W] images "
            "(reshape 1-D data to [N, 1])"
        )
    if a.ndim > 4:
        raise DataError(f"{p}: a {a.ndim}-D array of shape {a.shape}; expected [N, D], [N, H, W] or [N, C, H, W]")
    if a.ndim == 4 and a.shape[1] > 4:
        raise DataError(
            f"{p}: shape {a.shape} has {a.shape[1]} channels; expected [N, C, H, W] with C <= 4 "
            "(transpose channels-last arrays)"
        )
    N = a.shape[0]
    if N < MIN_EXAMPLES:
        raise DataError(f"{p}: only {N} examples (rows); at least {MIN_EXAMPLES} are needed")
    if a.dtype.kind == "f":
        n_bad = int(np.count_nonzero(~np.isfinite(a)))
        if n_bad:
            raise DataError(f"{p}: {n_bad} values are NaN or infinite")
        big = float(np.finfo(np.float32).max)
        n_big = int(np.count_nonzero(np.abs(a) > big)) if a.dtype.itemsize > 4 else 0
        if n_big:
            raise DataError(f"{p}: {n_big} values are too large for 32-bit floats (|x| > {big:.3g})")
    n_held = max(1, int(round(HELDOUT_FRACTION * N)))
    tr, he = _split(N, n_held)
    name = p.stem
    binary = a.dtype.kind == "b" or bool(np.all((a == 0) | (a == 1)))
    if binary:
        x = a.reshape(N, -1).astype(np.float32)
        return _finite_dataset(
            name=name, kind="binary", train=x[tr], heldout=x[he], levels=None,
            norm=Normalization.identity(),
            source=f"{p}: binary {{0, 1}} array {a.shape}" + (", flattened" if a.ndim > 2 else ""),
        )
    if a.ndim == 2:
        x = a.astype(np.float32)
        norm = _check_normalizable(x, _points_norm(x[tr], str(p)), p)
        return _finite_dataset(
            name=name, kind="points", train=x[tr], heldout=x[he], levels=None,
            norm=norm, source=f"{p}: {N} points in {a.shape[1]}-D",
        )
    x = a[:, None] if a.ndim == 3 else a  # [N, C, H, W]
    if a.dtype.kind in "biu" and x.min() >= 0 and x.max() <= 255:
        x, levels = x.astype(np.uint8), 256.0
    elif a.dtype.kind in "u" and a.dtype.itemsize == 2:
        x, levels = x.astype(np.uint16), 65536.0
    else:
        x, levels = x.astype(np.float32), None
    train, held = x[tr], x[he]
    if levels is not None:
        norm, rng_ = _discrete_norm(train, levels, str(p)), (0.0, 1.0)
        desc = f"{int(levels).bit_length() - 1}-bit"
    else:
        norm = _check_normalizable(x, _continuous_norm(train, str(p)), p)
        lo, hi = float(x.min()), float(x.max())
        rng_ = (0.0, 1.0) if (lo >= 0 and hi <= 1) else (lo, hi)
        desc = "continuous"
    return _finite_dataset(
        name=name, kind="images", train=train, heldout=held, levels=levels, norm=norm,
        source=f"{p}: {N} {desc} images {tuple(x.shape[1:])}", display_range=rng_,
    )


def _image_folder_dataset(p: Path) -> DataSet:
    files = sorted(
        f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DataError(f"{p}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    if len(files) < MIN_EXAMPLES:
        raise DataError(f"{p}: only {len(files)} images; at least {MIN_EXAMPLES} are needed")
    if len(files) > MAX_IMAGES:
        raise DataError(f"{p}: the folder holds {len(files):,} images, more than the limit of {MAX_IMAGES:,}")
    arrays: list[np.ndarray] = []
    maxvals = set()
    total = 0
    for f in files:
        a, maxval = _read_image_raw(f)
        if arrays and a.shape[1:] != arrays[0].shape[1:]:
            h0, w0 = arrays[0].shape[1:]
            raise DataError(
                f"{p}: the images differ in size ({files[0].name} is {w0}×{h0}, {f.name} is "
                f"{a.shape[2]}×{a.shape[1]}); each image is one example, so all must have the same size "
                "(resize them first, or load one large image to train on patches)"
            )
        total += a.nbytes
        if total > MAX_ARRAY_BYTES:
            raise DataError(f"{p}: the images need more than {MAX_ARRAY_BYTES / 1024**3:.0f} GiB decoded")
        arrays.append(a)
        maxvals.add(maxval)
    if len(maxvals) > 1:
        raise DataError(
            f"{p}: the folder mixes images of different bit depths (8-bit, 16-bit, float); convert them to one"
        )
    C = max(a.shape[0] for a in arrays)
    x = np.stack([np.repeat(a, C, axis=0) if a.shape[0] < C else a for a in arrays])  # [N, C, H, W]
    maxval = maxvals.pop()
    levels = None if maxval is None else float(maxval + 1)
    n_held = max(1, int(round(HELDOUT_FRACTION * len(x))))
    tr, he = _split(len(x), n_held)
    train, held = x[tr], x[he]
    norm = _discrete_norm(train, levels, str(p)) if levels else _continuous_norm(train, str(p))
    return _finite_dataset(
        name=p.name, kind="images", train=train, heldout=held, levels=levels, norm=norm,
        source=f"{p}: {len(x)} images {tuple(x.shape[1:])}",
    )


def load_file(path: str | Path, *, patch_size: int = 32) -> DataSet:
    """The user's own data, kind detected.

    * ``.npy`` (no pickle), ``.csv`` (one point per row, optional header), ``.h5``/``.hdf5`` (dataset
      ``x``): values all in {0, 1} → binary (flattened to [N, D]); [N, D] → points; [N, H, W] or
      [N, C, H, W] → images (integers 0..255 are 8-bit and dequantized, uint16 16-bit, floats
      continuous).
    * one image file → random patch_size² patches, like the bark preset.
    * a folder of images → one example per image; all must have the same size.

    10% is held out (fixed seed). Every problem raises DataError naming the path.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if p.is_dir():
        return _image_folder_dataset(p)
    _check_file(p)
    ext = p.suffix.lower()
    if ext == ".npy":
        return _array_dataset(_read_npy(p), p)
    if ext == ".csv":
        return _array_dataset(_read_csv(p), p)
    if ext in (".h5", ".hdf5"):
        return _array_dataset(_read_h5(p), p)
    if ext in IMAGE_EXTENSIONS:
        patch = _positive_int(patch_size, "patch_size")
        a, maxval = _read_image_raw(p)
        return _patch_dataset(
            name=p.stem,
            images=[a],
            levels=None if maxval is None else float(maxval + 1),
            patch=patch,
            source=f"{p}: one {a.shape[2]}×{a.shape[1]} image, random {patch}×{patch} patches",
            what=str(p),
        )
    raise DataError(
        f"{p}: unsupported file type {ext or '(no extension)'!r}; expected .npy, .csv, .h5/.hdf5, "
        f"an image ({', '.join(IMAGE_EXTENSIONS)}) or a folder of images"
    )
