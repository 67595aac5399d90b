"""Hostile input files: every loader either returns a valid result or raises its module's clear error.

Property-based (hypothesis): random bytes, truncated valid files, forged headers that claim absurd
sizes, wrong-typed contents. For every input a loader must either

* return something valid (a DataSet that draws finite batches, an image in [0, 1], a bool mask, ...), or
* raise DataError (models.data, models.images) / CheckpointError (models.io, models.checkpoint)
  whose message names the file,

never another exception type, never a hang (a watchdog kills the run after WATCHDOG_S seconds) and
never an allocation sized by a forged header (tracemalloc's peak is checked where a header lies).
Plus a source scan: nothing in models/ or explorer/ can unpickle.
"""
from __future__ import annotations

import ast
import faulthandler
import io
import io as _io
import os
import pickle
import re
import struct
import tokenize
import tracemalloc
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from models import data as D
from models import images as I
from models.files import CheckpointError, load_trajectory, save_trajectory
from models.config import ModelConfig
from models.data import DataError
from models.files import load_model, save_model
from models.model import DiffusionModel

ROOT = Path(__file__).resolve().parents[2]
WATCHDOG_S = 120  # a hang in C code (HDF5, a decoder) cannot be interrupted; dump stacks and exit instead
PEAK_BYTES = 64 * 1024**2  # a loader refusing a forged header must not allocate what it claims

# HOSTILE_MAX_EXAMPLES=2000 for a deeper (slow) fuzzing run; the default keeps the file under ~30 s.
MAX_EXAMPLES = int(os.environ.get("HOSTILE_MAX_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=max(1, MAX_EXAMPLES // 2))
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.*")  # Pillow narrates damaged files

# A PNG cut within its last bytes can still decode: IEND (12), the IDAT CRC (4), zlib's Adler-32 (4) and the
# last deflate bits hold no pixels. A cut before these loses pixel data and must be refused.
PNG_TAIL = 32
IMAGE_SUFFIXES = [".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".pgm"]
PNG_SIG = b"\x89PNG\r\n\x1a\n"
HDF5_SIG = b"\x89HDF\r\n\x1a\n"
# magic numbers that send a decoder past format detection into the parser
IMAGE_MAGICS = [b"", PNG_SIG, PNG_SIG + b"\x00\x00\x00\x0dIHDR", b"GIF89a", b"GIF87a", b"BM", b"II*\x00",
                b"MM\x00*", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"P5\n", b"P6\n", b"RIFF\x00\x01\x00\x00WEBPVP8 "]
NPY_MAGICS = [b"", b"\x93NUMPY", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x93NUMPY\x03\x00", b"PK\x03\x04"]


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Any attempt to unpickle while a loader runs fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a loader tried to unpickle")

    class RefusingUnpickler(pickle.Unpickler):  # still a class: modules imported lazily may subclass it
        def __init__(self, *args, **kwargs):
            refuse()

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)


@pytest.fixture
def d(tmp_path_factory):
    """A fresh folder per test (reused by every example of a property: each writes its file anew)."""
    return tmp_path_factory.mktemp("hostile")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def attempt(fn, path, *args, error=DataError, **kwargs):
    """fn(path, ...) → its result, or None when it raised ``error`` naming the file; anything else
    (another exception type, an error that does not name the file) fails the test."""
    try:
        return fn(path, *args, **kwargs)
    except error as e:
        assert Path(path).name in str(e), f"the message does not name the file: {e}"
        return None


def refused(fn, path, *args, error=DataError, match: str | None = None, **kwargs) -> str:
    with pytest.raises(error) as info:
        fn(path, *args, **kwargs)
    msg = str(info.value)
    assert Path(path).name in msg, f"the message does not name the file: {msg}"
    if match is not None:
        assert re.search(match, msg, re.IGNORECASE), f"{match!r} not in {msg!r}"
    return msg


def check_dataset(ds: D.DataSet) -> None:
    g = torch.Generator().manual_seed(0)
    x = ds.sample_train(3, g)
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, *ds.example_shape)
    assert bool(torch.isfinite(x).all())
    h = ds.heldout()
    assert tuple(h.shape[1:]) == tuple(ds.example_shape) and len(h) == ds.n_heldout >= 1
    assert bool(torch.isfinite(h).all())


def check_image(a: np.ndarray) -> None:
    assert a.dtype == np.float32 and a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[1] and a.shape[2]
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1


def load_bounded(fn, *args, **kwargs):
    """Run fn under tracemalloc; return (result or exception, peak bytes). numpy reports its array
    allocations to tracemalloc, so an array sized by a forged header shows up in the peak."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - returned to the caller, which checks the type
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(a: np.ndarray, **kwargs) -> bytes:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="PNG", **kwargs)
    return b.getvalue()


def npy_bytes(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=allow_pickle)
    return b.getvalue()


def npy_with_header(header: str, version: int = 1, payload: bytes = b"") -> bytes:
    """A .npy file with this header text. Text a version 1/2 header cannot hold (not latin-1: hypothesis draws
    any text) goes in as its UTF-8 bytes, one more malformed header for the reader to refuse."""
    try:
        h = header.encode("latin1" if version < 3 else "utf8")
    except UnicodeEncodeError:
        h = header.encode("utf8", "surrogatepass")
    length = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + length + h + payload


RNG = np.random.default_rng(12345)
VALID_ARRAYS = {
    "points": RNG.normal(3.0, 2.0, (20, 3)),
    "images8": RNG.integers(0, 256, (12, 5, 5), dtype=np.uint8),
    "binary": RNG.integers(0, 2, (15, 4)).astype(bool),
    "images16": RNG.integers(0, 65536, (11, 1, 4, 4), dtype=np.uint16),
}
VALID_NPY = {k: npy_bytes(v) for k, v in VALID_ARRAYS.items()}


# ---------------------------------------------------------------------------------------------------
# .npy


@FUZZ
@given(magic=st.sampled_from(NPY_MAGICS), body=st.binary(max_size=300))
def test_npy_random_bytes(d, magic, body):
    p = write(d / "random.npy", magic + body)
    ds = attempt(D.load_file, p)
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(which=st.sampled_from(sorted(VALID_NPY)), data=st.data())
def test_npy_truncated_is_refused(d, which, data):
    full = VALID_NPY[which]
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    p = write(d / "truncated.npy", full[:cut])
    refused(D.load_file, p)


def test_valid_npy_files_still_load(d):
    for which, blob in VALID_NPY.items():
        check_dataset(D.load_file(write(d / f"{which}.npy", blob)))


header_values = st.one_of(
    st.integers(-(2**70), 2**70), st.text(max_size=8), st.none(), st.booleans(), st.floats(allow_nan=True),
    st.lists(st.integers(-5, 5), max_size=3),
)
descrs = st.sampled_from(["<f8", "<f4", "|u1", "<u2", "|b1", "|O", "<c16", "<U3", "|S2", "<M8[s]", "|V4", "<f2",
                          "[('a', '<f4'), ('b', '<i2')]", "('<f8', (3,))", "('<f8', (100000, 100000))", "'|O'"])


@FUZZ
@given(
    shape=st.one_of(
        st.lists(st.integers(-3, 40), max_size=4),
        st.lists(st.integers(0, 2**64), min_size=1, max_size=3),
        st.lists(header_values, max_size=3),
    ),
    descr=descrs,
    fortran=st.sampled_from(["False", "True", "1", "None"]),
    version=st.sampled_from([1, 2, 3]),
    payload=st.binary(max_size=200),
)
@example(shape=["\u4e2d"], descr="<f8", fortran="False", version=1, payload=b"")  # a header latin-1 cannot hold
def test_npy_forged_headers(d, shape, descr, fortran, version, payload):
    """Headers with nonsense shapes, dtypes and flags (numpy's own header check passes many of them)."""
    descr_text = descr if descr.startswith(("[", "(", "'")) else repr(descr)
    header = f"{{'descr': {descr_text}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    p = write(d / "forged.npy", npy_with_header(header, version, payload))
    out, peak = load_bounded(attempt, D.load_file, p)
    if isinstance(out, BaseException):
        raise out
    assert peak < PEAK_BYTES, f"{peak / 1024**2:.0f} MiB allocated for a {len(payload)}-byte payload"
    if out is not None:
        check_dataset(out)


@FEW
@given(header=st.text(max_size=120), version=st.sampled_from([1, 2, 3]), payload=st.binary(max_size=64))
def test_npy_garbage_header_text(d, header, version, payload):
    try:
        blob = npy_with_header(header, version, payload)
    except UnicodeEncodeError:
        blob = npy_with_header(header.encode("utf8", "surrogatepass").decode("latin1"), 2, payload)
    p = write(d / "garbage.npy", blob)
    assert attempt(D.load_file, p) is None


@pytest.mark.parametrize("header", [
    "{'descr': '<f8', 'fortran_order': False, 'shape': {[]: 1}, }",  # ast.literal_eval: TypeError
    "{'descr': '<f8', 'fortran_order': False, 'shape': " + "(" * 300 + ")" * 300 + ", }",
    "{'descr': {}, 'fortran_order': False, 'shape': (20, 2), }",
    "{'descr': [('a', '<f8', (-1,))], 'fortran_order': False, 'shape': (20,), }",
    "{'descr': '<f8', 'fortran_order': False, 'shape': (20, 2), 'extra': 1}",
    "[1, 2, 3]",
])
def test_npy_malformed_header_dicts(d, header):
    refused(D.load_file, write(d / "malformed.npy", npy_with_header(header, 1, b"\0" * 400)))


@pytest.mark.parametrize("shape", [(10**12,), (10**9, 3), (1, 10**6, 10**6), (2**40, 2**40, 2**40), (2**63 - 1,)])
@pytest.mark.parametrize("descr", ["<f8", "|u1"])
def test_npy_absurd_shape_is_refused_before_allocating(d, shape, descr):
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    p = write(d / "absurd.npy", npy_with_header(header, 1, b"\0" * 128))
    out, peak = load_bounded(D.load_file, p)
    assert isinstance(out, DataError), repr(out)
    assert p.name in str(out) and re.search(r"GiB|truncated", str(out)), str(out)
    assert peak < PEAK_BYTES


def test_npy_object_arrays_are_never_unpickled(d):
    marker = d / "unpickled-marker"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    blobs = {  # (saving pickles; only loading is forbidden, by the autouse fixture)
        "objects.npy": npy_bytes(np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True),
        "evil.npy": npy_bytes(np.array([[Evil(), 1.0]] * 12, dtype=object), allow_pickle=True),
        "evil-struct.npy": npy_bytes(np.array([(Evil(), 1.0)] * 12, dtype=[("o", object), ("f", "<f8")]),
                                     allow_pickle=True),
    }
    for name, blob in blobs.items():
        refused(D.load_file, write(d / name, blob), match="pickle|objects")
        assert not marker.exists(), "the pickle payload ran"


@FUZZ
@given(
    shape=st.sampled_from([(12, 2), (10, 3, 3), (11, 1, 2, 2)]),
    bad=st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=1, max_size=4),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    data=st.data(),
)
def test_npy_nan_and_inf_are_refused(d, shape, bad, dtype, data):
    a = np.random.default_rng(0).normal(size=shape).astype(dtype)
    for v in bad:
        a.flat[data.draw(st.integers(0, a.size - 1))] = v
    refused(D.load_file, write(d / "nonfinite.npy", npy_bytes(a)), match="NaN|infinite")


@pytest.mark.parametrize("a", [
    np.float64(3.0),                              # 0-d
    np.arange(40.0),                              # 1-d
    np.zeros((12, 0)),                            # empty
    np.ones((3, 2)),                              # too few rows
    np.zeros((12, 1, 1, 1, 1)),                   # 5-d
    np.full((12, 2), 1e300) * np.arange(24).reshape(12, 2),  # beyond float32
    np.array([[1 + 2j] * 2] * 12),                # complex
    np.array([["ab", "cd"]] * 12),                # strings
    np.zeros((12, 2), dtype="datetime64[s]"),
    np.zeros(12, dtype=[("a", "<f4"), ("b", "<f4")]),
])
def test_npy_wrong_typed_arrays(d, a):
    refused(D.load_file, write(d / "wrong.npy", npy_bytes(a)))


# ---------------------------------------------------------------------------------------------------
# .csv


@FUZZ
@given(text=st.text(max_size=300))
def test_csv_random_text(d, text):
    p = d / "random.csv"
    p.write_text(text, encoding="utf-8", newline="")
    ds = attempt(D.load_file, p)
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(body=st.binary(max_size=300))
def test_csv_random_bytes(d, body):
    ds = attempt(D.load_file, write(d / "bytes.csv", body))
    if ds is not None:
        check_dataset(ds)


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["", " ", "x", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e-400", "1e39", "0x10",
                     "1_0", "\u0661", "1,5", '"1"', "#", "1e", "--1", "\x00"]),
)


@FUZZ
@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=4), max_size=14),
    delimiter=st.sampled_from([",", ";", "\t", " "]),
    header=st.sampled_from([None, "x,y", "a;b;c", "# comment", "x"]),
)
def test_csv_ragged_nonnumeric_huge_and_nan_cells(d, rows, delimiter, header):
    lines = ([header] if header else []) + [delimiter.join(r) for r in rows]
    p = d / "cells.csv"
    p.write_text("\n".join(lines), encoding="utf-8", newline="")
    ds = attempt(D.load_file, p)
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(n=st.integers(10, 30), dims=st.integers(1, 3), data=st.data())
def test_csv_numeric_points_load_or_are_refused_clearly(d, n, dims, data):
    big = float(np.finfo(np.float32).max)
    finite = st.floats(-big, big, width=32)
    rows = data.draw(st.lists(st.lists(finite, min_size=dims, max_size=dims), min_size=n, max_size=n))
    p = d / "points.csv"
    p.write_text("x,y,z\n" + "\n".join(",".join(repr(v) for v in r) for r in rows), encoding="utf-8")
    ds = attempt(D.load_file, p)
    if ds is not None:
        check_dataset(ds)


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("x,y\n", "empty|examples"),
    ("x,y\n1,2\n3\n", "numeric"),
    ("1,2\n" * 12 + "1,2,3\n", "numeric"),
    ("1,2\n" * 12 + "a,b\n", "numeric"),
    ("1,2\n" * 12 + "nan,1\n", "NaN"),
    ("1,2\n" * 12 + "1e400,1\n", "NaN|infinite"),
    ("1,2\n" * 12 + "1e300,1\n", "too large"),
    ("1,2\n" * 12 + "9" * 400 + ",1\n", "NaN|infinite|too large"),
    ("\ufeff" + "\n" * 20, "empty|examples"),
])
def test_csv_edge_cases(d, text, match):
    p = d / "edge.csv"
    p.write_text(text, encoding="utf-8")
    refused(D.load_file, p, match=match)


def test_csv_invalid_utf8(d):
    refused(D.load_file, write(d / "latin1.csv", "x,é\n".encode("latin1") + b"1,2\n" * 12))


# ---------------------------------------------------------------------------------------------------
# .h5


def h5_bytes(tmp: Path, build) -> bytes:
    p = tmp / "build.h5"
    with h5py.File(p, "w") as f:
        build(f)
    blob = p.read_bytes()
    p.unlink()
    return blob


@pytest.fixture(scope="module")
def valid_h5(tmp_path_factory) -> list[bytes]:
    tmp = tmp_path_factory.mktemp("h5")
    x = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    return [
        h5_bytes(tmp, lambda f: f.create_dataset("x", data=x)),
        h5_bytes(tmp, lambda f: f.create_dataset("x", data=x, chunks=(5, 3), compression="gzip", fletcher32=True)),
        h5_bytes(tmp, lambda f: f.create_dataset("x", data=(x > 0).astype(np.uint8), chunks=True)),
    ]


@FUZZ
@given(magic=st.sampled_from([b"", HDF5_SIG]), body=st.binary(max_size=400))
def test_h5_random_bytes(d, magic, body):
    ds = attempt(D.load_file, write(d / "random.h5", magic + body))
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(which=st.integers(0, 2), data=st.data())
def test_h5_truncated_is_refused(d, valid_h5, which, data):
    full = valid_h5[which]
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    refused(D.load_file, write(d / "truncated.hdf5", full[:cut]))


@FEW
@given(which=st.integers(0, 2), flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)),
                                               min_size=1, max_size=4))
def test_h5_damaged_bytes(d, valid_h5, which, flips):
    """Overwritten bytes: a damaged file makes h5py raise RuntimeError, KeyError, ...; all must be DataError."""
    blob = bytearray(valid_h5[which])
    for pos, value in flips:
        blob[pos % len(blob)] = value
    ds = attempt(D.load_file, write(d / "damaged.h5", bytes(blob)))
    if ds is not None:
        check_dataset(ds)


def test_h5_valid_files_still_load(d, valid_h5):
    for k, blob in enumerate(valid_h5):
        check_dataset(D.load_file(write(d / f"valid{k}.h5", blob)))


H5_WRONG = {
    "no_x": lambda f: f.create_dataset("y", data=np.zeros((20, 2))),
    "empty_file": lambda f: None,
    "x_group": lambda f: f.create_group("x"),
    "x_strings": lambda f: f.create_dataset("x", data=np.array([b"ab", b"cd"] * 10)),
    "x_vlen_strings": lambda f: f.create_dataset("x", data=["ab", "cd"] * 10, dtype=h5py.string_dtype()),
    "x_compound": lambda f: f.create_dataset("x", data=np.zeros(20, dtype=[("a", "<f4"), ("b", "<i4")])),
    "x_array_dtype": lambda f: f.create_dataset("x", shape=(20,), dtype=np.dtype(("<f4", (3,)))),
    "x_complex": lambda f: f.create_dataset("x", data=np.ones((20, 2), dtype=np.complex64)),
    "x_null": lambda f: f.create_dataset("x", data=h5py.Empty("f4")),
    "x_scalar": lambda f: f.create_dataset("x", data=3.0),
    "x_1d": lambda f: f.create_dataset("x", data=np.arange(20.0)),
    "x_zero_rows": lambda f: f.create_dataset("x", shape=(0, 10**12), dtype="f4"),
    "x_nan": lambda f: f.create_dataset("x", data=np.full((20, 2), np.nan)),
    "x_dangling_link": lambda f: f.__setitem__("x", h5py.SoftLink("/nowhere")),
    "x_external_link": lambda f: f.__setitem__("x", h5py.ExternalLink("/nonexistent/file.h5", "/x")),
    "x_huge_lazy": lambda f: f.create_dataset("x", shape=(10**10, 2), dtype="f4"),
    "x_huge_chunked": lambda f: f.create_dataset("x", shape=(10**8, 10**4), dtype="f8", chunks=(1, 16),
                                                 compression="gzip"),
    "x_huge_resizable": lambda f: f.create_dataset("x", shape=(2**40, 2**20), maxshape=(None, None), dtype="u1",
                                                   chunks=(1, 1024)),
}


@pytest.mark.parametrize("case", sorted(H5_WRONG))
def test_h5_wrong_contents(d, case):
    p = write(d / f"{case}.h5", h5_bytes(d, H5_WRONG[case]))
    out, peak = load_bounded(D.load_file, p)
    assert isinstance(out, DataError), repr(out)
    assert p.name in str(out)
    assert peak < PEAK_BYTES, f"{peak / 1024**2:.0f} MiB allocated"
    if case.startswith("x_huge"):
        assert "GiB" in str(out)


# ---------------------------------------------------------------------------------------------------
# images


def _image_sources() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    out = {}
    for key, im, fmt in [
        ("rgb.png", Image.fromarray(rgb), "PNG"),
        ("rgba.png", Image.fromarray(rng.integers(0, 256, (40, 36, 4), dtype=np.uint8)), "PNG"),
        ("grey16.png", Image.fromarray(rng.integers(0, 65536, (40, 36), dtype=np.uint16)), "PNG"),
        ("palette.png", Image.fromarray(rgb).convert("P"), "PNG"),
        ("la.png", Image.fromarray(rgb).convert("LA"), "PNG"),
        ("bits.png", Image.fromarray(rgb).convert("1"), "PNG"),
        ("rgb.jpg", Image.fromarray(rgb), "JPEG"),
        ("anim.gif", Image.fromarray(rgb).convert("P"), "GIF"),
        ("rgb.bmp", Image.fromarray(rgb), "BMP"),
        ("rgb.tif", Image.fromarray(rgb), "TIFF"),
        ("float.tif", Image.fromarray(rng.random((40, 36), dtype=np.float32)), "TIFF"),
        ("rgb.webp", Image.fromarray(rgb), "WEBP"),
        ("grey.pgm", Image.fromarray(rgb[..., 0]), "PPM"),
    ]:
        b = io.BytesIO()
        im.save(b, format=fmt)
        out[key] = b.getvalue()
    return out


IMAGES = _image_sources()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_valid_images_of_every_mode_load(d, name):
    p = write(d / name, IMAGES[name])
    a = D.load_image(p)
    check_image(a)
    assert a.shape[1:] == (40, 36)
    assert a.shape[0] == (1 if name.startswith(("grey", "la", "bits", "float")) else 3)
    check_dataset(D.load_file(p, patch_size=8))
    assert I.read_mask(p).shape == (40, 36)


@FUZZ
@given(magic=st.sampled_from(IMAGE_MAGICS), body=st.binary(max_size=400), suffix=st.sampled_from(IMAGE_SUFFIXES))
def test_images_random_bytes(d, magic, body, suffix):
    p = write(d / f"random{suffix}", magic + body)
    a = attempt(D.load_image, p)
    if a is not None:
        check_image(a)
    ds = attempt(D.load_file, p, patch_size=4)
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(name=st.sampled_from(sorted(IMAGES)), data=st.data())
def test_images_truncated(d, name, data):
    full = IMAGES[name]
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    p = write(d / f"truncated{Path(name).suffix}", full[:cut])
    a = attempt(D.load_image, p)  # a cut inside trailing chunks (IEND, metadata) may still decode
    if a is not None:
        check_image(a)
    if name.endswith(".png") and cut < len(full) - PNG_TAIL:
        assert a is None


@FEW
@given(name=st.sampled_from(sorted(IMAGES)), flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)),
                                                           min_size=1, max_size=6))
def test_images_damaged_bytes(d, name, flips):
    blob = bytearray(IMAGES[name])
    for pos, value in flips:
        blob[pos % len(blob)] = value
    a = attempt(D.load_image, write(d / f"damaged{Path(name).suffix}", bytes(blob)))
    if a is not None:
        check_image(a)


def png_claiming(w: int, h: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour, 0, 0, 0)
    return PNG_SIG + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b"")


def patched_small_png(w: int, h: int) -> bytes:
    """A real PNG saved by Pillow, its IHDR size patched (and the chunk's CRC recomputed)."""
    blob = bytearray(png_bytes(np.zeros((4, 4, 3), np.uint8)))
    assert blob[12:16] == b"IHDR"
    blob[16:24] = struct.pack(">II", w, h)
    blob[29:33] = struct.pack(">I", zlib.crc32(bytes(blob[12:29])) & 0xFFFFFFFF)
    return bytes(blob)


@FUZZ
@given(w=st.integers(1, 2**31 - 1), h=st.integers(1, 2**31 - 1), patched=st.booleans(),
       colour=st.sampled_from([(8, 0), (8, 2), (8, 6), (16, 2), (8, 3), (1, 0)]))
def test_png_claiming_a_huge_size_is_refused(d, w, h, patched, colour):
    assume(w * h > 200_000_000)  # beyond both our 50 M-pixel limit and Pillow's bomb guard
    blob = patched_small_png(w, h) if patched else png_claiming(w, h, *colour)
    p = write(d / "bomb.png", blob)
    for fn in (D.load_image, I.read_mask, D.load_file):
        out, peak = load_bounded(fn, p)
        assert isinstance(out, DataError), repr(out)
        assert p.name in str(out) and re.search(r"decompression bomb|pixels", str(out)), str(out)
        assert peak < PEAK_BYTES


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (1, 2**31 - 1), (2**31 - 1, 1), (0, 10), (10, 0), (0, 0)])
def test_png_header_sizes(d, w, h):
    p = write(d / "header.png", png_claiming(w, h))
    msg = refused(D.load_image, p)
    if w * h > 200_000_000:
        assert re.search(r"decompression bomb|pixels", msg), msg


def test_bmp_claiming_a_huge_size_is_refused(d):
    blob = bytearray(IMAGES["rgb.bmp"])
    blob[18:26] = struct.pack("<ii", 100_000, 100_000)
    refused(D.load_image, write(d / "bomb.bmp", bytes(blob)), match="decompression bomb|pixels")


def test_max_pixels_is_honoured(d):
    refused(D.load_image, write(d / "big.png", IMAGES["rgb.png"]), max_pixels=100, match="pixels")


@pytest.mark.parametrize("patch", [0, -1, 64, 10**9])
def test_load_file_image_bad_patch_sizes(d, patch):
    p = write(d / "small.png", IMAGES["rgb.png"])
    with pytest.raises((DataError, ValueError)) as info:
        D.load_file(p, patch_size=patch)
    assert "small.png" in str(info.value) or "patch_size" in str(info.value)


@FEW
@given(n_random=st.integers(0, 3), n_valid=st.integers(0, 11), suffix=st.sampled_from(IMAGE_SUFFIXES),
       body=st.binary(max_size=64))
def test_image_folders(tmp_path_factory, n_random, n_valid, suffix, body):
    folder = tmp_path_factory.mktemp("folder")
    for k in range(n_valid):
        write(folder / f"ok{k:02d}.png", IMAGES["rgb.png"])
    for k in range(n_random):
        write(folder / f"bad{k:02d}{suffix}", body)
    ds = attempt(D.load_file, folder)
    if ds is not None:
        check_dataset(ds)
        assert n_random == 0 and n_valid >= D.MIN_EXAMPLES


def test_image_folder_mixed_sizes_and_depths(d):
    for k in range(10):
        write(d / f"a{k}.png", IMAGES["rgb.png"] if k else IMAGES["grey16.png"])
    refused(D.load_file, d, match="bit depth|differ")
    write(d / "a0.png", png_bytes(np.zeros((5, 5, 3), np.uint8)))
    refused(D.load_file, d, match="differ in size")


# ---------------------------------------------------------------------------------------------------
# CIFAR-10 binary


REC = D.readers.CIFAR_RECORD_BYTES


@FUZZ
@given(body=st.binary(max_size=2 * REC + 5))
def test_cifar_random_bytes(d, body):
    p = write(d / "data_batch_1.bin", body)
    out = attempt(D.read_cifar10_binary, p)
    if len(body) == 0 or len(body) % REC:
        assert out is None
    if out is not None:
        images, labels = out
        assert images.shape == (len(body) // REC, 3, 32, 32) and images.dtype == np.uint8
        assert labels.shape == (len(body) // REC,) and labels.max() <= 9


@FUZZ
@given(records=st.integers(0, 3), extra=st.integers(-REC + 1, REC - 1), labels=st.lists(st.integers(0, 255),
                                                                                        min_size=3, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_cifar_lengths_and_labels(d, records, extra, labels, seed):
    raw = np.random.default_rng(seed).integers(0, 256, (records, REC), dtype=np.uint8)
    raw[:, 0] = labels[:records]
    blob = raw.tobytes()
    blob = blob[:extra] if extra < 0 else blob + b"\x07" * extra
    p = write(d / "test_batch.bin", blob)
    out = attempt(D.read_cifar10_binary, p, split="test")
    whole = len(blob) > 0 and len(blob) % REC == 0
    if not whole:
        assert out is None
    elif out is not None:
        assert len(out[0]) == len(blob) // REC
    if len(blob) and len(blob) % REC:
        msg = refused(D.read_cifar10_binary, p)
        assert "CIFAR-10 records" in msg


def test_cifar_folders(tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    refused(D.read_cifar10_binary, empty, match="missing")
    refused(D.read_cifar10_binary, empty, split="test", match="missing")
    with pytest.raises(DataError, match="empty"):
        D.load_preset("cifar10", cifar_dir=empty)
    nested = tmp_path_factory.mktemp("nested")
    inner = nested / "cifar-10-batches-bin"
    inner.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        write(inner / name, os.urandom(100))
    refused(D.read_cifar10_binary, nested, match="data_batch_1.bin")
    write(inner / "test_batch.bin", b"")
    refused(D.read_cifar10_binary, nested, split="test", match="empty")
    (inner / "data_batch_1.bin").unlink()
    (inner / "data_batch_1.bin").mkdir()
    refused(D.read_cifar10_binary, nested, match="missing")
    refused(D.read_cifar10_binary, nested / "nothing-here", match="no such")


# ---------------------------------------------------------------------------------------------------
# masks and images for inpainting


@FUZZ
@given(magic=st.sampled_from(IMAGE_MAGICS), body=st.binary(max_size=300),
       shape_hw=st.sampled_from([None, (8, 8), (3, 50)]))
def test_mask_random_bytes(d, magic, body, shape_hw):
    m = attempt(I.read_mask, write(d / "mask.png", magic + body), shape_hw)
    if m is not None:
        assert m.dtype == np.bool_ and m.ndim == 2
        assert shape_hw is None or m.shape == shape_hw


@FUZZ
@given(data=st.data(), shape_hw=st.sampled_from([None, (8, 8)]))
def test_mask_truncated_png(d, data, shape_hw):
    full = png_bytes(np.where(np.arange(30 * 20).reshape(30, 20) % 3, 255, 0).astype(np.uint8))
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    m = attempt(I.read_mask, write(d / "mask.png", full[:cut]), shape_hw)
    if m is not None:
        assert m.dtype == np.bool_ and m.shape == (shape_hw or (30, 20))
    if cut < len(full) - PNG_TAIL:
        assert m is None


# ---------------------------------------------------------------------------------------------------
# model files and trajectories


@pytest.fixture(scope="module")
def model_blobs(tmp_path_factory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    mlp = DiffusionModel(ModelConfig(kernel="gaussian", T=5, example_shape=(2,), arch="mlp", hidden=4, layers=1))
    save_model(tmp / "mlp.h5", mlp, norm={"mean": [0.0, 0.0], "std": 1.0, "levels": None},
               history={"iteration": np.arange(3), "K_train_bits": np.ones(3)}, meta={"data": "swissroll"},
               heldout=np.zeros((4, 2), np.float32))
    conv = DiffusionModel(ModelConfig(kernel="gaussian", T=4, example_shape=(1, 8, 8), arch="conv", hidden=4,
                                      conv_layers=1, n_scales=2, dense_layers=1, dense_hidden=8, J=3,
                                      time_features=0))
    save_model(tmp / "conv.h5", conv, norm={"mean": 0.45, "std": 0.25, "levels": 256})
    save_trajectory(tmp / "traj.h5", np.random.default_rng(0).normal(size=(3, 2, 4)).astype(np.float32),
                    t=np.arange(3), meta={"kind": "reverse"})
    return {name: (tmp / name).read_bytes() for name in ("mlp.h5", "conv.h5", "traj.h5")}


def test_saved_model_files_load(d, model_blobs):
    assert load_model(write(d / "mlp.h5", model_blobs["mlp.h5"])).config.T == 5
    lm = load_model(write(d / "conv.h5", model_blobs["conv.h5"]))
    assert tuple(lm.config.example_shape) == (1, 8, 8)
    assert load_trajectory(write(d / "traj.h5", model_blobs["traj.h5"])).traj.shape == (3, 2, 4)


def _model_error(fn, p: Path):
    try:
        fn(p)
    except CheckpointError as e:
        assert str(e).startswith(str(p)), str(e)
        return e
    pytest.fail(f"{fn.__name__} accepted a damaged file")


@FUZZ
@given(magic=st.sampled_from([b"", HDF5_SIG, b"PK\x03\x04", b"\x80\x04\x95"]), body=st.binary(max_size=400),
       suffix=st.sampled_from([".h5", ".dpm", ".pt", ""]))
def test_model_and_trajectory_random_bytes(d, magic, body, suffix):
    p = write(d / f"random{suffix}", magic + body)
    _model_error(load_model, p)
    _model_error(load_trajectory, p)


@FUZZ
@given(which=st.sampled_from(["mlp.h5", "conv.h5", "traj.h5"]), data=st.data())
def test_model_and_trajectory_truncated(d, model_blobs, which, data):
    full = model_blobs[which]
    cut = data.draw(st.integers(0, len(full) - 1), label="cut")
    p = write(d / f"truncated-{which}", full[:cut])
    _model_error(load_trajectory if which == "traj.h5" else load_model, p)


@FEW
@given(data=st.data())
def test_model_file_with_user_block_of_garbage(d, model_blobs, data):
    """HDF5's signature is also searched after a 512·2^k-byte user block: garbage there, then a cut file."""
    full = model_blobs["mlp.h5"]
    block = data.draw(st.binary(min_size=512, max_size=512))
    cut = data.draw(st.integers(0, len(full) - 1))
    p = write(d / "userblock.h5", block + full[:cut])
    _model_error(load_model, p)


def test_model_loaders_reject_other_files(d, model_blobs, valid_h5):
    _model_error(load_model, write(d / "traj-as-model.h5", model_blobs["traj.h5"]))
    _model_error(load_trajectory, write(d / "model-as-traj.h5", model_blobs["mlp.h5"]))
    _model_error(load_model, write(d / "data.h5", valid_h5[0]))
    _model_error(load_model, write(d / "image.png", IMAGES["rgb.png"]))
    _model_error(load_model, write(d / "empty.h5", b""))
    _model_error(load_model, d / "missing.h5")
    (d / "folder.h5").mkdir()
    _model_error(load_model, d / "folder.h5")
    # a torch.save pickle is refused, never unpickled
    buf = _io.BytesIO()
    torch.save({"state": torch.zeros(2)}, buf, _use_new_zipfile_serialization=False)
    _model_error(load_model, write(d / "torch.pt", buf.getvalue()))


@FEW
@given(magic=st.sampled_from(IMAGE_MAGICS), body=st.binary(max_size=200))
def test_prepare_image_random_bytes(d, model_blobs, magic, body):
    lm = load_model(write(d / "conv.h5", model_blobs["conv.h5"]))
    out = attempt(I.prepare_image, write(d / "input.png", magic + body), lm)
    if out is not None:
        assert bool(torch.isfinite(out.y).all())


# ---------------------------------------------------------------------------------------------------
# no code path unpickles


FORBIDDEN_TEXT = ("pickle.load", "torch.load(", "allow_pickle=True")
UNPICKLING_CALLS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads",
                    "torch.load", "joblib.load", "dill.load", "dill.loads", "shelve.open", "marshal.load",
                    "marshal.loads", "_pickle.load", "_pickle.loads", "pd.read_pickle", "pandas.read_pickle"}


def _sources() -> list[Path]:
    files = [f for top in ("models", "explorer") for f in sorted((ROOT / top).rglob("*.py"))
             if "tests" not in f.relative_to(ROOT).parts]
    assert len(files) > 10, files
    return files


def _code_text(src: str) -> str:
    """The source without comments and string literals (so docstrings may mention pickle)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING) and tok.type != getattr(tokenize, "FSTRING_MIDDLE", -1):
            out.append(tok.string)
    return "".join(out)


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def test_no_code_path_unpickles():
    problems = []
    for f in _sources():
        src = f.read_text(encoding="utf-8")
        rel = f.relative_to(ROOT)
        if any(w in src for w in ("pickle", "torch.load", "joblib", "dill", "marshal", "shelve")):
            code = _code_text(src).replace(" ", "")  # (tokenizing is slow; only where a name occurs)
            for needle in FORBIDDEN_TEXT:
                if needle.replace(" ", "") in code:
                    problems.append(f"{rel}: contains {needle!r}")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in UNPICKLING_CALLS or name.endswith((".read_pickle", "Unpickler")):
                    problems.append(f"{rel}:{node.lineno}: calls {name}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        problems.append(f"{rel}:{node.lineno}: {name}(allow_pickle=...) not literally False")
                    if name.endswith("load") and kw.arg == "weights_only":
                        problems.append(f"{rel}:{node.lineno}: {name}(weights_only=...)")
            elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "_pickle", "cPickle", "dill", "marshal"):
                if any(a.name in ("load", "loads", "Unpickler") for a in node.names):
                    problems.append(f"{rel}:{node.lineno}: imports {node.module}.load*")
    assert not problems, "\n".join(problems)


def test_the_source_scan_would_catch_unpickling():
    bad = "import pickle, numpy as np, torch\nx = pickle.load(f)\ny = np.load(p, allow_pickle=True)\nz = torch.load(p)\n"
    code = _code_text(bad)
    assert all(n.replace(" ", "") in code.replace(" ", "") for n in FORBIDDEN_TEXT)
    assert "pickle" not in _code_text('"""never pickle.load"""\n# torch.load(\nx = 1\n')
