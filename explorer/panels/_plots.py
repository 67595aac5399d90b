"""Shared look for the plot panels."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QGraphicsItem

PEN_TRAIN = pg.mkPen(150, 170, 220, width=1)
PEN_HELDOUT = pg.mkPen(30, 90, 200, width=2)
PEN_REFERENCE = pg.mkPen(40, 150, 60, width=1.5, style=pg.QtCore.Qt.DashLine)
PEN_CEILING = pg.mkPen(200, 50, 50, width=1.5, style=pg.QtCore.Qt.DashLine)
PEN_BETA = pg.mkPen(200, 110, 20, width=2)
PEN_FAINT = pg.mkPen(160, 160, 160, width=1, style=pg.QtCore.Qt.DashLine)


def make_plot(title: str, x_label: str, y_label: str, name: str = "", long: bool = False) -> pg.PlotWidget:
    """A PlotWidget with labels and a small font; ``long`` curves (against iterations) get clip-to-view
    and auto downsampling (per-step curves of at most T points do not need them, and clipping would
    keep a new model's wider t range out of the auto range)."""
    w = pg.PlotWidget()
    if name:
        w.setObjectName(name)
    pi = w.getPlotItem()
    pi.setTitle(title, size="9pt")
    pi.setLabel("bottom", x_label)
    pi.setLabel("left", y_label)
    pi.showGrid(x=True, y=True, alpha=0.15)
    for side in ("left", "bottom"):  # with a grid, an axis paints the whole view: a moving cursor or a
        pi.getAxis(side).setCacheMode(QGraphicsItem.DeviceCoordinateCache)  # new point blits it from a cache
        # the labels carry units (bits/pixel, t): pyqtgraph's "(x0.001)" rescaling read as a different K
        pi.getAxis(side).enableAutoSIPrefix(False)
    if long:
        pi.setClipToView(True)
        pi.setDownsampling(auto=True, mode="peak")
    pi.layout.setContentsMargins(2, 2, 10, 2)
    w.setMinimumSize(220, 150)
    return w


def finite_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the points where both x and y are finite (float64, contiguous)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return np.ascontiguousarray(x[ok]), np.ascontiguousarray(y[ok])


def steps_axis(T: int) -> np.ndarray:
    """Paper times t = 1..T for per-step arrays indexed k = t − 1."""
    return np.arange(1, T + 1, dtype=np.float64)


class StaggeredRefresh:
    """Runs ``refresh`` ``delay_ms`` after a live training update (coalescing bursts), or at once for
    user edits. Each plot panel has its own delay, so the repaints that follow one training record land
    in different event-loop turns instead of one long stall."""

    def __init__(self, parent, refresh, delay_ms: int):
        self._refresh = refresh
        self._timer = QTimer(parent, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(refresh)

    def __call__(self, live: bool) -> None:
        if live:
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._timer.stop()
            self._refresh()


PEN_CURSOR = pg.mkPen(90, 90, 90, 160, width=1, style=pg.QtCore.Qt.DotLine)
CURSOR_EVERY_MS = 100  # a cursor moves at most this often (each move repaints its whole plot)


class TimeCursor:
    """A vertical line at the t shown by the trajectory slider, on a plot whose x axis is t. It
    follows the state's frame, direction and trajectory; hidden while there is no trajectory. A frame
    change is drawn at once, later ones within CURSOR_EVERY_MS together at its end (during playback
    the cursors move ~10 times a second instead of at the animation's frame rate)."""

    def __init__(self, state, plot: pg.PlotWidget):
        self.state = state
        self.line = pg.InfiniteLine(angle=90, pen=PEN_CURSOR, movable=False)
        self.line.setZValue(20)
        plot.getPlotItem().addItem(self.line, ignoreBounds=True)
        self._timer = QTimer(plot, singleShot=True, interval=CURSOR_EVERY_MS)
        self._timer.timeout.connect(self._catch_up)
        self._stale = False
        state.frame_changed.connect(lambda _i: self.request())
        state.trajectory_changed.connect(lambda _d: self.update())
        state.direction_changed.connect(lambda _d: self.update())
        self.update()

    def request(self) -> None:
        if self._timer.isActive():
            self._stale = True
            return
        self.update()
        self._timer.start()

    def _catch_up(self) -> None:
        if self._stale:
            self._stale = False
            self.update()
            self._timer.start()

    @property
    def t(self) -> int | None:
        traj = self.state.trajectory
        if traj is None or traj.n_frames == 0:
            return None
        return int(traj.t[min(self.state.frame, traj.n_frames - 1)])

    def update(self) -> None:
        t = self.t
        self.line.setVisible(t is not None)
        if t is not None:
            self.line.setValue(t)


def sparse(y: np.ndarray) -> bool:
    """Whether a per-step curve is known at only some steps (then it is drawn as points, not joined)."""
    y = np.asarray(y, dtype=np.float64)
    return bool(len(y) and np.isnan(y).any())
