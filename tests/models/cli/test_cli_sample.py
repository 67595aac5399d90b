"""``dpm sample`` (models/cli/sample.py)."""
from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import assert_one_error_line
from PIL import Image

from models.files import load_trajectory
from models.paths import bundled_model


def test_sample_npy_h5_png(swissroll_model, tmp_path, run):
    rc, _, err = run("sample", swissroll_model, "-n", "30", "--out", tmp_path / "s.npy", "--seed", "3")
    assert rc == 0, err
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (30, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    run("sample", swissroll_model, "-n", "30", "--out", tmp_path / "s2.npy", "--seed", "3")
    np.testing.assert_array_equal(a, np.load(tmp_path / "s2.npy"))  # same seed, same samples

    rc, _, err = run("sample", swissroll_model, "-n", "4", "--out", tmp_path / "t.h5")
    assert rc == 0, err
    tr = load_trajectory(tmp_path / "t.h5")
    assert tr.traj.shape == (11, 4, 2) and list(tr.t) == list(range(11)) and tr.meta["units"] == "normalized"

    rc, _, _ = run("sample", swissroll_model, "-n", "4", "--trajectory", "--out", tmp_path / "t.npy")
    assert rc == 0 and np.load(tmp_path / "t.npy").shape == (11, 4, 2)

    rc, _, err = run("sample", swissroll_model, "-n", "50", "--out", tmp_path / "s.png")
    assert rc == 0, err
    assert Image.open(tmp_path / "s.png").size == (512, 512)


def test_upper_case_extension_writes_that_file(swissroll_model, tmp_path, run):
    rc, _, err = run("sample", swissroll_model, "-n", "5", "--out", tmp_path / "SAMPLES.NPY")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SAMPLES.NPY"]  # no stray hidden file
    assert np.load(tmp_path / "SAMPLES.NPY").shape == (5, 2)


def test_sample_refusals(swissroll_model, tmp_path, run):
    before = swissroll_model.read_bytes()
    rc, _, err = run("sample", swissroll_model, "--out", swissroll_model, "--trajectory")
    assert_one_error_line(rc, err, str(swissroll_model), "replace the input")
    assert swissroll_model.read_bytes() == before
    rc, _, err = run("sample", swissroll_model, "-n", "10000000", "--out", tmp_path / "s.npy")
    assert_one_error_line(rc, err, "-n", "limit", "100,000")
    rc, _, err = run("sample", swissroll_model, "-n", "50000", "--trajectory", "--out", tmp_path / "s.npy")
    assert rc == 0 or "limit" in err  # 50000 × 11 × 2 values fits
    rc, _, err = run("sample", swissroll_model, "--out", tmp_path / "s.txt")
    assert_one_error_line(rc, err, "s.txt")
    missing = tmp_path / "missing.h5"
    rc, _, err = run("sample", missing, "--out", tmp_path / "s.npy")
    assert_one_error_line(rc, err, str(missing), "no such file")


def test_sample_a_bundled_model_by_name(tmp_path, run):
    if bundled_model("swissroll") is None:
        pytest.skip("no bundled swissroll model")
    rc, _, err = run("sample", "swissroll", "-n", "8", "--out", tmp_path / "s.npy")
    assert rc == 0, err
    assert np.load(tmp_path / "s.npy").shape == (8, 2)
