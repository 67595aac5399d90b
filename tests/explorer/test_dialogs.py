"""The Save / Discard / Cancel question asked before a trained, unsaved model is replaced: what it says,
Save is the default (Enter), Esc is Cancel; a save dialog never starts in the bundled models' folder."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox


@pytest.fixture
def dialogs(qtbot, settings, one_torch_thread):
    from explorer.controller import Controller
    from explorer.dialogs import Dialogs
    from explorer.state import AppState
    from explorer_helpers import tiny_session
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    state = AppState()
    sess = tiny_session(T=5)
    state.set_session(sess.model, sess.data)
    state.iteration = 1234
    state.unsaved = True
    ctl = Controller(state)
    yield Dialogs(parent, settings, state, ctl)
    ctl.shutdown()


@pytest.mark.parametrize("reason, start", [("open the bark preset", "Save the trained model before you open the "
                                                                   "bark preset?"),
                                           ("close", "Save the trained model before closing?")])
def test_the_question_names_the_action_and_the_training_at_stake(dialogs, reason, start):
    box = dialogs.save_question(reason)
    assert box.text() == start
    assert "iteration 1,234" in box.informativeText() and "Discard loses that training" in box.informativeText()
    assert box.defaultButton() is box.button(QMessageBox.Save)  # Enter saves (a file dialog follows: "Save…")
    assert box.button(QMessageBox.Save).text() == "Save…"
    assert box.escapeButton() is box.button(QMessageBox.Cancel)


def test_escape_cancels(qtbot, dialogs):
    box = dialogs.save_question("start a new model")
    box.show()
    qtbot.waitExposed(box)
    QTest.keyClick(box, Qt.Key_Escape)
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=60_000)
    assert box.clickedButton() is box.button(QMessageBox.Cancel)


def test_a_save_dialog_never_starts_in_the_bundled_models_folder(dialogs, monkeypatch):
    from explorer import dialogs as module
    from models.paths import MODELS_DIR

    seen = {}

    def fake_save(parent, title, start, filt):
        seen["start"] = start
        return "", ""

    monkeypatch.setattr(module.QFileDialog, "getSaveFileName", fake_save)
    assert dialogs.folder("model") == str(MODELS_DIR)  # opening a model starts among the bundled ones
    assert dialogs.save_path() is None
    assert not seen["start"].startswith(str(MODELS_DIR))
