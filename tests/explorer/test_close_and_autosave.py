"""Never lose work: training autosaves a snapshot that File ▸ Recover opens; closing mid-training asks
whether to save, stops the worker and saves what the run has; Cancel keeps the window open."""
from __future__ import annotations

import pytest
from explorer_helpers import apply_tiny
from PySide6.QtCore import QStandardPaths

from models.files import load_model


@pytest.fixture
def test_paths():
    QStandardPaths.setTestModeEnabled(True)
    yield
    QStandardPaths.setTestModeEnabled(False)


def _train_until_records(qtbot, window, n=1):
    state = window.state
    window.controls.budget.setValue(0)
    window.controls.train.click()
    qtbot.waitUntil(lambda: len(state.history) >= n, timeout=60_000)
    return state


def test_autosave_writes_a_model_that_recover_opens(qtbot, window, test_paths):
    path = window.controller.autosave_path()
    path.unlink(missing_ok=True)
    apply_tiny(qtbot, window, T=8)
    state = _train_until_records(qtbot, window)
    window.controller.request_autosave()
    qtbot.waitUntil(path.exists, timeout=60_000)
    lm = load_model(path)
    assert lm.meta["autosave"] is True and lm.config.T == 8
    assert len(lm.history["iteration"]) >= 1
    window.controller.stop_training()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    window.controller.recover_autosave()
    qtbot.waitUntil(lambda: state.model_path == path, timeout=60_000)
    path.unlink()


def test_close_while_training_asks_and_saves(qtbot, window, tmp_path, monkeypatch):
    apply_tiny(qtbot, window, T=8)
    state = _train_until_records(qtbot, window)
    out = tmp_path / "closing.h5"
    asked = []
    monkeypatch.setattr(window, "ask_save", lambda _reason="close": asked.append(1) or "save")
    monkeypatch.setattr(window, "choose_save_path", lambda: out)
    window.close()
    assert asked and out.exists()
    assert window.controller.train_worker is None or not window.controller.train_worker.isRunning()
    assert load_model(out).config.T == 8


def test_close_cancel_keeps_the_window_and_the_run(qtbot, window, monkeypatch):
    apply_tiny(qtbot, window, T=8)
    state = _train_until_records(qtbot, window)
    monkeypatch.setattr(window, "ask_save", lambda _reason="close": "cancel")
    window.close()
    assert window.isVisible() and state.training == "running"
    window.controller.stop_training()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    assert window.state.unsaved  # trained, not saved: closing would ask again


def test_autosave_writes_off_the_gui_thread_and_the_newest_snapshot_wins(qtbot, window, test_paths, monkeypatch):
    """The write (HDF5, checksum, atomic replace) runs in the thread pool: while it is held up the GUI
    thread keeps serving events; a snapshot arriving meanwhile waits, a newer one replaces it."""
    import threading

    from PySide6.QtCore import QTimer

    import explorer.autosave as autosave
    from explorer.workers import copy_model

    path = window.controller.autosave_path()
    path.unlink(missing_ok=True)
    state = apply_tiny(qtbot, window, T=8)
    release, entered, written = threading.Event(), threading.Event(), []
    real_save = autosave.save_model

    def slow_save(p, model, **kw):
        written.append((threading.current_thread() is threading.main_thread(), model.T))
        entered.set()
        assert release.wait(60)
        real_save(p, model, **kw)

    monkeypatch.setattr(autosave, "save_model", slow_save)
    saver = window.controller.autosaver
    history = {"iteration": [1.0], "seconds": [0.1]}
    saver.write(copy_model(state.model), history)
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    ticks = []
    timer = QTimer(interval=5)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=10_000)  # the GUI thread runs while the write waits
    timer.stop()
    assert saver.writing and not path.exists()
    second, third = copy_model(state.model), copy_model(state.model)
    saver.write(second, history)
    saver.write(third, history)  # replaces the queued one
    release.set()
    with qtbot.waitSignals([saver.saved, saver.saved], timeout=60_000):
        pass
    qtbot.waitUntil(lambda: not saver.writing, timeout=10_000)
    assert [on_main for on_main, _T in written] == [False, False]  # two writes, both off the GUI thread
    assert load_model(path).meta["autosave"] is True
    assert any(text.startswith("autosaved") for _lvl, text in state.log)
    path.unlink()
