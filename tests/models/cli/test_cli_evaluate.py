"""``dpm eval`` (models/cli/evaluate.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_error_line

from models.files import load_model
from models.paths import bundled_model
from models.presets import get_preset


def test_eval_json_and_ais(swissroll_model, run):
    rc, out, err = run("eval", swissroll_model, "--json", "--n", "200", "--ais", "2", "--device", "cpu")
    assert rc == 0, err
    res = json.loads(out)  # exactly one JSON object, nothing else on stdout
    for key in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "unit", "beta_1", "n_eval", "ais_bits", "model"):
        assert key in res, key
    assert res["n_eval"] == 200 and res["unit"] == "bits/point"
    assert res["beta_1"] == pytest.approx(get_preset("swissroll").model.beta_1)
    assert res["K_minus_Lnull_bits"] == pytest.approx(res["K_bits"] - res["L_null_bits"])
    assert np.isfinite(res["ais_bits"]) and res["ais_bits"] > res["K_bits"] - 1.0  # K ≤ AIS in expectation
    rc, out, _ = run("eval", swissroll_model, "--n-eval", "100")
    assert rc == 0 and "K          =" in out and "bits/point" in out


def test_eval_parzen(swissroll_model, run):
    rc, out, err = run("eval", swissroll_model, "--json", "--n", "50", "--parzen", "--parzen-samples", "200")
    assert rc == 0, err
    res = json.loads(out)
    assert np.isfinite(res["parzen_nats"])
    assert np.isclose(np.logspace(-1, 0, 10), res["parzen_sigma"]).any()  # σ from the protocol's grid
    assert res["parzen_bits"] == pytest.approx(res["parzen_nats"] / np.log(2))


def test_eval_on_other_data_uses_the_models_normalisation(tmp_path, run):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pts.npy", (rng.normal(size=(120, 3)) * [1, 2, 3] + 5).astype(np.float32))
    out = tmp_path / "m.h5"
    assert run("train", "--data", tmp_path / "pts.npy", "--steps", "5", "--out", out, "--T", "10", "--quiet",
               "--threads", "1")[0] == 0
    rc, stdout, err = run("eval", out, "--data", tmp_path / "pts.npy", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["K_bits"] == pytest.approx(load_model(out).meta["K_bits"], abs=1.0)


def test_eval_a_bundled_model_by_name(run):
    if bundled_model("swissroll") is None:
        pytest.skip("no bundled swissroll model")
    rc, out, err = run("eval", "swissroll", "--n-eval", "50", "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["model"] == str(bundled_model("swissroll")) and res["n_eval"] == 50


def test_eval_errors_are_one_line(swissroll_model, tmp_path, run):
    missing = tmp_path / "missing.h5"
    rc, _, err = run("eval", missing)
    assert_one_error_line(rc, err, str(missing), "no such file")
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    rc, _, err = run("eval", text)
    assert_one_error_line(rc, err, str(text), "not an HDF5 file")
    if not torch.cuda.is_available():
        rc, _, err = run("eval", swissroll_model, "--device", "cuda")
        assert_one_error_line(rc, err, "cuda")
    np.save(tmp_path / "wrong.npy", np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    rc, _, err = run("eval", swissroll_model, "--data", tmp_path / "wrong.npy")
    assert_one_error_line(rc, err, "wrong.npy", "(3,)", "(2,)")
    rc, _, err = run("eval", swissroll_model, "--ais", "100000000")
    assert_one_error_line(rc, err, "--ais", "limit")
