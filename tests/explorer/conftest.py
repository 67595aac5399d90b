"""Fixtures for the explorer's Qt tests (offscreen, tiny models, few iterations)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import tempfile  # noqa: E402

os.environ["DPM_EXPLORER_CACHE"] = tempfile.mkdtemp(prefix="dpm-explorer-test-cache-")  # never the user's cache

import pytest


@pytest.fixture
def one_torch_thread(one_thread):
    """tests/conftest.py's ``one_thread`` under the name the explorer's fixtures use."""
    yield


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)


@pytest.fixture
def window(qtbot, settings, one_torch_thread):
    """A main window with no session yet (apply one with :func:`apply_tiny`); autoplay off."""
    from explorer.app import configure_pyqtgraph
    from explorer.main_window import MainWindow

    configure_pyqtgraph()
    w = MainWindow(settings, autoplay=False, traj_points=300)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.shutdown()
