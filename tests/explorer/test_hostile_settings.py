"""Hostile settings files (issue items 3 and 16): nothing stored in the settings is ever unpickled, and
window geometry / dock state the app cannot restore are reset with a note instead of failing every start."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QByteArray, QSettings


class _Evil:
    """Pickles as a call of open(marker, "w"): unpickling it creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_ini(tmp_path, **values) -> QSettings:
    path = str(tmp_path / "settings.ini")
    st = QSettings(path, QSettings.IniFormat)
    for k, v in values.items():
        st.setValue(k.replace("__", "/"), v)
    st.sync()
    return QSettings(path, QSettings.IniFormat)  # a fresh reader, as at the next start


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "unpickled-marker"


def _window(qtbot, settings):
    from explorer.app import configure_pyqtgraph
    from explorer.main_window import MainWindow

    configure_pyqtgraph()
    w = MainWindow(settings, autoplay=False, traj_points=300)
    qtbot.addWidget(w)
    return w


def test_stored_objects_in_settings_are_never_unpickled(tmp_path, marker, qtbot, one_torch_thread):
    """Item 3: a crafted 'recent' (and any other key the app reads) holding a pickled object."""
    evil = _Evil(str(marker))
    st = _hostile_ini(tmp_path, recent=evil, device=evil, trajectory__loop=evil, dirs__model=evil)
    assert "@Variant(" in (tmp_path / "settings.ini").read_text(errors="replace")
    w = _window(qtbot, st)
    try:
        assert not marker.exists(), "a stored object was unpickled"
        assert w.state.recent == []
        from explorer import settings as S
        from explorer.dialogs import Dialogs

        assert Dialogs(w, st, w.state, w.controller).folder("model")  # dirs/model: removed unread, default used
        assert not marker.exists()
        # the stored objects are gone, so the next start is clean
        for key in ("recent", "device", "trajectory/loop", "dirs/model"):
            assert not (S.raw_value(st, key) or "").startswith("@Variant("), key
        w.save_settings()
        text = (tmp_path / "settings.ini").read_text()
        assert "@Variant(" not in text
    finally:
        w.shutdown()


def test_settings_round_trip_as_plain_strings(tmp_path, qtbot, one_torch_thread):
    from explorer import settings as S

    st = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    S.set_str_list(st, "recent", ["/a/b.h5", "/c, d/e.h5"])
    S.set_str(st, "device", "cpu")
    st.sync()
    st2 = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    assert S.get_str_list(st2, "recent") == ["/a/b.h5", "/c, d/e.h5"]
    assert S.get_str(st2, "device") == "cpu"
    assert "@Variant(" not in (tmp_path / "s.ini").read_text()


@pytest.mark.parametrize("geometry, state", [
    (QByteArray(b"\x01\xd9\xd0\xcb" + b"\xff" * 60), QByteArray(b"\x00\x00\x00\xff" + b"\x41" * 100)),  # garbage
    ("not a byte array", 12345),  # wrong types
    (QByteArray(b"\x00" * 300_000), QByteArray(b"")),  # absurdly large
    (b"\x01\xd9\xd0\xcb", b"\x00"),  # Python bytes: stored as pickled objects, removed unread
])
def test_hostile_window_geometry_and_state_are_reset_with_a_note(tmp_path, qtbot, one_torch_thread, geometry, state):
    """Item 16: the window opens, the bad values are removed, a note says so."""
    st = _hostile_ini(tmp_path, geometry=geometry, windowState=state)
    w = _window(qtbot, st)
    try:
        qtbot.waitUntil(lambda: any("settings:" in text for _, text in w.state.log), timeout=60_000)
        assert "geometry" not in st.allKeys()
        assert w.width() > 0 and w.height() > 0
    finally:
        w.shutdown()
