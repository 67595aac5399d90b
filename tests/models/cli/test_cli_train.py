"""``dpm train`` (models/cli/train.py): presets, own data, resume, autosave, signals, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.cli import main
from models.files import load_model, save_model
from models.metadata import ModelMeta, model_meta
from models.presets import default_config, get_preset, load_data

from cli_helpers import FAST, assert_one_error_line


def test_train_writes_a_complete_model_file(swissroll_model):
    lm = load_model(swissroll_model)
    assert lm.config.T == 10 and lm.config.example_shape == (2,)
    m = lm.meta
    assert m["train_command"].startswith("dpm train swissroll --steps 20")
    assert m["data"] == "swissroll" and m["data_source"] == "preset" and m["preset"] == "swissroll"
    assert m["unit"] == "bits/point"
    for key in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "beta_1", "train_seconds"):
        assert np.isfinite(m[key]), key
    assert m["n_eval"] == 300 and m["iterations"] == 20 and m["device"] == "cpu" and m["complete"] is True
    assert m["world_size"] == 1
    assert m["beta_1"] == pytest.approx(get_preset("swissroll").model.beta_1)
    assert m["K_bits"] < -2.0471 * 2 + m["cap_bits"]  # the β_1 cap on K − L_null
    assert lm.optimizer is not None and len(lm.history["iteration"]) >= 1
    assert lm.norm["std"] > 0
    rec = ModelMeta.from_dict(m).recorded
    assert rec is not None and rec.K_bits == m["K_bits"] and rec.n_eval == 300


def test_train_on_own_npy_and_csv(tmp_path, run):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "pts.npy", (rng.normal(size=(120, 3)) * [1, 2, 3] + 5).astype(np.float32))
    np.savetxt(tmp_path / "pts.csv", rng.normal(size=(60, 2)), delimiter=",", header="x,y", comments="")
    for name in ("pts.npy", "pts.csv"):
        out = tmp_path / (name.replace(".", "_") + ".h5")
        rc, stdout, err = run("train", "--data", tmp_path / name, "--steps", "5", "--out", out, *FAST)
        assert rc == 0, err
        assert "K          =" in stdout
        lm = load_model(out)
        assert lm.meta["data_source"] == "file" and lm.meta["data_kind"] == "points"
        assert lm.meta["data_path"] == str((tmp_path / name).resolve())
        assert lm.config.arch == "mlp" and lm.config.kernel == "gaussian"
        assert lm.heldout is not None and lm.heldout.shape[1:] == lm.config.example_shape
        rc, stdout, err = run("eval", out, "--json")  # uses the stored held-out split
        assert rc == 0, err
        import json

        assert json.loads(stdout)["n_eval"] == lm.heldout.shape[0]


def test_own_binary_and_image_data_get_the_default_config(tmp_path, run):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "bits.npy", (rng.random((60, 12)) < 0.25).astype(np.uint8))
    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    rc, _, err = run("train", "--data", tmp_path / "bits.npy", "--steps", "3", "--out", tmp_path / "b.h5", *FAST)
    assert rc == 0, err
    c = load_model(tmp_path / "b.h5").config
    want = default_config(load_data(path=tmp_path / "bits.npy")).replace(T=10)
    assert c == want
    assert c.kernel == "binomial" and c.arch == "mlp" and 0.15 < c.p_bar < 0.35 and c.param == "posterior"
    rc, _, err = run("train", "--data", tmp_path / "bits.npy", "--steps", "2", "--param", "residual",
                     "--out", tmp_path / "b2.h5", *FAST)
    assert rc == 0, err
    assert load_model(tmp_path / "b2.h5").config.param == "residual"
    rc, _, err = run("train", "--data", tmp_path / "imgs.npy", "--steps", "2", "--out", tmp_path / "i.h5", *FAST)
    assert rc == 0, err
    lm = load_model(tmp_path / "i.h5")
    assert lm.config == default_config(load_data(path=tmp_path / "imgs.npy")).replace(T=10)
    assert lm.config.fully_convolutional and lm.meta["unit"] == "bits/pixel"
    # own images train with the image presets' hybrid objective, own bits with K; an explicit choice is kept,
    # and a model the hybrid objective cannot train (the paper's parameterisation) falls back to K
    assert ModelMeta.from_dict(lm.meta).train_config["objective"] == "hybrid"
    assert ModelMeta.from_dict(load_model(tmp_path / "b.h5").meta).train_config["objective"] == "K"
    for extra, want in ((("--objective", "K"), "K"), (("--param", "paper"), "K")):
        rc, _, err = run("train", "--data", tmp_path / "imgs.npy", "--steps", "1", *extra, "--out", tmp_path / "i2.h5",
                         *FAST)
        assert rc == 0, err
        assert ModelMeta.from_dict(load_model(tmp_path / "i2.h5").meta).train_config["objective"] == want, extra


def test_resume_continues_iterations_history_and_optimizer(swissroll_model, tmp_path, run):
    out = tmp_path / "resumed.h5"
    before = load_model(swissroll_model)
    rc, _, err = run("train", "--resume", swissroll_model, "--steps", "7", "--out", out, "--n-eval", "100", "--quiet")
    assert rc == 0, err
    after = load_model(out)
    assert after.meta["iterations"] == 27
    n0 = len(before.history["iteration"])
    assert len(after.history["iteration"]) == n0 + 1
    np.testing.assert_array_equal(after.history["iteration"][:n0], before.history["iteration"])
    assert after.history["iteration"][-1] == 27
    assert after.meta["resumed_from"] == str(swissroll_model) and after.meta["data"] == "swissroll"
    step = lambda opt: max(int(s["step"]) for s in opt["state"].values())  # noqa: E731  (Adam's step count)
    assert step(after.optimizer) == step(before.optimizer) + 7
    rc, _, err = run("train", "--resume", swissroll_model, "--T", "20", "--out", out)
    assert_one_error_line(rc, err, str(swissroll_model), "--T")


def test_a_model_saved_as_the_app_saves_it_resumes_with_no_other_argument(tmp_path, run, sigterm_at_step):
    """The app's save path (explorer/files.py, model_file_meta) writes models.metadata.model_meta with
    these fields for a model trained on a data file; `dpm train --resume FILE --out FILE` then finds
    its data and options in the file. The run (the template's 60 s) is cut short with SIGTERM, which
    stops, evaluates and saves."""
    from models.model import DiffusionModel
    from models.training import TrainConfig, Trainer

    rng = np.random.default_rng(3)
    np.save(tmp_path / "pts.npy", rng.normal(size=(200, 2)).astype(np.float32))
    data = load_data(path=tmp_path / "pts.npy")
    model = DiffusionModel(default_config(data).replace(T=10))
    trainer = Trainer(model, data, TrainConfig(steps=4, batch_size=32, report_every=2, n_eval=50, eval_steps=4))
    for _ in trainer.run():
        pass
    src = str(data.source).split(":")[0]
    meta = model_meta(data, preset=None, data_path=src, drawn_points=None, iterations=trainer.iteration,
                      unit=data.unit, device="cpu", schedule_source="learned", complete=False,
                      K_heldout_live_bits=-1.0)
    f = tmp_path / "app.h5"
    save_model(f, trainer.model, norm=data.norm.to_dict(), history=trainer.history_arrays(), meta=meta.to_dict(),
               optimizer=trainer.optimizer.state_dict())
    sigterm_at_step(5)
    rc, out, err = run("train", "--resume", f, "--out", f)
    assert rc == 0, err
    lm = load_model(f)
    m = ModelMeta.from_dict(lm.meta)
    assert m.complete is True and m.iterations > 4 and m.data_source == "file" and m.data_path == src
    assert m.recorded is not None and np.isfinite(m.recorded.K_bits)


def test_autosave_every_report(tmp_path, run):
    out = tmp_path / "auto.h5"
    rc, _, err = run("train", "swissroll", "--steps", "10", "--report-every", "5", "--autosave-seconds", "0",
                     "--out", out, *FAST)
    assert rc == 0, err
    m = load_model(out).meta
    assert m["autosaves"] == 2 and m["complete"] is True and m["iterations"] == 10  # at iterations 5 and 10


def test_sigterm_stops_evaluates_and_saves(tmp_path, run, sigterm_at_step):
    out = tmp_path / "term.h5"
    sigterm_at_step(30)
    rc, _, err = run("train", "swissroll", "--steps", "400", "--out", out, "--T", "10", "--n-eval", "100",
                     "--threads", "1", "--autosave-seconds", "1000")
    assert rc == 0, err
    assert "SIGTERM" in err
    m = load_model(out).meta
    assert m["complete"] is True and m["iterations"] == 30 and np.isfinite(m["K_bits"])


def test_refusals(tmp_path, run):
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    before = (tmp_path / "pts.npy").read_bytes()
    rc, _, err = run("train", "--data", tmp_path / "pts.npy", "--out", tmp_path / "pts.npy")
    assert_one_error_line(rc, err, "pts.npy")  # not an .h5 name anyway
    import h5py

    with h5py.File(tmp_path / "pts.h5", "w") as f:
        f["x"] = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    before = (tmp_path / "pts.h5").read_bytes()
    rc, _, err = run("train", "--data", tmp_path / "pts.h5", "--out", tmp_path / "pts.h5", "--steps", "2")
    assert_one_error_line(rc, err, "pts.h5", "replace the input")
    assert (tmp_path / "pts.h5").read_bytes() == before
    rc, _, err = run("train", "swissroll", "--T", "1000000000", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "--T", "limit", "10,000")
    rc, _, err = run("train", "nosuchpreset", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "nosuchpreset", "swissroll")
    rc, _, err = run("train", "swissroll", "--out", tmp_path / "x.h5", "--device", "tpu")
    assert_one_error_line(rc, err, "--device tpu")
    rc, _, err = run("train", "--data", tmp_path / "nodata.npy", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "nodata.npy")
    rc, _, err = run("train", "swissroll", "--kernel", "binomial", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "binomial")
    rc, _, err = run("train", "swissroll", "--param", "residual", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "residual", "gaussian")
    rc, _, err = run("train", "swissroll", "--objective", "hybrid", "--out", tmp_path / "x.h5")
    assert_one_error_line(rc, err, "--objective hybrid", "posterior")
    rc, _, err = run("train", "swissroll")  # a usage error is one line too
    assert_one_error_line(rc, err, "--out")
    assert not (tmp_path / "x.h5").exists()


def test_the_app_and_dpm_build_the_same_model_for_the_same_file(tmp_path, run):
    from explorer.session import data_file_session, default_model_config

    rng = np.random.default_rng(4)
    np.save(tmp_path / "pts.npy", rng.normal(size=(80, 3)).astype(np.float32))
    np.save(tmp_path / "bits.npy", (rng.random((60, 12)) < 0.3).astype(np.uint8))
    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    for name in ("pts.npy", "bits.npy", "imgs.npy"):
        app = default_model_config(data_file_session(tmp_path / name))
        assert app == default_config(load_data(path=tmp_path / name)), name
        if name == "imgs.npy":  # T = 1000 steps of a conv net to evaluate: the config test above covers it
            continue
        out = tmp_path / f"{name}.h5"
        rc, _, err = run("train", "--data", tmp_path / name, "--steps", "1", "--n-eval", "2", "--quiet",
                         "--threads", "1", "--out", out)
        assert rc == 0, err
        assert load_model(out).config == app, name


def test_a_second_writer_of_the_same_file_is_refused(tmp_path, run):
    from models.files import lock_output

    out = tmp_path / "busy.h5"
    with lock_output(out):  # as a running `dpm train --out busy.h5` holds it
        rc, _, err = run("train", "swissroll", "--steps", "2", "--out", out, *FAST)
    assert_one_error_line(rc, err, "busy.h5")
    assert not out.exists()
    rc, _, err = run("train", "swissroll", "--steps", "2", "--out", out, *FAST)
    assert rc == 0, err


def test_a_failed_autosave_does_not_end_the_run(tmp_path, run, monkeypatch):
    import errno

    import models.cli.train as train_cmd

    real, calls = train_cmd.save_model, [0]

    def full_disk_once(*a, **kw):
        calls[0] += 1
        if calls[0] == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(a[0]))
        return real(*a, **kw)

    monkeypatch.setattr(train_cmd, "save_model", full_disk_once)
    out = tmp_path / "m.h5"
    rc, _, err = run("train", "swissroll", "--steps", "10", "--report-every", "5", "--autosave-seconds", "0",
                     "--out", out, *FAST)
    assert rc == 0, err
    assert "autosave failed" in err and "No space left" in err
    m = load_model(out).meta
    assert m["complete"] is True and m["iterations"] == 10 and m["autosaves"] == 1
