"""The inpainting panel (pytest-qt, offscreen) on an AppState: opening, dropping and pasting images, bad
input reported through the state, runs on tiny models (known pixels kept exactly), cancel, export, the
plane and bits pages, and the reset with the model (nothing of the previous model leaks)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QLabel

from explorer.panels.inpaint import InpaintPanel, qimage_to_array
from explorer.panels.inpaint import request as R
from explorer.state import AppState
from models.config import ModelConfig
from models.model import DiffusionModel

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here on one torch thread (tests/conftest.py)."""
    yield


def image_model(T=10, channels=1):
    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(channels, 8, 8), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3)
    return DiffusionModel(cfg).eval()


def points_model(T=10):
    torch.manual_seed(0)
    return DiffusionModel(ModelConfig(kernel="gaussian", T=T, example_shape=(2,), arch="mlp", hidden=8,
                                      layers=1)).eval()


def bits_model(T=10):
    torch.manual_seed(0)
    return DiffusionModel(ModelConfig(kernel="binomial", T=T, example_shape=(10,), arch="mlp", hidden=8, layers=1,
                                      activation="sigmoid", readout="per_step", p_bar=0.2,
                                      schedule="binomial")).eval()


@pytest.fixture
def state():
    return AppState()


@pytest.fixture
def panel(qtbot, state):
    p = InpaintPanel(state)
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()  # a hidden panel draws nothing (test_hidden_redraw.py)
    yield p
    p.cancel(wait=True)


def use(state, model, norm=None):
    state.set_session(model, None, norm=dict(NORM) if norm is None else norm)


def errors(state):
    return [t for level, t in state.log if level == "error"]


def png(path, h=12, w=16, seed=0, rgb=False):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3) if rgb else (h, w)).astype(np.uint8)
    Image.fromarray(a).save(path)
    return a


def drop(panel, urls=(), text=None):
    md = QMimeData()
    if urls:
        md.setUrls([QUrl.fromLocalFile(str(u)) for u in urls])
    if text is not None:
        md.setText(text)
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, md,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(ev)
    if ev.isAccepted():
        assert ev.dropAction() == Qt.DropAction.CopyAction  # a copy of the user's file, never a move
    return ev


def landed(qtbot, panel, start) -> bool:
    """Start a read (``start()``, which must report that it started) and wait until it lands: whether
    the file was used."""
    with qtbot.waitSignal(panel.loaded, timeout=60_000) as sig:
        assert start()
    assert not panel.reading
    return sig.args[1]


def run_to_end(qtbot, panel, timeout=60_000):
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=timeout)
    qtbot.wait(20)


# ------------------------------------------------------------------------------------------------
# the model


def test_reset_with_the_model_leaks_nothing(panel, state, qtbot):
    """digits → swissroll → bark, as a user met it: no image, mask, results or sample count survive."""
    use(state, image_model())
    assert panel.page == "image" and panel.samples_spin.value() == R.DEFAULT_SAMPLES["image"]
    panel.set_image(np.zeros((8, 8), np.uint8), "first")
    panel.image_page.mask_model.rectangle(0, 0, 3, 3)
    panel.samples_spin.setValue(7)
    run_to_end(qtbot, panel)
    assert panel.frames
    use(state, points_model(), norm={})
    assert panel.page == "plane" and panel.pages.currentWidget() is panel.plane_page
    assert panel.samples_spin.value() == R.DEFAULT_SAMPLES["plane"] and not panel.frames
    panel.plane_page.region_model.rectangle(40, 40, 60, 60)
    panel.samples_spin.setValue(33)
    use(state, image_model(T=12))
    ip = panel.image_page
    assert panel.page == "image" and panel.samples_spin.value() == R.DEFAULT_SAMPLES["image"]
    assert ip.prepared is None and ip.source is None and ip.mask_model.shape == (1, 1)
    assert not panel.frames and not panel.save_png_btn.isEnabled() and not panel.time_slider.isEnabled()
    use(state, points_model(), norm={})
    assert not panel.plane_page.region_model.fill.any()
    use(state, bits_model(), norm={})
    assert panel.page == "bits" and len(panel.bits_page.editor.bits) == 10
    assert panel.samples_spin.value() == R.DEFAULT_SAMPLES["bits"]


def slow_runs(panel, seconds=0.02):
    """Make the panel's runs sleep at every reverse step (the panel runs a copy of the state's model)."""
    orig = panel.request

    def request():
        req = orig()
        step = panel.model.reverse_step

        def slow_step(*a, **k):
            time.sleep(seconds)
            return step(*a, **k)

        panel.model.reverse_step = slow_step
        return req

    panel.request = request


def test_a_model_change_mid_run_drops_the_old_runs_frames(panel, state, qtbot):
    use(state, image_model(T=200))
    panel.set_image(np.zeros((8, 8), np.uint8))
    slow_runs(panel)
    assert panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) >= 2, timeout=60_000)
    use(state, points_model(), norm={})  # the run is stopped between two steps, not waited out
    assert not panel.is_running
    qtbot.wait(300)  # queued frames of the cancelled run arrive now; they must be ignored
    assert panel.page == "plane" and not panel.frames and not panel.is_running and panel.run_btn.isEnabled()


def test_finished_runs_are_freed(panel, state, qtbot):
    """Back-to-back runs keep only the last run (its model copy and frames): a finished run's worker
    and run are not held by the slots connected to it (bench/soak.py saw 20 MB/min of RSS growth)."""
    import gc

    use(state, image_model())
    panel.set_image(np.zeros((8, 8), np.uint8))
    for _ in range(4):
        run_to_end(qtbot, panel)

    def only_the_last_run_alive() -> bool:  # worker threads wind down a moment after their last signal
        gc.collect()
        return [o for o in gc.get_objects() if type(o) is R.Run] == [panel.run_state] and not panel._live

    qtbot.waitUntil(only_the_last_run_alive, timeout=10_000)  # a leak never frees them: fails after 10 s


def test_no_model(panel, state):
    assert panel.page is None and not panel.run_btn.isEnabled() and not panel.run()


# ------------------------------------------------------------------------------------------------
# images in


def test_dropped_colour_photo_is_shown_whole_and_converted_with_a_note(panel, state, tmp_path, qtbot):
    use(state, image_model())
    png(tmp_path / "photo.png", 60, 90, rgb=True)
    assert landed(qtbot, panel, lambda: drop(panel, [tmp_path / "photo.png"]).isAccepted())
    ip = panel.image_page
    assert ip.prepared is not None and ip.prepared.shape_hw == (60, 90)  # the whole picture, not a crop
    assert "photo.png" in ip.note_label.text() and "converted" in ip.note_label.text()
    assert ip.original_item.image.shape == (60, 90, 3)  # the original stays in colour
    assert ip.mask_model.shape == (60, 90) and ip.mask_model.fill.any()  # a default hole
    assert not errors(state)
    ip.max_side_spin.setValue(45)
    ip.max_side_spin.editingFinished.emit()
    assert ip.prepared.shape_hw == (30, 45) and "longest side 45" in ip.note_label.text()
    assert not ip.crop_item.isVisible()
    ip.fit_combo.setCurrentIndex(ip.fit_combo.findData("crop"))
    assert ip.prepared.shape_hw == (45, 45) and ip.mask_model.shape == (45, 45)
    r = ip.crop_item.rect()  # the part the model sees is outlined on the original
    assert ip.crop_item.isVisible() and (r.x(), r.y(), r.width(), r.height()) == (22, 7, 45, 45)


def test_colour_model_keeps_colour(panel, state, tmp_path, qtbot):
    use(state, image_model(channels=3))
    png(tmp_path / "photo.png", 10, 12, rgb=True)
    assert landed(qtbot, panel, lambda: panel.open_image(tmp_path / "photo.png"))
    assert panel.image_page.prepared.pixels.shape == (3, 10, 12)
    assert "converted" not in panel.image_page.note_label.text()


def test_bad_input_is_reported_and_the_image_kept(panel, state, tmp_path, qtbot):
    use(state, image_model())
    png(tmp_path / "good.png")
    assert landed(qtbot, panel, lambda: panel.open_image(tmp_path / "good.png"))
    ip = panel.image_page
    ip.mask_model.rectangle(0, 0, 3, 3)
    before, mask = ip.prepared, ip.mask_model.fill.copy()
    good = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("1", (8000, 7000)).save(tmp_path / "huge.png")  # 56 Mpx, a tiny file
    for name in ("truncated.png", "notes.png", "huge.png"):
        assert not landed(qtbot, panel, lambda n=name: drop(panel, [tmp_path / n]).isAccepted())
        assert name in errors(state)[-1]
        assert ip.prepared is before
        np.testing.assert_array_equal(ip.mask_model.fill, mask)
    assert "limit" in errors(state)[-1]
    n = len(state.log)
    (tmp_path / "model.h5").write_bytes(b"x")
    for ev in (drop(panel, text="just text"), drop(panel, [tmp_path / "model.h5"])):
        assert not ev.isAccepted()  # not an image: left to the window (which opens models and data)
    assert len(state.log) == n and ip.prepared is before
    QGuiApplication.clipboard().setText("no image here")
    assert not panel.paste() and "no image" in errors(state)[-1]


def test_paste_an_image_from_the_clipboard(panel, state):
    use(state, image_model())
    img = QImage(10, 6, QImage.Format.Format_RGB888)
    img.fill(Qt.GlobalColor.white)
    assert qimage_to_array(img).shape == (6, 10, 3)
    QGuiApplication.clipboard().setImage(img)
    assert panel.paste()
    assert panel.image_page.prepared.y.shape == (1, 1, 6, 10)
    np.testing.assert_allclose(panel.image_page.prepared.pixels, 1.0)


def test_images_are_refused_on_other_pages(panel, state):
    use(state, points_model(), norm={})
    assert not panel.set_image(np.zeros((8, 8), np.uint8))
    assert "image models" in state.log[-1][1]


# ------------------------------------------------------------------------------------------------
# running


@pytest.mark.parametrize("method", ["clamp", "repaint", "smc"])
def test_run_keeps_the_known_pixels_and_exports(panel, state, qtbot, tmp_path, method):
    from models.files import load_trajectory

    use(state, image_model())
    panel.set_image(np.random.default_rng(1).integers(0, 256, (10, 12)).astype(np.uint8), "noise")
    ip = panel.image_page
    ip.method_combo.setCurrentIndex(ip.method_combo.findData(method))
    assert ip.method_combo.currentData() == method and ip.method_combo.toolTip()
    assert panel.particles_spin.isVisibleTo(panel) == (method == "smc")
    ip.jump_len.setValue(3)
    ip.jump_n.setValue(2)
    panel.particles_spin.setValue(3)
    with qtbot.waitSignals([panel.running_changed, panel.result_ready, panel.running_changed], timeout=60_000):
        assert panel.run()
    x0 = panel.frames[-1]
    assert x0.shape == (2, 1, 10, 12) and panel.frame_times[-1] == 0 and np.isfinite(x0).all()
    known = ip.mask_model.known
    y = ip.prepared.y.numpy()[0, 0]
    for i in range(2):
        np.testing.assert_array_equal(x0[i, 0][known], y[known])
    assert panel.ess_plot.isVisibleTo(panel) == (method == "smc")
    assert "done" in panel.status_label.text()
    panel.time_slider.setValue(0)
    assert panel.frame_times[panel.time_slider.value()] == 10
    assert "t = 10" in panel.time_label.text() and "t = 10" in ip.result_title.text()
    panel.time_slider.setValue(panel.time_slider.maximum())
    assert panel.save_result(tmp_path / "r.png") and panel.save_trajectory(tmp_path / "t.h5")
    with Image.open(tmp_path / "r.png") as im:
        assert im.size in ((2 * 12 + 2, 10), (12, 2 * 10 + 2))
    tr = load_trajectory(tmp_path / "t.h5")
    assert tr.traj.shape[1:] == (2, 1, 10, 12) and tr.meta["method"] == method and tr.t[-1] == 0


def test_nothing_to_fill_is_reported(panel, state, qtbot):
    use(state, image_model())
    panel.set_image(np.full((8, 8), 128, np.uint8))
    panel.image_page.mask_model.clear()
    run_to_end(qtbot, panel)
    assert any("nothing to fill" in t for lv, t in state.log if lv == "warning")
    assert len(panel.frames) == 1
    np.testing.assert_array_equal(panel.frames[-1][0], panel.image_page.prepared.y.numpy()[0])


def test_cancel_stops_within_a_second(panel, state, qtbot):
    use(state, image_model(T=300))
    panel.set_image(np.zeros((8, 8), np.uint8))
    slow_runs(panel)
    assert panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) >= 3, timeout=60_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=60_000)
    assert "cancelled" in panel.status_label.text()
    assert 3 <= len(panel.frames) < 300 and panel.run_btn.isEnabled()


def test_denoising_shows_the_clean_image_and_the_noisy_one(panel, state, qtbot):
    use(state, image_model())
    panel.set_image(np.full((8, 8), 100, np.uint8))
    ip = panel.image_page
    ip.task_combo.setCurrentIndex(ip.task_combo.findData("denoise"))
    assert not ip.canvas.editable and not ip.tools.isVisibleTo(panel)
    assert tuple(ip.method_combo.itemData(i) for i in range(ip.method_combo.count())) == R.methods_for("denoise")
    ip.sigma_slider.setValue(30)
    assert "clean" in ip.original_title.text() and "noisy" in ip.canvas_title.text()
    noisy = ip.noisy.clone()
    assert not torch.equal(noisy, ip.prepared.y)
    panel.seed_spin.setValue(4)
    assert not torch.equal(noisy, ip.noisy)  # the preview follows the run's seed
    ip.method_combo.setCurrentIndex(ip.method_combo.findData("matched"))
    run_to_end(qtbot, panel)
    assert panel.frame_times[-1] == 0 and np.isfinite(panel.frames[-1]).all()
    assert panel.run_state.request.meta["sigma_pixels"] == pytest.approx(0.3)
    ip.noise_combo.setCurrentIndex(ip.noise_combo.findData("noisy"))
    assert "already noisy" in ip.original_title.text()


def test_canvas_keys_in_the_panel(panel, state, qtbot):
    use(state, image_model())
    panel.set_image(np.zeros((32, 32), np.uint8))
    panel.show()
    qtbot.waitExposed(panel)
    mm = panel.image_page.mask_model
    size = mm.brush_size
    qtbot.keyClick(panel.image_page.canvas, Qt.Key.Key_BracketRight)
    assert mm.brush_size > size
    assert panel.image_page.tools.size_label.text() == f"{mm.brush_size:.0f} px"
    before = mm.fill.copy()
    mm.paint_line(1, 1, 30, 1)
    qtbot.keyClick(panel.image_page.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(mm.fill, before)


def test_mask_files(panel, state, tmp_path, qtbot):
    use(state, image_model())
    panel.set_image(np.zeros((8, 8), np.uint8))
    mm = panel.image_page.mask_model
    mm.clear()
    mm.rectangle(0, 0, 4, 4)
    assert panel.save_mask(tmp_path / "m.png")
    mm.clear()
    assert landed(qtbot, panel, lambda: panel.load_mask(tmp_path / "m.png"))
    assert mm.fill[:4, :4].all() and mm.fill.sum() == 16
    assert mm.undo() and not mm.fill.any()  # one undoable action
    (tmp_path / "bad.png").write_text("no")
    assert not landed(qtbot, panel, lambda: panel.load_mask(tmp_path / "bad.png")) and "bad.png" in errors(state)[-1]


# ------------------------------------------------------------------------------------------------
# the plane and bits pages


def test_plane_shows_the_data_and_runs_both_r(panel, state, qtbot):
    use(state, points_model(), norm={})
    pp = panel.plane_page
    assert panel.page == "plane"
    assert pp.plane.image_item.image.min() > 0  # the plane is not black
    pp.region_combo.setCurrentIndex(pp.region_combo.findData("gaussian"))
    pp._on_click(1.5, -0.5)
    assert pp.centre_x.value() == pytest.approx(1.5)
    panel.samples_spin.setValue(50)
    run_to_end(qtbot, panel)
    assert panel.frames[-1].shape == (50, 2) and len(pp.scatter.data) == 50
    pp.region_combo.setCurrentIndex(pp.region_combo.findData("region"))
    assert not panel.run() and "region is empty" in errors(state)[-1]
    pp.region_model.rectangle(40, 40, 60, 60)
    pp.method_combo.setCurrentIndex(pp.method_combo.findData("smc"))
    panel.particles_spin.setValue(4)
    run_to_end(qtbot, panel)
    assert panel.run_state.request.meta["kind"] == "region" and np.isfinite(panel.frames[-1]).all()
    assert panel.ess_plot.isVisibleTo(panel)
    panel.time_slider.setValue(0)  # scrubbing moves the conditioned samples
    np.testing.assert_array_equal(pp.scatter.data["x"], panel.frames[0][:, 0])


def test_painted_region_on_the_bundled_swiss_roll_stays_finite(panel, state, qtbot):
    """Issue 12's failing case: the bundled Swiss roll, a blob upper right of the roll, softness 0.25,
    seed 0 (500 samples then; fewer here): every sample finite, the data drawn under the paint."""
    from explorer import session as sessions

    path = ROOT / "resources" / "models" / "swissroll.h5"
    if not path.exists():
        pytest.skip("bundled swissroll model absent")
    s = sessions.model_file_session(path)
    state.set_session(s.model, s.data, preset=s.preset, path=s.path, norm=s.norm)
    pp = panel.plane_page
    assert len(pp.data_item.data) > 100 and "data" in pp.title.text()
    assert pp.softness.value() == 0.25 and panel.samples_spin.value() == 500
    pp.region_model.rectangle(44, 44, 56, 56)  # around (1.6, 1.6) in normalised units
    panel.samples_spin.setValue(200)
    run_to_end(qtbot, panel)
    for x in panel.frames:
        assert np.isfinite(x).all()
    x0 = panel.frames[-1]
    assert np.abs(x0).max() < 10


def test_binary_model_fixed_bits(panel, state, qtbot):
    use(state, bits_model(), norm={})
    bp = panel.bits_page
    assert panel.page == "bits" and len(bp.editor.bits) == 10
    bp.editor.set_bit(0, 1)
    bp.editor.set_bit(1, 0)
    run_to_end(qtbot, panel)
    for x in panel.frames:
        assert (x[:, 0] == 1).all() and (x[:, 1] == 0).all()
    assert bp.item.image.shape == (16, 10)


# ------------------------------------------------------------------------------------------------
# fit


def test_the_panel_fits_the_window_without_scrolling(qtbot, window):
    """At 1280×800 and 1440×900 the panel's minimum size fits the space the window gives it (no
    horizontal scrollbar), on each page."""
    from explorer import session as sessions
    from models.files import load_model

    panel = window.inpaint
    assert panel is not None
    window.set_view("inpaint")
    for name in ("bark", "swissroll", "heartbeat"):
        path = ROOT / "resources" / "models" / f"{name}.h5"
        if not path.exists():
            continue
        if name == "bark":  # its data set is slow to load, and the page's size does not depend on it
            loaded = load_model(path)
            window.state.set_session(loaded.model, None, path=path, norm=loaded.norm)
        else:  # with the data drawn under the plane and its title
            s = sessions.model_file_session(path)
            window.state.set_session(s.model, s.data, preset=s.preset, path=s.path, norm=s.norm)
        assert panel.page == {"bark": "image", "swissroll": "plane", "heartbeat": "bits"}[name]
        for size in ((1280, 800), (1440, 900)):
            window.resize(*size)
            qtbot.wait(50)
            host = panel.parentWidget()
            hint = panel.minimumSizeHint()
            assert hint.width() <= host.width() and hint.height() <= host.height(), (name, size, hint, host.size())
            clipped = [lab.text() for lab in panel.findChildren(QLabel)
                       if lab.isVisibleTo(panel) and not lab.wordWrap() and lab.text()
                       and lab.fontMetrics().horizontalAdvance(lab.text()) > lab.width()]
            assert not clipped, (name, size, clipped)  # no title or label is cut
