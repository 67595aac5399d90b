"""The app's actions, without widgets: a :class:`Controller` (QObject) owns the workers and writes the
:class:`explorer.state.AppState`. The main window maps menus and panel signals to these methods; tests
drive them with an ``AppState`` and no window.

Data flows one way: an action → a worker iterates a :mod:`models` generator in its thread → its plain
results arrive here on the GUI thread → written into the state → panels redraw from the state.

Opening anything (a model, data file or folder, image, trajectory, preset, or a path whose kind is
found from its content) reads the file in a worker while the status bar says so; the window stays
responsive, and a failure is posted as an error while the current model stays. A newer open supersedes
one still loading: the older one's result (or error) is dropped when it arrives.

Questions that need a person (Save/Discard/Cancel, where to save, which folder) go through three
callables the window sets: ``ask_save(reason)`` → "save" | "discard" | "cancel", ``choose_save_path()``
→ a path or None, ``choose_folder(title)`` → a folder or None. Without a window, nobody is asked: an
unsaved model is discarded and no folder is chosen.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from models.model import DiffusionModel

from . import files
from . import session as sessions
from .autosave import Autosaver, autosave_path
from .drawn import DrawnDataSet
from .state import AppState
from .watch import WatchActions
from .workers import TrainWorker, TrajectoryRequest, TrajectoryWorker, copy_model, evaluate_model, run_task, wait_for_tasks

LIVE_TRAJECTORY_S = 4.0  # refresh the reverse trajectory from a snapshot this often while training
DEFAULT_PRESET = "swissroll"


def default_speed(T: int) -> int:
    """Playback speed (steps per second) that plays a whole trajectory in about 2.5 s."""
    return int(min(1000, max(10, round(T / 2.5))))


class Controller(QObject, WatchActions):
    session_ready = Signal()  # a session was applied (tests and --screenshot wait on it)
    trajectory_opened = Signal()  # a trajectory file was opened and shown

    def __init__(self, state: AppState, parent: QObject | None = None, *, traj_points: int | None = None):
        super().__init__(parent)
        self.state = state
        self.traj_points = traj_points
        self.ask_save: Callable[[str], str] = lambda _reason: "discard"
        self.choose_save_path: Callable[[], Path | None] = lambda: None
        self.choose_folder: Callable[[str], str | None] = lambda _title: None
        self.train_worker: TrainWorker | None = None
        self.traj_worker: TrajectoryWorker | None = None
        self._old_workers: list = []  # cancelled workers kept alive until their threads end
        self._stop_asked_at = 0.0
        self.last_stop_latency_s = float("nan")
        self._eval_pending = False
        self._eval_token = None
        self._closed = False
        self._open_seq = 0  # the newest open; an older one's result is dropped (see the module docstring)
        self._opening = ""  # the name of the open in progress, "" when none
        self._live_timer = QTimer(self, interval=int(LIVE_TRAJECTORY_S * 1000))
        self._live_timer.timeout.connect(self._live_trajectory)
        self._traj_debounce = QTimer(self, singleShot=True, interval=250)
        self._traj_debounce.timeout.connect(self.compute_trajectories)
        self.autosaver = Autosaver(state, self._request_run_snapshot, parent=self)
        state.trajectory_changed.connect(self._samples_from_trajectory)

    # =============================================================================================
    # helpers
    def _task(self, fn, *args, busy: str, on_result, path=None, on_error=None, **kw) -> None:
        if self._closed:
            return
        s = self.state
        s.set_busy(busy)

        def done(result):
            if self._closed:  # the window is gone; so may be the state
                return
            if s.busy == busy:
                s.set_busy("")
            on_result(result)

        def failed(exc):
            if self._closed:
                return
            if s.busy == busy:
                s.set_busy("")
            if on_error is not None:
                on_error(exc)
            else:
                self.report_error(exc, path)

        run_task(fn, *args, on_result=done, on_error=failed, **kw)

    def _open_task(self, fn, *args, name: str, busy: str, on_result, path=None, **kw) -> None:
        """An open (see the module docstring): ``fn`` runs in a worker; its result goes to ``on_result``
        and its error is posted, unless a newer open started meanwhile."""
        if self._opening and self._opening != name:
            self.state.post("info", f"opening {name} instead of {self._opening} (still loading; dropped)")
        self._open_seq += 1
        token = self._open_seq
        self._opening = name

        def current() -> bool:
            if token != self._open_seq:
                return False
            self._opening = ""
            return True

        def done(result):
            if current():
                on_result(result)

        def failed(exc):
            if current():
                self.report_error(exc, path)

        self._task(fn, *args, busy=busy, on_result=done, on_error=failed, path=path, **kw)

    def report_error(self, exc, path=None) -> None:
        msg = str(exc) or type(exc).__name__
        if path is not None and str(path) not in msg and Path(str(path)).name not in msg:
            msg = f"{path}: {msg}"
        self.state.post("error", msg)

    @property
    def needs_saving(self) -> bool:
        """A model was trained here and not saved since."""
        s = self.state
        return s.model is not None and (s.unsaved or s.training in ("running", "paused", "stopping"))

    def confirm_replace(self, reason: str = "replace") -> bool:
        """Before an action replaces the model: True to go on. A trained, unsaved model is offered for
        saving (Save / Discard / Cancel); training must be stopped first."""
        s = self.state
        if s.training != "idle":
            s.post("warning", "stop training first (the model is in use)")
            return False
        if not self.needs_saving:
            return True
        answer = self.ask_save(reason)
        if answer == "discard":
            return True
        if answer == "save":
            path = self.choose_save_path()
            return path is not None and self.save_model_to(path)
        return False

    # =============================================================================================
    # sessions
    def start(self, *, model_path: str | None = None, preset: str | None = None) -> None:
        """What the app opens on: a model file, a preset's bundled model, or the bundled Swiss-roll model."""
        if model_path:
            self.open_path(model_path)
        else:
            self.load_preset(preset or DEFAULT_PRESET, ask=False)

    def load_preset(self, name: str, *, trained: bool = True, ask: bool = True, **data_kw) -> None:
        """Open preset ``name``: its bundled trained model (``trained``) or an untrained one."""
        if ask and not self.confirm_replace(f"open the {name} preset"):
            return
        if name == "cifar10" and "cifar_dir" not in data_kw:
            d = self.choose_folder("Folder with the CIFAR-10 binary batches (data_batch_1.bin …)")
            if not d:
                return
            data_kw["cifar_dir"] = d
        fn = sessions.bundled_session if trained else sessions.preset_session
        if trained:
            data_kw["device"] = self.state.device
        what = f"the trained {name} model" if trained else f"an untrained {name} model"
        self._open_task(fn, name, name=what, busy=f"opening {what}", on_result=self.apply_session, **data_kw)

    def open_model(self, path, recent: bool = True, source: str = "file") -> None:
        if not self.confirm_replace(f"open {Path(path).name}"):
            return
        path = Path(path)

        def apply(sess):
            sess.source = source
            self.apply_session(sess)
            if recent:
                self.state.add_recent(path)

        self._open_task(sessions.model_file_session, path, name=path.name, busy=f"opening {path.name}",
                        on_result=apply, path=path, device=self.state.device)

    def apply_session(self, sess: sessions.Session) -> None:
        s = self.state
        if s.training != "idle":
            s.post("warning", "a session finished loading while training; it was not applied")
            return
        self._cancel_trajectory()
        self._eval_pending = False
        s.set_session(sess.model, sess.data, preset=sess.preset, path=sess.path, train_history=sess.train_history,
                      optimizer_state=sess.optimizer_state, norm=sess.norm, note=sess.note, recorded=sess.recorded,
                      source=sess.source, history_unbiased=sess.history_unbiased, file_meta=sess.file_meta)
        s.set_speed(default_speed(s.model.T))
        if sess.note:
            s.post("warning" if "not found" in sess.note or "could not" in sess.note else "info",
                   f"{s.origin}: {sess.note}")
        else:
            trained = f"trained {s.iteration:,} iterations" if s.is_trained else "untrained"
            s.post("info", f"opened the {s.origin} ({trained}): {sessions.describe_model(sess.model)}")
        self.compute_trajectories()
        self.request_evaluation()
        self.session_ready.emit()

    def edit_config(self, cfg) -> None:
        """The user changed the model settings: rebuild an untrained model at once; for a trained one,
        keep them pending until "New model"."""
        s = self.state
        if s.training != "idle":
            return
        if s.is_trained or s.recorded is not None:
            s.set_pending_config(cfg)
            s.post("info", "settings changed: press New model to start an untrained model with them "
                           "(the trained model stays until then)")
            return
        self._replace_model(cfg)

    def _replace_model(self, cfg) -> bool:
        s = self.state
        try:
            model = DiffusionModel(cfg)
        except (ValueError, RuntimeError) as e:
            s.post("warning", f"invalid model settings: {e}")
            s.session_changed.emit()
            return False
        if s.data is not None and not sessions.model_matches_data(model, s.data):
            s.post("warning", f"a {cfg.kernel} model of shape {cfg.example_shape} does not fit the data {s.data.name}")
            s.session_changed.emit()
            return False
        source = s.source if s.source in ("drawn", "data") else ("preset" if s.preset is not None else "new")
        self._cancel_trajectory()
        s.set_session(model, s.data, preset=s.preset, note="new untrained model", source=source)
        s.set_speed(default_speed(model.T))
        self._traj_debounce.start()
        self._eval_pending = True
        return True

    def new_model(self, cfg=None) -> None:
        """An untrained model with ``cfg`` (default: the pending settings, else the current model's)."""
        s = self.state
        if s.model is None:
            return
        if not self.confirm_replace("start a new model"):
            return
        cfg = cfg or s.pending_config or s.model.config
        if self._replace_model(cfg):
            s.post("info", f"new untrained model: {sessions.describe_model(s.model)}")
            self.session_ready.emit()

    def schedule_edited(self) -> None:
        self._eval_pending = True
        self._traj_debounce.start()

    def set_device(self, name: str) -> None:
        s = self.state
        s.device = name
        if s.model is not None and s.training == "idle":
            s.model.to(name)
        s.settings_changed.emit()

    # ---- data ------------------------------------------------------------------------------------
    def open_data(self, path) -> None:
        if not self.confirm_replace(f"open {Path(path).name}"):
            return
        path = Path(path)
        self._open_task(sessions.data_file_session, path, name=path.name, busy=f"loading {path.name}",
                        on_result=lambda data: self.use_data(data, path, ask=False), path=path)

    def use_data(self, data, path=None, *, source: str = "data", ask: bool = True) -> None:
        """Make ``data`` the data set, with an untrained model suited to it (the current model's
        settings when they fit, else defaults)."""
        s = self.state
        if ask and not self.confirm_replace("use new data"):
            return
        if s.training != "idle":
            return
        cfg = None
        if s.model is not None and not s.is_trained and s.recorded is None and sessions.model_matches_data(s.model, data):
            cfg = s.model.config
        if cfg is None:
            cfg = sessions.default_model_config(data)
        self.apply_session(sessions.Session(model=DiffusionModel(cfg), data=data, source=source,
                                            note=f"untrained model for {sessions.describe_data(data)} — press Train"))
        if path is not None:
            s.add_recent(path)

    def use_drawn_points(self, points) -> None:
        try:
            data = DrawnDataSet(points)
        except ValueError as e:
            self.state.post("warning", str(e))
            return
        self.use_data(data, source="drawn")

    def open_path(self, path) -> None:
        """Open whatever ``path`` is: a model, a trajectory, or data (file or folder). Its kind is found
        in a worker (an HDF5 file's content is parsed to tell them apart), then it is opened as such."""
        p = Path(path)

        def kind_of(p: Path) -> tuple[str, Path | None]:
            if not p.exists():
                bundled = sessions.bundled_model(str(p))
                return ("", None) if bundled is None else ("model", bundled)
            return files.path_kind(p), p

        def dispatch(found) -> None:
            kind, where = found
            if where is None:
                self.state.post("error", f"{p}: no such file or folder")
            elif kind == "trajectory":
                self.open_trajectory(where)
            elif kind == "model":
                self.open_model(where)
            else:
                self.open_data(where)

        self._open_task(kind_of, p, name=p.name, busy=f"opening {p.name}", on_result=dispatch, path=p)

    # =============================================================================================
    # trajectories
    def compute_trajectories(self, model=None, directions=("reverse", "forward"), stream: bool = True) -> None:
        """Compute the shown model's trajectories in a worker; with ``stream`` they appear as they grow."""
        s = self.state
        if s.model is None or self._closed:
            return
        if model is None:
            if s.training == "running":  # the training thread owns the model: ask for a copy
                if self.train_worker is not None:
                    self.train_worker.request_snapshot()
                return
            model = s.model if s.training == "idle" else copy_model(s.model)
        self._cancel_trajectory()
        kind = s.kind
        n = (self.traj_points if kind == "points" else None) or sessions.TRAJECTORY_N[kind]
        x0 = sessions.forward_x0(s.data, min(n, 5000)) if "forward" in directions else None
        display = None
        if kind != "points":
            display = s.data.display if s.data is not None else s.display
        req = TrajectoryRequest(model=model, kind=kind, directions=tuple(directions), x0=x0, n=n, display=display,
                                drift_grid=21 if (kind == "points" and s.example_shape == (2,)) else 0,
                                source=s.session_name, first_pass=None if stream else n)  # shown whole: one pass
        key = files.trajectory_cache_key(s, req) if stream else None
        if key is not None and self._from_cache(key, req):
            return
        w = TrajectoryWorker(req)
        w.cache_key = key
        w.trajectory_ready.connect(self._on_trajectory)
        if stream:
            w.partial.connect(self._on_partial)
        w.progress.connect(self._on_traj_progress)
        w.failed.connect(lambda msg: self.state.post("error", msg))
        w.first_pass_done.connect(self._start_evaluation)  # the evaluation waits for the first pass
        w.finished.connect(self._start_evaluation)
        self.traj_worker = w
        w.start()

    def _from_cache(self, key: str, req: TrajectoryRequest) -> bool:
        """Show the cached trajectories of ``req`` when every direction is there."""
        wanted = [d for d in req.directions if d == "reverse" or req.x0 is not None]
        found = [files.load_cached_trajectory(key, d) for d in wanted]
        if not all(found):
            return False
        for traj in found:
            self.state.set_trajectory(dataclasses.replace(traj, source=req.source), 1.0)
        self._start_evaluation()
        return True

    def cancel_trajectory(self) -> None:
        """The user's Cancel: stop computing; what was computed stays shown."""
        if self._stop_streaming("Resample computes it again"):
            self._samples_from_trajectory("reverse")
            self._start_evaluation()

    def _stop_streaming(self, why: str) -> bool:
        """Stop a trajectory being computed, keep what was computed shown and marked as cancelled, and say
        so (``why``). Returns whether one was running."""
        w = self.traj_worker
        self._cancel_trajectory()
        if w is None or not w.isRunning():
            return False
        s = self.state
        traj = s.trajectory
        where = ""
        if traj is not None and traj.direction == "reverse":
            where = (f" with {traj.n_ready} of {traj.frames.shape[1]} examples complete"
                     if traj.n_ready and int(traj.t[0]) == 0 else f" at t = {int(traj.t[0])}")
        s.post("info", f"trajectory cancelled{where} ({why})")
        for d in list(s.trajectory_fraction):
            if s.trajectory_fraction[d] < 1.0:
                s.set_trajectory_progress(d, -1.0)
        return True

    def _cancel_trajectory(self) -> None:
        w = self.traj_worker
        if w is not None:
            w.cancel()
            for sig, slot in ((w.trajectory_ready, self._on_trajectory), (w.partial, self._on_partial),
                              (w.progress, self._on_traj_progress)):
                with warnings.catch_warnings():  # a live refresh never connected ``partial``
                    warnings.simplefilter("ignore", RuntimeWarning)
                    try:
                        sig.disconnect(slot)
                    except (RuntimeError, TypeError):
                        pass
            self._old_workers.append(w)
            self.traj_worker = None
        self._old_workers = [o for o in self._old_workers if o.isRunning()]

    def _current(self) -> bool:
        snd = self.sender()
        return snd is None or snd is self.traj_worker

    def _on_partial(self, traj, fraction: float) -> None:
        if self._current():
            self.state.set_trajectory(traj, fraction)

    def _on_trajectory(self, traj) -> None:
        if self._current():
            self.state.set_trajectory(traj, 1.0)
            key = getattr(self.sender(), "cache_key", None)
            if key is not None:
                run_task(files.store_cached_trajectory, key, traj)

    def _on_traj_progress(self, direction: str, fraction: float) -> None:
        if self._current() and fraction < 1.0:
            self.state.set_trajectory_progress(direction, fraction)

    def _samples_from_trajectory(self, direction: str) -> None:
        """A model that is not training shows the end of its reverse trajectory (fixed seed) as its
        samples: no second sampling run."""
        s = self.state
        traj = s.trajectories.get("reverse")
        if (direction != "reverse" or traj is None or s.training != "idle" or traj.source.startswith("file:")
                or int(traj.t[0]) != 0):
            return
        n = min(traj.frames.shape[1], sessions.LIVE_SAMPLES[traj.kind])
        if s.incomplete("reverse"):  # cancelled after its first pass: the examples that reached x^0
            if s.streaming("reverse") or not traj.n_ready:
                return
            n = min(n, int(traj.n_ready))
        x = traj.frames[0, :n]
        if traj.space == "display":  # binary and images: show as they are
            s.set_samples(x, space="display")
        else:
            s.set_samples(x)

    # ---- one-off evaluation: curves and K for a model that is not training ---------------------------
    def request_evaluation(self) -> None:
        """Evaluate the current model once (in the thread pool, beside its trajectory): fills the entropy
        and bound-term plots and K for a model that was opened, edited or has just stopped training."""
        self._eval_pending = True
        self._start_evaluation()

    def _start_evaluation(self) -> None:
        s = self.state
        if (self._closed or not self._eval_pending or s.training != "idle" or s.model is None
                or s.data is None):
            return
        w = self.traj_worker  # the first pass of the trajectory gets the CPU first (it is what the user sees)
        if w is not None and not w.first_pass_complete and not w.isFinished():
            return
        self._eval_pending = False
        try:
            cfg = sessions.app_train_config(s.model, s.data, s.preset, None)
        except (ValueError, TypeError):
            return
        cfg = dataclasses.replace(cfg, n_samples=0)  # the samples come from the reverse trajectory
        token = (id(s.model), s.iteration)
        self._eval_token = token

        def done(ev):
            st = self.state
            if st.training == "idle" and st.model is not None and (id(st.model), st.iteration) == token:
                st.set_evaluation(ev)

        self._task(evaluate_model, s.model, s.data, cfg, busy="evaluating the model", on_result=done)

    def _live_trajectory(self) -> None:
        if self.state.training != "running" or self.train_worker is None:
            return
        if self.traj_worker is not None and self.traj_worker.isRunning():
            return
        self.train_worker.request_snapshot()

    def _on_snapshot(self, model, history: dict) -> None:
        self.autosaver.take(model, history)
        if self.state.training == "idle":
            return
        dirs = ("reverse", "forward") if model.config.learn_beta and self.state.kind == "points" else ("reverse",)
        self.compute_trajectories(model=model, directions=dirs, stream=False)

    # =============================================================================================
    # training
    def start_training(self) -> None:
        s = self.state
        if s.training != "idle" or s.model is None:
            return
        if s.data is None:
            s.post("warning", "this model has no data set: open data (or pick a preset) to train")
            return
        budget = s.budget_s or None
        try:
            cfg = sessions.app_train_config(s.model, s.data, s.preset, budget)
        except (ValueError, TypeError) as e:
            s.post("error", f"cannot train: {e}")
            return
        self._stop_streaming("training has the CPU; it is computed again from the trained model")
        w = TrainWorker(s.model, s.data, cfg, device=s.device, history=s.train_history or None,
                        optimizer_state=s.optimizer_state, iteration=s.iteration)
        w.progress.connect(self._on_train_progress)
        w.snapshot_ready.connect(self._on_snapshot)
        w.failed.connect(lambda msg: self.state.post("error", msg))
        w.done.connect(self._on_train_done)
        self.train_worker = w
        s.set_training("running")
        s.post("info", f"training on {s.device} ({'until stopped' if budget is None else f'{budget:g} s'})")
        w.start()
        s.unsaved = True
        self.autosaver.start()
        if s.kind in ("points", "binary"):
            self._live_timer.start()

    def toggle_pause(self) -> None:
        w, s = self.train_worker, self.state
        if w is None or s.training not in ("running", "paused"):
            return
        if s.training == "running":
            w.pause()
            s.set_training("paused")
            s.post("info", "training paused")
        else:
            w.resume()
            s.set_training("running")
            s.post("info", "training resumed")

    def stop_training(self) -> None:
        w, s = self.train_worker, self.state
        if w is None or s.training not in ("running", "paused"):
            return
        self._stop_asked_at = time.perf_counter()
        w.stop()
        s.set_training("stopping")

    def _on_train_progress(self, p) -> None:
        snd = self.sender()
        if snd is not None and snd is not self.train_worker:
            return
        self.state.add_progress(p)
        if p.message and p.message not in ("finished", "stopped"):
            self.state.post("warning", p.message)

    def _on_train_done(self, result) -> None:
        s = self.state
        w = self.train_worker
        self._live_timer.stop()
        self.autosaver.stop()
        if self._stop_asked_at:
            self.last_stop_latency_s = time.perf_counter() - self._stop_asked_at
            self._stop_asked_at = 0.0
        s.train_history = {k: list(np.asarray(v)) for k, v in result.history.items()}
        s.optimizer_state = result.optimizer_state
        s.iteration = int(result.iteration)
        if w is not None:
            w.wait(2000)
        self.train_worker = None
        s.set_training("idle")
        s.session_changed.emit()  # labels and editability (the model is now trained)
        s.post("info", f"training {result.message} at iteration {result.iteration:,}")
        self.compute_trajectories()
        if result.stopped or not (s.last_progress is not None and s.last_progress.done):
            self.request_evaluation()  # a stopped run has no final record

    # =============================================================================================
    # files (the work is in explorer.files)
    def save_model_to(self, path) -> bool:
        s = self.state
        if s.model is None or s.training not in ("idle", "paused"):
            s.post("warning", "stop or pause training before saving")
            return False
        trainer = self.train_worker.trainer if self.train_worker is not None else None
        try:
            files.save_model_file(s, path, trainer=trainer)
        except files.SAVE_ERRORS as e:
            self.report_error(e, path)
            return False
        s.model_path = Path(path)
        s.unsaved = False
        s.add_recent(path)
        s.post("info", f"saved the model to {path}")
        s.settings_changed.emit()  # labels: where the model is saved
        return True

    def open_trajectory(self, path) -> None:
        """Read a trajectory file in a worker and show it (``trajectory_opened`` then); on failure the
        error is posted and what was shown stays."""
        path = Path(path)
        self._open_task(files.read_trajectory, path, name=path.name, busy=f"opening {path.name}",
                        on_result=lambda result: self._show_trajectory_file(path, *result), path=path)

    def _show_trajectory_file(self, path: Path, traj, curves, history) -> None:
        s = self.state
        self._cancel_trajectory()
        s.set_direction(traj.direction)
        s.set_trajectory(traj)
        if curves is not None:
            s.set_curves(curves)
        if history is not None:
            s.history = history
            s.history_reset.emit()
        s.add_recent(path)
        s.post("info", f"opened trajectory {path.name}: {traj.direction}, {traj.frames.shape[1]} {traj.kind}, "
                       f"T = {traj.T} (Resample replaces it with one from the current model)")
        self.trajectory_opened.emit()

    def export_trajectory(self, path) -> bool:
        s = self.state
        if s.trajectory is None or s.incomplete():
            s.post("warning", "no complete trajectory to export yet")
            return False
        try:
            files.write_trajectory(s, path)
        except files.SAVE_ERRORS as e:
            self.report_error(e, path)
            return False
        s.add_recent(path)
        s.post("info", f"exported the {s.trajectory.direction} trajectory to {path}")
        return True

    # ---- autosave (explorer/autosave.py: off the GUI thread) ---------------------------------------
    autosave_path = staticmethod(autosave_path)

    def request_autosave(self) -> None:
        self.autosaver.request()

    def _request_run_snapshot(self) -> bool:
        if self.state.training == "running" and self.train_worker is not None:
            self.train_worker.request_snapshot()
            return True
        return False

    def recover_autosave(self) -> None:
        path = self.autosave_path()
        if not path.exists():
            self.state.post("info", f"no autosaved run at {path}")
            return
        self.open_model(path, recent=False, source="autosave")

    # =============================================================================================
    def stop_for_close(self) -> None:
        """Stop a training run (≤ 1 s) and keep what it learned, so that it can be saved at exit."""
        w, s = self.train_worker, self.state
        if w is not None and s.training in ("running", "paused", "stopping"):
            w.stop()
            w.wait(3000)
            s.set_training("paused")  # the worker is gone; save_model_to takes its trainer's state

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop every worker and wait for its thread."""
        self._closed = True
        self._eval_pending = False
        self.stop_watching()
        self._traj_debounce.stop()
        self._live_timer.stop()
        self.autosaver.close()
        if self.train_worker is not None:
            self.train_worker.stop()
            self.train_worker.wait(timeout_ms)
        for w in [self.traj_worker, *self._old_workers]:
            if w is not None:
                w.cancel()
                w.wait(timeout_ms)
        wait_for_tasks(timeout_ms)
