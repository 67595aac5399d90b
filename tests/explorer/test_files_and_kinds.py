"""Saving and re-opening models and trajectories, GIF export, binary and image trajectories, drawing
a distribution, and ``--screenshot``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from explorer_helpers import apply_tiny, spiral_points
from PIL import Image


def test_save_model_and_open_it_again(qtbot, window, tmp_path):
    state = apply_tiny(qtbot, window, T=6)
    window.controller.start_training()
    qtbot.waitUntil(lambda: len(state.history) >= 1, timeout=60_000)
    window.controller.stop_training()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    path = tmp_path / "mine.h5"
    assert window.controller.save_model_to(path)
    w_saved = {k: v.clone() for k, v in state.model.state_dict().items()}
    state.model = None
    window.open_path(path)
    qtbot.waitUntil(lambda: state.model is not None, timeout=60_000)
    assert state.model_path == path and state.is_trained
    for k, v in state.model.state_dict().items():
        torch.testing.assert_close(v, w_saved[k])
    assert len(state.history) >= 1  # the K curve comes back from the file
    assert state.data is not None and state.data.name == "drawn"  # drawn points are stored with the model
    assert len(state.data.points) == 400
    assert window.controls.train.isEnabled()


def test_export_trajectory_and_reopen_it(qtbot, window, tmp_path):
    state = apply_tiny(qtbot, window, T=6)
    traj = state.trajectory
    curves = state.curves
    path = tmp_path / "rev.h5"
    assert window.controller.export_trajectory(path)
    state.trajectories.clear()
    assert window.open_path(path) is None  # dispatches on the file's format
    qtbot.waitUntil(lambda: state.trajectory is not None, timeout=60_000)
    t2 = state.trajectory
    np.testing.assert_array_equal(t2.frames, traj.frames)
    np.testing.assert_array_equal(t2.t, traj.t)
    assert t2.direction == "reverse" and t2.kind == "points"
    np.testing.assert_allclose(state.curves.alpha_bar, curves.alpha_bar)
    np.testing.assert_allclose(state.curves.entropy_upper_bits, curves.entropy_upper_bits)


def test_export_gif(qtbot, window, tmp_path):
    apply_tiny(qtbot, window, T=6)
    path = tmp_path / "anim.gif"
    assert window.export_gif(path, max_frames=5)
    im = Image.open(path)
    assert im.n_frames == 5 and im.size[0] > 100
    from explorer.files import label_frame

    blank = np.full((40, 120, 3), 255, np.uint8)
    assert label_frame(blank, "t = 3 / 6")[4:16, 6:50].min() < 100  # each frame carries its t
    corners = []
    for i in range(im.n_frames):
        im.seek(i)
        corners.append(np.asarray(im.convert("L"))[3:17, 4:70].copy())
    assert not np.array_equal(corners[0], corners[-1])  # t = 6 … t = 0: the label changes


def test_binary_data_shows_a_raster(qtbot, window, tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((60, 12)) < 0.3).astype(np.uint8)
    path = tmp_path / "bits.npy"
    np.save(path, x)
    window.controller.open_data(path)
    qtbot.waitUntil(lambda: window.state.data is not None and window.state.kind == "binary", timeout=60_000)
    window.controls.T.setValue(5)
    window.controls.T.editingFinished.emit()
    qtbot.waitUntil(lambda: window.state.trajectory is not None and window.state.trajectory.T == 5, timeout=60_000)
    window.trajectory.draw_now()
    img = window.trajectory.image.image
    assert img.shape == (64, 12)  # one row per sequence
    assert set(np.unique(img)) <= {0.0, 1.0}
    assert window.state.unit == "bits/seq"
    # bits get the heartbeat's model (posterior form, MLP with a skip path); another network drops the skip
    assert window.state.model.config.param == "posterior" and window.state.model.config.skip > 0
    window.controls.arch.setCurrentText("rbf")
    cfg = window.controls.proposed_config()
    assert cfg.arch == "rbf" and cfg.skip == 0.0


def test_image_data_shows_a_grid(qtbot, window, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6)).astype(np.uint8)
    path = tmp_path / "imgs.npy"
    np.save(path, x)
    window.controller.open_data(path)
    qtbot.waitUntil(lambda: window.state.data is not None and window.state.kind == "images", timeout=60_000)
    from models.config import ModelConfig
    window.controller._replace_model(ModelConfig(kernel="gaussian", T=4, example_shape=(1, 6, 6), arch="conv", hidden=4,
                                      conv_layers=1, n_scales=1, dense_layers=1, dense_hidden=4, J=2))
    qtbot.waitUntil(lambda: window.state.trajectory is not None and window.state.trajectory.T == 4, timeout=60_000)
    window.trajectory.draw_now()
    img = window.trajectory.image.image
    assert img.ndim == 2 and img.shape[0] >= 6 * 4 and img.min() >= 0 and img.max() <= 1
    assert window.state.unit == "bits/pixel"


def test_draw_a_distribution_then_use_it(qtbot, window):
    d = window.draw
    window.set_view("draw")
    for i, (x, y) in enumerate(spiral_points(20) * 0.8):
        d.paint_at(float(x), float(y), start=(i % 10 == 0))
    n = len(d.points)
    assert n >= 100 and d.train_button.isEnabled()
    d.undo()
    assert len(d.points) < n
    d.redo()
    assert len(d.points) == n
    d.train_button.click()
    qtbot.waitUntil(lambda: window.state.data is not None and window.state.data.name == "drawn", timeout=60_000)
    s = window.state
    assert s.kind == "points" and s.data.n_train + s.data.n_heldout == n
    z = s.data.sample_train(64, torch.Generator().manual_seed(0))
    assert z.shape == (64, 2) and abs(float(z.mean())) < 1.0
    assert window.tabs.currentWidget() is window.trajectory
    qtbot.waitUntil(lambda: s.trajectory is not None, timeout=60_000)


def test_screenshot_writes_a_png(qtbot, tmp_path, one_torch_thread, capsys):
    from explorer.app import main
    from explorer_helpers import tiny_session
    from models.files import save_model

    sess = tiny_session(T=5)
    model_path = tmp_path / "tiny.h5"
    save_model(model_path, sess.model, norm=sess.data.norm.to_dict(), meta={"preset": "swissroll"})
    out = tmp_path / "shot.png"
    code = main(["--screenshot", str(out), "--model", str(model_path), "--size", "1440x900"])
    assert code == 0
    im = Image.open(out)
    assert im.size == (1440, 900)
    assert np.asarray(im.convert("L")).std() > 10  # not a blank image
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("screenshot: ")]
    assert len(lines) == 1  # one line saying what is on screen, for scripts
    assert lines[0].startswith(f"screenshot: {out} — model file tiny.h5 (untrained, ")
    assert "reverse trajectory t = 0..5 complete, showing t = 0" in lines[0]
