"""``dpm inpaint`` and ``dpm denoise`` (models/cli/inpaint.py, models/cli/denoise.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import FAST, assert_one_error_line
from PIL import Image

from models.files import load_trajectory


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    from models.cli import main

    d = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(2)
    np.save(d / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    assert main(["train", "--data", str(d / "imgs.npy"), "--steps", "2", "--out", str(d / "img.h5"), *FAST]) == 0
    Image.fromarray(rng.integers(0, 256, (12, 12)).astype(np.uint8)).save(d / "photo.png")
    mask = np.full((12, 12), 255, np.uint8)
    mask[3:9, 3:9] = 0
    Image.fromarray(mask).save(d / "mask.png")
    return d


def test_inpaint_writes_the_image_and_trajectory(image_model, tmp_path, run):
    d = image_model
    rc, out, err = run("inpaint", d / "img.h5", d / "photo.png", "--mask", d / "mask.png",
                       "--out", tmp_path / "filled.png", "--trajectory", tmp_path / "inp.h5", "--json")
    assert rc == 0, err
    assert json.loads(out)["output"].endswith("filled.png") and (tmp_path / "filled.png").exists()
    assert load_trajectory(tmp_path / "inp.h5").traj.shape[0] >= 2
    rc, _, err = run("inpaint", d / "img.h5", d / "photo.png", "--mask", tmp_path / "nomask.png",
                     "--out", tmp_path / "f.png")
    assert_one_error_line(rc, err, "nomask.png")


def test_denoise_writes_the_image(image_model, tmp_path, run):
    d = image_model
    rc, out, err = run("denoise", d / "img.h5", d / "photo.png", "--sigma", "0.5", "--out", tmp_path / "clean.png",
                       "--noisy-out", tmp_path / "noisy.png", "--json")
    assert rc == 0, err
    assert (tmp_path / "clean.png").exists() and (tmp_path / "noisy.png").exists()
    assert json.loads(out)["sigma"] == 0.5


def test_outputs_never_replace_inputs(image_model, run):
    d = image_model
    before = (d / "photo.png").read_bytes()
    rc, _, err = run("inpaint", d / "img.h5", d / "photo.png", "--mask", d / "mask.png", "--out", d / "photo.png")
    assert_one_error_line(rc, err, "photo.png", "replace the input")
    rc, _, err = run("denoise", d / "img.h5", d / "photo.png", "--sigma", "0.5", "--out", d / "photo.png")
    assert_one_error_line(rc, err, "photo.png", "replace the input")
    assert (d / "photo.png").read_bytes() == before
    rc, _, err = run("inpaint", d / "img.h5", d / "photo.png", "--mask", d / "mask.png", "--out", d / "o.png",
                     "--samples", "1000")
    assert_one_error_line(rc, err, "--samples", "limit")
