"""The plane page: a 2-D model's posterior under a painted region or a Gaussian r(x) (App. C).

One canvas in the model's normalised units: the data (or the model's own samples) in grey under the
painted region (magenta), and the conditioned samples x^t drawn over both at the step the slider
shows.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ...mask import MaskModel
from .canvas import MaskCanvas, MaskTools
from . import request as R

BACKGROUND = 0.125  # the plane's fill, the canvas's background grey (so the plane is never black)


class PlanePage(QWidget):
    """Views and controls of the plane page; the panel owns the run."""

    message = Signal(str, str)
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        self.region_model = MaskModel((R.PLANE_GRID, R.PLANE_GRID), brush_size=6)
        self._build_view()
        self._build_controls()
        self._on_r()

    def _build_view(self) -> None:
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(1)
        self.title = QLabel()
        self.title.setMinimumWidth(10)
        v.addWidget(self.title)
        self.plane = MaskCanvas(self.region_model, invert_y=False)
        self.plane.setObjectName("inpaint_plane")
        self.plane.setMinimumSize(120, 120)
        x0, x1, y0, y1 = R.PLANE_EXTENT
        self.plane.set_image(np.full((R.PLANE_GRID, R.PLANE_GRID), BACKGROUND, np.float32),
                             rect=(x0, y0, x1 - x0, y1 - y0))
        self.plane.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        grid = pg.GridItem()
        grid.setZValue(2)
        self.plane.vb.addItem(grid)
        self.data_item = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(200, 200, 200, 110))
        self.data_item.setZValue(5)  # under the paint layer (overlay z = 10)
        self.plane.vb.addItem(self.data_item)
        self.scatter = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(90, 200, 255, 220))
        self.scatter.setZValue(30)
        self.plane.vb.addItem(self.scatter)
        pen = QPen(QColor(255, 200, 40))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.gauss_items = []
        for k in (1, 2):
            it = pg.QtWidgets.QGraphicsEllipseItem()
            p = QPen(pen)
            if k == 2:
                p.setStyle(Qt.PenStyle.DashLine)
            it.setPen(p)
            it.setZValue(25)
            self.plane.vb.addItem(it)
            self.gauss_items.append(it)
        self.plane.clicked.connect(self._on_click)
        self.region_model.add_listener(lambda _bbox: self.changed.emit())
        v.addWidget(self.plane, 1)

    def _build_controls(self) -> None:
        self.controls = QWidget()
        f = QFormLayout(self.controls)
        f.setContentsMargins(0, 0, 0, 0)
        f.setVerticalSpacing(3)
        self.region_combo = QComboBox()
        self.region_combo.addItem("painted region", "region")
        self.region_combo.addItem("Gaussian", "gaussian")
        self.region_combo.currentIndexChanged.connect(self._on_r)
        f.addRow("r(x)", self.region_combo)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("inpaint_method")
        self.method_combo.currentIndexChanged.connect(self._on_method)
        f.addRow("Method", self.method_combo)
        self.centre_row = QWidget()
        cr = QHBoxLayout(self.centre_row)
        cr.setContentsMargins(0, 0, 0, 0)
        self.centre_x, self.centre_y = QDoubleSpinBox(), QDoubleSpinBox()
        for sp in (self.centre_x, self.centre_y):
            sp.setRange(-10, 10)
            sp.setDecimals(2)
            sp.setSingleStep(0.1)
            cr.addWidget(sp)
        self.centre_x.setValue(1.0)
        f.addRow("centre", self.centre_row)
        self.gauss_std = QDoubleSpinBox()
        self.gauss_std.setRange(0.02, 10)
        self.gauss_std.setDecimals(2)
        self.gauss_std.setSingleStep(0.05)
        self.gauss_std.setValue(0.5)
        f.addRow("std", self.gauss_std)
        for sp in (self.centre_x, self.centre_y, self.gauss_std):
            sp.valueChanged.connect(self._update_gauss)
        self.softness = QDoubleSpinBox()
        self.softness.setObjectName("inpaint_softness")
        self.softness.setRange(0.0, 5.0)
        self.softness.setDecimals(2)
        self.softness.setSingleStep(0.05)
        self.softness.setValue(0.25)
        self.softness.setToolTip("r = 1 in the painted region and falls off as exp(−d²/2s²) with the distance d\n"
                                 "from it; 0 = the bare painted indicator (it only acts at the region's edge)")
        f.addRow("softness", self.softness)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setMinimumWidth(10)
        f.addRow(self.hint)
        self.tools = MaskTools(self.plane, files=False)
        f.addRow(self.tools)
        self._form = f

    # ---- model ------------------------------------------------------------------------------------
    def reset(self, model, underlay: np.ndarray | None, what: str) -> None:
        """A new model: clear the region and results; draw ``underlay`` [n, 2] (normalised) in grey."""
        self.model = model
        self.region_model.reset((R.PLANE_GRID, R.PLANE_GRID))
        self.region_combo.setCurrentIndex(0)
        self.set_underlay(underlay, what)
        self.clear_results()
        self._fill_methods()
        x0, x1, y0, y1 = R.PLANE_EXTENT
        self.plane.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)

    def set_underlay(self, pts: np.ndarray | None, what: str) -> None:
        if pts is None or not len(pts):
            self.data_item.setData([], [])
            self.title.setText("paint where r is high")
            self.title.setToolTip("x₁, x₂ in the model's normalised units")
            return
        pts = np.asarray(pts, dtype=np.float32)
        self.data_item.setData(pts[:, 0], pts[:, 1])
        self.title.setText(f"{what} (grey) · r (magenta) · samples (blue)")
        self.title.setToolTip(f"grey: {what}; magenta: the painted r(x); blue: the conditioned samples at the step\n"
                              "the slider shows; x₁, x₂ in the model's normalised units")

    def _fill_methods(self) -> None:
        cur = self.method_combo.currentData()
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for m in R.methods_for(self.r):
            t = R.METHOD_TEXT[self.r][m]
            self.method_combo.addItem(t.label, m)
            self.method_combo.setItemData(self.method_combo.count() - 1, t.tip, Qt.ItemDataRole.ToolTipRole)
        self.method_combo.setCurrentIndex(max(self.method_combo.findData(cur), 0))
        self.method_combo.blockSignals(False)
        self._on_method()

    @property
    def r(self) -> str:
        return self.region_combo.currentData()

    @property
    def method(self) -> str:
        return self.method_combo.currentData() or R.methods_for(self.r)[0]

    def _on_method(self, *_):
        self.method_combo.setToolTip(R.METHOD_TEXT[self.r][self.method].tip)
        self.changed.emit()

    def _on_r(self, *_):
        gauss = self.r == "gaussian"
        f = self._form
        f.setRowVisible(self.centre_row, gauss)
        f.setRowVisible(self.gauss_std, gauss)
        f.setRowVisible(self.softness, not gauss)
        f.setRowVisible(self.tools, not gauss)
        for it in self.gauss_items:
            it.setVisible(gauss)
        self.plane.set_editable(not gauss)
        self.plane.set_overlay_visible(not gauss)
        self.hint.setText("click the plane to move the Gaussian's centre" if gauss else
                          "paint where r is high (brush, rectangle, fill); r = 1 inside, falling off outside")
        self._update_gauss()
        if self.method_combo.count():
            self._fill_methods()
        self.changed.emit()

    def _on_click(self, x: float, y: float) -> None:
        if self.r == "gaussian":
            self.centre_x.setValue(x)
            self.centre_y.setValue(y)

    def _update_gauss(self, *_):
        cx, cy, s = self.centre_x.value(), self.centre_y.value(), self.gauss_std.value()
        for k, it in zip((1, 2), self.gauss_items):
            it.setRect(QRectF(cx - k * s, cy - k * s, 2 * k * s, 2 * k * s))
        self.changed.emit()

    # ---- the run ----------------------------------------------------------------------------------
    def form(self, sampling: R.Sampling) -> R.PlaneForm:
        return R.PlaneForm(r=self.r, weights=self.region_model.fill.astype(np.float32), softness=self.softness.value(),
                           centre=(self.centre_x.value(), self.centre_y.value()), std=self.gauss_std.value(),
                           method=self.method, sampling=sampling)

    def show_state(self, x: np.ndarray, t: int) -> None:
        ok = np.isfinite(x).all(axis=1)
        self.scatter.setData(x[ok, 0], x[ok, 1])

    def clear_results(self) -> None:
        self.scatter.setData([], [])

    def points_png(self, x: np.ndarray, size: int = 256) -> np.ndarray:
        """Samples [N, 2] → a white-on-black image [size, size] over the plane's extent."""
        out = np.zeros((size, size), np.float32)
        x0, x1, y0, y1 = R.PLANE_EXTENT
        c = ((x[:, 0] - x0) / (x1 - x0) * (size - 1)).round()
        r = ((y1 - x[:, 1]) / (y1 - y0) * (size - 1)).round()
        ok = np.isfinite(c) & np.isfinite(r) & (c >= 0) & (c < size) & (r >= 0) & (r < size)
        out[r[ok].astype(int), c[ok].astype(int)] = 1.0
        return out
