"""The inpainting panel reads image and mask files off the GUI thread: while a (made slow) read is
pending the event loop runs, the panel says what it reads and will not run; the file is applied when it
lands; a broken or hostile file posts an error naming it and leaves the panel usable; a newer read
supersedes an older one; a new model drops a pending read; reads of different kinds land in order."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage

from explorer.panels.inpaint import InpaintPanel
from explorer.panels.inpaint import opening
from explorer.state import AppState
from models.config import ModelConfig
from models.model import DiffusionModel

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def image_model():
    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=10, example_shape=(1, 8, 8), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3)
    return DiffusionModel(cfg).eval()


@pytest.fixture
def state():
    s = AppState()
    s.set_session(image_model(), None, norm=dict(NORM))
    return s


@pytest.fixture
def panel(qtbot, state):
    p = InpaintPanel(state)
    qtbot.addWidget(p)
    p.resize(1000, 700)
    p.show()
    yield p
    p.cancel(wait=True)


class Gate:
    """Makes the panel's readers wait, for the files named in ``held``, until :meth:`release`; counts
    the reads that returned (in the worker thread)."""

    def __init__(self, monkeypatch, *held: str):
        self.held, self.inside, self.opened = set(held), threading.Event(), threading.Event()
        self.returned: list[str] = []
        for name in ("read_image", "read_mask"):
            monkeypatch.setattr(opening, name, self._wrap(getattr(opening, name)))

    def _wrap(self, real):
        def read(path):
            if path.name in self.held:
                self.inside.set()
                self.opened.wait(60)  # a safety limit only: the test opens the gate
            try:
                return real(path)
            finally:
                self.returned.append(path.name)
        return read

    def release(self):
        self.opened.set()


def png(path, h=12, w=16, value=None, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w)).astype(np.uint8) if value is None else \
        np.full((h, w), value, np.uint8)
    Image.fromarray(a).save(path)
    return path


def drop(panel, path):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    panel.dropEvent(ev)
    return ev.isAccepted()


def errors(state):
    return [t for level, t in state.log if level == "error"]


def loads(panel):
    """The (name, used) of every read that landed."""
    seen = []
    panel.loaded.connect(lambda name, ok: seen.append((name, ok)))
    return seen


def results(panel):
    """The names of the reads whose result (or error) reached the panel on the GUI thread, dropped ones too."""
    seen, real = [], panel._landed

    def landed(read, ok, value):
        real(read, ok, value)
        seen.append(read.name)

    panel._landed = landed
    return seen


def test_a_slow_read_leaves_the_event_loop_running_and_lands(qtbot, panel, state, tmp_path, monkeypatch):
    """A QTimer of the GUI thread fires while the read is held (it could not if the read ran on that
    thread), and sees the panel reading: named in the side column and the status bar, Run disabled.
    Releasing the read applies the image."""
    path = png(tmp_path / "photo.png", 10, 14)
    gate = Gate(monkeypatch, "photo.png")
    seen, ticks = loads(panel), []

    def tick():
        if gate.inside.is_set() and not ticks:
            ticks.append((panel.reading, panel.status_label.text(), state.busy, panel.run_btn.isEnabled()))

    timer = QTimer(interval=10)
    timer.timeout.connect(tick)
    timer.start()
    assert panel.open_image(path)
    qtbot.waitUntil(lambda: bool(ticks), timeout=60_000)
    timer.stop()
    assert ticks == [("photo.png", "reading photo.png …", "reading photo.png …", False)]
    assert not gate.returned and panel.image_page.prepared is None
    assert not panel.run() and "still reading photo.png" in state.log[-1][1]  # Ctrl+Return is refused too
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        gate.release()
    assert seen == [("photo.png", True)]
    assert panel.image_page.prepared.shape_hw == (10, 14) and panel.image_page.source_name == "photo.png"
    assert not panel.reading and panel.status_label.text() == "" and state.busy == ""
    assert panel.run_btn.isEnabled() and not errors(state)


def test_a_broken_file_is_named_and_the_panel_stays_usable(qtbot, panel, state, tmp_path):
    good = png(tmp_path / "good.png")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    seen = loads(panel)
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert drop(panel, tmp_path / "cut.png")
    assert seen == [("cut.png", False)] and "cut.png" in errors(state)[-1]
    assert panel.image_page.prepared is None and panel.run_btn.isEnabled() and not panel.reading
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert drop(panel, good)
    assert seen[-1] == ("good.png", True) and panel.image_page.prepared.shape_hw == (12, 16)
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=60_000)
    assert panel.frames and len(errors(state)) == 1


def test_an_image_whose_decoding_hangs_is_cut_off_and_named(qtbot, panel, state, tmp_path, monkeypatch):
    """A hostile image that makes the decoder loop (the real killable decoding process, its time limit
    made short): the error names the file, and the panel keeps its image and runs."""
    from models.files import images
    from models.files.worker import KillableWorker

    good = png(tmp_path / "good.png")
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.open_image(good)
    before = panel.image_page.prepared
    real = images._worker_source
    hang = "import time\ndef _load(im):\n    time.sleep(3600)\n"
    looping = KillableWorker(lambda: real().replace("\nserve()\n", f"\n{hang}\nserve()\n"))
    monkeypatch.setattr(images, "_WORKER", looping)
    monkeypatch.setattr(images, "DECODE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(images, "DECODE_SECONDS_PER_MEGAPIXEL", 0.0)
    path = png(tmp_path / "loops.png")
    try:
        with qtbot.waitSignal(panel.loaded, timeout=60_000) as sig:
            assert drop(panel, path)
    finally:
        images._WORKER.kill()
    assert sig.args == ["loops.png", False]
    assert errors(state) == [f"{path}: decoding took longer than 1.0 s; the file may be damaged"]
    assert panel.image_page.prepared is before and panel.run_btn.isEnabled()


def test_the_image_is_fitted_to_the_model_off_the_gui_thread(qtbot, panel, tmp_path, monkeypatch):
    """The resize to the model happens in the worker; settings changed while the file was being read
    are honoured (the page fits it again)."""
    from models import images

    real, where = images.prepare_image, []

    def recording(*a, **k):
        where.append(threading.current_thread() is threading.main_thread())
        return real(*a, **k)

    monkeypatch.setattr(images, "prepare_image", recording)
    path = png(tmp_path / "wide.png", 40, 60)
    ip = panel.image_page
    ip.max_side_spin.setValue(30)
    ip.max_side_spin.editingFinished.emit()
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.open_image(path)
    assert where == [False] and ip.prepared.shape_hw == (20, 30)
    gate = Gate(monkeypatch, "wide.png")
    assert panel.open_image(path)
    qtbot.waitUntil(gate.inside.is_set, timeout=60_000)
    ip.max_side_spin.setValue(15)  # while it reads
    ip.max_side_spin.editingFinished.emit()
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        gate.release()
    assert where[1:] == [True, False, True]  # the old image refitted; the read; fitted again as it landed
    assert ip.prepared.shape_hw == (10, 15)


def test_a_newer_open_supersedes_one_still_reading(qtbot, panel, state, tmp_path, monkeypatch):
    a, b = png(tmp_path / "a.png", 10, 10), png(tmp_path / "b.png", 12, 16)
    gate = Gate(monkeypatch, "a.png")
    seen, came = loads(panel), results(panel)
    assert panel.open_image(a)
    qtbot.waitUntil(gate.inside.is_set, timeout=60_000)
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.open_image(b)
    assert seen == [("b.png", True)] and panel.image_page.source_name == "b.png"
    assert any("reading b.png instead of a.png" in text for _, text in state.log)
    gate.release()
    qtbot.waitUntil(lambda: "a.png" in came, timeout=60_000)
    assert seen == [("b.png", True)] and panel.image_page.source_name == "b.png"  # the late a.png was dropped
    assert panel.image_page.prepared.shape_hw == (12, 16)


def test_a_new_model_drops_a_pending_read(qtbot, panel, state, tmp_path, monkeypatch):
    gate = Gate(monkeypatch, "a.png")
    seen, came = loads(panel), results(panel)
    assert panel.open_image(png(tmp_path / "a.png"))
    qtbot.waitUntil(gate.inside.is_set, timeout=60_000)
    state.set_session(image_model(), None, norm=dict(NORM))
    assert not panel.reading and panel.status_label.text() == "" and panel.run_btn.isEnabled()
    gate.release()
    qtbot.waitUntil(lambda: came == ["a.png"], timeout=60_000)
    assert not seen and panel.image_page.source_name == ""
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.open_image(png(tmp_path / "b.png"))
    assert seen == [("b.png", True)] and panel.image_page.source_name == "b.png"


def test_mask_loads_off_the_gui_thread_resized_and_superseded(qtbot, panel, state, tmp_path, monkeypatch):
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.open_image(png(tmp_path / "photo.png", 8, 8))
    mm = panel.image_page.mask_model
    mm.clear()
    known = np.ones((16, 16), np.uint8) * 255
    known[:8, :8] = 0  # the top-left quarter to fill, at twice the image's size
    Image.fromarray(known).save(tmp_path / "big.png")
    png(tmp_path / "first.png", 8, 8, value=0)  # fill everything
    gate = Gate(monkeypatch, "first.png", "big.png")
    seen, came = loads(panel), results(panel)
    assert panel.load_mask(tmp_path / "first.png")
    qtbot.waitUntil(gate.inside.is_set, timeout=60_000)
    assert panel.load_mask(tmp_path / "big.png")  # supersedes first.png
    assert panel.reading == "big.png" and panel.status_label.text() == "reading big.png …"
    assert not panel.run_btn.isEnabled() and not mm.fill.any()
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        gate.release()
    qtbot.waitUntil(lambda: sorted(came) == ["big.png", "first.png"], timeout=60_000)
    assert seen == [("big.png", True)]
    assert mm.fill[:4, :4].all() and mm.fill.sum() == 16  # resized (nearest) to the 8×8 image
    assert mm.undo() and not mm.fill.any()  # one undoable action
    (tmp_path / "bad.png").write_text("not a mask")
    with qtbot.waitSignal(panel.loaded, timeout=60_000):
        assert panel.load_mask(tmp_path / "bad.png")
    assert seen[-1] == ("bad.png", False) and "bad.png" in errors(state)[-1] and not mm.fill.any()


def test_reads_of_different_kinds_land_in_the_order_they_were_started(qtbot, panel, state, tmp_path, monkeypatch):
    """A mask loaded while the image is still being read is applied to that image, after it."""
    png(tmp_path / "photo.png", 10, 10)
    known = np.full((10, 10), 255, np.uint8)
    known[:, :5] = 0
    Image.fromarray(known).save(tmp_path / "left.png")
    gate = Gate(monkeypatch, "photo.png")
    seen, came = loads(panel), results(panel)
    assert panel.open_image(tmp_path / "photo.png")
    qtbot.waitUntil(gate.inside.is_set, timeout=60_000)
    assert panel.load_mask(tmp_path / "left.png")
    qtbot.waitUntil(lambda: came == ["left.png"], timeout=60_000)
    assert not seen and panel.reading == "photo.png, left.png"  # the mask waits for the image
    gate.release()
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=60_000)
    assert seen == [("photo.png", True), ("left.png", True)]
    mm = panel.image_page.mask_model
    assert mm.shape == (10, 10) and mm.fill[:, :5].all() and not mm.fill[:, 5:].any()


def test_a_pasted_image_over_the_pixel_limit_is_refused_before_it_is_copied(panel, state):
    big = QImage(8000, 7000, QImage.Format.Format_Mono)  # 56 Mpx in 7 MB
    assert not big.isNull()
    QGuiApplication.clipboard().setImage(big)
    assert not panel.paste()
    assert "image from the clipboard" in errors(state)[-1] and "limit" in errors(state)[-1]
    assert panel.image_page.prepared is None and not panel.reading
