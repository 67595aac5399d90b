"""The main window: builds the state, every panel, docks, menus and the status bar, and wires them.
Only this module knows every panel (design.md). User actions arrive as panel signals; long work is
started here in a worker; worker results are written into the state on the GUI thread.

Layout: left dock "Data and model"; centre: a message banner over tabs (Trajectory, Draw, and the
Inpaint view when :mod:`explorer.panels.inpaint` exists); right: the K curve and samples; bottom: the
schedule, the entropy bounds, the per-step bound terms and the log."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QScrollArea, QSizePolicy,
                               QTabWidget,
                               QVBoxLayout, QWidget)

from models.checkpoint import CheckpointError
from models.io import save_model
from models.paths import MODELS_DIR
from models.model import DiffusionModel

from . import session as sessions
from .drawn import DrawnDataSet
from .export import load_trajectory_file, qimage_to_rgb, save_trajectory_file, write_gif
from .panels.controls import ControlsPanel
from .panels.curves import KCurvePanel
from .panels.draw import DrawPanel
from .panels.entropy import EntropyPanel
from .panels.log import LogPanel, MessageBanner
from .panels.samples import SamplesPanel
from .panels.schedule import SchedulePanel
from .panels.terms import BoundTermsPanel
from .panels.trajectory import TrajectoryPanel
from .state import AppState
from .workers import (TrainWorker, TrajectoryRequest, TrajectoryWorker, copy_model, evaluate_model, run_task,
                      wait_for_tasks)

BUNDLED_MODEL = MODELS_DIR / "swissroll.h5"
DATA_SUFFIXES = {".npy", ".csv", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                 ".pbm", ".pnm"}
H5_SUFFIXES = {".h5", ".hdf5"}
LIVE_TRAJECTORY_S = 4.0  # refresh the reverse trajectory from a snapshot this often while training


def sniff_h5(path: Path) -> str:
    """"model", "trajectory" or "data" for an HDF5 file (by its format attribute)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    except Exception:  # noqa: BLE001 - let the real loader report the problem
        return "model"
    if fmt == "dpm-explorer-trajectory":
        return "trajectory"
    if fmt == "dpm-explorer-model":
        return "model"
    return "data"


AUTOSAVE_S = 60.0


class MainWindow(QMainWindow):
    session_ready = Signal()  # a session was applied (tests and --screenshot wait on it)

    def __init__(self, settings: QSettings | None = None, state: AppState | None = None, *,
                 traj_points: int | None = None, autoplay: bool = True):
        super().__init__()
        self.setWindowTitle("dpm-explorer")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("dpm-explorer", "dpm-explorer")
        self.state = state if state is not None else AppState(self)
        self.traj_points = traj_points
        self.autoplay = autoplay
        self.train_worker: TrainWorker | None = None
        self.traj_worker: TrajectoryWorker | None = None
        self._old_workers: list = []  # cancelled workers kept alive until their threads end
        self._train_started = 0.0
        self._budget_s: float | None = None
        self._stop_asked_at = 0.0
        self.last_stop_latency_s = float("nan")
        self._eval_pending = False
        self._closed = False

        s = self.state
        # --- panels ------------------------------------------------------------------------------
        self.controls = ControlsPanel(s)
        self.trajectory = TrajectoryPanel(s)
        self.draw = DrawPanel(s)
        self.k_curve = KCurvePanel(s)
        self.samples = SamplesPanel(s)
        self.schedule = SchedulePanel(s)
        self.entropy = EntropyPanel(s)
        self.terms = BoundTermsPanel(s)
        self.log = LogPanel(s)
        self.banner = MessageBanner(s)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("central_tabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.trajectory, "Trajectory")
        self.tabs.addTab(self.draw, "Draw")
        self.inpaint = self._add_inpaint_view()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.banner)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.docks: dict[str, QDockWidget] = {}
        controls_scroll = QScrollArea()  # the controls scroll on short screens
        controls_scroll.setWidgetResizable(True)
        controls_scroll.setFrameShape(QScrollArea.NoFrame)
        controls_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        controls_scroll.setWidget(self.controls)
        controls_scroll.setMinimumWidth(self.controls.minimumSizeHint().width() + 12)
        self._dock("controls", "Data and model", controls_scroll, Qt.LeftDockWidgetArea)
        self._dock("k_curve", "Training: K", self.k_curve, Qt.RightDockWidgetArea)
        self._dock("samples", "Samples (fixed seed)", self.samples, Qt.RightDockWidgetArea)
        self._dock("schedule", "Schedule β and ᾱ", self.schedule, Qt.BottomDockWidgetArea)
        self._dock("entropy", "Entropy bounds", self.entropy, Qt.BottomDockWidgetArea)
        self._dock("terms", "Bound terms per step", self.terms, Qt.BottomDockWidgetArea)
        self._dock("log", "Log", self.log, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["k_curve"], self.docks["samples"], Qt.Vertical)
        self.splitDockWidget(self.docks["schedule"], self.docks["entropy"], Qt.Horizontal)
        self.splitDockWidget(self.docks["entropy"], self.docks["terms"], Qt.Horizontal)
        self.tabifyDockWidget(self.docks["terms"], self.docks["log"])
        self.docks["terms"].raise_()
        self.resizeDocks([self.docks["controls"]], [290], Qt.Horizontal)
        self.resizeDocks([self.docks["k_curve"]], [400], Qt.Horizontal)
        self.resizeDocks([self.docks["schedule"]], [250], Qt.Vertical)
        self.resizeDocks([self.docks["schedule"], self.docks["entropy"], self.docks["terms"]], [520, 330, 330],
                         Qt.Horizontal)
        self._default_state = self.saveState()

        # --- status bar ----------------------------------------------------------------------------
        sb = self.statusBar()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(140)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("idle")
        self.progress_bar.setValue(0)
        self.speed_label = QLabel("")
        self.device_label = QLabel("")
        self.k_label = QLabel("")
        self.k_label.setObjectName("k_status")
        self.k_label.setMinimumWidth(360)
        for w in (self.k_label, self.speed_label, self.device_label, self.progress_bar):
            sb.addPermanentWidget(w)

        self._build_menus()
        self._wire()
        self._restore_settings()
        self._live_timer = QTimer(self, interval=int(LIVE_TRAJECTORY_S * 1000))
        self._live_timer.timeout.connect(self._live_trajectory)
        self._traj_debounce = QTimer(self, singleShot=True, interval=250)
        self._traj_debounce.timeout.connect(self.compute_trajectories)
        # autosave while training (issue: never lose work): a snapshot every AUTOSAVE_S seconds goes to
        # autosave_path() atomically; File ▸ Recover autosaved run opens it after a crash
        self.unsaved = False  # the model was trained since it was last saved or opened
        self._autosave_pending = False
        self._autosave_timer = QTimer(self, interval=int(AUTOSAVE_S * 1000))
        self._autosave_timer.timeout.connect(self._request_autosave)
        self._update_status()
        if self.autosave_path().exists():
            self.state.post("info", f"an autosaved training run is at {self.autosave_path()}: "
                                    "File ▸ Recover autosaved run opens it")

    # =============================================================================================
    # construction
    def _dock(self, key: str, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{key}")
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        self.docks[key] = d
        return d

    # ---- Inpaint view hook ----------------------------------------------------------------------
    # explorer/panels/inpaint.py (built by another engineer) provides ``InpaintPanel(QWidget)`` taking
    # ``(state)``. When that module exists it becomes a tab of the central area; when it is missing,
    # the app runs without it; when it fails to build, the failure is logged and the app runs on.
    def _add_inpaint_view(self):
        try:
            from .panels.inpaint import InpaintPanel  # noqa: PLC0415 - optional, owned elsewhere
        except ImportError as e:
            if getattr(e, "name", "") not in ("explorer.panels.inpaint", None):
                self.state.post("warning", f"the Inpaint view could not be imported: {e}")
            return None
        except Exception as e:  # noqa: BLE001
            self.state.post("warning", f"the Inpaint view could not be imported: {type(e).__name__}: {e}")
            return None
        try:
            panel = InpaintPanel(self.state)
        except Exception as e:  # noqa: BLE001
            self.state.post("warning", f"the Inpaint view failed to start: {type(e).__name__}: {e}")
            return None
        scroll = QScrollArea()  # its minimum size must not widen the whole window
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(panel)
        self.tabs.addTab(scroll, "Inpaint")
        self._inpaint_page = scroll
        # the panel takes a LoadedModel through set_model(); give it a copy of the current model
        # whenever the session changes (never the live model: training owns that one)
        if hasattr(panel, "set_model"):
            self.state.session_changed.connect(lambda: self._feed_inpaint(panel))
            self.state.schedule_changed.connect(lambda: self._feed_inpaint(panel))
        if hasattr(panel, "error"):
            panel.error.connect(lambda text: self.state.post("error", text))
        if hasattr(panel, "message"):
            panel.message.connect(lambda text: self.statusBar().showMessage(text, 10000))
        return panel

    def _feed_inpaint(self, panel) -> None:
        s = self.state
        if s.model is None or s.training != "idle":
            return
        try:
            from models.io import LoadedModel

            held = s.heldout_sample(16)
            panel.set_model(LoadedModel(model=copy_model(s.model), norm=dict(s.norm or {}), history={},
                                        meta={"preset": s.preset.name if s.preset else None}, path=s.model_path,
                                        heldout=held.numpy() if held is not None else None))
        except Exception as e:  # noqa: BLE001 - the Inpaint view is optional
            s.post("warning", f"the Inpaint view could not take the model: {type(e).__name__}: {e}")

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip or shortcut is not None:
            sc = act.shortcut().toString(QKeySequence.NativeText)
            act.setToolTip(f"{tip or text} ({sc})" if sc else (tip or text))
            act.setStatusTip(tip or text)
        act.triggered.connect(lambda _c=False: slot())
        menu.addAction(act)
        self.addAction(act)  # shortcuts work wherever the focus is in the window
        return act

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "Open data…", self.choose_data_file, QKeySequence.Open,
                     "Open a .npy/.csv/.h5 file or an image (or drop one on the window)")
        self._action(f, "Open data folder…", self.choose_data_folder, None, "A folder of same-size images")
        self._action(f, "Open model…", self.choose_model_file, "Ctrl+Shift+O", "Open a model file (.h5)")
        self._action(f, "Save model…", self.choose_save_model, QKeySequence.Save, "Save the model as HDF5")
        self.recent_menu = f.addMenu("Recent files")
        self._action(f, "Recover autosaved run", self.recover_autosave, None,
                     "Open the model that was autosaved while training (after a crash)")
        f.addSeparator()
        self._action(f, "Open trajectory…", self.choose_trajectory_file, None,
                     "Open a trajectory file exported by dpm-explorer")
        self._action(f, "Export trajectory (HDF5)…", self.choose_export_trajectory, "Ctrl+E",
                     "The shown trajectory and the bound curves as HDF5")
        self._action(f, "Export animation (GIF)…", self.choose_export_gif, "Ctrl+G", "The shown animation as a GIF")
        f.addSeparator()
        self._action(f, "Quit", self.close, QKeySequence.Quit)
        t = mb.addMenu("&Train")
        self.act_train = self._action(t, "Train", self.start_training, "Ctrl+T")
        self.act_pause = self._action(t, "Pause / Resume", self.toggle_pause, "Ctrl+P")
        self.act_stop = self._action(t, "Stop", self.stop_training, "Ctrl+.")
        t.addSeparator()
        self._action(t, "New model", self.new_model, "Ctrl+N", "An untrained model with the settings on the left")
        v = mb.addMenu("&View")
        self._action(v, "Play / Pause", self.trajectory.toggle_play, "Space")
        self._action(v, "Previous step", lambda: self.trajectory.step(-1), "Left")
        self._action(v, "Next step", lambda: self.trajectory.step(+1), "Right")
        self._action(v, "Reverse process", lambda: self.set_view("reverse"), "Ctrl+1")
        self._action(v, "Forward process", lambda: self.set_view("forward"), "Ctrl+2")
        self._action(v, "Draw", lambda: self.set_view("draw"), "Ctrl+3")
        self._action(v, "Resample trajectories", self.compute_trajectories, "Ctrl+R")
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        self._action(v, "Reset layout", self.reset_layout)
        self._fill_recent_menu()

    def _wire(self) -> None:
        s, c = self.state, self.controls
        c.preset_chosen.connect(self.load_preset)
        c.open_data_requested.connect(self.choose_data_file)
        c.draw_requested.connect(lambda: self.set_view("draw"))
        c.config_edited.connect(self._on_config_edited)
        c.new_model_requested.connect(self.new_model)
        c.train_requested.connect(self.start_training)
        c.pause_requested.connect(self.toggle_pause)
        c.stop_requested.connect(self.stop_training)
        c.open_model_requested.connect(self.choose_model_file)
        c.save_model_requested.connect(self.choose_save_model)
        c.recent_requested.connect(self.open_path)
        c.device_changed.connect(self._on_device)
        self.trajectory.refresh_requested.connect(self.compute_trajectories)
        self.draw.use_points.connect(self.use_drawn_points)
        self.schedule.edited.connect(self._on_schedule_edited)
        s.message.connect(self._on_message)
        s.training_changed.connect(lambda _t: self._update_status())
        s.progress_added.connect(self._on_progress)
        s.recent_changed.connect(self._fill_recent_menu)
        s.recent_changed.connect(lambda: self.settings.setValue("recent", list(s.recent)))
        s.session_changed.connect(self._update_status)
        s.evaluated.connect(self._update_status)

    # =============================================================================================
    # settings
    def _restore_settings(self) -> None:
        st = self.settings
        geo = st.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1440, 900)
        ws = st.value("windowState")
        if ws is not None:
            self.restoreState(ws)
        rec = st.value("recent", [])
        if isinstance(rec, str):
            rec = [rec]
        self.state.set_recent([str(r) for r in (rec or []) if r])
        dev = st.value("device", "cpu")
        if dev in [self.controls.device.itemText(i) for i in range(self.controls.device.count())]:
            self.state.device = dev
        speed = st.value("trajectory/speed")
        if speed is not None:
            try:
                self.trajectory.speed.setValue(int(speed))
            except (TypeError, ValueError):
                pass
        loop = st.value("trajectory/loop")
        if loop is not None:
            self.trajectory.loop.setChecked(str(loop).lower() in ("true", "1"))

    def save_settings(self) -> None:
        st = self.settings
        st.setValue("geometry", self.saveGeometry())
        st.setValue("windowState", self.saveState())
        st.setValue("recent", list(self.state.recent))
        st.setValue("device", self.state.device)
        st.setValue("trajectory/speed", self.trajectory.speed.value())
        st.setValue("trajectory/loop", self.trajectory.loop.isChecked())
        st.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)

    def ask_save_on_close(self) -> str:
        """"save", "discard" or "cancel". With no one to answer (offscreen), "discard"; tests patch it."""
        from PySide6.QtGui import QGuiApplication
        if QGuiApplication.platformName() in ("offscreen", "minimal"):
            return "discard"
        busy = self.state.training in ("running", "paused", "stopping")
        box = QMessageBox(QMessageBox.Question, "dpm-explorer",
                          ("Training is running. " if busy else "") + "Save the trained model before closing?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        box.setDefaultButton(QMessageBox.Save)
        ans = box.exec()
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(ans, "cancel")

    def closeEvent(self, ev) -> None:  # noqa: N802
        s = self.state
        busy = s.training in ("running", "paused", "stopping")
        if (busy or self.unsaved) and s.model is not None and not getattr(self, "_closed", False):
            answer = self.ask_save_on_close()
            if answer == "cancel":
                ev.ignore()
                return
            if answer == "save":
                path = self.choose_save_path()
                if path is None:
                    ev.ignore()
                    return
                if busy and self.train_worker is not None:  # stop the run (≤ 1 s), then save what it has
                    self.train_worker.stop()
                    self.train_worker.wait(3000)
                    s.set_training("paused")  # the worker is gone; let save_model_to take its trainer state
                if not self.save_model_to(path):
                    ev.ignore()
                    return
        self.save_settings()
        self.shutdown()
        super().closeEvent(ev)

    def choose_save_path(self) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", str(Path.home() / "model.h5"), "Model (*.h5)")
        return Path(path) if path else None

    # ---- autosave ------------------------------------------------------------------------------
    @staticmethod
    def autosave_path() -> Path:
        base = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or str(Path.home() / ".dpm-explorer")
        return Path(base) / "autosave.h5"

    def _request_autosave(self) -> None:
        if self.state.training == "running" and self.train_worker is not None:
            self._autosave_pending = True
            self.train_worker.request_snapshot()

    def autosave(self, model) -> bool:
        """Write ``model`` (a snapshot of the training run) with the run's curves to autosave_path()."""
        s = self.state
        h = s.history
        history = {"iteration": np.asarray(h.iteration, dtype=np.float64),
                   "K_train_bits": np.asarray(h.K_train_bits, dtype=np.float64),
                   "K_heldout_bits": np.asarray(h.K_heldout_bits, dtype=np.float64),
                   "K_minus_Lnull_bits": np.asarray(h.K_minus_Lnull_bits, dtype=np.float64)}
        norm = s.data.norm.to_dict() if s.data is not None else (s.norm or {"mean": 0.0, "std": 1.0, "levels": None})
        meta = {"autosave": True, "preset": s.preset.name if s.preset is not None else "",
                "data": str(getattr(s.data, "name", "")), "unit": s.unit,
                "iteration": int(h.iteration[-1]) if len(h) else 0}
        path = self.autosave_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(path, model, norm=norm, history=history, meta=meta)
        except (CheckpointError, OSError, ValueError, TypeError) as e:
            s.post("warning", f"autosave to {path} failed: {e}")
            return False
        s.post("info", f"autosaved the training run to {path}")
        return True

    def recover_autosave(self) -> None:
        path = self.autosave_path()
        if not path.exists():
            self.state.post("info", f"no autosaved run at {path}")
            return
        self.open_model(path, recent=False)

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop every worker and wait for its thread (tests call this before the window goes)."""
        self._closed = True
        self._eval_pending = False
        self._traj_debounce.stop()
        self._live_timer.stop()
        self._autosave_timer.stop()
        self.trajectory.pause()
        if self.train_worker is not None:
            self.train_worker.stop()
            self.train_worker.wait(timeout_ms)
        for w in [self.traj_worker, *self._old_workers]:
            if w is not None:
                w.cancel()
                w.wait(timeout_ms)
        wait_for_tasks(timeout_ms)

    # =============================================================================================
    # sessions
    def start(self, *, model_path: str | None = None, preset: str | None = None) -> None:
        """What the app opens on: a model file, a preset, or the bundled Swiss-roll model (an untrained
        Swiss-roll model when the bundled file is missing)."""
        if model_path:
            self.open_model(model_path)
        elif preset:
            self.load_preset(preset)
        elif BUNDLED_MODEL.exists():
            self.open_model(BUNDLED_MODEL, recent=False)
        else:
            self.load_preset("swissroll", note=f"bundled model {BUNDLED_MODEL} not found: opened an untrained "
                                                f"Swiss-roll model (press Train)")

    def _task(self, fn, *args, busy: str, on_result, path=None, **kw) -> None:
        if self._closed:
            return
        self.state.set_busy(busy)
        self.statusBar().showMessage(busy + " …")

        def done(result):
            self.state.set_busy("")
            if self.statusBar().currentMessage() == busy + " …":
                self.statusBar().clearMessage()
            on_result(result)

        def failed(exc):
            self.state.set_busy("")
            self.report_error(exc, path)

        run_task(fn, *args, on_result=done, on_error=failed, **kw)

    def report_error(self, exc, path=None) -> None:
        msg = str(exc) or type(exc).__name__
        if path is not None and str(path) not in msg and Path(str(path)).name not in msg:
            msg = f"{path}: {msg}"
        self.state.post("error", msg)

    def _can_replace_session(self) -> bool:
        if self.state.training != "idle":
            self.state.post("warning", "stop training first (the model is in use)")
            return False
        return True

    def load_preset(self, name: str, note: str = "", **data_kw) -> None:
        if not self._can_replace_session():
            return
        if name == "cifar10" and "cifar_dir" not in data_kw:
            d = QFileDialog.getExistingDirectory(self, "Folder with the CIFAR-10 binary batches (data_batch_1.bin …)")
            if not d:
                self.controls.sync()
                return
            data_kw["cifar_dir"] = d

        def apply(sess):
            if note:
                sess.note = note
            self.apply_session(sess)

        self._task(sessions.preset_session, name, busy=f"loading preset {name}", on_result=apply, **data_kw)

    def open_model(self, path, recent: bool = True) -> None:
        if not self._can_replace_session():
            return
        path = Path(path)

        def apply(sess):
            self.apply_session(sess)
            if recent:
                self.state.add_recent(path)

        self._task(sessions.model_file_session, path, busy=f"opening {path.name}", on_result=apply, path=path,
                   device=self.state.device)

    def apply_session(self, sess: sessions.Session) -> None:
        s = self.state
        if s.training != "idle":
            s.post("warning", "a session finished loading while training; it was not applied")
            return
        self.unsaved = False
        s.set_session(sess.model, sess.data, preset=sess.preset, path=sess.path, train_history=sess.train_history,
                      optimizer_state=sess.optimizer_state, norm=sess.norm, note=sess.note,
                      recorded=sess.recorded)
        self.controls.mark_pending(None)
        self._set_default_speed()
        what = sess.path.name if sess.path is not None else (sess.preset.name if sess.preset else s.session_name)
        if sess.note:
            s.post("warning" if "not found" in sess.note or "could not" in sess.note else "info", f"{what}: {sess.note}")
        else:
            s.post("info", f"opened {what}: {sessions.describe_model(sess.model)}")
        self.compute_trajectories()
        self.request_evaluation()
        if self.autoplay:
            self.trajectory.play()
        self.session_ready.emit()

    def _set_default_speed(self) -> None:
        T = self.state.model.T
        self.trajectory.speed.setValue(int(min(1000, max(10, round(T / 2.5)))))

    def _on_config_edited(self, cfg) -> None:
        s = self.state
        if s.training != "idle":
            return
        if s.is_trained:
            self.controls.mark_pending(cfg)
            s.post("info", "settings changed: press New model to start an untrained model with them "
                           "(the trained model stays until then)")
            return
        self._replace_model(cfg)

    def _replace_model(self, cfg) -> None:
        s = self.state
        try:
            model = DiffusionModel(cfg)
        except (ValueError, RuntimeError) as e:
            s.post("warning", f"invalid model settings: {e}")
            self.controls.sync()
            return
        if s.data is not None and not sessions.model_matches_data(model, s.data):
            s.post("warning", f"a {cfg.kernel} model of shape {cfg.example_shape} does not fit the data {s.data.name}")
            self.controls.sync()
            return
        s.set_session(model, s.data, preset=s.preset, note="new untrained model")
        self.controls.mark_pending(None)
        self._set_default_speed()
        self._traj_debounce.start()
        self._eval_pending = True

    def new_model(self) -> None:
        if not self._can_replace_session():
            return
        cfg = self.controls.pending_config or self.controls.proposed_config()
        if cfg is None:
            return
        self._replace_model(cfg)
        self.state.post("info", f"new untrained model: {sessions.describe_model(self.state.model)}")

    def _on_schedule_edited(self) -> None:
        self._eval_pending = True
        self._traj_debounce.start()

    def _on_device(self, name: str) -> None:
        s = self.state
        s.device = name
        if s.model is not None and s.training == "idle":
            s.model.to(name)
        self.settings.setValue("device", name)
        self._update_status()

    # ---- data ------------------------------------------------------------------------------------
    def open_data(self, path) -> None:
        if not self._can_replace_session():
            return
        path = Path(path)
        self._task(sessions.data_file_session, path, busy=f"loading {path.name}",
                   on_result=lambda data: self.use_data(data, path), path=path)

    def use_data(self, data, path=None) -> None:
        """Make ``data`` the data set, with an untrained model suited to it (the current model's
        settings when they fit, else defaults)."""
        s = self.state
        if not self._can_replace_session():
            return
        cfg = None
        if s.model is not None and not s.is_trained and sessions.model_matches_data(s.model, data):
            cfg = s.model.config
        if cfg is None:
            cfg = sessions.default_model_config(data)
        s.set_session(DiffusionModel(cfg), data, preset=None,
                      note=f"untrained model for {data.name}")
        self.controls.mark_pending(None)
        self._set_default_speed()
        if path is not None:
            s.add_recent(path)
        s.post("info", f"loaded {sessions.describe_data(data)} — press Train")
        self.set_view("reverse")
        self.compute_trajectories()
        self.request_evaluation()
        if self.autoplay:
            self.trajectory.play()
        self.session_ready.emit()

    def use_drawn_points(self, points) -> None:
        try:
            data = DrawnDataSet(points)
        except ValueError as e:
            self.state.post("warning", str(e))
            return
        self.use_data(data)

    def open_path(self, path) -> None:
        """Open whatever ``path`` is: a model, a trajectory, or data (file or folder)."""
        p = Path(path)
        if not p.exists():
            self.state.post("error", f"{p}: no such file or folder")
            return
        if p.is_dir():
            self.open_data(p)
        elif p.suffix.lower() in H5_SUFFIXES:
            kind = sniff_h5(p)
            if kind == "trajectory":
                self.open_trajectory(p)
            elif kind == "model":
                self.open_model(p)
            else:
                self.open_data(p)
        else:
            self.open_data(p)

    # ---- drag and drop ------------------------------------------------------------------------------
    @staticmethod
    def _drop_paths(mime) -> list[Path]:
        if mime is None or not mime.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        paths = self._drop_paths(ev.mimeData())
        if paths:
            ev.acceptProposedAction()
            self.statusBar().showMessage(f"drop to open {paths[0].name} (data, model or trajectory)")
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802
        if self._drop_paths(ev.mimeData()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:  # noqa: N802
        paths = self._drop_paths(ev.mimeData())
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        self.handle_drop(paths)

    def handle_drop(self, paths) -> None:
        paths = [Path(p) for p in paths]
        if len(paths) > 1:
            self.state.post("info", f"{len(paths)} items dropped; opening {paths[0].name} "
                                    "(drop a folder to use several images)")
        self.open_path(paths[0])

    # =============================================================================================
    # trajectories
    def compute_trajectories(self, model=None, directions=("reverse", "forward")) -> None:
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
            if s.data is not None:
                display = s.data.display
            else:
                norm = dict(s.norm or {})
                mean, std = np.asarray(norm.get("mean", 0.0), np.float32), float(norm.get("std", 1.0))
                display = (lambda z: np.clip(z * std + mean, 0, 1).astype(np.float32)) if kind == "images" else None
        req = TrajectoryRequest(model=model, kind=kind, directions=tuple(directions), x0=x0, n=n, display=display,
                                drift_grid=21 if (kind == "points" and s.example_shape == (2,)) else 0,
                                source=s.session_name)
        w = TrajectoryWorker(req)
        w.trajectory_ready.connect(self._on_trajectory)
        w.progress.connect(self.trajectory.set_progress)
        w.failed.connect(lambda msg: self.state.post("error", msg))
        w.finished.connect(self._start_evaluation)
        self.traj_worker = w
        w.start()

    def _cancel_trajectory(self) -> None:
        w = self.traj_worker
        if w is not None:
            w.cancel()
            try:
                w.trajectory_ready.disconnect(self._on_trajectory)
            except (RuntimeError, TypeError):
                pass
            self._old_workers.append(w)
            self.traj_worker = None
        self._old_workers = [o for o in self._old_workers if o.isRunning()]

    def _on_trajectory(self, traj) -> None:
        snd = self.sender()
        if snd is not None and snd is not self.traj_worker:
            return
        self.state.set_trajectory(traj)

    # ---- one-off evaluation: curves, samples and K for a model that is not training -----------------
    def request_evaluation(self) -> None:
        """Evaluate the current model once (after its trajectories, in the thread pool): fills the entropy,
        bound-term and sample plots for a model that was opened, edited or has just stopped training."""
        self._eval_pending = True
        w = self.traj_worker
        if w is None or not w.isRunning():
            self._start_evaluation()

    def _start_evaluation(self) -> None:
        s = self.state
        if (self._closed or not self._eval_pending or s.training != "idle" or s.model is None
                or s.data is None):
            return
        self._eval_pending = False
        try:
            cfg = sessions.app_train_config(s.model, s.data, s.preset, None)
        except (ValueError, TypeError):
            return
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

    def _on_snapshot(self, model) -> None:
        if self._autosave_pending:
            self._autosave_pending = False
            self.autosave(model)
        if self.state.training == "idle":
            return
        dirs = ("reverse", "forward") if model.config.learn_beta and self.state.kind == "points" else ("reverse",)
        self.compute_trajectories(model=model, directions=dirs)

    # =============================================================================================
    # training
    def start_training(self) -> None:
        s = self.state
        if s.training != "idle" or s.model is None:
            return
        if s.data is None:
            s.post("warning", "this model has no data set: open data (or pick a preset) to train")
            return
        budget = float(self.controls.budget.value()) or None
        try:
            cfg = sessions.app_train_config(s.model, s.data, s.preset, budget)
        except (ValueError, TypeError) as e:
            s.post("error", f"cannot train: {e}")
            return
        self._cancel_trajectory()
        self._budget_s = budget
        w = TrainWorker(s.model, s.data, cfg, device=s.device, history=s.train_history or None,
                        optimizer_state=s.optimizer_state, iteration=s.iteration)
        w.progress.connect(self._on_train_progress)
        w.snapshot_ready.connect(self._on_snapshot)
        w.failed.connect(lambda msg: self.state.post("error", msg))
        w.done.connect(self._on_train_done)
        self.train_worker = w
        self._train_started = time.perf_counter()
        s.set_training("running")
        s.post("info", f"training on {s.device} ({'until stopped' if budget is None else f'{budget:g} s'})")
        w.start()
        self.unsaved = True
        self._autosave_timer.start()
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

    def pause_training(self) -> None:
        if self.state.training == "running":
            self.toggle_pause()

    def resume_training(self) -> None:
        if self.state.training == "paused":
            self.toggle_pause()

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
        self._autosave_timer.stop()
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

    def _on_progress(self, p) -> None:
        self._update_status()

    # =============================================================================================
    # files: dialogs
    def choose_data_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open data", str(Path.home()),
                                              "Data (*.npy *.csv *.h5 *.hdf5 *.png *.jpg *.jpeg *.tif *.tiff *.bmp "
                                              "*.gif *.webp *.pgm *.ppm);;All files (*)")
        if path:
            self.open_data(path)

    def choose_data_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if path:
            self.open_data(path)

    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open model", str(MODELS_DIR if MODELS_DIR.exists() else Path.home()),
                                              "Models (*.h5 *.hdf5);;All files (*)")
        if path:
            self.open_model(path)

    def choose_save_model(self) -> None:
        name = f"{self.state.session_name.removesuffix('.h5')}.h5"
        path, _ = QFileDialog.getSaveFileName(self, "Save model", str(Path.home() / name), "Models (*.h5)")
        if path:
            self.save_model_to(path)

    def choose_trajectory_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open trajectory", str(Path.home()),
                                              "Trajectories (*.h5 *.hdf5);;All files (*)")
        if path:
            self.open_trajectory(path)

    def choose_export_trajectory(self) -> None:
        name = f"{self.state.session_name.removesuffix('.h5')}_{self.state.direction}_trajectory.h5"
        path, _ = QFileDialog.getSaveFileName(self, "Export trajectory", str(Path.home() / name), "HDF5 (*.h5)")
        if path:
            self.export_trajectory(path)

    def choose_export_gif(self) -> None:
        name = f"{self.state.session_name.removesuffix('.h5')}_{self.state.direction}.gif"
        path, _ = QFileDialog.getSaveFileName(self, "Export animation", str(Path.home() / name), "GIF (*.gif)")
        if path:
            self.export_gif(path)

    # ---- files: actions ------------------------------------------------------------------------
    def save_model_to(self, path) -> bool:
        s = self.state
        if s.model is None or s.training not in ("idle", "paused"):
            s.post("warning", "stop or pause training before saving")
            return False
        path = Path(path)
        history, optimizer = s.train_history, s.optimizer_state
        w = self.train_worker
        if w is not None and w.trainer is not None:  # paused: take the live trainer's state
            history, optimizer = w.trainer.history_arrays(), w.trainer.optimizer.state_dict()
        norm = s.data.norm.to_dict() if s.data is not None else (s.norm or {"mean": 0.0, "std": 1.0, "levels": None})
        meta = {"preset": s.preset.name if s.preset is not None else None,
                "data": getattr(s.data, "name", None), "unit": s.unit, "iteration": int(s.iteration),
                "schedule_source": s.schedule_source}
        if isinstance(s.data, DrawnDataSet) and len(s.data.points) <= 50_000:
            meta["drawn_points"] = np.round(s.data.points.astype(np.float64), 6).tolist()
        src = str(getattr(s.data, "source", "")).split(":")[0]
        if s.preset is None and src and Path(src).exists():
            meta["data_path"] = str(Path(src).resolve())
        if len(s.history) and math.isfinite(s.history.K_heldout_bits[-1]):
            meta["K_bits"] = s.history.K_heldout_bits[-1]
            meta["K_minus_Lnull_bits"] = s.history.K_minus_Lnull_bits[-1]
        meta = {k: v for k, v in meta.items() if v is not None}
        try:
            save_model(path, s.model, norm=norm, history={k: np.asarray(v) for k, v in (history or {}).items()},
                       meta=meta, optimizer=optimizer)
        except (CheckpointError, OSError, ValueError, TypeError) as e:
            self.report_error(e, path)
            return False
        s.model_path = path
        s.add_recent(path)
        self.unsaved = False
        s.post("info", f"saved the model to {path}")
        self.controls.sync()
        return True

    def open_trajectory(self, path) -> bool:
        path = Path(path)
        try:
            traj, curves, history, meta = load_trajectory_file(path)
        except (CheckpointError, OSError, ValueError) as e:
            self.report_error(e, path)
            return False
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
        self.set_view(traj.direction)
        if self.autoplay:
            self.trajectory.play()
        return True

    def export_trajectory(self, path) -> bool:
        s = self.state
        traj = s.trajectory
        if traj is None:
            s.post("warning", "no trajectory to export yet")
            return False
        source = {"model": str(s.model_path) if s.model_path else "", "preset": s.preset.name if s.preset else "",
                  "data": getattr(s.data, "name", ""), "seed": 0}
        try:
            save_trajectory_file(path, traj, curves=s.curves, history=s.history, unit=s.unit, source=source)
        except (CheckpointError, OSError, ValueError, TypeError) as e:
            self.report_error(e, path)
            return False
        s.add_recent(path)
        s.post("info", f"exported the {traj.direction} trajectory to {path}")
        return True

    def export_gif(self, path, max_frames: int = 120, fps: float = 15.0) -> bool:
        s = self.state
        traj = s.trajectory
        if traj is None:
            s.post("warning", "no trajectory to export yet")
            return False
        was_playing = self.trajectory.playing
        self.trajectory.pause()
        keep = s.frame
        order = list(range(traj.n_frames))
        if traj.direction == "reverse":
            order.reverse()
        if len(order) > max_frames:
            idx = np.unique(np.linspace(0, len(order) - 1, max_frames).round().astype(int))
            order = [order[i] for i in idx]
        frames = []
        try:
            for i in order:
                s.set_frame(i)
                self.trajectory.draw_now()
                frames.append(qimage_to_rgb(self.trajectory.plot.grab().toImage()))
            write_gif(path, frames, fps=fps)
        except (OSError, ValueError) as e:
            self.report_error(e, path)
            return False
        finally:
            s.set_frame(keep)
            if was_playing:
                self.trajectory.play()
        s.post("info", f"exported {len(frames)} frames to {path}")
        return True

    def _fill_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        for p in self.state.recent:
            act = m.addAction(Path(p).name)
            act.setStatusTip(p)
            act.triggered.connect(lambda _c=False, p=p: self.open_path(p))
        m.setEnabled(bool(self.state.recent))

    # =============================================================================================
    # view and status
    def set_view(self, name: str) -> None:
        """Show a central view: "reverse", "forward", "draw" or "inpaint"."""
        if name in ("reverse", "forward"):
            self.tabs.setCurrentWidget(self.trajectory)
            self.state.set_direction(name)
        elif name == "draw":
            self.tabs.setCurrentWidget(self.draw)
        elif name == "inpaint":
            if self.inpaint is None:
                self.state.post("warning", "the Inpaint view is not available in this build")
                return
            self.tabs.setCurrentWidget(self._inpaint_page)
        else:
            raise ValueError(f"unknown view {name!r}; choose reverse, forward, draw or inpaint")

    def _on_message(self, level: str, text: str) -> None:
        self.statusBar().showMessage(text, 10000 if level == "info" else 30000)

    def _update_status(self) -> None:
        s = self.state
        dev = s.device.upper()
        self.device_label.setText(f"device: {dev}")
        p = s.last_progress
        unit = s.unit
        rec = s.recorded
        if rec is not None and p is None:
            b1 = s.curves.beta_1 if s.curves is not None else float("nan")
            self.k_label.setText(f"K = {rec['K_bits']:.3f} ± {rec['K_stderr_bits']:.3f} {unit} (exact) · K − L_null = "
                                 f"{rec['K_minus_Lnull_bits']:.3f} {unit} · β₁ = {b1:.3g}")
        elif p is not None and math.isfinite(p.K_heldout_bits):
            self.k_label.setText(f"K = {p.K_heldout_bits:.3f} {unit} · K − L_null = {p.K_minus_Lnull_bits:.3f} {unit}"
                                 f" · β₁ = {p.beta_1:.3g}")
        elif len(s.history) and math.isfinite(s.history.K_heldout_bits[-1]):
            b1 = s.curves.beta_1 if s.curves is not None else float("nan")
            self.k_label.setText(f"K = {s.history.K_heldout_bits[-1]:.3f} {unit} · K − L_null = "
                                 f"{s.history.K_minus_Lnull_bits[-1]:.3f} {unit} · β₁ = {b1:.3g}")
        elif s.evaluation is not None and math.isfinite(s.evaluation["K_heldout_bits"]):
            ev = s.evaluation
            self.k_label.setText(f"K = {ev['K_heldout_bits']:.3f} {unit} · K − L_null = {ev['K_minus_Lnull_bits']:.3f} "
                                 f"{unit} · β₁ = {float(ev['beta'][0]):.3g}" + ("" if s.is_trained else " (untrained)"))
        elif s.curves is not None:
            cap = f" · K − L_null ≤ {s.curves.cap_bits:.3g} {unit}" if s.curves.cap_bits is not None else ""
            self.k_label.setText(f"untrained · β₁ = {s.curves.beta_1:.3g}{cap}")
        w = self.train_worker
        if s.training in ("running", "paused", "stopping") and w is not None:
            its = p.its_per_s if p is not None else float("nan")
            self.speed_label.setText(f"{its:,.1f} it/s" if math.isfinite(its) else "")
            if self._budget_s:
                done = (p.seconds if p is not None else 0.0)
                frac = min(1.0, done / self._budget_s)
                self.progress_bar.setRange(0, 1000)
                self.progress_bar.setValue(int(frac * 1000))
                left = max(0.0, self._budget_s - done)
                self.progress_bar.setFormat(f"{s.training} · {left:.0f} s left")
            else:
                self.progress_bar.setRange(0, 1000)
                self.progress_bar.setValue(0)
                self.progress_bar.setFormat(f"{s.training} · it {s.iteration:,}")
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(0)
            self.progress_bar.setFormat("idle")
            self.speed_label.setText("")
