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
