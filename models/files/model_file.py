"""Model files: a :class:`~models.model.DiffusionModel` with its data normalisation, history,
metadata, optimizer state and held-out split, as HDF5; versioned, validated, never pickled.

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
checksum and the file's metadata is checksummed (HDF5 >= 1.10 object formats).

Loading never trusts the file (:mod:`models.files.hdf5` does the reading): every problem (missing
file, not HDF5, truncated, another program's file, a newer format, links or external storage,
sizes over :data:`MAX_STATE_BYTES` / :data:`MAX_HISTORY_BYTES` / :data:`MAX_HELDOUT_BYTES`, missing
or malformed parts, NaN/Inf, β outside (0, 1], a normalisation that does not fit the model, a config
whose network would not match the stored tensors) raises :class:`CheckpointError`, whose message
starts with the file's path. Saving validates the same way before writing, atomically.
"""
from __future__ import annotations

import collections
import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import h5py
import numpy as np
import torch

from ..config import KERNELS, ModelConfig
from ..model import DiffusionModel
from .errors import CheckpointError, listing
from .hdf5 import Reader, check_numeric_dtype, open_hdf5, write_array, write_str, writing

__all__ = [
    "FORMAT", "FORMAT_VERSION", "SOFTWARE", "MAX_STATE_BYTES", "MAX_HISTORY_BYTES", "MAX_HELDOUT_BYTES",
    "MAX_MODEL_BYTES", "Checkpoint", "save_checkpoint", "load_checkpoint", "LoadedModel", "save_model",
    "load_model", "check_schedule", "check_norm",
]

FORMAT = "dpm-explorer-model"
FORMAT_VERSION = 1
SOFTWARE = "dpm-explorer 0.1.0"

#: Declared sizes a model file may hold, checked before reading (models/README.md, **Limits**):
#: one state or optimizer tensor, one history array, the held-out split, and everything together.
MAX_STATE_BYTES = 1024**3
MAX_HISTORY_BYTES = 64 * 1024**2
MAX_HELDOUT_BYTES = 512 * 1024**2
MAX_MODEL_BYTES = 2 * 1024**3

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


def _check_finite(arr: np.ndarray, what: str, path: str) -> None:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise CheckpointError(path, f"{what} contains NaN or Inf")


# History arrays with one value per record ([N]); "beta" holds one schedule per record ([N, T]).
_HISTORY_1D = ("iteration", "seconds", "loss_bits", "K_train_bits", "K_heldout_bits", "K_minus_Lnull_bits")


def _check_history(history: Mapping[str, np.ndarray], path: str) -> None:
    lengths: dict[str, int] = {}
    for key, arr in history.items():
        if arr.ndim not in (1, 2):
            raise CheckpointError(path, f"history {key!r} must be 1-D [N] or 2-D [N, *], got shape {arr.shape}")
        if key in _HISTORY_1D and arr.ndim != 1:
            raise CheckpointError(path, f"history {key!r} must be 1-D [N] (one value per record), got shape {arr.shape}")
        lengths[key] = arr.shape[0]
    if len(set(lengths.values())) > 1:
        raise CheckpointError(path, "history arrays have unequal lengths ("
                                    + listing(f"{k}: {n}" for k, n in lengths.items()) + ")")


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


def _tensor_storage(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a C-contiguous numpy array (bfloat16 as its int16 bit pattern)."""
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy()


def _write_tensor(group: h5py.Group, name: str, t: torch.Tensor, **attrs: Any) -> None:
    write_array(group, name, _tensor_storage(t), torch_dtype=str(t.dtype).removeprefix("torch."), **attrs)


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
    check_numeric_dtype(arr.dtype, what, path, CheckpointError)
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

    with writing(p, FORMAT, FORMAT_VERSION) as f:
        write_str(f, "config", config_json)
        write_str(f, "meta", meta_json)
        write_str(f, "norm", norm_json)
        g = f.create_group("state", track_order=True)
        if module_metadata_json is not None:
            g.attrs["module_metadata"] = module_metadata_json
        for key, t in ckpt.state.items():
            _write_tensor(g, _escape(key), t, key=key)
        write_array(f, "betas", betas)
        g = f.create_group("history", track_order=True)
        for key, arr in history.items():
            write_array(g, _escape(key), arr, key=key)
        if optimizer_json is not None:
            g = f.create_group("optimizer", track_order=True)
            write_str(g, "structure", optimizer_json)
            for i, t in enumerate(optimizer_tensors):
                _write_tensor(g, f"tensor_{i:05d}", t)
        if heldout is not None:
            write_array(f, "heldout", heldout)



# ---------------------------------------------------------------------------------------------
# Loading: nothing in the file is trusted


class _ModelReader(Reader):
    """:class:`~models.files.hdf5.Reader` plus torch tensors and the optimizer's tagged tree."""

    def tensor(self, ds: h5py.Dataset, what: str) -> torch.Tensor:
        arr = self.numeric(ds, what, MAX_STATE_BYTES)
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
    with open_hdf5(path, CheckpointError, max_dataset_bytes=MAX_STATE_BYTES, max_total_bytes=MAX_MODEL_BYTES,
                   reader=_ModelReader) as r:
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
                history[key] = r.numeric(ds, f"history array {key!r}", MAX_HISTORY_BYTES)
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
            heldout = r.numeric(ds, "heldout", MAX_HELDOUT_BYTES)
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
# Models


@dataclass
class LoadedModel:
    """A model read from a file, with what was stored beside it."""

    model: DiffusionModel
    norm: dict
    history: dict[str, np.ndarray]
    meta: dict
    path: Path | None = None
    optimizer: dict | None = None
    heldout: np.ndarray | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def save_model(path, model: DiffusionModel, *, norm: dict, history: dict | None = None, meta: dict | None = None,
               optimizer: dict | None = None, heldout: np.ndarray | None = None) -> None:
    """Write ``model`` atomically to ``path`` (HDF5)."""
    meta = dict(meta or {})
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("software", SOFTWARE)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    betas = model.schedule().detach().cpu().numpy().astype(np.float64)
    hist = {k: np.asarray(v) for k, v in (history or {}).items()}
    save_checkpoint(path, Checkpoint(config=model.config.to_dict(), state=state, betas=betas, norm=dict(norm),
                                     history=hist, meta=meta, optimizer=optimizer, heldout=heldout))


def check_schedule(model: DiffusionModel, stored: np.ndarray | None, path) -> None:
    """The model's β schedule (from its config and state) must be finite and in (0, 1] (β_T = 1 is the
    binomial schedule's last step), ᾱ_T finite and >= 0, and match the β the file stored beside it."""
    with torch.no_grad():
        beta = model.schedule().detach().to("cpu", torch.float64).numpy()
    bad = ~(np.isfinite(beta) & (beta > 0) & (beta <= 1))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise CheckpointError(path, f"the model's β schedule is invalid: β_{k + 1} = {beta[k]!r}, every β must lie "
                                    "in (0, 1]")
    if stored is not None and (stored.shape != beta.shape or not np.allclose(stored, beta, rtol=1e-4, atol=1e-12)):
        raise CheckpointError(path, "the stored betas do not match the β schedule of the stored parameters (the file "
                                    "was edited or is damaged)")


def check_norm(norm: Any, config: ModelConfig, path) -> None:
    """The stored normalisation must be one :class:`~models.data.Normalization` (finite mean, std > 0,
    levels None or >= 2) that fits the model: a per-dimension mean only for points [D], of length D."""
    from ..data.dataset import Normalization  # (models.data imports this package)

    try:
        n = Normalization.from_dict(dict(norm) if isinstance(norm, Mapping) else norm)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"the stored normalisation is malformed ({str(e)[:200]})") from None
    if isinstance(n.mean, tuple):
        shape = tuple(config.example_shape)
        if len(shape) != 1 or len(n.mean) != shape[0]:
            raise CheckpointError(path, f"the stored normalisation has {len(n.mean)} means; the model's examples "
                                        f"have shape {shape} (one mean, or one per dimension of [D] points)")


# Known metadata keys and the types they must have when present (None is always allowed).
_META_NUMBERS = ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "K_heldout_live_bits", "n_eval", "iterations",
                 "iteration", "train_seconds", "seconds")
_META_STRINGS = ("data", "data_source", "data_path", "data_kind", "unit", "created", "software", "preset")


def _check_meta(meta: dict, path) -> None:
    for key in _META_NUMBERS:
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise CheckpointError(path, f"meta {key!r} must be a number, got {type(v).__name__}")
    for key in _META_STRINGS:
        v = meta.get(key)
        if v is not None and not isinstance(v, str):
            raise CheckpointError(path, f"meta {key!r} must be a string, got {type(v).__name__}")
    v = meta.get("display_range")
    if v is not None:
        ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          and math.isfinite(x) for x in v) and v[0] < v[1])
        if not ok:
            raise CheckpointError(path, "meta 'display_range' must be two finite numbers [low, high] with low < high")


def load_model(path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file; every problem is a :class:`CheckpointError` naming ``path``.

    Before any parameter is allocated the network is built on torch's "meta" device and its tensor
    names and shapes are compared with the stored ones, so a config asking for a huge network is
    refused without allocating it. After loading, :func:`check_schedule` and :func:`check_norm`.
    """
    from ..runtime import MAX_T

    ck = load_checkpoint(path, map_location="cpu")
    try:
        config = ModelConfig.from_dict(dict(ck.config))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(path, f"invalid model config: {str(e)[:200]}") from None
    if config.T > MAX_T:
        raise CheckpointError(path, f"the model has T = {config.T} diffusion steps, more than the limit of {MAX_T}")
    check_norm(ck.norm, config, path)
    _check_meta(ck.meta, path)
    try:
        with torch.device("meta"):
            expected = DiffusionModel(config).state_dict()
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"invalid model config: {str(e)[:200]}") from None
    missing = sorted(set(expected) - set(ck.state))
    extra = sorted(set(ck.state) - set(expected))
    if missing or extra:
        raise CheckpointError(path, f"the stored tensors do not match the model config (missing: "
                                    f"{listing(missing, 120)}; unexpected: {listing(extra, 120)})")
    for k, v in expected.items():
        got = ck.state[k]
        if tuple(got.shape) != tuple(v.shape):
            raise CheckpointError(path, f"tensor {k!r} has shape {tuple(got.shape)}, expected {tuple(v.shape)}")
    model = DiffusionModel(config)
    expected = model.state_dict()
    model.load_state_dict({k: ck.state[k].to(expected[k].dtype) for k in expected})
    check_schedule(model, ck.betas, path)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, norm=dict(ck.norm), history={k: np.asarray(v) for k, v in ck.history.items()},
                       meta=dict(ck.meta), path=Path(path), optimizer=ck.optimizer, heldout=ck.heldout)
