"""Draw a 2-D distribution: paint with the mouse and points are sprayed where the brush goes; then
train on them. One undo step per stroke (Ctrl+Z), brush size with [ and ], a visible circular brush."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from ..drawn import MIN_POINTS, spray
from ..state import AppState
from ._items import FastPoints

EXTENT = 1.0  # the canvas shows [−1, 1]²


class _PaintViewBox(pg.ViewBox):
    """A view box whose left-button drags and clicks paint instead of panning."""

    painted = Signal(float, float, bool)  # x, y, is the start of a stroke
    hovered = Signal(float, float)

    def __init__(self):
        super().__init__(enableMenu=False)
        self.setMouseEnabled(False, False)
        self.setAcceptHoverEvents(True)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painted.emit(p.x(), p.y(), bool(ev.isStart()))

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painted.emit(p.x(), p.y(), True)

    def hoverEvent(self, ev):
        if ev.isExit():
            return
        p = self.mapSceneToView(ev.scenePos())
        self.hovered.emit(p.x(), p.y())


class DrawPanel(QWidget):
    """Spray points on the plane; ``use_points`` emits them (raw plane coordinates [N, 2])."""

    use_points = Signal(object)

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._strokes: list[np.ndarray] = []
        self._redo: list[np.ndarray] = []
        self._rng = np.random.default_rng(7)
        self.view = _PaintViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view)
        self.plot.setObjectName("draw_plot")
        self.view.setAspectLocked(True)
        self.view.setRange(xRange=(-EXTENT, EXTENT), yRange=(-EXTENT, EXTENT), padding=0.02)
        self.plot.getPlotItem().hideButtons()
        self.points_item = FastPoints(3.5, (30, 100, 200, 170))
        self.brush_item = pg.QtWidgets.QGraphicsEllipseItem(-0.1, -0.1, 0.2, 0.2)
        self.brush_item.setPen(pg.mkPen(200, 80, 40, 200, width=1.5, cosmetic=True))
        self.view.addItem(self.points_item)
        self.view.addItem(self.brush_item)
        self.brush = QDoubleSpinBox()
        self.brush.setRange(0.01, 0.5)
        self.brush.setSingleStep(0.01)
        self.brush.setValue(0.08)
        self.brush.setPrefix("brush ")
        self.brush.setToolTip("Brush radius ([ smaller, ] larger)")
        self.density = QSpinBox()
        self.density.setRange(1, 100)
        self.density.setValue(12)
        self.density.setSuffix(" pts/move")
        self.density.setToolTip("Points sprayed per mouse movement")
        self.count = QLabel()
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last stroke (Ctrl+Z)")
        self.clear_button = QPushButton("Clear")
        self.train_button = QPushButton("Use these points")
        self.train_button.setToolTip("Make the painted points the data set (a new untrained model), then press Train")
        self.train_button.setDefault(True)
        bar = QHBoxLayout()
        for w in (self.brush, self.density, self.undo_button, self.clear_button, self.count):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.train_button)
        help_ = QLabel("Paint with the left mouse button: points are sprayed where you paint. "
                       "Then “Use these points” and Train.")
        help_.setStyleSheet("color: palette(mid);")
        help_.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        lay.addWidget(help_)
        self.view.painted.connect(self.paint_at)
        self.view.hovered.connect(self._move_brush)
        self.brush.valueChanged.connect(lambda _v: self._move_brush(*self._brush_pos))
        self.undo_button.clicked.connect(self.undo)
        self.clear_button.clicked.connect(self.clear)
        self.train_button.clicked.connect(self._emit_points)
        for seq, fn in ((QKeySequence.Undo, self.undo), (QKeySequence.Redo, self.redo),
                        (QKeySequence("["), lambda: self.brush.setValue(self.brush.value() / 1.25)),
                        (QKeySequence("]"), lambda: self.brush.setValue(self.brush.value() * 1.25))):
            sc = QShortcut(seq, self)
            sc.setContext(Qt.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        self._brush_pos = (0.0, 0.0)
        self._move_brush(0.0, 0.0)
        self._refresh()

    @property
    def points(self) -> np.ndarray:
        """Every painted point, raw plane coordinates float32 [N, 2]."""
        if not self._strokes:
            return np.empty((0, 2), np.float32)
        return np.concatenate(self._strokes)

    def paint_at(self, x: float, y: float, start: bool = False) -> None:
        """Spray points around (x, y); ``start`` begins a new stroke (one undo step)."""
        pts = spray((x, y), self.brush.value(), self.density.value(), self._rng)
        pts = pts[(np.abs(pts) <= EXTENT * 1.05).all(axis=1)]
        if start or not self._strokes:
            self._strokes.append(pts)
            self._redo.clear()
        else:
            self._strokes[-1] = np.concatenate([self._strokes[-1], pts])
        self._move_brush(x, y)
        self._refresh()

    def undo(self) -> None:
        if self._strokes:
            self._redo.append(self._strokes.pop())
            self._refresh()

    def redo(self) -> None:
        if self._redo:
            self._strokes.append(self._redo.pop())
            self._refresh()

    def clear(self) -> None:
        if self._strokes:
            self._redo = list(reversed(self._strokes))
            self._strokes = []
            self._refresh()

    def _move_brush(self, x: float, y: float) -> None:
        self._brush_pos = (x, y)
        r = self.brush.value()
        self.brush_item.setRect(x - r, y - r, 2 * r, 2 * r)

    def _refresh(self) -> None:
        pts = self.points
        self.points_item.setData(pts)
        n = len(pts)
        self.count.setText(f"{n:,} points")
        self.train_button.setEnabled(n >= MIN_POINTS)
        self.undo_button.setEnabled(bool(self._strokes))

    def _emit_points(self) -> None:
        if len(self.points) >= MIN_POINTS:
            self.use_points.emit(self.points.copy())

