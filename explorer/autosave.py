"""Never lose a training run: every ``AUTOSAVE_S`` seconds of training, a snapshot of the run (a CPU
copy of its evaluation weights and its history, asked of the training worker) is written to
:func:`autosave_path`, off the GUI thread.

What goes into the file (the provenance record, the history columns) is read from the state on the GUI
thread, where the state lives; the write itself (HDF5, the checksum, the atomic replace — about 150 ms
for the bundled bark U-Net) runs in the thread pool, so the window never stalls for it. One write at a
time: a snapshot that arrives while one is being written waits, and a newer one replaces it.
File ▸ Recover autosaved run opens the file (the controller's ``recover_autosave``)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from models.files import save_model

from . import files
from .workers import run_task

AUTOSAVE_S = 60.0  # a training snapshot goes to autosave_path() this often (never lose work)


def autosave_path() -> Path:
    """Where the training run is autosaved: ``autosave.h5`` in the app's data folder."""
    base = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or str(Path.home() / ".dpm-explorer")
    return Path(base) / "autosave.h5"


class Autosaver(QObject):
    """The autosave timer and writer of one controller. ``request_snapshot()`` asks the training worker
    for a snapshot and returns whether one will come; the controller hands it to :meth:`take`."""

    saved = Signal(str)  # the path, once a write has landed (tests)

    def __init__(self, state, request_snapshot: Callable[[], bool], parent: QObject | None = None,
                 interval_s: float = AUTOSAVE_S):
        super().__init__(parent)
        self.state = state
        self._request_snapshot = request_snapshot
        self.pending = False  # a snapshot was asked for autosaving and has not arrived yet
        self.writing = False
        self._queued: tuple | None = None  # (path, model, norm, history, meta) waiting for the write in progress
        self._closed = False
        self._timer = QTimer(self, interval=int(interval_s * 1000))
        self._timer.timeout.connect(self.request)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def close(self) -> None:
        """No more writes start (a write in progress finishes: the controller waits for the pool)."""
        self._closed = True
        self._timer.stop()
        self._queued = None

    def request(self) -> None:
        """Ask for a snapshot of the running training (it arrives through :meth:`take`)."""
        if not self._closed and self._request_snapshot():
            self.pending = True

    def take(self, model, history: dict) -> bool:
        """A snapshot arrived: write it if it was asked for here. Returns whether it was."""
        if not self.pending:
            return False
        self.pending = False
        self.write(model, history)
        return True

    def write(self, model, history: dict) -> None:
        """Write ``model`` (a snapshot: nothing else holds it) with the run's ``history`` to
        :func:`autosave_path`, in the thread pool; the result is posted to the state's log."""
        if self._closed:
            return
        s = self.state
        path = autosave_path()
        try:  # what the file records is read here, on the state's own thread
            job = (path, model, files.model_file_norm(s), files.model_file_history(s, history),
                   files.model_file_meta(s, autosave=True).to_dict())
        except files.SAVE_ERRORS as e:
            s.post("warning", f"autosave to {path} failed: {e}")
            return
        if self.writing:
            self._queued = job  # the newest snapshot wins
            return
        self._start(job)

    def _start(self, job: tuple) -> None:
        self.writing = True
        path = job[0]
        run_task(_write, *job, on_result=lambda _r: self._done(path, None), on_error=lambda e: self._done(path, e))

    def _done(self, path: Path, error) -> None:
        self.writing = False
        if self._closed:
            return
        if error is None:
            self.state.post("info", f"autosaved the training run to {path}")
            self.saved.emit(str(path))
        else:
            self.state.post("warning", f"autosave to {path} failed: {error}")
        job, self._queued = self._queued, None
        if job is not None:
            self._start(job)


def _write(path: Path, model, norm: dict, history: dict, meta: dict) -> None:
    """The write itself (a pool thread): atomic, without the optimiser state (an autosave is for
    recovery and watching, not resuming the optimiser)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model, norm=norm, history=history, meta=meta, optimizer=None)
