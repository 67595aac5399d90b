"""Opening files never blocks the window: a model, data file, image, folder of images or trajectory —
dropped or opened — is read in a worker while the status bar shows that it is busy; a failing open
posts its error and keeps the model; a newer open supersedes one still loading."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from explorer_helpers import apply_tiny, spiral_points
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

from explorer import files
from explorer import session as sessions

LOADER = {"model": (sessions, "model_file_session"), "data": (sessions, "data_file_session"),
          "image": (sessions, "data_file_session"), "folder": (sessions, "data_file_session"),
          "trajectory": (files, "read_trajectory")}


def _drop(window, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    assert ev.isAccepted()


def _make(kind, window, tmp_path):
    """A file of ``kind`` and a predicate that holds once it was opened."""
    s = window.state
    if kind == "model":
        path = tmp_path / "mine.h5"
        assert window.controller.save_model_to(path)
        old = s.model
        return path, lambda: s.model is not old and s.model_path == path
    if kind == "data":
        path = tmp_path / "pts.npy"
        np.save(path, spiral_points(200, seed=5))
        return path, lambda: s.data is not None and s.data.name == "pts"
    if kind == "image":
        path = tmp_path / "photo.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 48)).astype(np.uint8)).save(path)
        return path, lambda: s.data is not None and s.kind == "images" and "photo" in s.data.name
    if kind == "folder":
        path = tmp_path / "digits"
        path.mkdir()
        rng = np.random.default_rng(1)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8)).save(path / f"{i:02d}.png")
        return path, lambda: s.data is not None and s.kind == "images" and s.data.example_shape == (1, 8, 8)
    path = tmp_path / "rev.h5"
    assert window.controller.export_trajectory(path)
    s.trajectories.clear()
    return path, lambda: s.trajectory is not None and s.trajectory.source.startswith("file:")


@pytest.mark.parametrize("kind", list(LOADER))
def test_a_slow_open_leaves_the_window_responsive(qtbot, window, tmp_path, monkeypatch, kind):
    """The loader is slowed: it waits (at most 2 s) until a QTimer of the window's event loop fires while
    it is still loading. On the window thread that timer could not fire, so the load would record that
    it never saw one; off it, the timer fires, sees the busy state, and the file arrives afterwards."""
    apply_tiny(qtbot, window)
    path, opened = _make(kind, window, tmp_path)
    module, name = LOADER[kind]
    real = getattr(module, name)
    inside, ticked, seen, busy = threading.Event(), threading.Event(), [], []

    def slow(*a, **k):
        inside.set()
        seen.append(ticked.wait(2.0))
        inside.clear()
        return real(*a, **k)

    def tick():
        if inside.is_set() and not ticked.is_set():
            busy.append((window.state.busy, window.status.progress_bar.maximum()))
            ticked.set()

    monkeypatch.setattr(module, name, slow)
    timer = QTimer(interval=20)
    timer.timeout.connect(tick)
    timer.start()
    _drop(window, path)
    qtbot.waitUntil(opened, timeout=60_000)
    timer.stop()
    assert seen == [True]  # the event loop ran while the file was being read
    assert busy[0][0].startswith(("opening", "loading")) and path.name in busy[0][0]
    assert busy[0][1] == 0  # the status bar's busy indicator
    assert not any(level == "error" for level, _ in window.state.log)


def test_failing_opens_show_the_error_and_keep_the_model(qtbot, window, tmp_path):
    state = apply_tiny(qtbot, window)
    model, traj = state.model, state.trajectory
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(good)
    bad = {"broken.h5": b"\x89HDF\r\n\x1a\n" + b"garbage" * 50, "points.npy": b"not a numpy file",
           "cut.png": good.read_bytes()[:60], "nothing.png": b"plain text, not an image"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        n = len(state.log)
        _drop(window, tmp_path / name)
        qtbot.waitUntil(lambda: any(level == "error" for level, _ in state.log[n:]), timeout=60_000)
        assert any(level == "error" and name in text for level, text in state.log[n:]), name
        assert window.banner.isVisible() and name in window.banner.text
        assert state.model is model and state.trajectory is traj
    window.open_trajectory(tmp_path / "broken.h5")  # File ▸ Open trajectory… on a file that is none
    qtbot.waitUntil(lambda: not state.busy, timeout=60_000)
    assert "broken.h5" in window.banner.text and state.model is model and state.trajectory is traj


def test_an_image_whose_decoding_hangs_is_cut_off_and_named(qtbot, window, tmp_path, monkeypatch):
    """A hostile image that makes the decoder loop: the app stays responsive, reports the file after the
    decode's time limit (made short here), and keeps its model."""
    from models.files import images
    from models.files.worker import KillableWorker

    real = images._worker_source
    hang = "import time\ndef _load(im):\n    time.sleep(3600)\n"
    monkeypatch.setattr(images, "_WORKER", KillableWorker(lambda: real().replace("\nserve()\n", f"\n{hang}\nserve()\n")))
    monkeypatch.setattr(images, "DECODE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(images, "DECODE_SECONDS_PER_MEGAPIXEL", 0.0)
    state = apply_tiny(qtbot, window)
    model = state.model
    path = tmp_path / "loops.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    _drop(window, path)
    qtbot.waitUntil(lambda: any(level == "error" for level, _ in state.log), timeout=60_000)
    assert any(text == f"{path}: decoding took longer than 1.0 s; the file may be damaged" for _, text in state.log)
    assert state.model is model
    images._WORKER.kill()


def test_a_newer_open_supersedes_one_still_loading(qtbot, window, tmp_path, monkeypatch):
    """Model A is still loading when data B is opened: B is shown, and A's result is dropped when it
    arrives (it never replaces B)."""
    state = apply_tiny(qtbot, window)
    a = tmp_path / "a.h5"
    assert window.controller.save_model_to(a)
    b = tmp_path / "b.npy"
    np.save(b, spiral_points(200, seed=9))
    real = sessions.model_file_session
    started, release, returned = threading.Event(), threading.Event(), threading.Event()

    def held(*args, **kw):
        started.set()
        release.wait(60)
        try:
            return real(*args, **kw)
        finally:
            returned.set()

    from explorer import controller as controller_module

    tasks = []  # (function, finished) of every task the controller starts

    def recording(fn, *args, **kw):
        w = real_run_task(fn, *args, **kw)
        done = threading.Event()
        w.finished.connect(done.set)  # after the task's result was handled on the window thread
        tasks.append((fn, done))
        return w

    real_run_task = controller_module.run_task
    monkeypatch.setattr(controller_module, "run_task", recording)
    monkeypatch.setattr(sessions, "model_file_session", held)
    window.open_path(a)
    qtbot.waitUntil(started.is_set, timeout=60_000)
    window.open_path(b)
    qtbot.waitUntil(lambda: state.data is not None and state.data.name == "b", timeout=60_000)
    model_b = state.model
    release.set()
    qtbot.waitUntil(lambda: returned.is_set() and all(done.is_set() for fn, done in tasks if fn is held),
                    timeout=60_000)
    assert [fn for fn, _ in tasks].count(held) == 1
    assert state.model is model_b and state.data.name == "b" and state.model_path != a
    assert any("instead of a.h5" in text for _, text in state.log)
