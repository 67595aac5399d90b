"""Model and trajectory files (models/files/model_file.py, trajectory.py, atomic.py): bit-identical round trips, validation of bad files, atomic saves."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.files import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    Trajectory,
    atomic_write,
    load_checkpoint,
    load_trajectory,
    save_checkpoint,
    save_trajectory,
)
from models.files.model_file import MAX_HISTORY_BYTES, MAX_STATE_BYTES

REPO = Path(__file__).resolve().parents[2]
T = 12


# ---------------------------------------------------------------------------------------------
# Helpers


def _trained(steps: int = 3) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A small net with a BatchNorm (module metadata, int64 buffer) and Adam after ``steps`` steps."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 40), torch.nn.BatchNorm1d(40), torch.nn.Linear(40, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(16, 4, generator=gen)).pow(2).mean().backward()
        opt.step()
    return net, opt


def _checkpoint(with_optimizer: bool = True, heldout: bool = True) -> Checkpoint:
    net, opt = _trained()
    state = net.state_dict()
    # awkward keys and dtypes: '/' and '%' in names, a key that escapes onto another's escape,
    # bfloat16, bool, int32, float16, a 0-d tensor
    state["odd/key"] = torch.arange(5, dtype=torch.int32)
    state["odd%2Fkey"] = torch.ones(3, dtype=torch.bool)
    state["half"] = torch.linspace(-1, 1, 7, dtype=torch.float16)
    state["bf16"] = torch.linspace(-1, 1, 7).to(torch.bfloat16)
    state["scalar"] = torch.tensor(2.5, dtype=torch.float64)
    rng = np.random.default_rng(0)
    n = 6
    return Checkpoint(
        config={"T": T, "kernel": "gaussian", "network": {"kind": "mlp", "hidden": [40]}, "lr": 1e-3},
        state=state,
        betas=np.linspace(1e-4, 0.3, T),
        norm={"mean": [0.25, -0.5], "std": 1.5, "levels": None},
        history={
            "iteration": np.arange(n, dtype=np.int64) * 100,
            "K_train_bits": rng.normal(size=n),
            "K_heldout_bits": np.where(np.arange(n) % 2 == 0, rng.normal(size=n), np.nan),
            "seconds": np.cumsum(rng.random(n)),
            "beta": rng.random((n, T)),
        },
        meta={"created": "2025-01-01T00:00:00", "software": "0.1.0", "K_bits": -1.25, "n_eval": 1000},
        optimizer=opt.state_dict() if with_optimizer else None,
        heldout=rng.normal(size=(50, 2)).astype(np.float32) if heldout else None,
    )


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return _bits(a) == _bits(b)


def _bits(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_same_tree(a, b, where="optimizer"):
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, torch.Tensor):
        assert _same_tensor(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same_tree(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert a.config == b.config
    assert a.norm == b.norm
    assert a.meta == b.meta
    assert list(a.state) == list(b.state)
    for k in a.state:
        assert _same_tensor(a.state[k], b.state[k]), k
    assert _same_array(a.betas, b.betas) and b.betas.dtype == np.float64
    assert list(a.history) == list(b.history)
    for k in a.history:
        assert _same_array(a.history[k], b.history[k]), k
    _assert_same_tree(a.optimizer, b.optimizer)
    if a.heldout is None:
        assert b.heldout is None
    else:
        assert _same_array(a.heldout, b.heldout)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "model.h5"
    save_checkpoint(path, _checkpoint())
    return path


def _expect_error(path: Path, *words: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert path.name in msg, msg
    for w in words:  # checked in the problem, not in the path (which holds the test's name)
        assert w.lower() in info.value.problem.lower(), msg
    return info.value


# ---------------------------------------------------------------------------------------------
# Round trips


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    ckpt = _checkpoint()
    path = tmp_path / "model.h5"
    save_checkpoint(path, ckpt)
    back = load_checkpoint(path)
    _assert_same(ckpt, back)
    assert back.state._metadata == ckpt.state._metadata  # BatchNorm's version survives
    assert isinstance(back.optimizer["param_groups"][0]["betas"], tuple)
    assert all(isinstance(k, int) for k in back.optimizer["state"])
    # saving what was loaded gives the same checkpoint again
    save_checkpoint(tmp_path / "again.h5", back)
    _assert_same(ckpt, load_checkpoint(tmp_path / "again.h5", map_location=torch.device("cpu")))
    assert sorted(os.listdir(tmp_path)) == ["again.h5", "model.h5"]  # no temp files left


def test_adam_state_after_three_steps_resumes(tmp_path: Path) -> None:
    net, opt = _trained(steps=3)
    path = tmp_path / "model.h5"
    save_checkpoint(path, Checkpoint(config={"T": T, "kernel": "binomial"}, state=net.state_dict(),
                                     betas=np.full(T, 0.1), norm={}, history={}, optimizer=opt.state_dict()))
    back = load_checkpoint(path)
    _assert_same_tree(opt.state_dict(), back.optimizer)

    net2, _ = _trained(steps=0)
    net2.load_state_dict(back.state)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1e-3)
    opt2.load_state_dict(back.optimizer)
    assert float(opt2.state_dict()["state"][0]["step"]) == 3.0
    # one more step on both gives identical parameters
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).mean().backward()
        o.step()
    for p1, p2 in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p1, p2)


def test_minimal_checkpoint_and_optional_parts(tmp_path: Path) -> None:
    ckpt = Checkpoint(config={"T": 1, "kernel": "binomial"}, state={}, betas=np.array([1.0]),
                      norm={}, history={})
    save_checkpoint(tmp_path / "m.h5", ckpt)
    back = load_checkpoint(tmp_path / "m.h5")
    _assert_same(ckpt, back)
    assert back.optimizer is None and back.heldout is None and back.meta == {}


def test_file_layout(good: Path) -> None:
    with h5py.File(good, "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["format_version"] == FORMAT_VERSION
        assert {"config", "meta", "norm", "state", "betas", "history", "optimizer", "heldout"} <= set(f)
        assert f["betas"].dtype == np.float64
        assert f["state/0.weight"].attrs["key"] == "0.weight"
        assert f["state/odd%2Fkey"].attrs["key"] == "odd/key"
        assert f["optimizer/tensor_00000"].attrs["torch_dtype"] == "float32"


def test_save_refuses_invalid_checkpoints_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    good = _checkpoint(with_optimizer=False)
    bad_cases = [
        dict(config={"kernel": "gaussian"}),
        dict(config={"T": T, "kernel": "poisson"}),
        dict(betas=np.full(T + 1, 0.1)),
        dict(betas=np.full(T, 0.0)),
        dict(state={"w": torch.tensor([1.0, float("nan")])}),
        dict(state={"w": torch.zeros(2, dtype=torch.complex64)}),
        dict(history={"a": np.zeros(3), "b": np.zeros(4)}),
        dict(meta={"x": object()}),
        dict(optimizer={"state": {0: {"m": torch.tensor([float("inf")])}}, "param_groups": []}),
        dict(optimizer={"state": {}, "param_groups": [{"x": {1, 2}}]}),
    ]
    for change in bad_cases:
        kw = {**good.__dict__, **change}
        with pytest.raises(CheckpointError) as info:
            save_checkpoint(path, Checkpoint(**kw))
        assert "bad.h5" in str(info.value)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Malformed files


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.h5", "no such file")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.h5").mkdir()
    _expect_error(tmp_path / "dir.h5", "folder")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.h5").write_bytes(b"")
    _expect_error(tmp_path / "empty.h5", "empty")


def test_text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.h5").write_text("this is not a model\n" * 100)
    _expect_error(tmp_path / "notes.h5", "not an HDF5 file")


def test_random_bytes(tmp_path: Path) -> None:
    (tmp_path / "noise.h5").write_bytes(np.random.default_rng(0).bytes(10_000))
    _expect_error(tmp_path / "noise.h5", "not an HDF5 file")


def test_truncated_file(good: Path) -> None:
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    _expect_error(good, "truncated")


def test_foreign_hdf5_file(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.arange(10)
    _expect_error(tmp_path / "other.h5", "format")
    with h5py.File(tmp_path / "keras.h5", "w") as f:
        f.attrs["format"] = "keras"
    _expect_error(tmp_path / "keras.h5", "keras")


def test_trajectory_file_is_not_a_model(tmp_path: Path) -> None:
    save_trajectory(tmp_path / "traj.h5", np.zeros((2, 3, 4), np.float32), t=np.arange(2), meta={})
    _expect_error(tmp_path / "traj.h5", "dpm-explorer-trajectory")


def _mutate(path: Path, fn) -> Path:
    """Rebuild ``path`` by hand with h5py (no checksum header, as a person or script would), then apply ``fn``."""
    src = path.with_name(path.name + ".src")
    path.rename(src)
    with h5py.File(src, "r") as fi, h5py.File(path, "w") as fo:
        for k, v in fi.attrs.items():
            fo.attrs[k] = v
        for name in fi:
            fi.copy(fi[name], fo, name=name)
        fn(fo)
    src.unlink()
    return path


def test_hand_built_file_without_header_loads(good: Path) -> None:
    """A file made with plain h5py (no user block, no checksum) is read and validated all the same."""
    back = load_checkpoint(_mutate(good, lambda f: None))
    assert good.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    ckpt = _checkpoint()
    assert back.config == ckpt.config and back.norm == ckpt.norm
    assert set(back.state) == set(ckpt.state) and set(back.history) == set(ckpt.history)
    for k in ckpt.state:
        assert _same_tensor(ckpt.state[k], back.state[k]), k
    _assert_same_tree(ckpt.optimizer, back.optimizer)


def test_saved_file_is_checksummed(good: Path) -> None:
    data = good.read_bytes()
    assert data.startswith(b"dpm-explorer checksummed HDF5 v1\n")
    assert data[512:520] == b"\x89HDF\r\n\x1a\n"
    with h5py.File(good, "a") as f:  # an edit in place breaks the checksum
        f["meta"].attrs["x"] = 1
    _expect_error(good, "checksum")
    good.write_bytes(data[:40] + b"X" + data[41:])  # damaged header
    _expect_error(good, "header")
    good.write_bytes(data + b"junk")
    _expect_error(good, "unexpected bytes")
    with h5py.File(good, "w", userblock_size=512) as f:  # another program's file with a user block
        f["x"] = 1
    _expect_error(good, "user block")


def _replace(f: h5py.File, name: str, data, **kw) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kw)


def _set_config(f: h5py.File, config: str) -> None:
    _replace(f, "config", config, dtype=h5py.string_dtype())


MALFORMED = {
    "newer format_version": (lambda f: f.attrs.__setitem__("format_version", FORMAT_VERSION + 1), "newer"),
    "format_version not int": (lambda f: f.attrs.__setitem__("format_version", "one"), "format_version"),
    "no format_version": (lambda f: f.attrs.__delitem__("format_version"), "format_version"),
    "missing config": (lambda f: f.__delitem__("config"), "config is missing"),
    "missing state": (lambda f: f.__delitem__("state"), "state is missing"),
    "missing betas": (lambda f: f.__delitem__("betas"), "betas is missing"),
    "missing norm": (lambda f: f.__delitem__("norm"), "norm is missing"),
    "config bad JSON": (lambda f: _set_config(f, '{"T": 12, "kernel": '), "JSON"),
    "config not an object": (lambda f: _set_config(f, "[1, 2]"), "JSON object"),
    "config numeric": (lambda f: _replace(f, "config", np.arange(3)), "string"),
    "config no T": (lambda f: _set_config(f, '{"kernel": "gaussian"}'), '"T"'),
    "config T not int": (lambda f: _set_config(f, '{"T": 12.5, "kernel": "gaussian"}'), '"T"'),
    "config no kernel": (lambda f: _set_config(f, '{"T": 12}'), "kernel"),
    "config bad kernel": (lambda f: _set_config(f, '{"T": 12, "kernel": "cauchy"}'), "kernel"),
    "meta bad JSON": (lambda f: _replace(f, "meta", "{oops", dtype=h5py.string_dtype()), "meta"),
    "norm bad UTF-8": (lambda f: _replace(f, "norm", np.bytes_(b'{"a": "\xff"}')), "norm"),
    "betas wrong length": (lambda f: _replace(f, "betas", np.full(T - 1, 0.1)), "betas"),
    "betas NaN": (lambda f: _replace(f, "betas", np.r_[np.full(T - 1, 0.1), np.nan]), "NaN"),
    "betas Inf": (lambda f: _replace(f, "betas", np.r_[np.full(T - 1, 0.1), np.inf]), "Inf"),
    "betas zero": (lambda f: _replace(f, "betas", np.r_[0.0, np.full(T - 1, 0.1)]), "(0, 1]"),
    "betas above one": (lambda f: _replace(f, "betas", np.r_[1.5, np.full(T - 1, 0.1)]), "(0, 1]"),
    "betas 2-D": (lambda f: _replace(f, "betas", np.full((T, 1), 0.1)), "betas"),
    "betas strings": (lambda f: _replace(f, "betas", np.array([b"x"] * T)), "dtype"),
    "state NaN": (lambda f: _replace(f, "state/0.weight", np.full((40, 4), np.nan, np.float32)), "NaN"),
    "state Inf": (lambda f: _replace(f, "state/2.bias", np.array([1, np.inf], np.float32)), "Inf"),
    "state strings": (lambda f: _replace(f, "state/0.bias", np.array([b"ab", b"cd"])), "dtype"),
    "state object": (lambda f: _replace(f, "state/0.bias", np.array(["a", "b"], dtype=object),
                                        dtype=h5py.string_dtype()), "dtype"),
    "state compound": (lambda f: _replace(f, "state/0.bias", np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
                       "dtype"),
    "state complex": (lambda f: _replace(f, "state/0.bias", np.zeros(3, dtype=np.complex64)), "dtype"),
    "state subgroup": (lambda f: f.create_group("state/sub"), "not a dataset"),
    "state dtype mismatch": (lambda f: f["state/0.bias"].attrs.__setitem__("torch_dtype", "int64"), "stored as"),
    "state unknown dtype": (lambda f: f["state/0.bias"].attrs.__setitem__("torch_dtype", "quint8"), "torch_dtype"),
    "state soft link": (lambda f: f.__setitem__("state/link", h5py.SoftLink("/betas")), "links"),
    "state external link": (lambda f: f.__setitem__("state/ext", h5py.ExternalLink("/etc/passwd", "/x")), "links"),
    "absurdly large dataset": (lambda f: f.create_dataset("state/huge", shape=(MAX_STATE_BYTES // 4 + 1,), dtype="f4",
                                                          chunks=(4096,)), "limit"),
    "absurdly large 2-D history": (lambda f: f.create_dataset("history/huge", shape=(2**20, 2**12), dtype="f8",
                                                              chunks=(64, 64)), "limit"),
    "history unequal lengths": (lambda f: _replace(f, "history/seconds", np.arange(3.0)), "unequal"),
    "history 3-D": (lambda f: _replace(f, "history/beta", np.zeros((6, T, 2))), "history"),
    "history strings": (lambda f: _replace(f, "history/seconds", np.array([b"x"] * 6)), "dtype"),
    "optimizer NaN": (lambda f: _replace(f, "optimizer/tensor_00001", np.full((40, 4), np.nan, np.float32)),
                      "NaN"),
    "optimizer missing tensor": (lambda f: f.__delitem__("optimizer/tensor_00002"), "missing tensor"),
    "optimizer bad JSON": (lambda f: _replace(f, "optimizer/structure", "{]", dtype=h5py.string_dtype()),
                           "optimizer"),
    "optimizer unknown tag": (lambda f: _replace(f, "optimizer/structure", '{"__pickle__": "x"}',
                                                 dtype=h5py.string_dtype()), "tag"),
    "heldout NaN": (lambda f: _replace(f, "heldout", np.full((5, 2), np.nan, np.float32)), "NaN"),
    "heldout strings": (lambda f: _replace(f, "heldout", np.array([b"x"])), "dtype"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file(good: Path, case: str) -> None:
    fn, words = MALFORMED[case]
    _expect_error(_mutate(good, fn), words)


def test_errors_are_value_errors_with_parts(tmp_path: Path) -> None:
    err = _expect_error(tmp_path / "gone.h5")
    assert isinstance(err, ValueError)
    assert err.path == str(tmp_path / "gone.h5") and err.problem == "no such file"
    assert str(err).startswith(str(tmp_path / "gone.h5"))


# ---------------------------------------------------------------------------------------------
# Fuzzing: any bytes give a CheckpointError or a valid checkpoint, never anything else

_VALID_BYTES: list[bytes] = []


def _valid_bytes() -> bytes:
    if not _VALID_BYTES:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "model.h5"
            save_checkpoint(path, _checkpoint())
            _VALID_BYTES.append(path.read_bytes())
    return _VALID_BYTES[0]


def _load_or_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.h5"
        path.write_bytes(data)
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            assert "fuzz.h5" in str(e)
            return
        # what loads is a valid checkpoint: it saves (which validates everything) and loads again
        save_checkpoint(Path(d) / "again.h5", ckpt)
        _assert_same(ckpt, load_checkpoint(Path(d) / "again.h5"))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    _load_or_error(data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.data())
def test_fuzz_truncated_or_flipped_valid_file(draw) -> None:
    base = bytearray(_valid_bytes())
    n = len(base)
    cut = draw.draw(st.one_of(st.just(n), st.integers(0, n - 1)), label="length")
    # flips are concentrated at the start of the file, where the superblock and headers live
    pos = st.one_of(st.integers(0, min(n, 4096) - 1), st.integers(0, n - 1))
    flips = draw.draw(st.lists(st.tuples(pos, st.integers(1, 255)), max_size=8), label="flips")
    for i, x in flips:
        base[i] ^= x
    _load_or_error(bytes(base[:cut]))


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_atomic_write_replaces_on_success(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_write(path) as tmp:
        assert tmp.parent == tmp_path and tmp != path and tmp.exists() and tmp.suffix == ".txt"
        tmp.write_text("new")
        assert path.read_text() == "old"
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(tmp_path / "movie", suffix=".mp4") as tmp:
        assert tmp.name.endswith(".mp4")
        tmp.write_bytes(b"x")
    assert (tmp_path / "movie").read_bytes() == b"x"


def test_exception_inside_atomic_write_keeps_old_file(good: Path) -> None:
    before = good.read_bytes()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_write(good) as tmp:
            with h5py.File(tmp, "w") as f:
                f["x"] = np.zeros(1000)
            raise Boom
    assert good.read_bytes() == before
    assert os.listdir(good.parent) == [good.name]
    load_checkpoint(good)


def test_failed_save_keeps_old_file(good: Path) -> None:
    before = good.read_bytes()
    ckpt = _checkpoint()
    ckpt.optimizer = {"state": {}, "param_groups": [{"lr": object()}]}
    with pytest.raises(CheckpointError):
        save_checkpoint(good, ckpt)
    assert good.read_bytes() == before and os.listdir(good.parent) == [good.name]


_KILLED_WRITER = """
import sys
import numpy as np, torch
from models.files import Checkpoint, save_checkpoint
g = torch.Generator().manual_seed(0)
state = {f"w{i}": torch.rand(1 << 18, generator=g) for i in range(48)}  # 48 MB of incompressible floats
ckpt = Checkpoint(config={"T": 4, "kernel": "gaussian", "name": "new"}, state=state,
                  betas=np.full(4, 0.1), norm={}, history={})
save_checkpoint(sys.argv[1], ckpt)
print("finished", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_save_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    old = _checkpoint(with_optimizer=False)
    old.config["name"] = "old"
    save_checkpoint(path, old)
    before = path.read_bytes()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        temp = None
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.iterdir() if p.name.startswith(".model.h5.")]
            if temps and temps[0].stat().st_size > 0:  # the save has started writing
                temp = temps[0]
                break
            time.sleep(0.001)
        assert temp is not None, f"the writer never started: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert b"finished" not in proc.stdout.read()

    assert path.read_bytes() == before
    back = load_checkpoint(path)
    assert back.config["name"] == "old"
    _assert_same(old, back)
    # the partial write is only the stray hidden temp file, which is not a loadable model
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert leftovers == [temp.name] and temp.name != path.name
    with pytest.raises(CheckpointError):
        load_checkpoint(temp)


# ---------------------------------------------------------------------------------------------
# Trajectories


def test_trajectory_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(5, 3, 8, 8)).astype(np.float32)
    t = np.array([40, 30, 20, 10, 0])
    meta = {"kind": "sample", "direction": "reverse", "model": "model.h5", "seed": 7}
    save_trajectory(tmp_path / "traj.h5", traj, t=t, meta=meta)
    back = load_trajectory(tmp_path / "traj.h5")
    assert isinstance(back, Trajectory)
    assert _same_array(back.traj, traj)
    assert back.t.dtype == np.int64 and np.array_equal(back.t, t)
    assert back.meta == meta
    with pytest.raises(AttributeError):
        back.meta = {}  # type: ignore[misc]


def test_save_trajectory_refuses_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "traj.h5"
    for traj, t in [
        (np.zeros((3, 2), np.float32), np.arange(4)),  # wrong length of t
        (np.zeros(3, np.float32), np.arange(3)),  # no N axis
        (np.full((2, 2), np.nan, np.float32), np.arange(2)),
        (np.zeros((2, 2), np.int64), np.arange(2)),
        (np.zeros((2, 2), np.float32), np.array([0.5, 1.5])),
    ]:
        with pytest.raises(CheckpointError, match="traj.h5"):
            save_trajectory(path, traj, t=t, meta={})
    assert os.listdir(tmp_path) == []


def _expect_traj_error(path: Path, *words: str) -> None:
    with pytest.raises(CheckpointError) as info:
        load_trajectory(path)
    msg = str(info.value)
    assert path.name in msg, msg
    for w in words:
        assert w.lower() in info.value.problem.lower(), msg


def test_bad_trajectory_files(tmp_path: Path, good: Path) -> None:
    _expect_traj_error(tmp_path / "missing.h5", "no such file")
    (tmp_path / "noise.h5").write_bytes(np.random.default_rng(1).bytes(3000))
    _expect_traj_error(tmp_path / "noise.h5", "not an HDF5")
    _expect_traj_error(good, "dpm-explorer-model")

    def fresh(name: str) -> Path:
        p = tmp_path / name
        save_trajectory(p, np.zeros((4, 2, 3), np.float32), t=np.arange(4), meta={"kind": "sample"})
        return p

    data = fresh("cut.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    _expect_traj_error(tmp_path / "cut.h5", "truncated")
    _expect_traj_error(_mutate(fresh("nan.h5"), lambda f: _replace(f, "traj", np.full((4, 2, 3), np.nan, "f4"))),
                       "NaN")
    _expect_traj_error(_mutate(fresh("len.h5"), lambda f: _replace(f, "t", np.arange(3))), "entries")
    _expect_traj_error(_mutate(fresh("notraj.h5"), lambda f: f.__delitem__("traj")), "traj is missing")
    _expect_traj_error(_mutate(fresh("str.h5"), lambda f: _replace(f, "traj", np.array([[b"a"]]))), "dtype")
    _expect_traj_error(_mutate(fresh("ver.h5"), lambda f: f.attrs.__setitem__("format_version", 9)), "newer")
    _expect_traj_error(_mutate(fresh("meta.h5"), lambda f: _replace(f, "meta", "nope", dtype=h5py.string_dtype())),
                       "JSON")
