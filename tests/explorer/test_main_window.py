"""The main window (pytest-qt, offscreen): opens with a model and shows its trajectory; the slider
changes the drawn frame; playback and keyboard stepping; bad files leave the loaded model in place;
drag-and-drop of a .npy file loads data."""
from __future__ import annotations

import numpy as np
import pytest
from explorer_helpers import apply_tiny, spiral_points
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent


def test_window_opens_with_a_model_and_shows_its_trajectory(qtbot, window):
    state = apply_tiny(qtbot, window)
    traj = state.trajectory
    assert state.direction == "reverse"
    assert traj.frames.dtype == np.float32 and traj.frames.flags.c_contiguous
    assert traj.frames.shape == (9, 300, 2) and list(traj.t) == list(range(9))
    window.trajectory.draw_now()
    assert len(window.trajectory.scatter) == 300
    assert window.trajectory.time_label.text().startswith("t = ")
    # every plot panel has something to show before training: β, ᾱ, the entropy band
    assert len(window.schedule.beta.getData()[0]) == 8
    assert len(window.entropy.upper.getData()[0]) == 8
    assert "cap on K − L_null" in window.schedule.info.text()
    assert window.tabs.tabText(0) == "Trajectory"


def test_start_opens_the_bundled_trained_model(qtbot, window):
    window.autoplay = True
    window.start()
    qtbot.waitUntil(lambda: window.state.trajectory is not None, timeout=60_000)
    s = window.state
    assert s.preset.name == "swissroll" and s.source == "bundled" and s.recorded is not None
    assert s.describe().startswith("bundled model swissroll (trained, K = ")
    assert window.controls.preset.currentData() == "swissroll"
    assert window.trajectory.playing


def test_opens_untrained_swissroll_when_the_bundled_model_is_missing(qtbot, window, monkeypatch):
    import explorer.session as sessions

    monkeypatch.setattr(sessions, "bundled_model", lambda _name: None)
    window.autoplay = True
    window.start()
    qtbot.waitUntil(lambda: window.state.trajectory is not None, timeout=60_000)
    assert window.state.preset.name == "swissroll" and not window.state.is_trained
    assert any("no trained swissroll model is bundled" in text for _lvl, text in window.state.log)
    assert window.trajectory.playing
    n0 = window.trajectory.frames_drawn
    qtbot.waitUntil(lambda: window.trajectory.frames_drawn > n0 + 2, timeout=60_000)  # it is playing


def test_slider_changes_the_drawn_frame(qtbot, window):
    state = apply_tiny(qtbot, window)
    tp = window.trajectory
    tp.slider.setValue(8)  # t = T: noise
    qtbot.waitUntil(lambda: tp.time_label.text() == "t = 8 / 8", timeout=60_000)
    a = tp.scatter._xy.copy()
    tp.slider.setValue(0)  # t = 0
    qtbot.waitUntil(lambda: tp.time_label.text() == "t = 0 / 8", timeout=60_000)
    b = tp.scatter._xy.copy()
    assert state.frame == 0
    assert not np.allclose(a, b)
    np.testing.assert_allclose(b, state.trajectory.frames[0], rtol=1e-6)
    # keyboard stepping and the forward direction
    window.trajectory.step(+1)
    assert state.frame == 1
    window.set_view("forward")
    qtbot.waitUntil(lambda: tp.scatter._xy.shape[0] == 300, timeout=60_000)
    assert tp.direction.currentData() == "forward"


def test_paths_and_drift_are_drawn_for_2d_points(qtbot, window):
    state = apply_tiny(qtbot, window)
    tp = window.trajectory
    tp.set_view_options(paths=True, drift=True)
    state.set_frame(3)
    tp.draw_now()
    x, y = tp.drift_item.getData()
    assert state.trajectory.drift.shape == (9, 21 * 21, 2)
    assert len(x) == 21 * 21 * 6 and np.isfinite(x).any()
    px, _ = tp.paths_item.getData()
    assert len(px) > 0


def test_playback_advances_and_loops(qtbot, window):
    state = apply_tiny(qtbot, window)
    tp = window.trajectory
    tp.speed.setValue(200)
    state.set_frame(8)
    tp.play()
    qtbot.waitUntil(lambda: state.frame == 0, timeout=60_000)
    qtbot.waitUntil(lambda: state.frame == 8, timeout=60_000)  # looped back after a short hold
    tp.toggle_play()
    assert not tp.playing


def test_malformed_model_file_shows_an_error_and_keeps_the_model(qtbot, window, tmp_path):
    state = apply_tiny(qtbot, window)
    model = state.model
    bad = tmp_path / "broken_model.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    window.open_path(bad)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=60_000)
    assert "broken_model.h5" in window.banner.text
    assert window.banner.level == "error"
    assert state.model is model and state.trajectory is not None
    window.banner.close_button.click()
    assert not window.banner.isVisible()


def test_malformed_data_file_shows_an_error_and_keeps_the_model(qtbot, window, tmp_path):
    state = apply_tiny(qtbot, window)
    model = state.model
    bad = tmp_path / "points.npy"
    bad.write_bytes(b"not a numpy file at all")
    window.open_path(bad)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=60_000)
    assert "points.npy" in window.banner.text
    assert state.model is model
    assert any(level == "error" and "points.npy" in text for level, text in state.log)


def _drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    # a file manager offers copy or move (and proposes move): the app takes a copy, never the user's file
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction | Qt.MoveAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    assert ev.dropAction() == Qt.CopyAction
    return ev


def test_dropping_a_npy_file_loads_it_as_data(qtbot, window, tmp_path):
    apply_tiny(qtbot, window)
    path = tmp_path / "my_points.npy"
    np.save(path, spiral_points(300, seed=3))
    ev = _drop(window, [path])
    assert ev.isAccepted()
    qtbot.waitUntil(lambda: window.state.data is not None and window.state.data.name == "my_points", timeout=60_000)
    s = window.state
    assert s.kind == "points" and s.data.example_shape == (2,)
    assert not s.is_trained and s.model.config.example_shape == (2,)
    assert str(path.resolve()) in s.recent
    qtbot.waitUntil(lambda: s.trajectories.get("forward") is not None, timeout=60_000)


def test_drop_ignores_non_file_payloads(qtbot, window, monkeypatch, tmp_path):
    """A drop that carries no file (text) is refused and opens nothing; the model in place stays. The same
    drop with a file URL is accepted and opens that file (so this test fails if drops are ignored wholesale)."""
    state = apply_tiny(qtbot, window)
    model = state.model
    opened = []
    monkeypatch.setattr(window.controller, "open_path", lambda p: opened.append(p))
    mime = QMimeData()
    mime.setText("hello")
    ev = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    assert not ev.isAccepted()
    assert opened == [] and window.state.model is model
    f = tmp_path / "points.npy"
    np.save(f, np.zeros((20, 2)))
    mime_file = QMimeData()
    mime_file.setUrls([QUrl.fromLocalFile(str(f))])
    ev = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime_file, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    assert ev.isAccepted()
    assert [str(p) for p in opened] == [str(f)]


def test_settings_persist_recent_files_and_device(qtbot, window, settings, tmp_path):
    window.state.add_recent(tmp_path / "a.h5")
    window.save_settings()
    assert str((tmp_path / "a.h5").resolve()) in settings.value("recent")
    assert settings.value("device") == "cpu"
    assert settings.value("geometry") is not None and settings.value("windowState") is not None


@pytest.mark.parametrize("view", ["draw", "reverse"])
def test_set_view(window, view):
    window.set_view(view)
    assert window.tabs.currentWidget() is (window.draw if view == "draw" else window.trajectory)


def test_opened_model_shows_the_exact_K_its_file_records(qtbot, window):
    """The bundled Swiss-roll file records the exact held-out K of its training run (all steps, 10 000
    points); the window shows that figure, not the last live estimate of its history, until it trains on."""
    import math

    from explorer import session as sessions
    from models.files import load_model
    from models.paths import bundled_model

    BUNDLED_MODEL = bundled_model("swissroll")
    if BUNDLED_MODEL is None:
        pytest.skip("no bundled model")
    meta = load_model(BUNDLED_MODEL).meta
    sess = sessions.model_file_session(BUNDLED_MODEL)
    assert sess.recorded is not None and math.isclose(sess.recorded["K_bits"], float(meta["K_bits"]))
    window.apply_session(sess)
    state = window.state
    window.status.update()
    window.k_curve.refresh()
    want = f"K = {float(meta['K_bits']):.3f} ± {float(meta['K_stderr_bits']):.3f}"
    assert window.k_label.text().startswith(want) and " exact" in window.k_label.text()
    assert window.k_curve.summary.text().startswith(want) and "10,000 examples" in window.k_curve.summary.text()
    assert window.k_curve.drawn_K() == pytest.approx(float(meta["K_bits"]))  # the point drawn is the K printed
    # a file without the end-of-training figures has none to show
    assert sessions.recorded_K({"K_bits": 1.0}) is None
    assert sessions.recorded_K(dict(meta, complete=False)) is None
    # training further drops it: the live figure is this model's again
    from models.training import TrainProgress

    T = state.model.T

    def record(it, kl):
        nan = np.full(T, np.nan)
        return TrainProgress(
            iteration=it, seconds=1.0, its_per_s=1.0, loss_bits=-1.0, K_train_bits=1.0,
            K_heldout_bits=1.234, K_heldout_stderr_bits=0.1, K_minus_Lnull_bits=5.0, beta_1=1e-7,
            beta=state.model.schedule_tensors().beta.detach().numpy(), alpha_bar=np.linspace(1, 0.5, T),
            kl_bits_per_step=kl, entropy_lower=nan, entropy_upper=nan, reverse_entropy=nan, samples=None,
            skipped_updates=0)

    state.add_progress(record(state.iteration + 1, np.ones(T)))  # every step evaluated: unbiased
    window.status.update()
    window.k_curve.refresh()
    assert state.recorded is None
    assert window.k_label.text().startswith("K = 1.234") and " exact" not in window.k_label.text()
    assert window.k_curve.drawn_K() == pytest.approx(1.234)
    # a record whose held-out figure is not unbiased is neither drawn nor printed as K held out
    state.add_progress(record(state.iteration + 1, np.full(T, np.nan)))
    window.status.update()
    window.k_curve.refresh()
    assert window.k_label.text().startswith("K = 1.000") and "train minibatches" in window.k_label.text()
    assert window.k_curve.drawn_K() == pytest.approx(1.0)


def test_home_and_end_jump_to_the_ends_of_the_process(qtbot, window):
    from PySide6.QtGui import QKeySequence

    state = apply_tiny(qtbot, window)
    acts = {a.shortcut().toString(): a for a in window.actions()}
    assert QKeySequence("Home").toString() in acts and QKeySequence("End").toString() in acts
    acts["Home"].trigger()
    assert int(state.trajectory.t[state.frame]) == 8  # reverse starts at t = T
    acts["End"].trigger()
    assert int(state.trajectory.t[state.frame]) == 0
    window.set_view("forward")
    acts["End"].trigger()
    assert int(state.trajectory.t[state.frame]) == 8


def test_drops_are_copies_and_the_preset_box_names_the_data(qtbot, window, tmp_path):
    apply_tiny(qtbot, window)
    path = tmp_path / "dropped.npy"
    np.save(path, spiral_points(300, seed=5))
    ev = _drop(window, [path])
    assert ev.dropAction() == Qt.CopyAction
    qtbot.waitUntil(lambda: window.state.data is not None and window.state.data.name == "dropped", timeout=60_000)
    assert path.exists()
    box = window.controls.preset
    assert window.state.source == "data" and box.currentText() == "data file dropped"
    window.draw.paint_at(0.1, 0.1, start=True)
    for x in np.linspace(-0.5, 0.5, 20):
        window.draw.paint_at(float(x), float(x) ** 2)
    window.draw.train_button.click()
    qtbot.waitUntil(lambda: window.state.source == "drawn", timeout=60_000)
    assert box.currentText() == "drawn points"


def test_a_model_switch_clears_the_old_models_messages_and_inpaint_form(qtbot, window):
    from explorer import session as sessions

    state = apply_tiny(qtbot, window)
    state.post("warning", "something about the old model")
    assert window.banner.isVisible()
    window.apply_session(sessions.bundled_session("digits"))
    assert not window.banner.isVisible()
    if window.inpaint is not None:
        page = window.inpaint
        qtbot.waitUntil(lambda: page.page == "image", timeout=60_000)
        digits_samples = page.samples_spin.value()
        page.samples_spin.setValue(digits_samples + 3)  # the user changed the form
    window.apply_session(sessions.bundled_session("swissroll"))
    if window.inpaint is not None:
        assert page.page == "plane" and page.samples_spin.value() != digits_samples + 3
    assert window.controls.preset.currentData() == "swissroll"
    assert "bits/point" in window.k_label.text()


def test_file_dialogs_remember_their_folder(window, tmp_path):
    d = window.dialogs
    assert d.folder("data") == str(__import__("pathlib").Path.home())
    d.remember("data", tmp_path / "x.npy")
    assert d.folder("data") == str(tmp_path)
    assert d.folder("trajectory") != str(tmp_path)  # each kind of file has its own


def test_the_splash_is_shown_at_once_and_centred(qapp):
    """The "loading …" window shown while PyTorch is imported: visible and painted without Qt's
    QSplashScreen wait for the window system (a whole second offscreen and on Xvfb)."""
    from explorer.app import show_splash

    splash = show_splash(qapp)
    try:
        assert splash.isVisible() and "loading PyTorch" in splash.text()
        centre = qapp.primaryScreen().availableGeometry().center()
        assert abs(splash.geometry().center().x() - centre.x()) <= 1
    finally:
        splash.close()


def test_a_long_status_message_is_cut_with_an_ellipsis_and_kept_whole_in_the_tooltip(qtbot, window):
    """Qt clips a long message mid-word under the K readout; the app cuts it with "…" to the room left
    and keeps the whole text as the bar's tooltip."""
    apply_tiny(qtbot, window)
    text = "a long message naming /some/very/long/folder/and/file/name.h5 " * 6 + "END"
    window.state.post("info", text)
    sb = window.statusBar()
    assert sb.currentMessage().endswith("…") and "END" not in sb.currentMessage()
    assert sb.toolTip() == text
    window.state.post("info", "short")
    assert sb.currentMessage() == "short"
