"""Tests for models/cli.py, the `dpm` command, run in-process through ``main(argv)``.

Tiny runs only (T = 10, 20 iterations, small evaluation sets, one CPU thread) so the file takes seconds."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from models.presets import get_preset
import torch
from PIL import Image

from models.checkpoint import load_trajectory
from models.cli import main, parzen_log_likelihood_nats
from models.io import load_model

FAST = ["--T", "10", "--n-eval", "300", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: much faster on a small, shared machine; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def swissroll_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "swissroll.h5"
    torch.set_num_threads(1)
    assert main(["train", "swissroll", "--steps", "20", "--out", str(path), *FAST]) == 0
    return path


def assert_one_error_line(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dpm: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ------------------------------------------------------------------------------------------------
# train, info, eval


def test_train_writes_a_complete_model_file(swissroll_model):
    lm = load_model(swissroll_model)
    assert lm.config.T == 10 and lm.config.example_shape == (2,)
    m = lm.meta
    assert m["train_command"].startswith("dpm train swissroll --steps 20")
    assert m["data"] == "swissroll" and m["data_source"] == "preset" and m["unit"] == "bits/point"
    for key in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "beta_1", "train_seconds"):
        assert np.isfinite(m[key]), key
    assert m["n_eval"] == 300 and m["iterations"] == 20 and m["device"] == "cpu" and m["complete"] is True
    assert m["beta_1"] == pytest.approx(get_preset("swissroll").model.beta_1)
    assert m["K_bits"] < -2.0471 * 2 + m["cap_bits"]  # the β_1 cap of spec §2.3
    assert lm.optimizer is not None and len(lm.history["iteration"]) >= 1
    assert lm.norm["std"] > 0


def test_info_prints_config_schedule_and_K(swissroll_model, capsys):
    rc, out, err = run(capsys, "info", swissroll_model)
    assert rc == 0, err
    assert "T = 10" in out and "β_1 = " in out and "ᾱ_T" in out and "K " in out and "history: 1 records" in out
    rc, out, _ = run(capsys, "info", swissroll_model, "--json")
    info = json.loads(out)
    assert info["T"] == 10 and 0 < info["alpha_bar_T"] < 1 and info["meta"]["K_bits"] is not None


def test_eval_json_and_ais(swissroll_model, capsys):
    rc, out, err = run(capsys, "eval", swissroll_model, "--json", "--n", "200", "--ais", "2", "--device", "cpu")
    assert rc == 0, err
    res = json.loads(out)  # exactly one JSON object
    for key in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "unit", "beta_1", "n_eval", "ais_bits"):
        assert key in res, key
    assert res["n_eval"] == 200 and res["unit"] == "bits/point" and res["beta_1"] == pytest.approx(get_preset("swissroll").model.beta_1)
    assert res["K_minus_Lnull_bits"] == pytest.approx(res["K_bits"] - res["L_null_bits"])
    assert np.isfinite(res["ais_bits"]) and res["ais_bits"] > res["K_bits"] - 1.0  # K ≤ AIS in expectation
    rc, out, _ = run(capsys, "eval", swissroll_model, "--n", "100")
    assert rc == 0 and "K          =" in out and "bits/point" in out


def test_eval_parzen(swissroll_model, capsys):
    rc, out, err = run(capsys, "eval", swissroll_model, "--json", "--n", "50", "--parzen", "--parzen-samples", "200")
    assert rc == 0, err
    res = json.loads(out)
    assert np.isfinite(res["parzen_nats"])
    assert np.isclose(np.logspace(-1, 0, 10), res["parzen_sigma"]).any()  # σ from the protocol's grid
    assert res["parzen_bits"] == pytest.approx(res["parzen_nats"] / np.log(2))


def test_parzen_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(7, 3, generator=g), torch.randn(11, 3, generator=g)
    sigma = 0.4
    got = parzen_log_likelihood_nats(x, s, sigma, chunk=3)
    comp = torch.distributions.Normal(s.double(), sigma)
    want = torch.logsumexp(comp.log_prob(x.double()[:, None]).sum(-1), dim=1) - np.log(11)
    torch.testing.assert_close(got, want)
    both = parzen_log_likelihood_nats(x, s, [sigma, 1.0])
    torch.testing.assert_close(both[0], want)


# ------------------------------------------------------------------------------------------------
# sample


def test_sample_npy_h5_png(swissroll_model, tmp_path, capsys):
    rc, _, err = run(capsys, "sample", swissroll_model, "-n", "30", "--out", tmp_path / "s.npy", "--seed", "3")
    assert rc == 0, err
    a = np.load(tmp_path / "s.npy")
    assert a.shape == (30, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    # same seed, same samples
    run(capsys, "sample", swissroll_model, "-n", "30", "--out", tmp_path / "s2.npy", "--seed", "3")
    np.testing.assert_array_equal(a, np.load(tmp_path / "s2.npy"))

    rc, _, err = run(capsys, "sample", swissroll_model, "-n", "4", "--out", tmp_path / "t.h5")
    assert rc == 0, err
    tr = load_trajectory(tmp_path / "t.h5")
    assert tr.traj.shape == (11, 4, 2) and list(tr.t) == list(range(11)) and tr.meta["units"] == "normalized"

    rc, _, _ = run(capsys, "sample", swissroll_model, "-n", "4", "--trajectory", "--out", tmp_path / "t.npy")
    assert rc == 0 and np.load(tmp_path / "t.npy").shape == (11, 4, 2)

    rc, _, err = run(capsys, "sample", swissroll_model, "-n", "50", "--out", tmp_path / "s.png")
    assert rc == 0, err
    assert Image.open(tmp_path / "s.png").size == (512, 512)


# ------------------------------------------------------------------------------------------------
# own data


def test_train_on_own_npy_and_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pts.npy", (rng.normal(size=(120, 3)) * [1, 2, 3] + 5).astype(np.float32))
    np.savetxt(tmp_path / "pts.csv", rng.normal(size=(60, 2)), delimiter=",", header="x,y", comments="")
    for name in ("pts.npy", "pts.csv"):
        out = tmp_path / (name.replace(".", "_") + ".h5")
        rc, stdout, err = run(capsys, "train", "--data", tmp_path / name, "--steps", "5", "--out", out, *FAST)
        assert rc == 0, err
        assert "K          =" in stdout
        lm = load_model(out)
        assert lm.meta["data_source"] == "file" and lm.meta["data_kind"] == "points"
        assert lm.config.arch == "mlp" and lm.config.kernel == "gaussian"
        assert lm.heldout is not None and lm.heldout.shape[1:] == lm.config.example_shape
        rc, stdout, err = run(capsys, "eval", out, "--json")  # uses the stored held-out split
        assert rc == 0, err
        assert json.loads(stdout)["n_eval"] == lm.heldout.shape[0]
    # the same file as --data, normalised with the model's stored normalisation
    rc, stdout, err = run(capsys, "eval", tmp_path / "pts_npy.h5", "--data", tmp_path / "pts.npy", "--json")
    assert rc == 0, err
    assert json.loads(stdout)["K_bits"] == pytest.approx(load_model(tmp_path / "pts_npy.h5").meta["K_bits"], abs=1.0)


def test_own_binary_and_image_data_pick_their_kind(tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "bits.npy", (rng.random((60, 12)) < 0.25).astype(np.uint8))
    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    rc, _, err = run(capsys, "train", "--data", tmp_path / "bits.npy", "--steps", "3", "--out", tmp_path / "b.h5", *FAST)
    assert rc == 0, err
    c = load_model(tmp_path / "b.h5").config
    assert c.kernel == "binomial" and c.arch == "mlp" and 0.15 < c.p_bar < 0.35
    assert c.param == "posterior" and c.skip == 4.0  # the heartbeat preset's model, as the default for bits
    rc, _, err = run(capsys, "train", "--data", tmp_path / "bits.npy", "--steps", "2", "--param", "residual",
                     "--out", tmp_path / "b2.h5", *FAST)
    assert rc == 0, err
    assert load_model(tmp_path / "b2.h5").config.param == "residual"
    rc, _, err = run(capsys, "train", "--data", tmp_path / "imgs.npy", "--steps", "2", "--out", tmp_path / "i.h5", *FAST)
    assert rc == 0, err
    lm = load_model(tmp_path / "i.h5")
    assert lm.config.arch == "conv" and lm.meta["unit"] == "bits/pixel"
    rc, _, err = run(capsys, "sample", tmp_path / "i.h5", "-n", "4", "--out", tmp_path / "grid.png")
    assert rc == 0, err
    assert Image.open(tmp_path / "grid.png").mode == "L"


# ------------------------------------------------------------------------------------------------
# resume and autosave


def test_resume_continues_iterations_history_and_optimizer(swissroll_model, tmp_path, capsys):
    out = tmp_path / "resumed.h5"
    before = load_model(swissroll_model)
    rc, _, err = run(capsys, "train", "--resume", swissroll_model, "--steps", "7", "--out", out, "--n-eval", "100",
                     "--quiet")
    assert rc == 0, err
    after = load_model(out)
    assert after.meta["iterations"] == 27
    n0 = len(before.history["iteration"])
    assert len(after.history["iteration"]) == n0 + 1
    np.testing.assert_array_equal(after.history["iteration"][:n0], before.history["iteration"])
    assert after.history["iteration"][-1] == 27
    assert after.history["seconds"][-1] >= before.history["seconds"][-1]
    assert after.meta["resumed_from"] == str(swissroll_model) and after.meta["data"] == "swissroll"
    step = lambda opt: max(int(s["step"]) for s in opt["state"].values())  # noqa: E731  (Adam's step count)
    assert step(after.optimizer) == step(before.optimizer) + 7
    # the model's config may not be changed on resume
    rc, _, err = run(capsys, "train", "--resume", swissroll_model, "--T", "20", "--out", out)
    assert_one_error_line(rc, err, str(swissroll_model), "--T")


def test_autosave_every_report(tmp_path, capsys):
    out = tmp_path / "auto.h5"
    rc, _, err = run(capsys, "train", "swissroll", "--steps", "10", "--report-every", "5", "--autosave-seconds", "0",
                     "--out", out, *FAST)
    assert rc == 0, err
    m = load_model(out).meta
    assert m["autosaves"] == 2 and m["complete"] is True and m["iterations"] == 10  # at iterations 5 and 10


# ------------------------------------------------------------------------------------------------
# errors: one line, naming the file, exit status 2


def test_errors_are_one_line(swissroll_model, tmp_path, capsys):
    rc, _, err = run(capsys, "train", "nosuchpreset", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "nosuchpreset", "swissroll")

    missing = tmp_path / "missing.h5"
    for cmd in (["info", missing], ["eval", missing], ["sample", missing, "--out", tmp_path / "s.npy"]):
        rc, _, err = run(capsys, *cmd)
        assert_one_error_line(rc, err, str(missing), "no such file")

    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    rc, _, err = run(capsys, "eval", text)
    assert_one_error_line(rc, err, str(text), "not an HDF5 file")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    rc, _, err = run(capsys, "info", other)
    assert_one_error_line(rc, err, str(other))

    rc, _, err = run(capsys, "train", "swissroll", "--out", tmp_path / "x.h5", "--device", "tpu")
    assert_one_error_line(rc, err, "--device tpu")
    if not torch.cuda.is_available():
        rc, _, err = run(capsys, "eval", swissroll_model, "--device", "cuda")
        assert_one_error_line(rc, err, "cuda")

    rc, _, err = run(capsys, "train", "--data", tmp_path / "nodata.npy", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "nodata.npy")
    rc, _, err = run(capsys, "train", "swissroll", "--kernel", "binomial", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "binomial")
    rc, _, err = run(capsys, "train", "swissroll", "--param", "residual", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "residual", "binomial")
    rc, _, err = run(capsys, "train", "swissroll")  # a usage error is one line too
    assert_one_error_line(rc, err, "--out")
    rc, _, err = run(capsys, "sample", swissroll_model, "--out", tmp_path / "s.txt")
    assert_one_error_line(rc, err, "s.txt")
    np.save(tmp_path / "wrong.npy", np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32))
    rc, _, err = run(capsys, "eval", swissroll_model, "--data", tmp_path / "wrong.npy")
    assert_one_error_line(rc, err, "wrong.npy", "(3,)", "(2,)")
    assert not (tmp_path / "x.h5").exists()


def test_inpaint_and_denoise_wrappers(tmp_path, capsys):
    pytest.importorskip("models.inpainting")
    rng = np.random.default_rng(2)
    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    model = tmp_path / "img.h5"
    assert run(capsys, "train", "--data", tmp_path / "imgs.npy", "--steps", "2", "--out", model, *FAST)[0] == 0
    Image.fromarray(rng.integers(0, 256, (12, 12)).astype(np.uint8)).save(tmp_path / "photo.png")
    mask = np.full((12, 12), 255, np.uint8)
    mask[3:9, 3:9] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    rc, out, err = run(capsys, "inpaint", model, tmp_path / "photo.png", "--mask", tmp_path / "mask.png",
                       "--out", tmp_path / "filled.png", "--trajectory", tmp_path / "inp.h5", "--json")
    assert rc == 0, err
    assert json.loads(out)["output"].endswith("filled.png") and (tmp_path / "filled.png").exists()
    assert load_trajectory(tmp_path / "inp.h5").traj.shape[0] >= 2
    rc, out, err = run(capsys, "denoise", model, tmp_path / "photo.png", "--sigma", "0.5",
                       "--out", tmp_path / "clean.png", "--json")
    assert rc == 0, err
    assert (tmp_path / "clean.png").exists()
    rc, _, err = run(capsys, "inpaint", model, tmp_path / "photo.png", "--mask", tmp_path / "nomask.png",
                     "--out", tmp_path / "f.png")
    assert_one_error_line(rc, err, "nomask.png")
