"""Following a model file that a running ``dpm train`` keeps autosaving (locally or under ``torchrun``,
on a shared disk): File ▸ Watch model file…

A :class:`ModelFileWatcher` looks at the file's size, modification time and inode on a timer (cheap,
and it works on network file systems, where change notifications often do not). When they change, the
file is read in a worker thread (:func:`explorer.session.model_file_session`: the checked reader of
:mod:`models.files`, which validates the checksum header before HDF5 sees the file) and ``loaded`` is
emitted with the session on the GUI thread. ``dpm train`` writes by atomic rename, so a file seen is
whole (when training saves faster than a version is read, each version read is shown and the newest
is read next); should a read still fail (a file replaced by hand, a copy in progress, a checksum that does not
match yet), the failure is kept quiet and the file is read again on the next tick. One read at a time;
a change seen during a read is read after it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from . import session as sessions
from .workers import run_task

#: how often the file's size and modification time are looked at
POLL_MS = 1000


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(mtime in ns, size, inode) of ``path``, or None when it is not there (yet)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ModelFileWatcher(QObject):
    """Emits ``loaded(session)`` each time a new version of ``path`` has been read whole, ``failed(str)``
    (once per version) when a version cannot be read after ``retries`` tries."""

    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, path, *, device: str = "cpu", poll_ms: int = POLL_MS, retries: int = 5,
                 load: Callable | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.path = Path(path)
        self.device = device
        self.retries = int(retries)
        self._load = load or sessions.model_file_session
        self._seen: tuple | None = None  # signature of the last version read (or given up on)
        self._reading: tuple | None = None
        self._tries = 0
        self.versions = 0
        self._timer = QTimer(self, interval=int(poll_ms))
        self._timer.timeout.connect(self.poll)

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self._timer.start()
        self.poll()

    def stop(self) -> None:
        self._timer.stop()

    def poll(self) -> None:
        """Look at the file once; start a read when it changed and none is running."""
        if self._reading is not None:
            return
        sig = file_signature(self.path)
        if sig is None or sig == self._seen:
            return
        self._reading = sig
        run_task(self._load, self.path, device=self.device, on_result=self._done, on_error=self._error)

    def _done(self, sess) -> None:
        sig, self._reading = self._reading, None
        if not self.active:
            return
        # a version is whole once seen (atomic renames); if a newer one landed while this was read, this
        # one is shown now and the newer one read on the next tick
        self._seen, self._tries = sig, 0
        self.versions += 1
        self.loaded.emit(sess)

    def _error(self, exc) -> None:
        sig, self._reading = self._reading, None
        self._tries += 1
        if self._tries >= self.retries and file_signature(self.path) == sig:
            self._seen, self._tries = sig, 0  # give up on this version; the next one is read again
            self.failed.emit(str(exc) or type(exc).__name__)


class WatchActions:
    """The controller's File ▸ Watch model file… actions (a mixin of :class:`explorer.controller.Controller`,
    which provides ``state``, ``confirm_replace``, ``apply_session`` and ``_closed``)."""

    watcher: ModelFileWatcher | None = None  # while a file is followed

    def watch_model(self, path) -> None:
        """Follow a model file a running ``dpm train`` keeps autosaving (explorer/watch.py): each version
        that lands is opened like a model file, so K, β, the per-step terms and the samples follow it."""
        if not self.confirm_replace(f"watch {Path(path).name}"):
            return
        self.stop_watching()
        self.watcher = ModelFileWatcher(path, device=self.state.device, parent=self)
        self.watcher.loaded.connect(self._on_watched)
        self.watcher.failed.connect(lambda msg: self.state.post("warning", f"watching: {msg}"))
        self.watcher.start()
        self.state.post("info", f"watching {path}: the model is reopened each time the file is saved")

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _on_watched(self, sess) -> None:
        if not self._closed and self.state.training == "idle":
            self.apply_session(sess)
