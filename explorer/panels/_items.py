"""A fast point cloud item. pyqtgraph's ScatterPlotItem rebuilds per-point symbol keys in Python on
every ``setData`` (≈ 5 µs a point); for thousands of points redrawn at 60 frames per second this item
keeps the coordinates as one float64 array and stamps a pre-rendered dot with a single
``QPainter.drawPixmapFragments`` call (what ScatterPlotItem does when painting, minus the per-point
bookkeeping). Dots have a fixed size in pixels."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pyqtgraph.functions as fn
from pyqtgraph.Qt import internals
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPixmap


def _dot(size: float, color: QColor) -> QPixmap:
    d = int(math.ceil(size)) + 2
    pm = QPixmap(d, d)
    pm.fill(Qt.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing, True)
    p.setPen(Qt.NoPen)
    p.setBrush(QBrush(color))
    off = (d - size) / 2
    p.drawEllipse(QRectF(off, off, size, size))
    p.end()
    return pm


class FastPoints(pg.GraphicsObject):
    """Dots of ``size`` pixels at positions [N, 2]; update with :meth:`setData` (same item reused)."""

    def __init__(self, size: float = 3.5, color=(30, 100, 200, 170)):
        super().__init__()
        self._size = float(size)
        self._pixmap = _dot(self._size, QColor(*color))
        self._frags = internals.PrimitiveArray(QPainter.PixmapFragment, 10)
        self._xy = np.empty((0, 2), dtype=np.float64)
        self._bounds = QRectF()

    def setData(self, pos: np.ndarray) -> None:  # noqa: N802 - pyqtgraph naming
        """pos: [N, 2] (any float dtype); non-finite rows are not drawn."""
        pos = np.asarray(pos)[:, :2]
        ok = np.isfinite(pos).all(axis=1)
        xy = np.ascontiguousarray(pos if ok.all() else pos[ok], dtype=np.float64)
        self._xy = xy
        if len(xy):
            lo, hi = xy.min(axis=0), xy.max(axis=0)
            rect = QRectF(float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        else:
            rect = QRectF()
        if rect != self._bounds:
            self.prepareGeometryChange()
            self._bounds = rect
        self.update()

    def setColor(self, color) -> None:  # noqa: N802
        self._pixmap = _dot(self._size, QColor(*color) if isinstance(color, tuple) else QColor(color))
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        px = self.pixelLength(pg.Point(1, 0)) if self.scene() is not None else 0.0
        pad = (px or 0.0) * (self._size + 2)
        return self._bounds.adjusted(-pad, -pad, pad, pad)

    def dataBounds(self, ax, frac=1.0, orthoRange=None):  # noqa: N802 - lets the view auto-range
        if not len(self._xy):
            return (None, None)
        r = self._bounds
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())

    def paint(self, p, *_args) -> None:
        n = len(self._xy)
        if not n:
            return
        pts = fn.transformCoordinates(p.transform(), self._xy.T)  # [2, n] device pixels
        pts = fn.clip_array(pts, -2**30, 2**30)
        p.resetTransform()
        self._frags.resize(n)
        frags = self._frags.ndarray()
        frags[:, 0:2] = pts.T
        w = self._pixmap.width()
        frags[:, 2:6] = (0.0, 0.0, w, w)
        frags[:, 6:10] = (1.0, 1.0, 0.0, 1.0)
        p.drawPixmapFragments(*self._frags.drawargs(), self._pixmap)

    def __len__(self) -> int:
        return len(self._xy)
