"""The trajectory view (centre): the forward (data → noise) or reverse (noise → data) process, one
cached frame at a time. Scrubbing only indexes the cache ``[S, N, ...]`` and updates plot items that
were created once; slider moves are throttled to one draw per ~16 ms (leading and
trailing edge). A trajectory that is still being computed plays and scrubs over the frames computed so
far, with its progress and a Cancel button under the slider. Playback speed and looping live in the state.

2-D points: a scatter, optional per-point paths and the drift field f_μ(x, t) − x as arrows; binary
data: a raster (one row per sequence); images: a grid of images."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QSpinBox, QStyle,
                               QToolButton,
                               QVBoxLayout, QWidget)

from ..render import arrow_segments, path_polylines, tile_images
from ..state import AppState
from ._items import FastPoints

N_PATHS = 60
HOLD_AT_END_S = 0.6
TRAINING_FRAME_MS = 25  # frame interval while training (≤ 40 fps): the GUI shares the interpreter
STREAMING_FRAME_MS = 50  # frame interval while the shown trajectory is computed (≤ 20 fps): the CPU goes to it
POINT_RANGE = 3.2


class TrajectoryPanel(QWidget):
    """Plays and scrubs ``state.trajectory``."""

    refresh_requested = Signal()
    cancel_requested = Signal()
    frame_drawn = Signal(int)  # emitted after a frame was written into the plot items

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setObjectName("TrajectoryPanel")
        self._playing = False
        self._pos = 0.0  # fractional frame position while playing
        self._hold_until = 0.0
        self._kind = None
        self._mosaic = None  # (height, width) of the image mosaic the view was last fitted to
        self._throttle = QTimer(self, singleShot=True, interval=16)
        self._throttle.timeout.connect(self._on_throttle)
        self._dirty = False
        self._hidden_stale = False
        self._play_timer = QTimer(self, interval=16)
        self._play_timer.setTimerType(Qt.PreciseTimer)
        self._play_timer.timeout.connect(self._tick)
        self._clock = QElapsedTimer()
        self.frames_drawn = 0
        self.hold_at_end_s = HOLD_AT_END_S  # pause on the last frame before looping
        self.training_frame_ms = TRAINING_FRAME_MS

        # --- toolbar ---------------------------------------------------------------------------
        self.direction = QComboBox()
        self.direction.addItem("Reverse: noise → data", "reverse")
        self.direction.addItem("Forward: data → noise", "forward")
        self.direction.setToolTip("Which process to show: the learned reverse process p, or the forward diffusion q")
        self.play_button = QToolButton()
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.setAutoRaise(True)
        self.play_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.play_button.setMinimumWidth(72)
        self.speed = QSpinBox()
        self.speed.setRange(1, 1000)
        self.speed.setValue(state.speed)
        self.speed.setSuffix(" steps/s")
        self.speed.setToolTip("Playback speed in diffusion steps per second")
        self.loop = QCheckBox("Loop")
        self.loop.setChecked(state.loop)
        self.paths = QCheckBox("Paths")
        self.paths.setToolTip(f"Draw the path of {N_PATHS} points up to the current step")
        self.drift = QCheckBox("Drift")
        self.drift.setToolTip("Arrows: the reverse drift f_μ(x, t) − x of the step leaving t, on a grid "
                              "(scaled so that the longest arrow is one grid cell)")
        self.refresh = QToolButton()
        self.refresh.setText("Resample")
        self.refresh.setToolTip("Recompute both trajectories from the current model (fixed seed) (Ctrl+R)")
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("trajectory_progress")
        self.progress_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # never widens the window
        self.progress_label.setVisible(False)  # shown while there is something to say
        self.cancel = QToolButton()
        self.cancel.setText("Cancel")
        self.cancel.setToolTip("Stop computing the trajectory; the frames computed so far stay (Esc)")
        self.cancel.setVisible(False)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        for w in (self.direction, self.play_button, self.speed, self.loop, self.paths, self.drift, self.refresh):
            bar.addWidget(w)
        bar.addStretch(1)

        # --- plot: every item created once -----------------------------------------------------
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("trajectory_plot")
        self.plot.setMenuEnabled(True)
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.layout.setContentsMargins(2, 2, 10, 2)
        self.view = pi.getViewBox()
        self.ghost = FastPoints(3.0, (150, 150, 150, 70))
        self.paths_item = pg.PlotCurveItem(pen=pg.mkPen(80, 140, 220, 90, width=1), connect="finite")
        self.scatter = FastPoints(3.5, (30, 100, 200, 170))
        self.drift_item = pg.PlotCurveItem(pen=pg.mkPen(220, 90, 40, 200, width=1.2), connect="pairs")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.message = pg.TextItem("", color=(90, 90, 90), anchor=(0.5, 0.5))
        for it in (self.image, self.ghost, self.paths_item, self.scatter, self.drift_item):
            pi.addItem(it)
        self.view.addItem(self.message, ignoreBounds=True)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("time_slider")
        self.slider.setToolTip("Scrub through the diffusion steps (Left / Right, Home / End)")
        self.slider.setFocusPolicy(Qt.StrongFocus)
        self.time_label = QLabel("t = –")
        self.time_label.setMinimumWidth(110)
        self.time_label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        srow = QHBoxLayout()
        srow.setContentsMargins(6, 0, 6, 4)
        srow.addWidget(QLabel("t"))
        srow.addWidget(self.slider, 1)
        srow.addWidget(self.time_label)
        srow.addSpacing(12)
        srow.addWidget(self.progress_label, 1)  # room for "1 of 16 done · the rest 52 %" at 1280×800
        srow.addWidget(self.cancel)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        lay.addLayout(srow)

        # --- wiring ----------------------------------------------------------------------------
        self.direction.currentIndexChanged.connect(lambda _i: state.set_direction(self.direction.currentData()))
        self.play_button.clicked.connect(self.toggle_play)
        self.slider.valueChanged.connect(self._on_slider)
        self.paths.toggled.connect(lambda _v: self.request_draw())
        self.drift.toggled.connect(lambda _v: self.request_draw())
        self.refresh.clicked.connect(self.refresh_requested)
        self.cancel.clicked.connect(self.cancel_requested)
        self.speed.valueChanged.connect(state.set_speed)
        self.loop.toggled.connect(state.set_loop)
        state.settings_changed.connect(self._on_settings)
        state.trajectory_progress.connect(self._on_progress)
        state.trajectory_changed.connect(self._on_trajectory_changed)
        state.direction_changed.connect(self._on_direction_changed)
        state.frame_changed.connect(self._on_frame_changed)
        state.session_changed.connect(self._on_session)
        state.training_changed.connect(self._on_training)
        self._update_play_button()
        self._on_session()

    # ---- public controls ------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._playing

    def play(self) -> None:
        traj = self.state.trajectory
        if traj is None:
            self._playing = True  # starts when the trajectory arrives
            self._update_play_button()
            return
        if self._at_end():
            self.state.set_frame(self._start_index())
        self._pos = float(self.state.frame)
        self._playing = True
        self._hold_until = 0.0
        self._clock.start()
        self._play_timer.start()
        self._update_play_button()

    def pause(self) -> None:
        self._playing = False
        self._play_timer.stop()
        self._update_play_button()

    def toggle_play(self) -> None:
        self.pause() if self._playing else self.play()

    def step(self, delta: int) -> None:
        """Move the slider by ``delta`` frames (Left/Right keys)."""
        self.pause()
        self.state.set_frame(self.state.frame + int(delta))

    def set_view_options(self, *, paths: bool | None = None, drift: bool | None = None) -> None:
        if paths is not None:
            self.paths.setChecked(paths)
        if drift is not None:
            self.drift.setChecked(drift)

    def go_start(self) -> None:
        """Home: the start of the shown process (t = T reverse, t = 0 forward)."""
        self.pause()
        self.state.set_frame(self._start_index())

    def go_end(self) -> None:
        """End: the end of the shown process (t = 0 reverse — or the lowest t computed so far —, T forward)."""
        self.pause()
        traj = self.state.trajectory
        if traj is not None:
            self.state.set_frame(0 if traj.direction == "reverse" else traj.n_frames - 1)

    def _on_settings(self) -> None:
        s = self.state
        self.speed.blockSignals(True)
        self.loop.blockSignals(True)
        self.speed.setValue(s.speed)
        self.loop.setChecked(s.loop)
        self.speed.blockSignals(False)
        self.loop.blockSignals(False)

    def _on_progress(self, direction: str, fraction: float) -> None:
        """Progress of a trajectory being computed (−1: cancelled, 1: complete)."""
        s = self.state
        if direction != s.direction:
            return
        computing = 0.0 <= fraction < 1.0
        self.cancel.setVisible(computing)
        self._play_timer.setInterval(self._frame_ms())
        traj = s.trajectory
        span = f" (t = {traj.T} → {int(traj.t[0])})" if traj is not None and traj.direction == "reverse" else ""
        tip = f"the {direction} trajectory{span}"
        if traj is not None and traj.n_ready is not None:
            tip += (f": every step for the first {traj.n_ready} examples comes first, then the other "
                    f"{traj.frames.shape[1] - traj.n_ready} (grey until they are computed)")
        self.progress_label.setToolTip(tip)
        if computing:
            self.progress_label.setText(self._progress_text(traj, fraction))
            if traj is None:
                self.message.setText(f"computing the {direction} trajectory … {100 * fraction:.0f} %")
        elif fraction < 0:
            self.progress_label.setText("cancelled (Resample)")
        else:
            self.progress_label.setText("")
        self.progress_label.setVisible(bool(self.progress_label.text()))  # the slider is wide when idle

    @staticmethod
    def _progress_text(traj, fraction: float) -> str:
        """What is being computed: the whole run, or (a run in two passes) every step for the first
        few examples, then the others (shown as grey placeholders until they land)."""
        ready = None if traj is None else traj.n_ready
        if ready is None:
            return f"computing {100 * fraction:.0f} %"
        n = int(traj.frames.shape[1])
        first = ready / n  # the share of the work in the first pass
        if int(traj.t[0]) > 0:
            return f"computing {ready} of {n} first: {100 * min(fraction / first, 1):.0f} %"
        rest = (fraction - first) / max(1 - first, 1e-9)
        return f"{ready} of {n} done · the rest {100 * max(rest, 0):.0f} %"

    # ---- state → view ---------------------------------------------------------------------------
    def _frame_ms(self) -> int:
        """Playback's frame interval: ≤ 20 fps while the shown trajectory is computed and ≤ 40 fps while
        training (the GUI thread shares the CPU and the interpreter with that work), else ~60 fps."""
        if self.state.streaming():
            return STREAMING_FRAME_MS
        return self.training_frame_ms if self.state.training in ("running", "stopping") else 16

    def _on_training(self, _status: str) -> None:
        self._play_timer.setInterval(self._frame_ms())

    def _configure(self, kind: str) -> None:
        """Show the items and axes for one kind of data (done once per change of kind)."""
        if kind == self._kind:
            return
        self._kind = kind
        pi = self.plot.getPlotItem()
        is_points = kind == "points"
        for it in (self.ghost, self.paths_item, self.scatter, self.drift_item):
            it.setVisible(is_points)
        self.image.setVisible(not is_points)
        self.paths.setVisible(is_points)
        self.view.invertY(not is_points)
        self.view.setAspectLocked(kind != "binary")
        pi.showAxis("left", kind != "images")
        pi.showAxis("bottom", kind != "images")
        if is_points:
            pi.setLabel("bottom", "x₁ (normalised)")
            pi.setLabel("left", "x₂ (normalised)")
            self.view.setRange(xRange=(-POINT_RANGE, POINT_RANGE), yRange=(-POINT_RANGE, POINT_RANGE), padding=0)
        elif kind == "binary":
            pi.setLabel("bottom", "bit")
            pi.setLabel("left", "sequence")

    def _on_session(self) -> None:
        self._mosaic = None  # a new model's trajectory is fitted to the view
        self._on_progress(self.state.direction, self.state.trajectory_fraction.get(self.state.direction, 1.0))
        kind = self.state.kind
        self._configure(kind)
        self.drift.setVisible(kind == "points" and self.state.example_shape == (2,))
        self.ghost.setData(np.empty((0, 2), np.float32))
        if kind == "points" and self.state.data is not None and self.state.example_shape == (2,):
            x = self.state.heldout_sample(2000)
            if x is not None:
                self.ghost.setData(x.numpy().astype(np.float32))
        if kind == "points":
            self.view.setRange(xRange=(-POINT_RANGE, POINT_RANGE), yRange=(-POINT_RANGE, POINT_RANGE), padding=0)
            self.ghost.setVisible(True)
        self.forward_available(self.state.data is not None)
        self._on_trajectory_changed(self.state.direction)

    def forward_available(self, ok: bool) -> None:
        item = self.direction.model().item(1)
        item.setEnabled(ok)
        item.setToolTip("" if ok else "open a data set to see the forward process")

    def _on_direction_changed(self, direction: str) -> None:
        self._on_progress(direction, self.state.trajectory_fraction.get(direction, 1.0))
        i = self.direction.findData(direction)
        if i != self.direction.currentIndex():
            self.direction.blockSignals(True)
            self.direction.setCurrentIndex(i)
            self.direction.blockSignals(False)
        self._on_trajectory_changed(direction)

    def _on_trajectory_changed(self, direction: str) -> None:
        if direction != self.state.direction:
            return
        traj = self.state.trajectory
        self.slider.blockSignals(True)
        if traj is None:
            self.slider.setRange(0, 0)
            self.slider.setEnabled(False)
            self.message.setText("computing the trajectory …")
            self.message.setPos(*self._centre())
            self._clear_items()
            self.time_label.setText("t = –")
            self.plot.getPlotItem().setTitle("")
            self.slider.blockSignals(False)
            return
        self._configure(traj.kind)
        self.ghost.setVisible(traj.kind == "points" and not traj.source.startswith("file:"))
        self.slider.setEnabled(True)
        self.slider.setRange(0, traj.n_frames - 1)
        step = max(1, int(traj.t[1] - traj.t[0])) if traj.n_frames > 1 else 1
        self.slider.setSingleStep(1)
        self.slider.setPageStep(max(1, traj.n_frames // 10))
        self.message.setText("")
        n = traj.frames.shape[1]
        what = {"reverse": "p: x^T ~ prior → x^0", "forward": "q: x^0 = data → x^T"}[traj.direction]
        src = "  ·  from file" if traj.source.startswith("file:") else ""
        self.plot.getPlotItem().setTitle(
            f"{what}  ·  {n:,} {'points' if traj.kind == 'points' else 'examples'}"
            + (f"  ·  one frame every {step} steps" if step > 1 else "") + src, size="9pt", color="#555")
        if self._kind == "images" or self._kind == "binary":
            frame0 = self._image_of(traj, 0)
            self.image.setImage(frame0, autoLevels=False, levels=(0.0, 1.0))
            h, w = frame0.shape[:2]
            if (h, w) != self._mosaic:  # a trajectory that grows (or fills in) keeps the user's zoom
                self._mosaic = (h, w)
                self.view.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)
        if self.state.frame >= traj.n_frames or (self._playing and not self._play_timer.isActive()):
            self.state.frame = self._start_index()
        self._pos = float(self.state.frame)  # a growing trajectory keeps the shown t at a new index
        self.slider.setValue(self.state.frame)
        self.slider.blockSignals(False)
        self.draw_now()
        if self._playing and not self._play_timer.isActive():
            self.play()

    def _on_frame_changed(self, index: int) -> None:
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self.request_draw()

    def _on_slider(self, value: int) -> None:
        if not self._play_timer.isActive():
            self._pos = float(value)
        self.state.set_frame(value)

    # ---- drawing ---------------------------------------------------------------------------------
    def request_draw(self) -> None:
        """Throttled draw: the first request draws at once, later ones within 16 ms are coalesced.
        Nothing is drawn while the view is hidden (another tab shown); showing it draws the frame."""
        if not self.isVisible():
            self._hidden_stale = True
            return
        if self._throttle.isActive():
            self._dirty = True
            return
        self.draw_now()
        self._throttle.start()

    def showEvent(self, ev):  # noqa: N802 - shown again: draw the frame it missed
        super().showEvent(ev)
        if self._hidden_stale:
            self._hidden_stale = False
            self.draw_now()

    def _on_throttle(self) -> None:
        if self._dirty:
            self._dirty = False
            self.draw_now()
            self._throttle.start()

    def _centre(self) -> tuple[float, float]:
        r = self.view.viewRange()
        return (sum(r[0]) / 2, sum(r[1]) / 2)

    def _clear_items(self) -> None:
        empty = np.empty((0, 2), np.float32)
        self.scatter.setData(empty)
        self.paths_item.setData(x=empty[:, 0], y=empty[:, 1])
        self.drift_item.setData(x=empty[:, 0], y=empty[:, 1])
        self.image.clear()

    def _image_of(self, traj, index: int) -> np.ndarray:
        frame = traj.frames[index]
        if traj.kind == "images":
            return tile_images(frame)
        return np.ascontiguousarray(frame.reshape(frame.shape[0], -1), dtype=np.float32)  # [N, D] raster

    def draw_now(self) -> None:
        traj = self.state.trajectory
        if traj is None:
            return
        i = min(self.state.frame, traj.n_frames - 1)
        t = int(traj.t[i])
        self.time_label.setText(f"t = {t} / {traj.T}")
        if traj.kind == "points":
            frame = traj.frames[i]
            self.scatter.setData(frame[:, :2])
            if self.paths.isChecked() and traj.n_frames > 1:
                lo, hi = (i, traj.n_frames - 1) if traj.direction == "reverse" else (0, i)
                pl = path_polylines(traj.frames, lo, hi, N_PATHS)
                self.paths_item.setData(x=pl[:, 0], y=pl[:, 1])
                self.paths_item.setVisible(True)
            else:
                self.paths_item.setVisible(False)
            if self.drift.isChecked() and traj.drift is not None:
                G = int(round(np.sqrt(traj.drift_grid.shape[0])))
                spacing = 2 * POINT_RANGE / max(G - 1, 1) * 0.5
                seg = arrow_segments(traj.drift_grid, traj.drift[i], spacing * 0.95)
                self.drift_item.setData(x=seg[:, 0], y=seg[:, 1])
                self.drift_item.setVisible(True)
            else:
                self.drift_item.setVisible(False)
        else:
            self.image.setImage(self._image_of(traj, i), autoLevels=False, levels=(0.0, 1.0))
        self.frames_drawn += 1
        self.frame_drawn.emit(i)

    # ---- playback ---------------------------------------------------------------------------------
    def _start_index(self) -> int:
        traj = self.state.trajectory
        if traj is None:
            return 0
        return traj.n_frames - 1 if traj.direction == "reverse" else 0

    def _at_end(self) -> bool:
        traj = self.state.trajectory
        if traj is None:
            return False
        end = 0 if traj.direction == "reverse" else traj.n_frames - 1
        return self.state.frame == end

    def _tick(self) -> None:
        traj = self.state.trajectory
        if traj is None:
            return
        dt = self._clock.restart() / 1000.0
        now = time.perf_counter()
        if self._hold_until:
            if now < self._hold_until:
                return
            self._hold_until = 0.0
            self._pos = float(self._start_index())
            self.state.set_frame(int(self._pos))
            return
        steps_per_frame = max(1.0, float(traj.t[1] - traj.t[0])) if traj.n_frames > 1 else 1.0
        advance = self.state.speed * dt / steps_per_frame
        sign = -1.0 if traj.direction == "reverse" else 1.0
        self._pos += sign * advance
        end = 0 if traj.direction == "reverse" else traj.n_frames - 1
        if (sign < 0 and self._pos <= end) or (sign > 0 and self._pos >= end):
            self._pos = float(end)
            self.state.set_frame(end)
            if self.state.loop:
                self._hold_until = now + self.hold_at_end_s if self.hold_at_end_s > 0 else 0.0
                if not self._hold_until:
                    self._pos = float(self._start_index())
            else:
                self.pause()
            return
        self.state.set_frame(int(round(self._pos)))

    def _update_play_button(self) -> None:
        icon = QStyle.SP_MediaPause if self._playing else QStyle.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if self._playing else "Play")
