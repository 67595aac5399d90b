"""The inpainting panel (pytest-qt, offscreen): opening, dropping and pasting images, bad input, runs on
tiny models (known pixels kept exactly), cancel, export, 2-D regions and fixed bits."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage

from explorer.panels.inpaint import InpaintPanel, qimage_to_array
from models.checkpoint import load_trajectory
from models.config import ModelConfig
from models.io import LoadedModel
from models.model import DiffusionModel

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions are ~100× slower with 2 intra-op threads on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_image_model(T=10, heldout=False) -> LoadedModel:
    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(1, 8, 8), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3)
    held = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32) if heldout else None
    return LoadedModel(model=DiffusionModel(cfg).eval(), norm=dict(NORM), history={}, meta={}, heldout=held)


@pytest.fixture
def panel(qtbot):
    p = InpaintPanel()
    qtbot.addWidget(p)
    p.resize(1000, 700)
    yield p
    p.cancel(wait=True)


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
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(ev)
    return ev


def wait_done(qtbot, panel, timeout=30_000):
    qtbot.waitUntil(lambda: not panel.is_running and panel._thread is None, timeout=timeout)


# ------------------------------------------------------------------------------------------------
# opening images


def test_dropped_image_file_opens(panel, tmp_path):
    panel.set_model(tiny_image_model())
    png(tmp_path / "photo.png", 12, 16, rgb=True)
    drop(panel, [tmp_path / "photo.png"])
    assert panel.prepared is not None and panel.prepared.y.shape == (1, 1, 12, 16)
    assert "photo.png" in panel.note_label.text() and "colour→grey" in panel.note_label.text()
    assert panel.mask_model.shape == (12, 16) and panel.mask_model.fill.any()  # a default hole
    assert panel.banner_text == ""


def test_malformed_drop_shows_an_error_and_keeps_the_image(panel, tmp_path, qtbot):
    panel.set_model(tiny_image_model())
    png(tmp_path / "good.png")
    panel.open_image(tmp_path / "good.png")
    panel.mask_model.rectangle(0, 0, 3, 3)
    before, mask = panel.prepared, panel.mask_model.fill.copy()
    good = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.txt").write_text("not an image")
    for name in ("truncated.png", "notes.txt"):
        with qtbot.waitSignal(panel.error) as sig:
            drop(panel, [tmp_path / name])
        assert name in sig.args[0] and name in panel.banner_text
        assert panel.prepared is before
        np.testing.assert_array_equal(panel.mask_model.fill, mask)
    with qtbot.waitSignal(panel.error):
        drop(panel, text="just text")
    assert panel.prepared is before


def test_huge_image_is_refused(panel, tmp_path, qtbot):
    panel.set_model(tiny_image_model())
    png(tmp_path / "good.png")
    panel.open_image(tmp_path / "good.png")
    before = panel.prepared
    Image.new("1", (8000, 7000)).save(tmp_path / "huge.png")  # 56 Mpx, a tiny file
    with qtbot.waitSignal(panel.error) as sig:
        assert not panel.open_image(tmp_path / "huge.png")
    assert "huge.png" in sig.args[0] and "limit" in sig.args[0]
    assert panel.prepared is before


def test_paste_an_image_from_the_clipboard(panel):
    panel.set_model(tiny_image_model())
    img = QImage(10, 6, QImage.Format.Format_RGB888)
    img.fill(Qt.GlobalColor.white)
    assert qimage_to_array(img).shape == (6, 10, 3)
    QGuiApplication.clipboard().setImage(img)
    assert panel.paste()
    assert panel.prepared.y.shape == (1, 1, 6, 10)
    np.testing.assert_allclose(panel.prepared.pixels, 1.0)


def test_image_before_model_and_held_out_example(panel):
    panel.set_image(np.zeros((8, 8), np.uint8), "zeros")
    assert panel.prepared is None  # waits for an image model
    panel.set_model(tiny_image_model())
    assert panel.prepared is not None and panel.prepared.shape_hw == (8, 8)
    p2 = InpaintPanel()
    try:
        p2.set_model(tiny_image_model(heldout=True))
        assert p2.prepared is not None and "held-out" in p2.note_label.text()
    finally:
        p2.deleteLater()


# ------------------------------------------------------------------------------------------------
# running


@pytest.mark.parametrize("method", ["clamp", "annealed", "repaint"])
def test_run_keeps_the_known_pixels(panel, qtbot, tmp_path, method):
    panel.set_model(tiny_image_model())
    panel.set_image(np.random.default_rng(1).integers(0, 256, (10, 12)).astype(np.uint8), "noise")
    panel.method_combo.setCurrentIndex(panel.method_combo.findData(method))
    panel.jump_len.setValue(3)
    panel.jump_n.setValue(2)
    panel.samples_spin.setValue(2)
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        assert panel.run()
    wait_done(qtbot, panel)
    x0 = panel.frames[-1]
    assert x0.shape == (2, 1, 10, 12) and panel.frame_times[-1] == 0
    known = panel.mask_model.known
    y = panel.prepared.y.numpy()[0, 0]
    for i in range(2):
        np.testing.assert_array_equal(x0[i, 0][known], y[known])
    assert panel.time_slider.maximum() == len(panel.frames) - 1 > 0
    # scrub back, then export both
    panel.time_slider.setValue(0)
    assert panel.frame_times[panel.time_slider.value()] == 10
    panel.time_slider.setValue(panel.time_slider.maximum())
    assert panel.save_result(tmp_path / "r.png") and panel.save_trajectory(tmp_path / "t.h5")
    with Image.open(tmp_path / "r.png") as im:
        assert im.size == (2 * 12 + 2, 10)
    tr = load_trajectory(tmp_path / "t.h5")
    assert tr.traj.shape[1:] == (2, 1, 10, 12) and tr.meta["method"] == method and tr.t[-1] == 0


def test_full_and_empty_masks(panel, qtbot):
    panel.set_model(tiny_image_model())
    panel.set_image(np.full((8, 8), 128, np.uint8))
    panel.mask_model.clear()  # nothing to fill
    with qtbot.waitSignal(panel.error) as sig:
        panel.run()
    assert "nothing to fill" in sig.args[0] and "nothing to fill" in panel.banner_text
    wait_done(qtbot, panel)
    assert len(panel.frames) == 1
    np.testing.assert_array_equal(panel.frames[-1][0], panel.prepared.y.numpy()[0])
    panel.mask_model.fill_all()  # no pixel known: plain sampling, with a warning
    with qtbot.waitSignal(panel.error) as sig:
        panel.run()
    assert "plain sampling" in sig.args[0]
    wait_done(qtbot, panel)
    assert panel.frame_times[-1] == 0 and len(panel.frames) == 11


def test_cancel_stops_within_a_second(panel, qtbot):
    lm = tiny_image_model(T=300)
    slow = lm.model.reverse_step

    def reverse_step(*a, **k):
        time.sleep(0.02)
        return slow(*a, **k)

    lm.model.reverse_step = reverse_step
    panel.set_model(lm)
    panel.set_image(np.zeros((8, 8), np.uint8))
    panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) >= 3, timeout=10_000)
    t0 = time.perf_counter()
    panel.cancel()
    wait_done(qtbot, panel, timeout=5_000)
    assert time.perf_counter() - t0 < 1.0
    assert "cancelled" in panel.status_label.text()
    assert 3 <= len(panel.frames) < 300 and panel.run_btn.isEnabled()


def test_denoise_run(panel, qtbot):
    panel.set_model(tiny_image_model())
    panel.set_image(np.full((8, 8), 100, np.uint8))
    panel.task_combo.setCurrentIndex(panel.task_combo.findData("denoise"))
    assert not panel.canvas.editable
    panel.sigma_slider.setValue(30)
    noisy = panel._noisy_z.clone()
    assert not torch.equal(noisy, panel.prepared.y)
    panel.start_combo.setCurrentIndex(panel.start_combo.findData("matched"))
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        panel.run()
    wait_done(qtbot, panel)
    assert panel.frame_times[-1] == 0 and np.isfinite(panel.frames[-1]).all()
    assert panel._run_meta["kind"] == "denoise" and panel._run_meta["sigma_pixels"] == pytest.approx(0.3)


def test_canvas_keys_in_the_panel(panel, qtbot):
    panel.set_model(tiny_image_model())
    panel.set_image(np.zeros((32, 32), np.uint8))
    panel.show()
    qtbot.waitExposed(panel)
    size = panel.mask_model.brush_size
    qtbot.keyClick(panel.canvas, Qt.Key.Key_BracketRight)
    assert panel.mask_model.brush_size > size
    before = panel.mask_model.fill.copy()
    panel.mask_model.paint_line(1, 1, 30, 1)
    qtbot.keyClick(panel.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(panel.mask_model.fill, before)


# ------------------------------------------------------------------------------------------------
# other kinds of model


def test_points_model_gaussian_and_painted_region(panel, qtbot):
    cfg = ModelConfig(kernel="gaussian", T=10, example_shape=(2,), arch="mlp", hidden=8, layers=1)
    panel.set_model(LoadedModel(model=DiffusionModel(cfg).eval(), norm={}, history={}, meta={}))
    assert panel.kind == "points" and panel.pages.currentIndex() == 2
    panel.samples_spin.setValue(50)
    panel.region_combo.setCurrentIndex(panel.region_combo.findData("gaussian"))
    panel._on_plane_click(1.5, -0.5)
    assert panel.centre_x.value() == pytest.approx(1.5)
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        panel.run()
    wait_done(qtbot, panel)
    assert panel.frames[-1].shape == (50, 2)
    panel.region_combo.setCurrentIndex(panel.region_combo.findData("region"))
    with qtbot.waitSignal(panel.error):
        panel.run()  # nothing painted yet
    panel.region_model.rectangle(40, 40, 60, 60)
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        panel.run()
    wait_done(qtbot, panel)
    assert panel._run_meta["kind"] == "region"


def test_binary_model_fixed_bits(panel, qtbot):
    cfg = ModelConfig(kernel="binomial", T=10, example_shape=(10,), arch="mlp", hidden=8, layers=1,
                      activation="sigmoid", readout="per_step", p_bar=0.2, schedule="binomial")
    panel.set_model(LoadedModel(model=DiffusionModel(cfg).eval(), norm={}, history={}, meta={}))
    assert panel.kind == "bits" and len(panel.bits_editor.bits) == 10
    panel.bits_editor.set_bit(0, 1)
    panel.bits_editor.set_bit(1, 0)
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        panel.run()
    wait_done(qtbot, panel)
    for x in panel.frames:
        assert (x[:, 0] == 1).all() and (x[:, 1] == 0).all()


def test_no_model(panel):
    panel.set_model(None)
    assert panel.kind == "none" and not panel.run_btn.isEnabled()
    assert not panel.run()


def test_conv_model_keeps_the_image_size_up_to_the_longest_side(panel):
    panel.set_model(tiny_image_model())
    panel.set_image(np.zeros((60, 90), np.uint8))
    assert panel.prepared.shape_hw == (60, 90)
    panel.fit_combo.setCurrentIndex(panel.fit_combo.findData("shrink"))
    panel.max_side_spin.setValue(45)
    panel.max_side_spin.editingFinished.emit()
    assert panel.prepared.shape_hw == (30, 45) and "longest side 45" in panel.note_label.text()
    assert panel.mask_model.shape == (30, 45)
    panel.fit_combo.setCurrentIndex(panel.fit_combo.findData("crop"))
    assert panel.prepared.shape_hw == (45, 45) and "cropped the centre" in panel.note_label.text()
    assert panel.mask_model.shape == (45, 45)


def test_a_new_snapshot_of_the_same_model_keeps_the_results(panel, qtbot):
    lm = tiny_image_model()
    panel.set_model(lm)
    panel.set_image(np.zeros((8, 8), np.uint8))
    with qtbot.waitSignal(panel.result_ready, timeout=30_000):
        panel.run()
    wait_done(qtbot, panel)
    n = len(panel.frames)
    snap = LoadedModel(model=DiffusionModel(lm.config).eval(), norm=dict(NORM), history={}, meta={})
    panel.set_model(snap)
    assert panel.loaded is snap and len(panel.frames) == n
    other = tiny_image_model(T=12)
    panel.set_model(other)
    assert len(panel.frames) == 0 and panel.prepared.shape_hw == (8, 8)


def test_texture_models_crop_by_default(panel):
    lm = tiny_image_model()
    lm.meta = {"preset": "bark"}
    panel.set_model(lm)
    assert panel.fit_combo.currentData() == "crop"
    other = tiny_image_model(T=11)
    panel.set_model(other)
    assert panel.fit_combo.currentData() == "shrink"



def test_switching_model_mid_run_drops_the_old_runs_frames(qtbot, window):
    """A run cancelled by a session change must not deliver its queued frames to the next model's view
    (found by bench/soak.py: frames of the image model reached the 2-D view and raised IndexError)."""
    from pathlib import Path

    from explorer import session as sessions

    bark = Path(__file__).resolve().parents[2] / "resources" / "models" / "bark.h5"
    if not bark.exists():
        pytest.skip("bundled bark model absent")
    window.apply_session(sessions.model_file_session(bark))
    panel = window.inpaint
    qtbot.waitUntil(lambda: panel.kind == "image" and panel.prepared is not None, timeout=10_000)
    panel.samples_spin.setValue(1)
    assert panel.run()
    qtbot.waitUntil(lambda: len(panel.frames) > 0, timeout=20_000)
    qtbot.wait(300)
    window.apply_session(sessions.preset_session("swissroll"))
    qtbot.wait(1000)  # queued signals of the cancelled run arrive now (pytest-qt fails on slot exceptions)
    assert panel.kind == "points" and len(panel.frames) == 0
    assert not panel.save_png_btn.isEnabled()
