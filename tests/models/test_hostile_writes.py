"""Bad days for the files the product writes (issue "Hostile files and bad days", items 4, 7 and 8):
saves keep the old file's permissions and clean up what a killed save left, a full disk leaves the
previous file, and two writers of one output are refused."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from models.config import ModelConfig
from models.files import LockError, OutputLock, atomic_write, lock_output, save_model
from models.files.atomic import stale_temporaries
from models.model import DiffusionModel


def _save(p):
    torch.manual_seed(0)
    m = DiffusionModel(ModelConfig(kernel="gaussian", T=5, example_shape=(2,), arch="mlp", hidden=4, layers=1))
    save_model(p, m, norm={"mean": [0.0, 0.0], "std": 1.0, "levels": None})


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_item4_resaving_keeps_the_old_files_mode(tmp_path):
    p = tmp_path / "m.h5"
    _save(p)
    os.chmod(p, 0o600)
    _save(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    with atomic_write(p) as tmp:
        tmp.write_bytes(b"x")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_item4_the_temporary_file_a_killed_save_left_is_removed_by_the_next_save(tmp_path):
    p = tmp_path / "m.h5"
    # a save killed mid-write: a process that wrote its temporary file and died
    code = ("import os, sys; from models.files import atomic_write\n"
            "cm = atomic_write(sys.argv[1]); tmp = cm.__enter__(); open(tmp, 'wb').write(b'partial'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(p)], check=True, cwd=os.getcwd())
    left = [f for f in tmp_path.iterdir() if f.name.startswith(".m.h5.")]
    assert len(left) == 1 and stale_temporaries(p) == left
    # an older version's name (no process id), old enough to be an orphan
    old = tmp_path / ".m.h5.0123abcd.tmp.h5"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _save(p)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.h5"]


def test_item7_a_full_disk_during_a_save_keeps_the_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "m.h5"
    _save(p)
    before = p.read_bytes()
    import models.files.hdf5 as H

    real = H.write_array

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(H, "write_array", full)
    import models.files.model_file as MF

    monkeypatch.setattr(MF, "write_array", full)
    with pytest.raises(OSError):
        _save(p)
    monkeypatch.setattr(MF, "write_array", real)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["m.h5"]


def test_item7_gif_export_on_a_full_disk_keeps_the_previous_gif(tmp_path, monkeypatch):
    pytest.importorskip("PySide6")
    from PIL import Image

    from explorer.export import write_gif

    p = tmp_path / "a.gif"
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 128, 255)]
    write_gif(p, frames)
    before = p.read_bytes()
    real_save = Image.Image.save

    def full(self, fp, *a, **k):
        real_save(self, fp, *a, **k)  # bytes written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError):
        write_gif(p, frames[:2])
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["a.gif"]


def test_item8_a_second_writer_of_the_same_output_is_refused(tmp_path):
    p = tmp_path / "m.h5"
    code = ("import sys, time; from models.files import lock_output\n"
            "l = lock_output(sys.argv[1]); print('locked', flush=True); time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", code, str(p)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"
        with pytest.raises(LockError) as e:
            lock_output(p)
        assert str(e.value).startswith(str(p)) and str(other.pid) in str(e.value)
    finally:
        other.kill()
        other.wait()
    # the holder died: its lock is gone with it (a left-over lock file does not block)
    with lock_output(p):
        pass
    assert not (tmp_path / ".m.h5.lock").exists()


def test_item8_a_stale_lock_file_does_not_block(tmp_path):
    p = tmp_path / "m.h5"
    (tmp_path / ".m.h5.lock").write_text("99999999 on elsewhere\n")
    with OutputLock(p) as lock:
        assert lock.lock_path.exists()
    assert not (tmp_path / ".m.h5.lock").exists()
