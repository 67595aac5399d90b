"""Hostile HDF5 files (issue "Hostile files and bad days", items 1, 9, 10, 11, 13, 14, 15): the one
validating reader (models.files.hdf5) behind the data loader, the model loader and the trajectory loader.

Every file is built here with h5py, small, at test time. Each test names the item it covers.
"""
from __future__ import annotations

import faulthandler
import os
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from models import data as D
from models.config import ModelConfig
from models.files import CheckpointError, DataError, load_model, load_trajectory, save_model, save_trajectory
from models.files import hdf5
from models.files.errors import MAX_MESSAGE_CHARS
from models.model import DiffusionModel

WATCHDOG_S = 120  # a hang in C code cannot be interrupted: dump the stacks and exit instead
PEAK_BYTES = 64 * 1024**2


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _points(n: int = 50) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)


def _secret(tmp_path: Path) -> Path:
    """A file the user never opened, holding an array an attacker wants to smuggle into a model."""
    p = tmp_path / "secret.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.full((50, 2), 7.0, np.float32)
    return p


def _peak(fn, *args):
    """(result or exception, peak bytes traced) of fn(*args)."""
    tracemalloc.start()
    try:
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - returned for the caller's assertions
            out = e
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------------------------
# item 1: nothing is read from outside the opened file


def _data_external_link(tmp_path):
    p = tmp_path / "evil.h5"
    with h5py.File(p, "w") as f:
        f["x"] = h5py.ExternalLink(str(_secret(tmp_path)), "/x")
    return p


def _data_soft_link(tmp_path):
    p = tmp_path / "evil.h5"
    with h5py.File(p, "w") as f:
        f["hidden"] = _points()
        f["x"] = h5py.SoftLink("/hidden")
    return p


def _data_virtual(tmp_path):
    secret = _secret(tmp_path)
    p = tmp_path / "evil.h5"
    layout = h5py.VirtualLayout(shape=(50, 2), dtype="f4")
    layout[:] = h5py.VirtualSource(str(secret), "x", shape=(50, 2))
    with h5py.File(p, "w") as f:
        f.create_virtual_dataset("x", layout)
    return p


def _data_external_storage(tmp_path):
    raw = tmp_path / "secret.bin"
    raw.write_bytes(np.full((50, 2), 7.0, np.float32).tobytes())
    p = tmp_path / "evil.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", shape=(50, 2), dtype="f4", external=[(str(raw), 0, h5py.h5f.UNLIMITED)])
    return p


def _data_unused_external_link(tmp_path):
    p = tmp_path / "evil.h5"
    with h5py.File(p, "w") as f:
        f["x"] = _points()
        f["elsewhere"] = h5py.ExternalLink(str(_secret(tmp_path)), "/x")
    return p


DATA_OUTSIDE = {
    "external link": _data_external_link,
    "soft link": _data_soft_link,
    "virtual dataset": _data_virtual,
    "external raw storage": _data_external_storage,
    "an external link beside x": _data_unused_external_link,
}


@pytest.mark.parametrize("case", list(DATA_OUTSIDE))
def test_item1_data_file_reading_outside_itself_is_refused(tmp_path, case):
    p = DATA_OUTSIDE[case](tmp_path)
    with pytest.raises(DataError) as e:
        D.load_file(p)
    assert str(e.value).startswith(str(p))
    assert any(w in e.value.problem for w in ("link", "virtual", "external")), e.value.problem


def _model_file(tmp_path, name="m.h5", **kw) -> Path:
    torch.manual_seed(0)
    m = DiffusionModel(ModelConfig(kernel="gaussian", T=5, example_shape=(2,), arch="mlp", hidden=4, layers=1))
    args = dict(norm={"mean": [0.0, 0.0], "std": 1.0, "levels": None},
                history={"iteration": np.arange(3.0), "K_train_bits": np.ones(3)}, meta={"data": "swissroll"},
                heldout=np.zeros((4, 2), np.float32))
    args.update(kw)
    p = tmp_path / name
    save_model(p, m, **args)
    return p


def _rebuild(src: Path, dst: Path, fn) -> Path:
    """Copy an HDF5 file object by object with plain h5py (no checksum header), then apply ``fn``."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for name in fi:
            fi.copy(fi[name], fo, name=name)
        fn(fo)
    return dst


def test_item1_model_heldout_from_another_file_is_refused(tmp_path):
    """A model whose held-out set is a virtual dataset over a file the user never opened."""
    secret = _secret(tmp_path)

    def swap(f):
        del f["heldout"]
        layout = h5py.VirtualLayout(shape=(50, 2), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret), "x", shape=(50, 2))
        f.create_virtual_dataset("heldout", layout)

    p = _rebuild(_model_file(tmp_path), tmp_path / "evil.h5", swap)
    with pytest.raises(CheckpointError, match="virtual|external"):
        load_model(p)


def test_item1_trajectory_with_external_link_is_refused(tmp_path):
    good = tmp_path / "t.h5"
    save_trajectory(good, np.zeros((3, 2, 2), np.float32), t=np.arange(3), meta={"kind": "points"})

    def swap(f):
        f["other"] = h5py.ExternalLink(str(_secret(tmp_path)), "/x")

    p = _rebuild(good, tmp_path / "evil.h5", swap)
    with pytest.raises(CheckpointError, match="link"):
        load_trajectory(p)


# ---------------------------------------------------------------------------------------------
# item 9: declared sizes are checked before anything is read (lazy and compressed bombs)


def test_item9_lazy_data_bomb_is_refused_before_allocating(tmp_path):
    """1.2 GB declared, a few kB on disk (chunks never written read as the fill value)."""
    p = tmp_path / "bomb.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("x", shape=(150_000_000, 2), dtype="f4", chunks=(4096, 2), compression="gzip")
    assert p.stat().st_size < 100_000
    out, peak = _peak(D.load_file, p)
    assert isinstance(out, DataError), out
    assert "limit" in out.problem and peak < PEAK_BYTES


@pytest.mark.parametrize("where", ["history/K_train_bits", "heldout", "state"])
def test_item9_model_file_bombs_are_refused_before_allocating(tmp_path, where):
    """History, held-out set or a state tensor declaring far more than the model file's limits."""
    shape = {"history/K_train_bits": (100_000_000,), "heldout": (100_000_000, 2)}.get(where, (20_000_000, 16))

    def swap(f):
        key = None
        if where.startswith("state"):
            where_ = next(n for n in f["state"] if f["state"][n].ndim == 2)
            path = f"state/{where_}"
            key = f[path].attrs["key"]
        else:
            path = where
        del f[path]
        ds = f.create_dataset(path, shape=shape, dtype="f4", chunks=True, compression="gzip")
        if key is not None:
            ds.attrs["key"] = key

    p = _rebuild(_model_file(tmp_path), tmp_path / "bomb.h5", swap)
    assert p.stat().st_size < 1_000_000
    out, peak = _peak(load_model, p)
    assert isinstance(out, CheckpointError), out
    assert "limit" in out.problem and peak < PEAK_BYTES, (out, peak)


@pytest.mark.parametrize("change", [{"hidden": 200_000}, {"T": 50_000_000}])
def test_item9_config_asking_for_a_huge_network_is_refused_before_allocating(tmp_path, change):
    """A config whose network (width) or schedule (T) is huge, beside the small stored tensors."""
    import json

    def swap(f):
        config = json.loads(f["config"][()].decode())
        config.update(change)
        del f["config"]
        f.create_dataset("config", data=json.dumps(config), dtype=h5py.string_dtype())

    good = _model_file(tmp_path)
    load_model(good)  # imports what building a network on the meta device needs (not counted below)
    p = _rebuild(good, tmp_path / "huge.h5", swap)
    out, peak = _peak(load_model, p)
    assert isinstance(out, CheckpointError), out
    assert peak < PEAK_BYTES, peak


# ---------------------------------------------------------------------------------------------
# item 10: FIFOs and other non-regular files are refused without hanging


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("loader", ["data", "model", "trajectory", "image"])
def test_item10_fifo_is_refused_without_hanging(tmp_path, loader):
    fifo = tmp_path / ("pipe.png" if loader == "image" else "pipe.h5")
    os.mkfifo(fifo)
    fn, error = {"data": (D.load_file, DataError), "model": (load_model, CheckpointError),
                 "trajectory": (load_trajectory, CheckpointError), "image": (D.load_image, DataError)}[loader]
    with pytest.raises(error, match="FIFO"):
        fn(fifo)


# ---------------------------------------------------------------------------------------------
# item 11: β, weights and normalisation are validated on load


def test_item11_beta_outside_0_1_in_the_stored_parameters_is_refused(tmp_path):
    def swap(f):
        name = next(n for n in f["state"] if f["state"][n].attrs["key"].endswith("base_beta"))
        b = f["state"][name][()]
        b[1], b[2] = -0.5, 2.0
        f["state"][name][...] = b

    p = _rebuild(_model_file(tmp_path), tmp_path / "beta.h5", swap)
    with pytest.raises(CheckpointError, match="β"):
        load_model(p)


@pytest.mark.parametrize("norm", [{"mean": [0.0, 0.0], "std": 0.0, "levels": None},
                                  {"mean": [0.0, float("nan")], "std": 1.0, "levels": None},
                                  {"mean": 0.0, "std": -1.0, "levels": None}])
def test_item11_bad_normalisation_is_refused(tmp_path, norm):
    with pytest.raises(CheckpointError, match="normalisation"):
        load_model(_model_file(tmp_path, norm=norm))


# ---------------------------------------------------------------------------------------------
# item 13: messages stay short whatever the file holds


def test_item13_a_file_with_thousands_of_names_gives_a_short_message(tmp_path):
    p = tmp_path / "many.h5"
    with h5py.File(p, "w") as f:
        for i in range(5000):
            f.create_group(f"dataset_number_{i:06d}")
    with pytest.raises(DataError) as e:
        D.load_file(p)
    assert len(e.value.problem) <= MAX_MESSAGE_CHARS, len(e.value.problem)
    assert "more" in e.value.problem


# ---------------------------------------------------------------------------------------------
# item 14: loads are bounded in time; the HDF5 library parses untrusted files in a killable process


def test_item14_a_parse_that_never_ends_is_cut_off(tmp_path, monkeypatch):
    """The worker process is replaced by one that never answers (as HDF5 spinning on a damaged file);
    the load returns an error after the time limit instead of hanging."""
    p = _rebuild(_model_file(tmp_path), tmp_path / "plain.h5", lambda f: None)
    monkeypatch.setattr(hdf5, "_PROBE_SOURCE", "import sys, time\nprint('{\"ready\": true}', flush=True)\n"
                                                "for line in sys.stdin:\n    time.sleep(3600)\n")
    monkeypatch.setattr(hdf5, "_WORKER", hdf5._ProbeWorker())
    monkeypatch.setattr(hdf5, "PARSE_TIMEOUT_S", 1.0)
    with pytest.raises(CheckpointError, match="did not finish"):
        load_model(p)
    hdf5._WORKER.kill()


def test_item14_a_crash_of_the_parser_is_an_error(tmp_path, monkeypatch):
    p = _rebuild(_model_file(tmp_path), tmp_path / "plain.h5", lambda f: None)
    monkeypatch.setattr(hdf5, "_PROBE_SOURCE", "import os, sys\nprint('{\"ready\": true}', flush=True)\n"
                                                "sys.stdin.readline()\nos.abort()\n")
    monkeypatch.setattr(hdf5, "_WORKER", hdf5._ProbeWorker())
    with pytest.raises(CheckpointError, match="crashed"):
        load_model(p)


def test_item14_resigned_mutated_model_files_give_an_error_or_a_model(tmp_path):
    """Bytes changed after the header and the header re-signed (so the checksum passes): every load
    ends, with a model or a CheckpointError."""
    good = _model_file(tmp_path, meta={"data": "swissroll", "created": "2026-01-01T00:00:00+00:00"})
    data = good.read_bytes()
    rng = np.random.default_rng(14)
    for i in range(12):
        b = bytearray(data)
        for off in rng.integers(512, len(b), size=3):
            b[off] = int(rng.integers(256))
        p = tmp_path / f"mut{i}.h5"
        p.write_bytes(bytes(b))
        hdf5.stamp_header(p)
        hdf5._TRUSTED_DIGESTS.discard(hdf5.stamp_header(p))  # as if another process had signed it
        try:
            load_model(p)
        except CheckpointError as e:
            assert str(e).startswith(str(p))


# ---------------------------------------------------------------------------------------------
# item 15: metadata of the wrong type is an error naming the file


def _with_meta_or_history(tmp_path, **kw):
    return _model_file(tmp_path, **kw)


@pytest.mark.parametrize("case", ["string K", "2-D iteration history", "text display range",
                                  "normalisation of the wrong length"])
def test_item15_wrong_typed_metadata_names_the_file(tmp_path, case):
    kw = {
        "string K": dict(meta={"data": "swissroll", "K_bits": "2.3 bits"}),
        "2-D iteration history": dict(history={"iteration": np.zeros((3, 2)), "K_train_bits": np.ones(3)}),
        "text display range": dict(meta={"data": "swissroll", "display_range": "0 to 1"}),
        "normalisation of the wrong length": dict(norm={"mean": [0.0, 0.0, 0.0], "std": 1.0, "levels": None}),
    }[case]
    p = tmp_path / "m.h5"
    try:
        p = _model_file(tmp_path, **kw)
    except CheckpointError:  # refused on save already (2-D history): write it by hand
        good = _model_file(tmp_path, name="good.h5")

        def swap(f):
            del f["history/iteration"]
            f["history"].create_dataset("iteration", data=np.zeros((3, 2)))
            f["history/iteration"].attrs["key"] = "iteration"

        p = _rebuild(good, tmp_path / "m2.h5", swap)
    with pytest.raises(CheckpointError) as e:
        load_model(p)
    assert str(e.value).startswith(str(p))
