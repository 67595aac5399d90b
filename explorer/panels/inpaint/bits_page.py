"""The bits page: a binomial model's samples with some bits fixed (Table App.1's binomial r).

View: the bits to fix (click to cycle free → 1 → 0), then the samples at the slider's step, one per row.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from . import request as R


class BitsEditor(QWidget):
    """A row (wrapped) of D bits to fix: click cycles free → 1 → 0 → free; right click frees."""

    changed = Signal()
    CELL = 20

    def __init__(self, D: int = 0, parent=None):
        super().__init__(parent)
        self.bits = np.full(D, -1, dtype=np.int64)
        self.setMinimumHeight(self.CELL + 8)
        self.setMinimumWidth(self.CELL + 8)
        self.setToolTip("click a bit: free → 1 → 0 → free; right click: free")

    def set_length(self, D: int) -> None:
        self.bits = np.full(D, -1, dtype=np.int64)
        self._resize()
        self.update()

    def free_all(self) -> None:
        self.bits.fill(-1)
        self.update()
        self.changed.emit()

    def _cols(self) -> int:
        return max(1, min(len(self.bits), max(1, (self.width() - 8) // self.CELL)))

    def _resize(self) -> None:
        rows = math.ceil(len(self.bits) / self._cols()) if len(self.bits) else 1
        self.setMinimumHeight(rows * self.CELL + 8)

    def resizeEvent(self, ev):
        self._resize()
        super().resizeEvent(ev)

    def cell_at(self, x: float, y: float) -> int | None:
        c, r = int((x - 4) // self.CELL), int((y - 4) // self.CELL)
        i = r * self._cols() + c
        if 0 <= c < self._cols() and r >= 0 and 0 <= i < len(self.bits):
            return i
        return None

    def set_bit(self, i: int, v: int) -> None:
        self.bits[i] = v
        self.update()
        self.changed.emit()

    def mousePressEvent(self, ev):
        i = self.cell_at(ev.position().x(), ev.position().y())
        if i is None:
            return
        if ev.button() == Qt.MouseButton.RightButton:
            self.set_bit(i, -1)
        else:
            self.set_bit(i, {-1: 1, 1: 0, 0: -1}[int(self.bits[i])])

    def paintEvent(self, ev):
        p = QPainter(self)
        cols = self._cols()
        for i, b in enumerate(self.bits):
            r, c = divmod(i, cols)
            rect = QRectF(4 + c * self.CELL, 4 + r * self.CELL, self.CELL - 2, self.CELL - 2)
            p.fillRect(rect, QColor(*{-1: (110, 110, 110), 1: (245, 245, 245), 0: (20, 20, 20)}[int(b)]))
            p.setPen(QPen(QColor(255, 60, 160) if b >= 0 else QColor(60, 60, 60)))
            p.drawRect(rect)
            if b < 0:
                p.setPen(QColor(200, 200, 200))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "·")
        p.end()


class BitsPage(QWidget):
    """Views and controls of the bits page; the panel owns the run."""

    message = Signal(str, str)
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(2)
        v.addWidget(QLabel("bits to fix (grey = free, white = 1, black = 0)"))
        self.editor = BitsEditor(0)
        self.editor.setObjectName("inpaint_bits")
        self.editor.changed.connect(self.changed)
        v.addWidget(self.editor)
        self.title = QLabel("samples (one per row) appear here (Run)")
        v.addWidget(self.title)
        self.view = pg.GraphicsView(background="#202124")
        self.view.setAcceptDrops(False)
        self.view.viewport().setAcceptDrops(False)
        self.view.setMinimumSize(80, 80)
        self.vb = pg.ViewBox(invertY=True, enableMenu=False)
        self.view.setCentralItem(self.vb)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.item)
        v.addWidget(self.view, 1)

        self.controls = QWidget()
        f = QFormLayout(self.controls)
        f.setContentsMargins(0, 0, 0, 0)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("inpaint_method")
        self.method_combo.currentIndexChanged.connect(self._on_method)
        f.addRow("Method", self.method_combo)
        hint = QLabel("click bits above the samples to fix them to 1 or 0; the free ones are sampled")
        hint.setWordWrap(True)
        hint.setMinimumWidth(10)
        f.addRow(hint)
        free = QPushButton("Free all bits")
        free.clicked.connect(self.editor.free_all)
        f.addRow(free)

    def reset(self, model) -> None:
        self.model = model
        self.editor.set_length(0 if model is None else int(np.prod(model.config.example_shape)))
        self.clear_results()
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for m in R.methods_for("bits"):
            t = R.METHOD_TEXT["bits"][m]
            self.method_combo.addItem(t.label, m)
            self.method_combo.setItemData(self.method_combo.count() - 1, t.tip, Qt.ItemDataRole.ToolTipRole)
        self.method_combo.blockSignals(False)
        self._on_method()

    @property
    def method(self) -> str:
        return self.method_combo.currentData() or R.methods_for("bits")[0]

    def _on_method(self, *_):
        self.method_combo.setToolTip(R.METHOD_TEXT["bits"][self.method].tip)
        self.changed.emit()

    def form(self, sampling: R.Sampling) -> R.BitsForm:
        return R.BitsForm(bits=self.editor.bits.copy(), method=self.method, sampling=sampling)

    def show_state(self, x: np.ndarray, t: int) -> None:
        im = x.reshape(x.shape[0], -1).astype(np.float32)
        first = self.item.image is None or self.item.image.shape != im.shape
        self.item.setImage(im, autoLevels=False, levels=(0.0, 1.0))
        if first:
            self.vb.autoRange(padding=0.02)
        self.title.setText(f"{im.shape[0]} samples (one per row) · t = {t}")

    def clear_results(self) -> None:
        self.item.clear()
        self.title.setText("samples (one per row) appear here (Run)")
