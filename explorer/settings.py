"""The app's settings, read and written as plain values only.

QSettings turns a stored ``@Variant(...)`` back into an object when it is read, and for a Python object
that means unpickling: a crafted settings file could run code on the next start. The app therefore
writes only plain strings (a list of paths as one JSON string), the window's geometry and dock state
as byte arrays, and reads every key through :func:`raw_value`'s check first: a key whose stored text
is an ``@Variant(...)`` (which the app never writes) is removed unread, with a note. Window geometry
and dock state that Qt cannot restore, or that are not byte arrays of a sane size, are dropped and
reset, with a note, instead of failing every start.
"""
from __future__ import annotations

import json
import os
import re

from PySide6.QtCore import QByteArray, QSettings

__all__ = ["raw_value", "get_str", "set_str", "get_str_list", "set_str_list", "get_bool", "restore_window",
           "save_window"]

#: Byte arrays larger than this (geometry, dock state) are not restored.
MAX_STATE_BYTES = 256 * 1024
#: How much of the settings file is scanned; a larger file is not read raw (and nothing in it trusted).
MAX_SETTINGS_FILE_BYTES = 4 * 1024**2
_MAX_RECENT = 50


def _ini_entries(settings: QSettings) -> dict[str, str] | None:
    """``group/key`` → the raw text of its value in an INI settings file; None when the settings are
    not an INI file (registry, plist) or cannot be read."""
    path = settings.fileName()
    settings.sync()  # the file as QSettings sees it now
    if settings.format() != QSettings.IniFormat and not (os.name == "posix" and path.endswith((".conf", ".ini"))):
        return None
    try:
        if os.path.getsize(path) > MAX_SETTINGS_FILE_BYTES:
            return {}
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    out: dict[str, str] = {}
    group = ""
    for line in text.splitlines():
        line = line.strip()
        m = re.fullmatch(r"\[(.*)\]", line)
        if m:
            group = "" if m[1] == "General" else m[1].replace("%2F", "/") + "/"
            continue
        if "=" in line and not line.startswith((";", "#")):
            key, _, value = line.partition("=")
            out[group + key.strip()] = value.strip()
    return out


def raw_value(settings: QSettings, key: str) -> str | None:
    """The stored text of ``key`` as it is in the file (None if absent or not an INI file)."""
    entries = _ini_entries(settings)
    return None if entries is None else entries.get(key)


def _safe(settings: QSettings, key: str, notes: list[str] | None) -> bool:
    """True when ``key`` may be read with QSettings.value(); a stored object is removed unread."""
    entries = _ini_entries(settings)
    if entries is None:
        return True
    raw = entries.get(key)
    if raw is not None and raw.startswith("@Variant("):
        settings.remove(key)
        settings.sync()
        if notes is not None:
            notes.append(f"settings: {key!r} held a stored object, not a plain value; it was removed unread")
        return False
    return True


def get_str(settings: QSettings, key: str, default: str = "", notes: list[str] | None = None) -> str:
    """A plain string setting (anything else reads as ``default``)."""
    if not _safe(settings, key, notes) or not settings.contains(key):
        return default
    v = settings.value(key)
    return v if isinstance(v, str) else default


def set_str(settings: QSettings, key: str, value: str) -> None:
    settings.setValue(key, str(value))


def get_str_list(settings: QSettings, key: str, notes: list[str] | None = None) -> list[str]:
    """A list of strings stored as one JSON string (older files: a plain comma list of strings)."""
    if not _safe(settings, key, notes) or not settings.contains(key):
        return []
    v = settings.value(key)
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            parsed = [v]
        v = parsed
    if not isinstance(v, list):
        return []
    return [s for s in v if isinstance(s, str) and s][:_MAX_RECENT]


def set_str_list(settings: QSettings, key: str, values) -> None:
    settings.setValue(key, json.dumps([str(v) for v in values][:_MAX_RECENT]))


def get_bool(settings: QSettings, key: str, default: bool, notes: list[str] | None = None) -> bool:
    v = get_str(settings, key, "", notes)
    if v.lower() in ("true", "1"):
        return True
    if v.lower() in ("false", "0"):
        return False
    return default


def _get_bytes(settings: QSettings, key: str, notes: list[str]) -> QByteArray | None:
    if not _safe(settings, key, notes) or not settings.contains(key):
        return None
    v = settings.value(key)
    if isinstance(v, (bytes, bytearray)):
        v = QByteArray(bytes(v))
    if not isinstance(v, QByteArray) or v.size() > MAX_STATE_BYTES:
        settings.remove(key)
        notes.append(f"settings: {key!r} was not a window layout this app wrote; it was reset")
        return None
    return v


def restore_window(window, settings: QSettings, notes: list[str]) -> bool:
    """Restore ``window``'s geometry and dock state; bad values are removed with a note. Returns
    True when a geometry was restored (else the caller sizes the window)."""
    restored = False
    geo = _get_bytes(settings, "geometry", notes)
    if geo is not None:
        try:
            restored = bool(window.restoreGeometry(geo))
        except Exception:  # a value Qt's bindings refuse
            restored = False
        if not restored:
            settings.remove("geometry")
            notes.append("settings: the saved window geometry could not be restored; it was reset")
    ws = _get_bytes(settings, "windowState", notes)
    if ws is not None:
        try:
            ok = bool(window.restoreState(ws))
        except Exception:
            ok = False
        if not ok:
            settings.remove("windowState")
            notes.append("settings: the saved panel layout could not be restored; it was reset")
    return restored


def save_window(window, settings: QSettings) -> None:
    settings.setValue("geometry", window.saveGeometry())
    settings.setValue("windowState", window.saveState())
