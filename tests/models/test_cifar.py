"""The CIFAR-10 reader (binary version: records of 1 label byte + 3,072 pixel bytes, R then G then B
planes, each 32 rows of 32) on synthetic files in that layout, and ``dpm train cifar10`` on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.cli import main
from models.data import DataError, load_preset, read_cifar10_binary
from models.data import readers
from models.files import load_model

RECORD = 1 + 3 * 32 * 32


def _records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """n records: (images uint8 [n, 3, 32, 32], labels [n], the file's bytes in the official layout)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    body = b"".join(bytes([int(lab)]) + img.tobytes() for img, lab in zip(images, labels))
    return images, labels, body


def _write_batches(d: Path, n: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([f"data_batch_{j}.bin" for j in range(1, 6)] + ["test_batch.bin"]):
        images, labels, body = _records(n, seed=i)
        (d / name).write_bytes(body)
        out[name] = (images, labels)
    return out


def test_one_file_in_the_official_layout(tmp_path):
    images, labels, body = _records(7, seed=0)
    assert len(body) == 7 * RECORD
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(body)
    x, y = read_cifar10_binary(p)
    assert x.dtype == np.uint8 and x.shape == (7, 3, 32, 32) and y.shape == (7,)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    # the layout itself: byte 1 + c·1024 + r·32 + col of a record is channel c, row r, column col
    raw = np.frombuffer(body, dtype=np.uint8)
    assert x[3, 2, 5, 7] == raw[3 * RECORD + 1 + 2 * 1024 + 5 * 32 + 7]
    assert y[3] == raw[3 * RECORD]


def test_folder_train_and_test_splits(tmp_path):
    written = _write_batches(tmp_path / "cifar-10-batches-bin")
    x, y = read_cifar10_binary(tmp_path)  # the parent folder finds cifar-10-batches-bin
    assert x.shape == (60, 3, 32, 32)
    np.testing.assert_array_equal(x[:12], written["data_batch_1.bin"][0])
    np.testing.assert_array_equal(y[48:], written["data_batch_5.bin"][1])
    xt, yt = read_cifar10_binary(tmp_path, split="test")
    np.testing.assert_array_equal(xt, written["test_batch.bin"][0])
    np.testing.assert_array_equal(yt, written["test_batch.bin"][1])
    data = load_preset("cifar10", cifar_dir=tmp_path)
    assert tuple(data.example_shape) == (3, 32, 32) and data.n_heldout == 12
    assert data.heldout().shape == (12, 3, 32, 32)


@pytest.mark.parametrize("cut", [1, RECORD - 1, 3000])
def test_truncated_file_is_refused(tmp_path, cut):
    _, _, body = _records(3, seed=1)
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(body[:-cut])
    with pytest.raises(DataError, match="not a whole number of CIFAR-10 records") as e:
        read_cifar10_binary(p)
    assert str(p) in str(e.value) and "truncated" in str(e.value)


@pytest.mark.parametrize("extra", [1, 100, RECORD - 1])
def test_oversized_file_is_refused(tmp_path, extra):
    """Bytes past the last whole record (e.g. two files concatenated badly, or CIFAR-100's 2-byte labels)."""
    _, _, body = _records(3, seed=2)
    p = tmp_path / "test_batch.bin"
    p.write_bytes(body + b"\x00" * extra)
    with pytest.raises(DataError, match="not a whole number") as e:
        read_cifar10_binary(p, split="test")
    assert str(p) in str(e.value)


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    _, _, body = _records(4, seed=3)
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(body)
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 3 * RECORD)
    with pytest.raises(DataError) as e:
        read_cifar10_binary(p)
    assert str(p) in str(e.value)


def test_bad_label_byte_is_refused(tmp_path):
    _, _, body = _records(3, seed=4)
    b = bytearray(body)
    b[2 * RECORD] = 10
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match="record 2 has label byte 10"):
        read_cifar10_binary(p)


def test_missing_batch_is_named(tmp_path):
    _write_batches(tmp_path)
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match="data_batch_3.bin"):
        read_cifar10_binary(tmp_path)


def test_dpm_train_cifar10_on_synthetic_batches(tmp_path, capsys, one_thread):
    _write_batches(tmp_path / "cifar")
    out = tmp_path / "cifar.h5"
    rc = main(["train", "cifar10", "--cifar-dir", str(tmp_path / "cifar"), "--steps", "3", "--T", "10",
               "--batch-size", "4", "--n-eval", "4", "--quiet", "--threads", "1", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    lm = load_model(out)
    assert lm.config.example_shape == (3, 32, 32) and lm.meta["iterations"] == 3
    assert lm.meta["data"] == "cifar10" and np.isfinite(lm.meta["K_bits"]) and lm.meta["n_eval"] == 4
    assert torch.isfinite(lm.model.reverse_step(torch.zeros(1, 3, 32, 32), 5).mean).all()


def test_dpm_train_cifar10_refuses_a_truncated_batch(tmp_path, capsys, one_thread):
    d = tmp_path / "cifar"
    _write_batches(d)
    f = d / "data_batch_2.bin"
    f.write_bytes(f.read_bytes()[:-10])
    rc = main(["train", "cifar10", "--cifar-dir", str(d), "--steps", "3", "--T", "10", "--quiet", "--threads", "1",
               "--out", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert rc == 2 and "data_batch_2.bin" in err and "Traceback" not in err
    assert not (tmp_path / "x.h5").exists()
