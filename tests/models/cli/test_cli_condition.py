"""``dpm condition`` (models/cli/condition.py): fixed coordinates of a vector model, raw units out."""
from __future__ import annotations

import json

import numpy as np
from cli_helpers import assert_one_error_line


def test_condition_writes_raw_samples_with_the_fixed_values(swissroll_model, tmp_path, run):
    for method, extra in (("smc", ["--particles", "4"]), ("clamp", [])):
        out = tmp_path / f"{method}.npy"
        rc, stdout, err = run("condition", swissroll_model, "--fix", "0=0.5", "--method", method, *extra,
                              "-n", "20", "--seed", "1", "--out", out, "--json")
        assert rc == 0, err
        res = json.loads(stdout)
        assert res["shape"] == [20, 2] and res["method"] == method and res["units"] == "raw"
        x = np.load(out)
        assert x.shape == (20, 2) and (x[:, 0] == np.float32(0.5)).all() and np.isfinite(x).all()
    rc, _, err = run("condition", swissroll_model, "--fix", "7=1", "-n", "2", "--out", tmp_path / "o.npy")
    assert_one_error_line(rc, err, "out of range")
    rc, _, err = run("condition", swissroll_model, "--fix", "0=", "-n", "2", "--out", tmp_path / "o.npy")
    assert_one_error_line(rc, err, "--fix")
