"""Model and trajectory files: HDF5, versioned, validated, never pickled.

A model file (``FORMAT = "dpm-explorer-model"``, ``FORMAT_VERSION = 1``) is laid out as::

    bytes 0-511             HDF5 user block: "dpm-explorer checksummed HDF5 v1", the SHA-256 and length
                            of everything after it (checked before the HDF5 library reads the file)
    /                       attrs: format, format_version
    /config                 scalar UTF-8 string dataset: JSON object, must hold int "T" and str "kernel"
    /meta                   scalar UTF-8 string dataset: JSON object (created, software, K_bits, ...)
    /norm                   scalar UTF-8 string dataset: JSON object (data normalisation)
    /state/<name>           one dataset per tensor of ``nn.Module.state_dict()``; attrs: key (the
                            state-dict key, authoritative), torch_dtype. <name> is the key
                            URL-quoted (so '/' becomes %2F; letters, digits, '._-~' are kept).
                            group attr "module_metadata": JSON of ``state_dict._metadata`` (if any)
    /betas                  float64 [T], every beta in (0, 1]
    /history/<name>         1-D [N] arrays (iteration, K_train_bits, ...) or 2-D [N, *] arrays (beta);
                            attr key as for state
    /optimizer/             optional: a torch optimizer's ``state_dict()``
        structure           scalar string dataset: the nested structure as JSON, with each tensor
                            replaced by {"__tensor__": "tensor_00003"}; tuples, dicts with non-string
                            keys and non-finite floats are tagged ("__tuple__", "__dict__", "__float__")
        tensor_00000, ...   the tensors (attr torch_dtype)
    /heldout                optional: the held-out split recorded with the model (float32 [n, ...])

JSON objects may also be stored as string attributes of the root with the same names (read only).
Files without the user block (HDF5 files made by hand, e.g. with h5py) are read and validated the
same way, just without the whole-file checksum; editing a saved file in place breaks its checksum.
Arrays of 1024 elements or more are gzip-compressed; every chunked dataset carries a Fletcher-32
checksum and the file's metadata is checksummed (HDF5 >= 1.10 object formats), so corruption is
reported instead of read as numbers.

A trajectory file (``"dpm-explorer-trajectory"`` version 1) has the same header and root attrs and
holds ``traj`` float32 [S, N, *shape] (the states x_t), ``t`` int64 [S] (the time index of each
state) and ``meta`` JSON.

Loading never trusts the file: every problem (missing file, not HDF5, truncated, another program's
file, a newer format, missing or malformed parts, NaN/Inf, wrong dtypes, absurd sizes) raises
:class:`CheckpointError`, whose message starts with the file's path. Saving validates the same way
before writing, and writes through :func:`atomic_write`, so a crash mid-save leaves the previous
file untouched.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, unquote

import h5py
import numpy as np
import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "TRAJECTORY_FORMAT",
    "TRAJECTORY_FORMAT_VERSION",
    "MAX_ELEMENTS",
    "CheckpointError",
    "Checkpoint",
    "Trajectory",
    "save_checkpoint",
    "load_checkpoint",
    "save_trajectory",
    "load_trajectory",
    "atomic_write",
]

FORMAT = "dpm-explorer-model"
FORMAT_VERSION = 1
TRAJECTORY_FORMAT = "dpm-explorer-trajectory"
TRAJECTORY_FORMAT_VERSION = 1

#: Any dataset with more elements than this is refused before it is read.
MAX_ELEMENTS = 2**31
KERNELS = ("gaussian", "binomial")

_COMPRESS_MIN_ELEMENTS = 1024
_LIBVER = ("v110", "latest")  # checksummed metadata, compact chunk indexes; readable by HDF5 >= 1.10
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Files we write start with a 512-byte HDF5 user block holding this header and a SHA-256 of the
# rest of the file, checked before HDF5 parses anything: the HDF5 library can hang or misread on
# damaged files, so damaged files of ours never reach it.
_USERBLOCK = 512
_HEADER_MAGIC = b"dpm-explorer checksummed HDF5 v1\n"
_HEADER_FIELDS = re.compile(rb"sha256 ([0-9a-f]{64})\nbytes ([0-9]{1,20})\n")
_HEADER_NOTE = (b"\nAn HDF5 file follows this 512-byte user block; h5py, h5dump and HDFView read it as usual.\n"
                b"The checksum covers every byte after the user block.\n")
_STR_DTYPE = h5py.string_dtype("utf-8")

# torch dtypes a tensor may have, and the numpy dtype it is stored as.
_TORCH_STORAGE: dict[torch.dtype, np.dtype] = {
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.bfloat16: np.dtype(np.int16),  # stored as its bit pattern
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.bool: np.dtype(np.bool_),
}
_TORCH_BY_NAME = {str(dt).removeprefix("torch."): dt for dt in _TORCH_STORAGE}
_TORCH_BY_NUMPY = {v: k for k, v in _TORCH_STORAGE.items() if k is not torch.bfloat16}


class CheckpointError(ValueError):
    """A model or trajectory file that cannot be read or written; the message names the file.

    Raised as ``CheckpointError(path, problem)``; ``str(e)`` is ``"<path>: <problem>"`` and the two
    parts are kept as ``e.path`` and ``e.problem``.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str | None = None) -> None:
        if problem is None:  # CheckpointError("whole message"), e.g. when unpickled
            self.path, self.problem = None, str(path)
            super().__init__(str(path))
        else:
            self.path, self.problem = os.fspath(path) if path is not None else None, problem
            super().__init__(f"{self.path}: {problem}")


@dataclass
class Checkpoint:
    """Everything a model file holds.

    config:    JSON object; int ``"T"`` (number of diffusion steps) and ``"kernel"`` in KERNELS.
    state:     ``nn.Module.state_dict()``: name -> tensor (float16/32/64, bfloat16, ints, bool).
    betas:     float64 [T], each in (0, 1].
    norm:      JSON object: data normalisation (mean, std, levels, ...).
    history:   name -> 1-D array [N] (iteration, K_train_bits, ...) or 2-D array [N, *] (beta [N, T]).
    meta:      JSON object: created, software version, train command, data name, K_bits, ...
    optimizer: a torch optimizer's ``state_dict()``, for resuming training; or None.
    heldout:   the held-out split recorded with the model (float32 [n, ...]); or None.
    """

    config: dict
    state: dict[str, torch.Tensor]
    betas: np.ndarray
    norm: dict
    history: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    optimizer: dict | None = None
    heldout: np.ndarray | None = None


@dataclass(frozen=True)
class Trajectory:
    """States of one forward or reverse run.

    traj: float32 [S, N, *shape]: the states x_t of N samples at S recorded steps.
    t:    int64 [S]: the time index of each recorded state.
    meta: JSON object: kind, direction, model file, seed, ...
    """

    traj: np.ndarray
    t: np.ndarray
    meta: dict


# ---------------------------------------------------------------------------------------------
# Atomic writes


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Write a file all-or-nothing: yield a temporary path next to ``path`` to write to.

    The temporary file already exists (empty; open it for writing with truncation) and is named
    ``.<name>.<random>.tmp<suffix>`` in the same directory; ``suffix`` defaults to the suffix of
    ``path``, so writers that pick a format from the extension still work. When the block ends
    normally the file is fsync'ed and ``os.replace``'d onto ``path`` (and the directory fsync'ed
    where the platform allows). When the block raises, the temporary file is removed and any
    existing file at ``path`` is left untouched. A process killed mid-write leaves at most a
    stray hidden ``*.tmp*`` file, never a partial file at ``path``.
    """
    target = Path(os.fspath(path))
    directory = target.parent
    ext = target.suffix if suffix is None else suffix
    while True:
        tmp = directory / f".{target.name}.{secrets.token_hex(4)}.tmp{ext}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # no directory fds on Windows
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------------------------------
# Small helpers shared by saving and loading


def _escape(key: str) -> str:
    """A non-empty state/history key as an HDF5 link name: URL-quoted, all-dot names escaped too."""
    name = quote(key, safe="")
    return name.replace(".", "%2E") if set(name) == {"."} else name


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _dump_json(obj: Any, what: str, path: str) -> str:
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"cannot save: {what} must be a dict, got {type(obj).__name__}")
    try:
        return json.dumps(dict(obj), default=_json_default)
    except (TypeError, ValueError, RecursionError) as e:
        raise CheckpointError(path, f"cannot save: {what} is not JSON-serialisable ({e})") from e


def _check_config(config: Any, path: str) -> int:
    """Check config's required keys; return T."""
    if not isinstance(config, Mapping):
        raise CheckpointError(path, f"config must be a JSON object, got {type(config).__name__}")
    if "T" not in config:
        raise CheckpointError(path, 'config has no "T" (number of diffusion steps)')
    T = config["T"]
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise CheckpointError(path, f'config "T" must be a positive integer, got {T!r}')
    if "kernel" not in config:
        raise CheckpointError(path, 'config has no "kernel"')
    if config["kernel"] not in KERNELS:
        raise CheckpointError(path, f'config "kernel" must be one of {KERNELS}, got {config["kernel"]!r}')
    return int(T)


def _check_betas(betas: np.ndarray, T: int, path: str) -> None:
    if betas.ndim != 1 or betas.shape[0] != T:
        raise CheckpointError(path, f"betas has shape {betas.shape}, expected [T] = ({T},)")
    if not np.all(np.isfinite(betas)):
        raise CheckpointError(path, "betas contains NaN or Inf")
    if not (np.all(betas > 0) and np.all(betas <= 1)):
        bad = betas[~((betas > 0) & (betas <= 1))]
        raise CheckpointError(path, f"betas must lie in (0, 1], found {bad[0]!r}")


def _check_numeric_dtype(dtype: np.dtype, what: str, path: str) -> None:
    ok = dtype.kind in "iub" or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))
    if not ok:
        raise CheckpointError(path, f"{what} has non-numeric or unsupported dtype {dtype}")


def _check_finite(arr: np.ndarray, what: str, path: str) -> None:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise CheckpointError(path, f"{what} contains NaN or Inf")


def _check_history(history: Mapping[str, np.ndarray], path: str) -> None:
    lengths: dict[str, int] = {}
    for key, arr in history.items():
        if arr.ndim not in (1, 2):
            raise CheckpointError(path, f"history {key!r} must be 1-D [N] or 2-D [N, *], got shape {arr.shape}")
        lengths[key] = arr.shape[0]
    if len(set(lengths.values())) > 1:
        raise CheckpointError(path, f"history arrays have unequal lengths {lengths}")


def _check_tensor(t: Any, what: str, path: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise CheckpointError(path, f"{what} is a {type(t).__name__}, expected a torch.Tensor")
    if t.layout != torch.strided:
        raise CheckpointError(path, f"{what} has layout {t.layout}; only dense tensors can be saved")
    if t.dtype not in _TORCH_STORAGE:
        raise CheckpointError(path, f"{what} has unsupported dtype {t.dtype}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise CheckpointError(path, f"{what} contains NaN or Inf")


# ---------------------------------------------------------------------------------------------
# Saving


def _write_array(group: h5py.Group, name: str, arr: np.ndarray, **attrs: Any) -> h5py.Dataset:
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


def _hash_body(fh: Any) -> tuple[str, int]:
    """SHA-256 (hex) and length of everything after the user block of an open binary file."""
    fh.seek(_USERBLOCK)
    h, n = hashlib.sha256(), 0
    while chunk := fh.read(1 << 20):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def _stamp_header(path: str | os.PathLike[str]) -> None:
    """Write the checksum header into the user block of a closed HDF5 file."""
    with open(path, "r+b") as fh:
        digest, n = _hash_body(fh)
        header = _HEADER_MAGIC + f"sha256 {digest}\nbytes {n}\n".encode() + _HEADER_NOTE
        fh.seek(0)
        fh.write(header.ljust(_USERBLOCK, b"\0"))


@contextlib.contextmanager
def _writing(path: str, fmt: str, version: int) -> Iterator[h5py.File]:
    """An HDF5 file written atomically to ``path``, stamped with the checksum header when done."""
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w", libver=_LIBVER, track_order=True, userblock_size=_USERBLOCK) as f:
            f.attrs["format"] = fmt
            f.attrs["format_version"] = version
            yield f
        _stamp_header(tmp)


def _write_str(group: h5py.Group, name: str, text: str) -> None:
    group.create_dataset(name, data=text, dtype=_STR_DTYPE)


def _tensor_storage(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a C-contiguous numpy array (bfloat16 as its int16 bit pattern)."""
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


def _write_tensor(group: h5py.Group, name: str, t: torch.Tensor, **attrs: Any) -> None:
    _write_array(group, name, _tensor_storage(t), torch_dtype=str(t.dtype).removeprefix("torch."), **attrs)


def _encode_tree(obj: Any, tensors: list[torch.Tensor], where: str, path: str) -> Any:
    """Optimizer state -> JSON-able tree; tensors are collected and replaced by references."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        obj = float(obj)
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, torch.Tensor):
        _check_tensor(obj, f"optimizer {where}", path)
        tensors.append(obj)
        return {"__tensor__": f"tensor_{len(tensors) - 1:05d}"}
    if isinstance(obj, list):
        return [_encode_tree(v, tensors, f"{where}[{i}]", path) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode_tree(v, tensors, f"{where}[{i}]", path) for i, v in enumerate(obj)]}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode_tree(v, tensors, f"{where}[{k!r}]", path) for k, v in obj.items()}
        pairs = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                raise CheckpointError(path, f"cannot save: optimizer {where} has a {type(k).__name__} key")
            pairs.append([_encode_tree(k, [], where, path), _encode_tree(v, tensors, f"{where}[{k!r}]", path)])
        return {"__dict__": pairs}
    raise CheckpointError(path, f"cannot save: optimizer {where} is a {type(obj).__name__}")


def _as_numeric(arr: Any, what: str, path: str) -> np.ndarray:
    try:
        arr = np.asarray(arr)
    except Exception as e:
        raise CheckpointError(path, f"cannot save: {what} is not an array ({e})") from e
    _check_numeric_dtype(arr.dtype, what, path)
    return arr


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Validate ``ckpt`` and write it to ``path`` atomically (see the module docstring for the layout).

    Raises CheckpointError (naming ``path``) if the checkpoint would not load back; the file is
    then not touched. Round trips through :func:`load_checkpoint` are bit-identical.
    """
    p = os.fspath(path)
    T = _check_config(ckpt.config, p)
    config_json = _dump_json(ckpt.config, "config", p)
    meta_json = _dump_json(ckpt.meta, "meta", p)
    norm_json = _dump_json(ckpt.norm, "norm", p)

    if not isinstance(ckpt.state, Mapping):
        raise CheckpointError(p, f"cannot save: state must be a dict of tensors, got {type(ckpt.state).__name__}")
    for key, t in ckpt.state.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(p, f"cannot save: state key {key!r} is not a non-empty string")
        _check_tensor(t, f"state tensor {key!r}", p)
    module_metadata = getattr(ckpt.state, "_metadata", None)
    module_metadata_json = None
    if module_metadata is not None:
        module_metadata_json = _dump_json(module_metadata, "state_dict._metadata", p)

    betas = np.asarray(ckpt.betas)
    if betas.dtype.kind != "f":
        raise CheckpointError(p, f"cannot save: betas must be floating point, got {betas.dtype}")
    betas = betas.astype(np.float64, copy=False)
    _check_betas(betas, T, p)

    if not isinstance(ckpt.history, Mapping):
        raise CheckpointError(p, f"cannot save: history must be a dict of arrays, got {type(ckpt.history).__name__}")
    history = {}
    for key, arr in ckpt.history.items():
        if not isinstance(key, str) or not key:
            raise CheckpointError(p, f"cannot save: history key {key!r} is not a non-empty string")
        history[key] = _as_numeric(arr, f"history {key!r}", p)
    _check_history(history, p)

    optimizer_json, optimizer_tensors = None, []
    if ckpt.optimizer is not None:
        if not isinstance(ckpt.optimizer, Mapping):
            raise CheckpointError(p, f"cannot save: optimizer must be a state_dict, got {type(ckpt.optimizer).__name__}")
        tree = _encode_tree(ckpt.optimizer, optimizer_tensors, "state_dict", p)
        optimizer_json = json.dumps(tree, allow_nan=False)

    heldout = None
    if ckpt.heldout is not None:
        heldout = _as_numeric(ckpt.heldout, "heldout", p)
        if heldout.ndim < 1:
            raise CheckpointError(p, "cannot save: heldout must be an array [n, ...]")
        _check_finite(heldout, "heldout", p)

    with _writing(p, FORMAT, FORMAT_VERSION) as f:
        _write_str(f, "config", config_json)
        _write_str(f, "meta", meta_json)
        _write_str(f, "norm", norm_json)
        g = f.create_group("state", track_order=True)
        if module_metadata_json is not None:
            g.attrs["module_metadata"] = module_metadata_json
        for key, t in ckpt.state.items():
            _write_tensor(g, _escape(key), t, key=key)
        _write_array(f, "betas", betas)
        g = f.create_group("history", track_order=True)
        for key, arr in history.items():
            _write_array(g, _escape(key), arr, key=key)
        if optimizer_json is not None:
            g = f.create_group("optimizer", track_order=True)
            _write_str(g, "structure", optimizer_json)
            for i, t in enumerate(optimizer_tensors):
                _write_tensor(g, f"tensor_{i:05d}", t)
        if heldout is not None:
            _write_array(f, "heldout", heldout)


# ---------------------------------------------------------------------------------------------
# Loading: nothing in the file is trusted


class _Reader:
    """Checked access to one open HDF5 file; every problem is a CheckpointError naming the file."""

    def __init__(self, path: str, f: h5py.File) -> None:
        self.path, self.f = path, f

    def fail(self, problem: str) -> NoReturn:
        raise CheckpointError(self.path, problem)

    # links and objects -------------------------------------------------------------------------

    def child(self, group: h5py.Group, name: str, what: str, required: bool = True) -> Any:
        link = group.get(name, getlink=True)
        if link is None:
            if required:
                self.fail(f"{what} is missing")
            return None
        if not isinstance(link, h5py.HardLink):
            self.fail(f"{what} is a {type(link).__name__}; links are not allowed")
        return group[name]

    def group(self, parent: h5py.Group, name: str, what: str, required: bool = True) -> h5py.Group | None:
        obj = self.child(parent, name, what, required)
        if obj is not None and not isinstance(obj, h5py.Group):
            self.fail(f"{what} is not a group")
        return obj

    def members(self, group: h5py.Group, what: str) -> Iterator[tuple[str, h5py.Dataset]]:
        for name in group:
            obj = self.child(group, name, f"{what} {name!r}")
            if not isinstance(obj, h5py.Dataset):
                self.fail(f"{what} {name!r} is not a dataset")
            yield name, obj

    def dataset(self, ds: h5py.Dataset, what: str) -> h5py.Dataset:
        """Check a dataset's storage and size before anything is read from it."""
        if not isinstance(ds, h5py.Dataset):
            self.fail(f"{what} is not a dataset")
        if ds.shape is None:
            self.fail(f"{what} has an empty (null) dataspace")
        n = math.prod(ds.shape)
        if n > MAX_ELEMENTS:
            self.fail(f"{what} has shape {ds.shape} = {n} elements, more than the limit of {MAX_ELEMENTS}")
        if ds.is_virtual or ds.external:
            self.fail(f"{what} refers to data outside the file; not allowed")
        return ds

    # values ------------------------------------------------------------------------------------

    def numeric(self, ds: h5py.Dataset, what: str) -> np.ndarray:
        """A numeric dataset as a native-endian, C-contiguous numpy array."""
        self.dataset(ds, what)
        _check_numeric_dtype(ds.dtype, what, self.path)
        arr = np.asarray(ds[()])
        return np.asarray(arr, dtype=arr.dtype.newbyteorder("="), order="C")

    def tensor(self, ds: h5py.Dataset, what: str) -> torch.Tensor:
        arr = self.numeric(ds, what)
        name = self.attr_str(ds, "torch_dtype", what, required=False)
        if name is None:
            dtype = _TORCH_BY_NUMPY.get(arr.dtype)
            if dtype is None:
                self.fail(f"{what} has dtype {arr.dtype}, which no torch tensor is saved as")
        else:
            dtype = _TORCH_BY_NAME.get(name)
            if dtype is None:
                self.fail(f"{what} has unknown torch_dtype {name!r}")
            if _TORCH_STORAGE[dtype] != arr.dtype:
                self.fail(f"{what} is stored as {arr.dtype}, which does not hold a {name} tensor")
        t = torch.from_numpy(arr)
        if dtype is torch.bfloat16:
            t = t.view(torch.bfloat16)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            self.fail(f"{what} contains NaN or Inf")
        return t

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
        value = ds[()]
        return self.decode(value, what)

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
            self.fail(f"{what} is not valid JSON ({e})")
        if not isinstance(value, dict):
            self.fail(f"{what} must be a JSON object, got {type(value).__name__}")
        return value

    def format_version(self, expected: str, reads_up_to: int) -> None:
        attrs = self.f.attrs
        if "format" not in attrs:
            self.fail(f"not a {expected} file: no 'format' attribute (an HDF5 file written by another program?)")
        fmt = self.decode(attrs["format"], "'format' attribute")
        if fmt != expected:
            self.fail(f"not a {expected} file: its format is {fmt!r}")
        if "format_version" not in attrs:
            self.fail("no 'format_version' attribute")
        version = attrs["format_version"]
        if isinstance(version, np.ndarray) and version.shape == ():
            version = version[()]
        if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
            self.fail(f"'format_version' must be an integer, got {version!r}")
        if version > reads_up_to:
            self.fail(f"written by a newer dpm-explorer ({expected} format version {int(version)}; this one "
                      f"reads versions up to {reads_up_to}); upgrade dpm-explorer to open it")
        if version < 1:
            self.fail(f"invalid format_version {int(version)}")

    # optimizer ---------------------------------------------------------------------------------

    def decode_tree(self, node: Any, tensors: Mapping[str, h5py.Dataset], where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            self.fail(f"optimizer {where} is a {type(node).__name__}")
        tags = [k for k in node if k.startswith("__")]
        if not tags:
            return {k: self.decode_tree(v, tensors, f"{where}[{k!r}]") for k, v in node.items()}
        if len(node) != 1:
            self.fail(f"optimizer {where} mixes tags {tags} with other keys")
        (tag, value), = node.items()
        if tag == "__tensor__":
            if not isinstance(value, str) or value not in tensors:
                self.fail(f"optimizer {where} refers to a missing tensor {value!r}")
            return self.tensor(tensors[value], f"optimizer tensor {value!r}")
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(self.decode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(value))
        if tag == "__float__" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "__dict__" and isinstance(value, list):
            out = {}
            for pair in value:
                if not (isinstance(pair, list) and len(pair) == 2):
                    self.fail(f"optimizer {where} has a malformed key/value pair")
                key = self.decode_tree(pair[0], {}, where)
                try:
                    hash(key)
                except TypeError:
                    self.fail(f"optimizer {where} has an unhashable key {key!r}")
                out[key] = self.decode_tree(pair[1], tensors, f"{where}[{key!r}]")
            return out
        self.fail(f"optimizer {where} has an unknown or malformed tag {tag!r}")


def _check_bytes(p: str, fh: Any) -> None:
    """Check the raw file before HDF5 sees it: signature, and our header's length and checksum."""
    head = fh.read(_USERBLOCK)
    if not head:
        raise CheckpointError(p, "the file is empty")
    if head.startswith(_HDF5_SIGNATURE):
        return  # plain HDF5 without a user block: made by hand or by another program
    if head.startswith(_HEADER_MAGIC):
        fields = _HEADER_FIELDS.match(head, len(_HEADER_MAGIC))
        if fields is None:
            raise CheckpointError(p, "the dpm-explorer header at the start of the file is damaged")
        expected_digest, expected_n = fields[1].decode(), int(fields[2])
        digest, n = _hash_body(fh)
        if len(head) < _USERBLOCK or n < expected_n:
            raise CheckpointError(p, f"the file is truncated: it has {len(head) + n} bytes, "
                                     f"its header says {_USERBLOCK + expected_n}")
        if n > expected_n:
            raise CheckpointError(p, f"the file is corrupt: {n - expected_n} unexpected bytes after its end")
        if digest != expected_digest:
            raise CheckpointError(p, "the file is corrupt: its checksum does not match (damaged on disk or "
                                     "in transfer, or edited after dpm-explorer wrote it)")
        fh.seek(_USERBLOCK)
        if fh.read(8) != _HDF5_SIGNATURE:
            raise CheckpointError(p, "not an HDF5 file after its dpm-explorer header")
        return
    # HDF5's signature may also follow a user block of 512, 1024, 2048, ... bytes.
    size = fh.seek(0, os.SEEK_END)
    for off in (512 * 2**i for i in range(48)):
        if off + 8 > size:
            break
        fh.seek(off)
        if fh.read(8) == _HDF5_SIGNATURE:
            raise CheckpointError(p, f"not a dpm-explorer file: an HDF5 file with a {off}-byte user block "
                                     "that holds no dpm-explorer header (another program's file, or a "
                                     "damaged header)")
    raise CheckpointError(p, "not an HDF5 file")


def _open_checked(path: str | os.PathLike[str]) -> tuple[str, h5py.File]:
    """Open ``path`` read-only as HDF5, turning every failure into a CheckpointError."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise CheckpointError(p, "no such file")
    if os.path.isdir(p):
        raise CheckpointError(p, "is a directory, not a file")
    try:
        with open(p, "rb") as fh:
            _check_bytes(p, fh)
    except OSError as e:
        raise CheckpointError(p, f"cannot be read ({e.strerror or e})") from e
    try:
        return p, h5py.File(p, "r", locking=False)
    except Exception as e:  # h5py reports truncation and corruption as OSError
        raise CheckpointError(p, f"cannot be opened as HDF5; the file is truncated or corrupt ({e})") from e


@contextlib.contextmanager
def _reading(path: str | os.PathLike[str]) -> Iterator[_Reader]:
    p, f = _open_checked(path)
    try:
        with f:
            yield _Reader(p, f)
    except CheckpointError:
        raise
    except Exception as e:  # anything h5py, numpy or json raise on a damaged file
        raise CheckpointError(p, f"the file is corrupt or unreadable ({type(e).__name__}: {e})") from e


def _move(t: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return t if device is None or device == torch.device("cpu") else t.to(device)


def _move_tree(obj: Any, device: torch.device | None) -> Any:
    if isinstance(obj, torch.Tensor):
        return _move(obj, device)
    if isinstance(obj, list):
        return [_move_tree(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_move_tree(v, device) for v in obj)
    if isinstance(obj, dict):
        return {k: _move_tree(v, device) for k, v in obj.items()}
    return obj


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """Read and validate a model file written by :func:`save_checkpoint`.

    Tensors are placed on ``map_location`` (default CPU). Raises CheckpointError, whose message
    starts with the path and says what is wrong, for any file that is missing, unreadable, not a
    dpm-explorer model, of a newer format, or malformed in any part; never another exception
    type for a bad file.
    """
    device = None if map_location is None else torch.device(map_location)
    with _reading(path) as r:
        p, f = r.path, r.f
        r.format_version(FORMAT, FORMAT_VERSION)

        config = r.json_object(f, "config", "config")
        T = _check_config(config, p)
        meta = r.json_object(f, "meta", "meta", required=False) or {}
        norm = r.json_object(f, "norm", "norm")

        g = r.group(f, "state", "state")
        state: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
        for name, ds in r.members(g, "state tensor"):
            key = r.attr_str(ds, "key", f"state tensor {name!r}", required=False)
            key = r.valid_str(unquote(name), f"state tensor {name!r}") if key is None else key
            if key in state:
                r.fail(f"state has two tensors named {key!r}")
            state[key] = r.tensor(ds, f"state tensor {key!r}")
        if "module_metadata" in g.attrs:
            text = r.decode(g.attrs["module_metadata"], "state attribute 'module_metadata'")
            try:
                md = json.loads(text)
            except (ValueError, RecursionError) as e:
                r.fail(f"state attribute 'module_metadata' is not valid JSON ({e})")
            if not isinstance(md, dict):
                r.fail("state attribute 'module_metadata' must be a JSON object")
            state._metadata = collections.OrderedDict(md)  # type: ignore[attr-defined]

        betas_ds = r.child(f, "betas", "betas")
        betas = r.numeric(betas_ds, "betas")
        if betas.dtype.kind != "f":
            r.fail(f"betas must be floating point, got {betas.dtype}")
        betas = betas.astype(np.float64, copy=False)
        _check_betas(betas, T, p)

        history: dict[str, np.ndarray] = {}
        g = r.group(f, "history", "history", required=False)
        if g is not None:
            for name, ds in r.members(g, "history array"):
                key = r.attr_str(ds, "key", f"history array {name!r}", required=False)
                key = r.valid_str(unquote(name), f"history array {name!r}") if key is None else key
                if key in history:
                    r.fail(f"history has two arrays named {key!r}")
                history[key] = r.numeric(ds, f"history array {key!r}")
        _check_history(history, p)

        optimizer = None
        g = r.group(f, "optimizer", "optimizer", required=False)
        if g is not None:
            text = r.text(g, "structure", "optimizer structure")
            try:
                tree = json.loads(text)
            except (ValueError, RecursionError) as e:
                r.fail(f"optimizer structure is not valid JSON ({e})")
            tensors = {name: ds for name, ds in r.members(g, "optimizer entry") if name != "structure"}
            optimizer = r.decode_tree(tree, tensors, "state_dict")
            if not isinstance(optimizer, dict):
                r.fail("optimizer state must be a dict")

        heldout = None
        ds = r.child(f, "heldout", "heldout", required=False)
        if ds is not None:
            heldout = r.numeric(ds, "heldout")
            if heldout.ndim < 1:
                r.fail("heldout must be an array [n, ...]")
            _check_finite(heldout, "heldout", p)

    if device is not None and device != torch.device("cpu"):
        moved = collections.OrderedDict((k, _move(v, device)) for k, v in state.items())
        if hasattr(state, "_metadata"):
            moved._metadata = state._metadata  # type: ignore[attr-defined]
        state = moved
        optimizer = _move_tree(optimizer, device)
    return Checkpoint(config=config, state=state, betas=betas, norm=norm, history=history, meta=meta,
                      optimizer=optimizer, heldout=heldout)


# ---------------------------------------------------------------------------------------------
# Trajectories


def _check_trajectory(traj: np.ndarray, t: np.ndarray, path: str) -> None:
    if traj.ndim < 2:
        raise CheckpointError(path, f"traj must be [S, N, *shape], got shape {traj.shape}")
    if traj.dtype != np.float32:
        raise CheckpointError(path, f"traj must be float32, got {traj.dtype}")
    _check_finite(traj, "traj", path)
    if t.ndim != 1 or t.dtype.kind not in "iu":
        raise CheckpointError(path, f"t must be an integer array [S], got {t.dtype} {t.shape}")
    if t.shape[0] != traj.shape[0]:
        raise CheckpointError(path, f"t has {t.shape[0]} entries but traj has S = {traj.shape[0]} states")


def save_trajectory(path: str | os.PathLike[str], traj: np.ndarray, *, t: np.ndarray, meta: dict) -> None:
    """Write a trajectory atomically.

    traj: float32 [S, N, *shape], the states x_t; t: int [S], their time indices (stored int64);
    meta: JSON object (kind, direction, model file, seed, ...).
    """
    p = os.fspath(path)
    traj = np.asarray(traj)
    if traj.dtype.kind == "f":
        traj = traj.astype(np.float32, copy=False)
    t = np.asarray(t)
    _check_trajectory(traj, t, p)
    t = t.astype(np.int64, copy=False)
    meta_json = _dump_json(meta, "meta", p)
    with _writing(p, TRAJECTORY_FORMAT, TRAJECTORY_FORMAT_VERSION) as f:
        _write_str(f, "meta", meta_json)
        _write_array(f, "traj", traj)
        _write_array(f, "t", t)


def load_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read and validate a trajectory file; every problem raises CheckpointError naming the file."""
    with _reading(path) as r:
        r.format_version(TRAJECTORY_FORMAT, TRAJECTORY_FORMAT_VERSION)
        meta = r.json_object(r.f, "meta", "meta", required=False) or {}
        traj = r.numeric(r.child(r.f, "traj", "traj"), "traj")
        t = r.numeric(r.child(r.f, "t", "t"), "t")
        _check_trajectory(traj, t, r.path)
    return Trajectory(traj=traj, t=t.astype(np.int64, copy=False), meta=meta)
