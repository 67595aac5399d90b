"""The one validating reader for every HDF5 file the product opens (model files, trajectories, data
files, the bundled data), and the writer of the checksummed layout of the files it writes.

Reading never trusts the file (models/README.md, **File formats** and **Limits**):

1. the path must be a regular file of at most :data:`MAX_FILE_BYTES` (no FIFO, device or folder);
2. a file that starts with our 512-byte header has its SHA-256 checked before HDF5 parses a byte;
3. a file this process did not write itself (and that is not one of the product's bundled resources)
   is first parsed by a separate Python process that can be killed (:func:`probe`, through
   :mod:`.worker`): it walks every link and object, refuses links other than hard links (soft,
   external, user-defined), virtual datasets, external raw storage, filters other than the standard
   ones, declared sizes over the limits, and reads every byte; the HDF5 library can loop forever or
   crash on some damaged files, and then only that process is lost, after :func:`parse_timeout`
   seconds;
4. the file is then opened here, and :class:`Reader` checks each object again before reading it
   (hard link, storage, declared size against the limit, dtype, shape).

Every problem raises the caller's error type (a :class:`~models.files.errors.FileError`) whose
message starts with the path; lists in messages are bounded (:func:`~models.files.errors.listing`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import h5py
import numpy as np

from .atomic import atomic_write
from .errors import FileError, check_regular_file, human_bytes, listing
from .worker import KillableWorker, is_bundled
from .worker import available as worker_available

__all__ = [
    "MAX_FILE_BYTES", "MAX_DATASET_BYTES", "MAX_TOTAL_BYTES", "MAX_LINKS", "MAX_ATTRIBUTE_BYTES",
    "Reader", "open_hdf5", "sniff_format", "probe", "parse_timeout", "writing", "write_array", "write_str", "STR_DTYPE",
]

#: HDF5 files larger than this are refused before they are opened.
MAX_FILE_BYTES = 4 * 1024**3
#: One dataset's declared (decoded) size; checked before it is read, so a small compressed file that
#: decodes to gigabytes is refused unread.
MAX_DATASET_BYTES = 2 * 1024**3
#: The declared sizes of all datasets of one file together.
MAX_TOTAL_BYTES = 4 * 1024**3
#: Links (groups, datasets) in one file.
MAX_LINKS = 20_000
#: One attribute's stored size, and attributes per object.
MAX_ATTRIBUTE_BYTES = 1 << 20
MAX_ATTRIBUTES = 256
#: The probe's time limit: this many seconds plus :data:`PARSE_SECONDS_PER_GIB` per GiB of file.
PARSE_TIMEOUT_S = 30.0
PARSE_SECONDS_PER_GIB = 60.0
#: Filters a dataset may use: deflate, shuffle, fletcher32, szip, nbit, scale-offset, lzf. Any other
#: would make HDF5 look for a plugin library.
ALLOWED_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})

USERBLOCK = 512
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HEADER_MAGIC = b"dpm-explorer checksummed HDF5 v1\n"
_HEADER_FIELDS = re.compile(rb"sha256 ([0-9a-f]{64})\nbytes ([0-9]{1,20})\n")
_HEADER_NOTE = (b"\nAn HDF5 file follows this 512-byte user block; h5py, h5dump and HDFView read it as usual.\n"
                b"The checksum covers every byte after the user block.\n")
_LIBVER = ("v110", "latest")  # checksummed metadata, compact chunk indexes; readable by HDF5 >= 1.10
_COMPRESS_MIN_ELEMENTS = 1024
STR_DTYPE = h5py.string_dtype("utf-8")

# Digests of files this process wrote (their structure is ours), and files already probed.
_TRUSTED_DIGESTS: set[str] = set()
_PROBED: set[tuple] = set()


# ---------------------------------------------------------------------------------------------
# The checksum header


def _hash_body(fh: Any) -> tuple[str, int]:
    """SHA-256 (hex) and length of everything after the user block of an open binary file."""
    fh.seek(USERBLOCK)
    h, n = hashlib.sha256(), 0
    while chunk := fh.read(1 << 20):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def stamp_header(path: str | os.PathLike[str]) -> str:
    """Write the checksum header into the user block of a closed HDF5 file; returns the digest."""
    with open(path, "r+b") as fh:
        digest, n = _hash_body(fh)
        header = HEADER_MAGIC + f"sha256 {digest}\nbytes {n}\n".encode() + _HEADER_NOTE
        fh.seek(0)
        fh.write(header.ljust(USERBLOCK, b"\0"))
    _TRUSTED_DIGESTS.add(digest)
    return digest


def verify_header(p: Path, fh: Any, error: type[FileError]) -> str | None:
    """Check the raw file before HDF5 sees it: the HDF5 signature, and our header's length and
    checksum. Returns the digest for a file with our header, None for a plain HDF5 file."""
    head = fh.read(USERBLOCK)
    if not head:
        raise error(p, "the file is empty")
    if head.startswith(HDF5_SIGNATURE):
        return None  # plain HDF5 without a user block: made by hand or by another program
    if head.startswith(HEADER_MAGIC):
        fields = _HEADER_FIELDS.match(head, len(HEADER_MAGIC))
        if fields is None:
            raise error(p, "the dpm-explorer header at the start of the file is damaged")
        expected_digest, expected_n = fields[1].decode(), int(fields[2])
        digest, n = _hash_body(fh)
        if len(head) < USERBLOCK or n < expected_n:
            raise error(p, f"the file is truncated: it has {len(head) + n} bytes, its header says "
                           f"{USERBLOCK + expected_n}")
        if n > expected_n:
            raise error(p, f"the file is corrupt: {n - expected_n} unexpected bytes after its end")
        if digest != expected_digest:
            raise error(p, "the file is corrupt: its checksum does not match (damaged on disk or in transfer, "
                           "or edited after dpm-explorer wrote it)")
        fh.seek(USERBLOCK)
        if fh.read(8) != HDF5_SIGNATURE:
            raise error(p, "not an HDF5 file after its dpm-explorer header")
        return digest
    # HDF5's signature may also follow a user block of 512, 1024, 2048, ... bytes.
    size = fh.seek(0, os.SEEK_END)
    for off in (512 * 2**i for i in range(48)):
        if off + 8 > size:
            break
        fh.seek(off)
        if fh.read(8) == HDF5_SIGNATURE:
            raise error(p, f"not a dpm-explorer file: an HDF5 file with a {off}-byte user block that holds no "
                           "dpm-explorer header (another program's file, or a damaged header)")
    raise error(p, "not an HDF5 file")


# ---------------------------------------------------------------------------------------------
# The probe: a killable process parses the file first

# The probe's worker: a fresh interpreter (only h5py and numpy imported) that answers one JSON line per
# request line {"path", "max_ds", "max_total", ...} with {"problem": null | "..."}.
_PROBE_SOURCE = r"""
import json, sys
import h5py, numpy as np

class Refused(Exception):
    pass

def attrs(obj, where, q):
    names = list(obj.attrs)
    if len(names) > q["max_attrs"]:
        raise Refused(f"{where} has {len(names)} attributes, more than the limit of {q['max_attrs']}")
    for a in names:
        aid = h5py.h5a.open(obj.id, a.encode("utf-8", "surrogateescape"))
        if aid.get_storage_size() > q["max_attr"]:
            raise Refused(f"{where} attribute {a[:60]!r} holds {aid.get_storage_size():,} bytes, more than the "
                          f"limit of {q['max_attr']:,}")
        obj.attrs[a]

def check(q):
    with h5py.File(q["path"], "r", locking=False) as f:
        datasets, state = [], {"links": 0, "total": 0}
        attrs(f, "the root group", q)
        def visit(name, link):
            try:
                visit1(name, link)
            except Exception as e:  # raising inside the visit makes h5py report a SystemError
                state["error"] = e
                return True
        def visit1(name, link):
            state["links"] += 1
            if state["links"] > q["max_links"]:
                raise Refused(f"the file holds more than {q['max_links']} objects")
            if not isinstance(link, h5py.HardLink):
                kind = {"SoftLink": "a soft link", "ExternalLink": "an external link"}.get(type(link).__name__, "a link")
                raise Refused(f"{name[:80]!r} is {kind}; links to other objects or files are not allowed")
            obj = f[name]
            attrs(obj, repr(name[:80]), q)
            if isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise Refused(f"{name[:80]!r} is a virtual dataset (its data lives elsewhere); not allowed")
                if obj.external:
                    raise Refused(f"{name[:80]!r} keeps its data in external files; not allowed")
                dcpl = obj.id.get_create_plist()
                for i in range(dcpl.get_nfilters()):
                    fid = dcpl.get_filter(i)[0]
                    if fid not in q["filters"]:
                        raise Refused(f"{name[:80]!r} uses HDF5 filter {fid}, which is not one of the standard filters")
                if obj.shape is not None:
                    n = 1
                    for s in obj.shape:
                        n *= int(s)
                    nbytes = n * obj.dtype.itemsize
                    if nbytes > q["max_ds"]:
                        raise Refused(f"{name[:80]!r} declares {obj.shape} {obj.dtype} = {nbytes / 1024**3:.2f} GiB, more "
                                      f"than the limit of {q['max_ds'] / 1024**3:.2f} GiB (checked before reading)")
                    state["total"] += nbytes
                    if state["total"] > q["max_total"]:
                        raise Refused(f"its datasets declare more than {q['max_total'] / 1024**3:.2f} GiB together, the limit")
                    datasets.append(obj)
        f.visititems_links(visit)
        if "error" in state:
            raise state["error"]
        for ds in datasets:
            if ds.shape == () or ds.size == 0:
                ds[()]
                continue
            rows = max(1, (1 << 26) // max(1, (ds.size // ds.shape[0]) * ds.dtype.itemsize))
            for i in range(0, ds.shape[0], rows):
                ds[i:i + rows]

sys.stdout.write(json.dumps({"ready": True}) + "\n")
sys.stdout.flush()
for line in sys.stdin:
    try:
        check(json.loads(line))
        problem = None
    except Refused as e:
        problem = str(e)
    except Exception as e:
        problem = f"cannot be read as HDF5; the file is truncated or corrupt ({type(e).__name__}: {str(e)[:200]})"
    sys.stdout.write(json.dumps({"problem": problem}) + "\n")
    sys.stdout.flush()
"""


def parse_timeout(nbytes: int) -> float:
    """Seconds the probe may take on a file of ``nbytes`` bytes."""
    return PARSE_TIMEOUT_S + PARSE_SECONDS_PER_GIB * nbytes / 1024**3


def _probe_env(env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in env.items() if not k.startswith("HDF5_PLUGIN")}
    env["HDF5_PLUGIN_PATH"] = ""  # never load filter plugins
    return env


class _ProbeWorker(KillableWorker):
    """The probe's process (:class:`~models.files.worker.KillableWorker`) running :data:`_PROBE_SOURCE`."""

    def __init__(self) -> None:
        super().__init__(lambda: _PROBE_SOURCE, what="the checking process", env_update=_probe_env)


_WORKER = _ProbeWorker()


def probe(p: Path, error: type[FileError], *, max_dataset_bytes: int = MAX_DATASET_BYTES,
          max_total_bytes: int = MAX_TOTAL_BYTES, timeout: float | None = None) -> None:
    """Parse the whole file in a separate, killable Python process (see the module docstring);
    raise ``error(p, problem)`` for what it refuses, for a crash of the HDF5 library and for a parse
    that does not finish in ``timeout`` seconds (default :func:`parse_timeout`)."""
    st = os.stat(p)
    key = (os.path.realpath(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, max_dataset_bytes, max_total_bytes)
    if key in _PROBED:
        return
    if not worker_available():  # pragma: no cover - no second interpreter, or no select() on pipes
        return
    limit = parse_timeout(st.st_size) if timeout is None else timeout
    request = dict(path=os.fspath(p), max_ds=max_dataset_bytes, max_total=max_total_bytes, max_links=MAX_LINKS,
                   max_attr=MAX_ATTRIBUTE_BYTES, max_attrs=MAX_ATTRIBUTES, filters=sorted(ALLOWED_FILTERS))
    try:
        answer = _WORKER.ask(request, limit)
    except TimeoutError:
        raise error(p, f"reading it did not finish in {limit:.0f} s; the HDF5 library is probably looping on "
                       "damaged structure in the file (refused)") from None
    except OSError as e:
        raise error(p, f"cannot start a process to check the file ({e.strerror or e})") from None
    if answer is None:
        raise error(p, "the HDF5 library crashed reading it; the file is damaged")
    if answer.get("problem"):
        raise error(p, str(answer["problem"])[:600])
    _PROBED.add(key)


# ---------------------------------------------------------------------------------------------
# Reading


class Reader:
    """Checked access to one open HDF5 file; every problem is ``error(path, problem)``.

    ``max_dataset_bytes`` bounds each dataset read, ``max_total_bytes`` everything read through this
    reader; both are checked against declared sizes before reading.
    """

    def __init__(self, path: str | os.PathLike[str], f: h5py.File, error: type[FileError] = FileError, *,
                 max_dataset_bytes: int = MAX_DATASET_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.path, self.f, self.error = os.fspath(path), f, error
        self.max_dataset_bytes, self.max_total_bytes = max_dataset_bytes, max_total_bytes
        self.bytes_read = 0

    def fail(self, problem: str) -> NoReturn:
        raise self.error(self.path, problem)

    # links and objects -------------------------------------------------------------------------

    def child(self, group: h5py.Group, name: str, what: str, required: bool = True) -> Any:
        link = group.get(name, getlink=True)
        if link is None:
            if required:
                self.fail(f"{what} is missing")
            return None
        if not isinstance(link, h5py.HardLink):
            kind = {"SoftLink": "a soft link", "ExternalLink": "an external link"}.get(type(link).__name__, "a link")
            self.fail(f"{what} is {kind}; links to other objects or files are not allowed")
        return group[name]

    def group(self, parent: h5py.Group, name: str, what: str, required: bool = True) -> h5py.Group | None:
        obj = self.child(parent, name, what, required)
        if obj is not None and not isinstance(obj, h5py.Group):
            self.fail(f"{what} is not a group")
        return obj

    def names(self, group: h5py.Group, what: str) -> list[str]:
        """The link names of ``group`` (at most :data:`MAX_LINKS`)."""
        n = group.id.get_num_objs()
        if n > MAX_LINKS:
            self.fail(f"{what} holds {n:,} entries, more than the limit of {MAX_LINKS:,}")
        return list(group)

    def members(self, group: h5py.Group, what: str) -> Iterator[tuple[str, h5py.Dataset]]:
        for name in self.names(group, what):
            obj = self.child(group, name, f"{what} {name!r}")
            if not isinstance(obj, h5py.Dataset):
                self.fail(f"{what} {name!r} is not a dataset")
            yield name, obj

    def dataset(self, ds: h5py.Dataset, what: str, max_bytes: int | None = None) -> h5py.Dataset:
        """Check a dataset's storage and declared size before anything is read from it."""
        if not isinstance(ds, h5py.Dataset):
            self.fail(f"{what} is not a dataset")
        if ds.is_virtual:
            self.fail(f"{what} is a virtual dataset (its data lives in other files); not allowed")
        if ds.external:
            self.fail(f"{what} keeps its data in external files; not allowed")
        dcpl = ds.id.get_create_plist()
        for i in range(dcpl.get_nfilters()):
            fid = dcpl.get_filter(i)[0]
            if fid not in ALLOWED_FILTERS:
                self.fail(f"{what} uses HDF5 filter {fid}, which is not one of the standard filters")
        if ds.shape is None:
            self.fail(f"{what} has an empty (null) dataspace")
        nbytes = math.prod(ds.shape) * ds.dtype.itemsize
        limit = self.max_dataset_bytes if max_bytes is None else min(max_bytes, self.max_dataset_bytes)
        if nbytes > limit:
            self.fail(f"{what} declares shape {ds.shape} {ds.dtype} = {human_bytes(nbytes)}, more than the limit "
                      f"of {human_bytes(limit)} (checked before reading)")
        if self.bytes_read + nbytes > self.max_total_bytes:
            self.fail(f"its datasets need more than {human_bytes(self.max_total_bytes)} together, the limit")
        self.bytes_read += nbytes
        return ds

    # values ------------------------------------------------------------------------------------

    def numeric(self, ds: h5py.Dataset, what: str, max_bytes: int | None = None) -> np.ndarray:
        """A numeric dataset as a native-endian, C-contiguous numpy array."""
        self.dataset(ds, what, max_bytes)
        check_numeric_dtype(ds.dtype, what, self.path, self.error)
        arr = np.asarray(ds[()])
        return np.asarray(arr, dtype=arr.dtype.newbyteorder("="), order="C")

    def text(self, parent: h5py.Group, name: str, what: str, required: bool = True) -> str | None:
        """A string stored as a scalar string dataset or as a string attribute of ``parent``."""
        if name in parent.attrs and parent.get(name, getlink=True) is None:
            return self.attr_str(parent, name, what)
        ds = self.child(parent, name, what, required)
        if ds is None:
            return None
        self.dataset(ds, what)
        if h5py.check_string_dtype(ds.dtype) is None or ds.shape != ():
            self.fail(f"{what} is not a scalar string (dtype {ds.dtype}, shape {ds.shape})")
        return self.decode(ds[()], what)

    def decode(self, value: Any, what: str) -> str:
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, (bytes, np.bytes_)):
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                self.fail(f"{what} is not valid UTF-8")
        if isinstance(value, str):
            return self.valid_str(value, what)
        self.fail(f"{what} is not a string")

    def valid_str(self, value: str, what: str) -> str:
        """``value`` if it is proper Unicode (h5py smuggles undecodable bytes in as surrogates)."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{what} is not valid UTF-8")
        return value

    def attr_str(self, obj: Any, name: str, what: str, required: bool = True) -> str | None:
        if name not in obj.attrs:
            if required:
                self.fail(f"{what} has no {name!r} attribute")
            return None
        return self.decode(obj.attrs[name], f"{what} attribute {name!r}")

    def json_object(self, parent: h5py.Group, name: str, what: str, required: bool = True) -> dict | None:
        text = self.text(parent, name, what, required)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as e:
            self.fail(f"{what} is not valid JSON ({str(e)[:200]})")
        if not isinstance(value, dict):
            self.fail(f"{what} must be a JSON object, got {type(value).__name__}")
        return value

    def format_version(self, expected: str, reads_up_to: int) -> None:
        attrs = self.f.attrs
        if "format" not in attrs:
            self.fail(f"not a {expected} file: no 'format' attribute (an HDF5 file written by another program?)")
        fmt = self.decode(attrs["format"], "'format' attribute")
        if fmt != expected:
            self.fail(f"not a {expected} file: its format is {fmt[:80]!r}")
        if "format_version" not in attrs:
            self.fail("no 'format_version' attribute")
        version = attrs["format_version"]
        if isinstance(version, np.ndarray) and version.shape == ():
            version = version[()]
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
            self.fail(f"'format_version' must be an integer, got {str(version)[:80]!r}")
        if version > reads_up_to:
            self.fail(f"written by a newer dpm-explorer ({expected} format version {int(version)}; this one "
                      f"reads versions up to {reads_up_to}); upgrade dpm-explorer to open it")
        if version < 1:
            self.fail(f"invalid format_version {int(version)}")


def check_numeric_dtype(dtype: np.dtype, what: str, path: str, error: type[FileError]) -> None:
    ok = dtype.kind in "iub" or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))
    if not ok:
        raise error(path, f"{what} has non-numeric or unsupported dtype {dtype}")


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike[str], error: type[FileError] = FileError, *,
              max_dataset_bytes: int = MAX_DATASET_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
              timeout: float | None = None, reader: type[Reader] = Reader) -> Iterator[Reader]:
    """Open ``path`` read-only for checked reading (steps 1-4 of the module docstring).

    Every failure, including anything h5py or numpy raise on a damaged file, becomes
    ``error(path, problem)``.
    """
    p = check_regular_file(path, error, max_bytes=MAX_FILE_BYTES)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            digest = verify_header(p, fh, error)
    except OSError as e:
        raise error(p, f"cannot be read ({e.strerror or e})") from None
    if (digest is None or digest not in _TRUSTED_DIGESTS) and not is_bundled(p):
        probe(p, error, max_dataset_bytes=max_dataset_bytes, max_total_bytes=max_total_bytes, timeout=timeout)
    try:
        f = h5py.File(p, "r", locking=False)
    except Exception as e:  # h5py reports truncation and corruption as OSError
        raise error(p, f"cannot be opened as HDF5; the file is truncated or corrupt ({str(e)[:200]})") from None
    try:
        with f:
            yield reader(p, f, error, max_dataset_bytes=max_dataset_bytes, max_total_bytes=max_total_bytes)
    except FileError:
        raise
    except Exception as e:  # anything h5py, numpy or json raise on a damaged file
        raise error(p, f"the file is corrupt or unreadable ({type(e).__name__}: {str(e)[:200]})") from None


def sniff_format(path: str | os.PathLike[str]) -> str:
    """The root ``format`` attribute of an HDF5 file ("dpm-explorer-model", "dpm-explorer-trajectory"),
    or "" for an HDF5 file without one (a data file); read through :func:`open_hdf5`, so a hostile file
    raises :class:`FileError` instead of reaching the HDF5 library in this process."""
    with open_hdf5(path, FileError) as r:
        if "format" not in r.f.attrs:
            return ""
        return r.decode(r.f.attrs["format"], "'format' attribute")


def keys_listing(group: h5py.Group) -> str:
    """The names in ``group``, bounded for a message."""
    return listing(sorted(group) if group.id.get_num_objs() <= MAX_LINKS else iter(group))


# ---------------------------------------------------------------------------------------------
# Writing


@contextlib.contextmanager
def writing(path: str | os.PathLike[str], fmt: str, version: int) -> Iterator[h5py.File]:
    """An HDF5 file written atomically to ``path``, stamped with the checksum header when done."""
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w", libver=_LIBVER, track_order=True, userblock_size=USERBLOCK) as f:
            f.attrs["format"] = fmt
            f.attrs["format_version"] = version
            yield f
        stamp_header(tmp)


def write_array(group: h5py.Group, name: str, arr: np.ndarray, **attrs: Any) -> h5py.Dataset:
    """One dataset; chunked with a checksum when non-empty, gzip'ed when large."""
    arr = np.asarray(arr, order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
    kw: dict[str, Any] = {}
    if arr.ndim > 0 and arr.size > 0:
        kw.update(chunks=True, fletcher32=True)
        if arr.size >= _COMPRESS_MIN_ELEMENTS:
            kw.update(compression="gzip", compression_opts=4, shuffle=True)
    ds = group.create_dataset(name, data=arr, **kw)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def write_str(group: h5py.Group, name: str, text: str) -> None:
    group.create_dataset(name, data=text, dtype=STR_DTYPE)
