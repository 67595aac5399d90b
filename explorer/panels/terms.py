"""Per-step bound terms: the held-out KL term of each step t in the data's unit, i.e. where K is lost."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..state import AppState
from ._plots import StaggeredRefresh, TimeCursor, finite_xy, make_plot, sparse, steps_axis


class BoundTermsPanel(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plot = make_plot("KL per step (where K is lost)", "t", "KL", name="terms_plot")
        pi = self.plot.getPlotItem()
        self.pen = pg.mkPen(200, 80, 60, width=1.5)
        self.terms = pi.plot(pen=self.pen, symbol="o", symbolSize=4, symbolBrush=(200, 80, 60), symbolPen=None)
        self.cursor = TimeCursor(state, self.plot)
        self.empty = pg.TextItem("evaluated while training", color=(130, 130, 130), anchor=(0.5, 0.5))
        pi.addItem(self.empty, ignoreBounds=True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self._later = StaggeredRefresh(self, self.refresh, 80)
        state.curves_changed.connect(lambda: self._later(state.curves_live))
        state.session_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        c = self.state.curves
        pi = self.plot.getPlotItem()
        pi.setLabel("left", f"KL ({self.state.unit})")
        if c is None:
            return
        x, y = finite_xy(steps_axis(c.T), c.kl_bits_per_step)
        self.terms.setPen(None if sparse(c.kl_bits_per_step[1:]) else self.pen)  # t = 1 is an edge term
        self.terms.setData(x, y)
        if len(x):
            pi.setTitle(f"KL per step · largest at t = {int(x[np.argmax(y)])}", size="8pt")
            self.empty.setText("")
            pi.enableAutoRange()
        else:
            pi.setTitle("KL per step (where K is lost)", size="9pt")
            self.empty.setText("evaluated while training")
            self.empty.setPos(c.T / 2, 0.5)
            pi.setXRange(1, c.T, padding=0.02)
            pi.setYRange(0, 1, padding=0)
