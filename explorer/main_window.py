"""The main window: docks, menus, the status bar and the wiring between panels, the state and the
:class:`explorer.controller.Controller` (which does the work). It also asks the user the questions the
controller needs answered (Save/Discard/Cancel, file dialogs that remember their folder).

Layout: left dock "Data and model"; centre: a message banner over tabs (Trajectory, Draw, Inpaint);
right: the K curve and samples; bottom: the schedule, the entropy bounds, the per-step bound terms
and the log."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMessageBox, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from . import files
from . import settings as app_settings
from .about import ABOUT_HTML
from .controller import Controller
from .dialogs import Dialogs
from .export import qimage_to_rgb
from .panels.controls import ControlsPanel
from .panels.curves import KCurvePanel
from .panels.draw import DrawPanel
from .panels.entropy import EntropyPanel
from .panels.log import LogPanel, MessageBanner
from .panels.samples import SamplesPanel
from .panels.schedule import SchedulePanel
from .panels.status import StatusWidgets
from .panels.terms import BoundTermsPanel
from .panels.trajectory import TrajectoryPanel
from .state import AppState

class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, state: AppState | None = None, *,
                 traj_points: int | None = None, autoplay: bool = True):
        super().__init__()
        self.setWindowTitle("dpm-explorer")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("dpm-explorer", "dpm-explorer")
        self.state = state if state is not None else AppState(self)
        self.controller = Controller(self.state, self, traj_points=traj_points)
        self.controller.ask_save = self.ask_save
        self.controller.choose_save_path = self.choose_save_path
        self.dialogs = Dialogs(self, self.settings, self.state, self.controller)
        self.controller.choose_folder = lambda title: QFileDialog.getExistingDirectory(self, title) or None
        self.session_ready = self.controller.session_ready
        self.autoplay = autoplay
        self._closed = False

        s = self.state
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
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)  # the controls run the full height
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
        self._dock("terms", "KL per step", self.terms, Qt.BottomDockWidgetArea)
        self._dock("log", "Log", self.log, Qt.BottomDockWidgetArea)
        self.splitDockWidget(self.docks["k_curve"], self.docks["samples"], Qt.Vertical)
        self.splitDockWidget(self.docks["schedule"], self.docks["entropy"], Qt.Horizontal)
        self.splitDockWidget(self.docks["entropy"], self.docks["terms"], Qt.Horizontal)
        self.tabifyDockWidget(self.docks["terms"], self.docks["log"])
        self.docks["terms"].raise_()
        self.resizeDocks([self.docks["controls"]], [290], Qt.Horizontal)
        self.resizeDocks([self.docks["k_curve"]], [380], Qt.Horizontal)
        self.resizeDocks([self.docks["schedule"]], [250], Qt.Vertical)
        self.resizeDocks([self.docks["schedule"], self.docks["entropy"], self.docks["terms"]], [500, 330, 330],
                         Qt.Horizontal)
        self._default_state = self.saveState()

        self.status = StatusWidgets(s, self.statusBar())
        self.k_label, self.progress_bar = self.status.k_label, self.status.progress_bar

        self._build_menus()
        self._wire()
        self._restore_settings()
        if self.controller.autosave_path().exists():
            s.post("info", f"an autosaved training run is at {self.controller.autosave_path()}: "
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

    def _add_inpaint_view(self):
        """The Inpaint tab (explorer/panels/inpaint): it follows the state's model itself; a failure
        to build it is reported and the app runs on without it."""
        try:
            from .panels.inpaint import InpaintPanel  # noqa: PLC0415
            panel = InpaintPanel(self.state)
        except Exception as e:  # noqa: BLE001
            self.state.post("warning", f"the Inpaint view could not be started: {type(e).__name__}: {e}")
            return None
        self.tabs.addTab(panel, "Inpaint")
        return panel

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
        c, mb = self.controller, self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "Open data…", self.dialogs.choose_data_file, QKeySequence.Open,
                     "Open a .npy/.csv/.h5 file or an image (or drop one on the window)")
        self._action(f, "Open data folder…", self.dialogs.choose_data_folder, None, "A folder of same-size images")
        self._action(f, "Open model…", self.dialogs.choose_model_file, "Ctrl+Shift+O", "Open a model file (.h5)")
        self._action(f, "Watch model file…", lambda: (p := self.dialogs.ask_path(
            "model", "Watch model file", "Models (*.h5 *.hdf5);;All files (*)")) and c.watch_model(p), None,
            "Follow a model file that a running dpm train keeps autosaving (local or under torchrun)")
        self._action(f, "Save model…", self.dialogs.choose_save_model, QKeySequence.Save, "Save the model as HDF5")
        self.recent_menu = f.addMenu("Recent files")
        self._action(f, "Recover autosaved run", c.recover_autosave, None,
                     "Open the model that was autosaved while training (after a crash)")
        f.addSeparator()
        self._action(f, "Open trajectory…", self.dialogs.choose_trajectory_file, None,
                     "Open a trajectory file exported by dpm-explorer")
        self._action(f, "Export trajectory (HDF5)…", self.dialogs.choose_export_trajectory, "Ctrl+E",
                     "The shown trajectory and the bound curves as HDF5")
        self._action(f, "Export animation (GIF)…", self.dialogs.choose_export_gif, "Ctrl+G", "The shown animation as a GIF")
        f.addSeparator()
        self._action(f, "Quit", self.close, QKeySequence.Quit)
        t = mb.addMenu("&Train")
        self.act_train = self._action(t, "Train", c.start_training, "Ctrl+T")
        self.act_pause = self._action(t, "Pause / Resume", c.toggle_pause, "Ctrl+P")
        self.act_stop = self._action(t, "Stop", c.stop_training, "Ctrl+.")
        t.addSeparator()
        self._action(t, "New model", c.new_model, "Ctrl+N", "An untrained model with the settings on the left")
        v = mb.addMenu("&View")
        tp = self.trajectory
        self._action(v, "Play / Pause", tp.toggle_play, "Space")
        self._action(v, "Previous step", lambda: tp.step(-1), "Left")
        self._action(v, "Next step", lambda: tp.step(+1), "Right")
        self._action(v, "Start of the process", tp.go_start, "Home", "t = T for the reverse process, 0 forward")
        self._action(v, "End of the process", tp.go_end, "End", "t = 0 for the reverse process, T forward")
        self._action(v, "Reverse process", lambda: self.set_view("reverse"), "Ctrl+1")
        self._action(v, "Forward process", lambda: self.set_view("forward"), "Ctrl+2")
        self._action(v, "Draw", lambda: self.set_view("draw"), "Ctrl+3")
        self._action(v, "Resample trajectories", c.compute_trajectories, "Ctrl+R")
        self._action(v, "Cancel the trajectory", c.cancel_trajectory, "Esc")
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())
        self._action(v, "Reset layout", lambda: self.restoreState(self._default_state))
        h = mb.addMenu("&Help")
        self._action(h, "About dpm-explorer and a short guide", self.show_about, QKeySequence.HelpContents)
        self._fill_recent_menu()

    def _wire(self) -> None:
        s, c, k = self.state, self.controls, self.controller
        c.preset_chosen.connect(k.load_preset)
        c.open_data_requested.connect(self.dialogs.choose_data_file)
        c.draw_requested.connect(lambda: self.set_view("draw"))
        c.config_edited.connect(k.edit_config)
        c.new_model_requested.connect(k.new_model)
        c.train_requested.connect(k.start_training)
        c.pause_requested.connect(k.toggle_pause)
        c.stop_requested.connect(k.stop_training)
        c.open_model_requested.connect(self.dialogs.choose_model_file)
        c.save_model_requested.connect(self.dialogs.choose_save_model)
        c.recent_requested.connect(k.open_path)
        c.device_changed.connect(k.set_device)
        self.trajectory.refresh_requested.connect(k.compute_trajectories)
        self.trajectory.cancel_requested.connect(k.cancel_trajectory)
        self.draw.use_points.connect(self._use_drawn_points)
        self.schedule.edited.connect(k.schedule_edited)
        k.session_ready.connect(self._on_session_ready)
        k.trajectory_opened.connect(self._on_trajectory_opened)
        s.message.connect(lambda level, text: self.status.show_message(text, 10000 if level == "info" else 30000))
        s.busy_changed.connect(self._on_busy)
        s.recent_changed.connect(self._fill_recent_menu)
        s.recent_changed.connect(lambda: app_settings.set_str_list(self.settings, "recent", s.recent))
        s.session_changed.connect(self.banner.hide)  # the old model's warnings are not this one's

    def _on_busy(self, text: str) -> None:
        sb = self.statusBar()
        if text:
            self._busy_shown = self.status.show_message(text + " …")
        elif sb.currentMessage() and sb.currentMessage() == getattr(self, "_busy_shown", None):
            sb.clearMessage()

    def _use_drawn_points(self, points) -> None:
        self.controller.use_drawn_points(points)
        if self.state.source == "drawn":
            self.set_view("reverse")

    def _on_session_ready(self) -> None:
        if self.autoplay:
            self.trajectory.play()

    # =============================================================================================
    # settings
    def _restore_settings(self) -> None:
        # plain values only, read through explorer.settings (a stored object is removed unread)
        st, s = self.settings, self.state
        notes: list[str] = []
        if not app_settings.restore_window(self, st, notes):  # 1440×900, or the whole screen when smaller
            avail = self.screen().availableGeometry() if self.screen() is not None else None
            self.resize(min(1440, avail.width()) if avail else 1440, min(900, avail.height()) if avail else 900)
        s.set_recent(app_settings.get_str_list(st, "recent", notes))
        dev = app_settings.get_str(st, "device", "cpu", notes)
        if dev in [self.controls.device.itemText(i) for i in range(self.controls.device.count())]:
            s.device = dev
        s.set_loop(app_settings.get_bool(st, "trajectory/loop", s.loop, notes))
        for note in notes:  # after the window is wired, so the notes reach the log and status bar
            QTimer.singleShot(0, lambda note=note: s.post("warning", note))

    def save_settings(self) -> None:
        st = self.settings
        app_settings.save_window(self, st)
        app_settings.set_str_list(st, "recent", self.state.recent)
        app_settings.set_str(st, "device", self.state.device)
        app_settings.set_str(st, "trajectory/loop", "true" if self.state.loop else "false")
        st.sync()

    # =============================================================================================
    # questions for the user
    def ask_save(self, reason: str = "close") -> str:
        return self.dialogs.ask_save(reason)

    def choose_save_path(self) -> Path | None:
        return self.dialogs.save_path()

    def show_about(self) -> None:
        QMessageBox.about(self, "About dpm-explorer", ABOUT_HTML)

    # =============================================================================================
    # actions that need the window
    def start(self, *, model_path: str | None = None, preset: str | None = None) -> None:
        self.controller.start(model_path=model_path, preset=preset)

    def apply_session(self, sess) -> None:
        self.controller.apply_session(sess)

    def open_path(self, path) -> None:
        self.controller.open_path(path)

    def open_trajectory(self, path) -> None:
        self.controller.open_trajectory(path)  # read in a worker; shown by _on_trajectory_opened

    def _on_trajectory_opened(self) -> None:
        self.set_view(self.state.direction)
        if self.autoplay:
            self.trajectory.play()

    def export_gif(self, path, max_frames: int = 120, fps: float = 15.0) -> bool:
        s, tp = self.state, self.trajectory
        traj = s.trajectory
        if traj is None or s.incomplete():
            s.post("warning", "no complete trajectory to export yet")
            return False
        was_playing, keep = tp.playing, s.frame
        tp.pause()

        def render(i):
            s.set_frame(i)
            tp.draw_now()
            return qimage_to_rgb(tp.plot.grab().toImage())

        try:
            n = files.export_gif(traj, path, render, max_frames=max_frames, fps=fps)
        except (OSError, ValueError) as e:
            self.controller.report_error(e, path)
            return False
        finally:
            s.set_frame(keep)
            if was_playing:
                tp.play()
        s.post("info", f"exported {n} frames to {path}")
        return True

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
            self.tabs.setCurrentWidget(self.inpaint)
        else:
            raise ValueError(f"unknown view {name!r}; choose reverse, forward, draw or inpaint")

    def _fill_recent_menu(self) -> None:
        m = self.recent_menu
        m.clear()
        for p in self.state.recent:
            act = m.addAction(Path(p).name)
            act.setStatusTip(p)
            act.triggered.connect(lambda _c=False, p=p: self.controller.open_path(p))
        m.setEnabled(bool(self.state.recent))

    # ---- drag and drop: always a copy (the dropped file stays where it is) -----------------------
    @staticmethod
    def _drop_paths(mime) -> list[Path]:
        if mime is None or not mime.hasUrls():
            return []
        return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]

    def dragEnterEvent(self, ev) -> None:  # noqa: N802
        paths = self._drop_paths(ev.mimeData())
        if paths:
            ev.setDropAction(Qt.CopyAction)
            ev.accept()
            self.statusBar().showMessage(f"drop to open {paths[0].name} (data, model or trajectory)")
        else:
            ev.ignore()

    def dragMoveEvent(self, ev) -> None:  # noqa: N802
        if self._drop_paths(ev.mimeData()):
            ev.setDropAction(Qt.CopyAction)
            ev.accept()

    def dropEvent(self, ev) -> None:  # noqa: N802
        paths = self._drop_paths(ev.mimeData())
        if not paths:
            ev.ignore()
            return
        ev.setDropAction(Qt.CopyAction)
        ev.accept()
        if len(paths) > 1:
            self.state.post("info", f"{len(paths)} items dropped; opening {paths[0].name} "
                                    "(drop a folder to use several images)")
        self.controller.open_path(paths[0])

    # =============================================================================================
    # closing
    def closeEvent(self, ev) -> None:  # noqa: N802
        k = self.controller
        if k.needs_saving and not self._closed:
            answer = self.ask_save("close")
            if answer == "cancel":
                ev.ignore()
                return
            if answer == "save":
                path = self.choose_save_path()
                if path is None:
                    ev.ignore()
                    return
                k.stop_for_close()
                if not k.save_model_to(path):
                    ev.ignore()
                    return
        self.save_settings()
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Stop every worker and wait for its thread (tests call this before the window goes)."""
        self._closed = True
        self.trajectory.pause()
        self.controller.shutdown(timeout_ms)
