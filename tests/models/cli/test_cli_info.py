"""``dpm info`` (models/cli/info.py)."""
from __future__ import annotations

import json

import h5py
import numpy as np
from cli_helpers import assert_one_error_line

from models.paths import bundled_model
from models.presets import PRESETS


def test_info_prints_config_schedule_and_K(swissroll_model, run):
    rc, out, err = run("info", swissroll_model)
    assert rc == 0, err
    assert "T = 10" in out and "β_1 = " in out and "ᾱ_T" in out and "K " in out and "history: 1 records" in out
    rc, out, _ = run("info", swissroll_model, "--json")
    info = json.loads(out)
    assert info["T"] == 10 and 0 < info["alpha_bar_T"] < 1 and info["meta"]["K_bits"] is not None


def test_info_list_names_the_bundled_models_with_their_K(run):
    rc, out, err = run("info", "--list", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    names = [r["name"] for r in rows]
    assert names == [n for n in PRESETS if bundled_model(n) is not None]
    for r in rows:
        assert r["K_bits"] is not None and r["unit"] == PRESETS[r["name"]].unit, r
    rc, out, _ = run("info", "--list")
    assert rc == 0 and all(n in out for n in names)


def test_info_errors(tmp_path, run):
    missing = tmp_path / "missing.h5"
    rc, _, err = run("info", missing)
    assert_one_error_line(rc, err, str(missing), "no such file")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    rc, _, err = run("info", other)
    assert_one_error_line(rc, err, str(other))
    rc, _, err = run("info")
    assert_one_error_line(rc, err, "--list")


def test_info_on_a_model_saved_before_its_exact_evaluation(tmp_path, run):
    """A model saved without an exact K (a training autosave, a run stopped early, the app's Save after
    training) says so — not "autosave" for all of them — and shows the live held-out estimate it has."""
    import torch

    from models.config import ModelConfig
    from models.files import save_model
    from models.model import DiffusionModel

    torch.manual_seed(0)
    m = DiffusionModel(ModelConfig(kernel="gaussian", T=6, example_shape=(2,), arch="mlp", hidden=8, layers=1))
    path = tmp_path / "app_saved.h5"
    save_model(path, m, norm={"mean": 0.0, "std": 1.0, "levels": None},
               meta={"complete": False, "iterations": 120, "K_heldout_live_bits": 1.2345})
    rc, out, err = run("info", path)
    assert rc == 0, err
    assert "K            not recorded  (saved before an exact evaluation" in out and "dpm eval" in out
    assert "K held out   ≈ 1.2345 (the live estimate while training)" in out
