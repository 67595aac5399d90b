"""Per-step entropy bounds (Eq. 24) as a band, with the model's own reverse-step entropy inside it:
the optimal reverse variance lies between β̃_t and β_t (models/README.md, Ceilings). The model's
entropy is evaluated at some steps only; those are drawn as points, never joined by lines."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ..state import AppState
from ._plots import PEN_HELDOUT, StaggeredRefresh, TimeCursor, finite_xy, make_plot, sparse, steps_axis


class EntropyPanel(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plot = make_plot("Entropy of a reverse step", "t",
                              "bits per dimension", name="entropy_plot")
        pi = self.plot.getPlotItem()
        pi.addLegend(offset=(8, 8), labelTextSize="8pt")
        self.upper = pg.PlotCurveItem(pen=pg.mkPen(120, 120, 200, width=1), name="upper bound")
        self.lower = pg.PlotCurveItem(pen=pg.mkPen(120, 160, 120, width=1), name="lower bound")
        self.band = pg.FillBetweenItem(self.lower, self.upper, brush=pg.mkBrush(150, 170, 230, 70))
        pi.addItem(self.band)
        pi.addItem(self.upper)
        pi.addItem(self.lower)
        self.model_entropy = pi.plot(name="model", pen=PEN_HELDOUT, symbol="o", symbolSize=5,
                                     symbolBrush=PEN_HELDOUT.color(), symbolPen=None)
        self.cursor = TimeCursor(state, self.plot)
        self.plot.setToolTip("Eq. 24's bounds on each reverse step's entropy. Binary models: the upper curve is not a "
                             "bound when p̄ differs from the data's mean activity")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self._later = StaggeredRefresh(self, self.refresh, 40)
        state.curves_changed.connect(lambda: self._later(state.curves_live))
        self.refresh()

    def refresh(self) -> None:
        c = self.state.curves
        if c is None:
            return
        t = steps_axis(c.T)
        lo = np.where(np.isfinite(c.entropy_lower_bits), c.entropy_lower_bits, c.entropy_upper_bits)
        self.upper.setData(t, np.ascontiguousarray(c.entropy_upper_bits))
        self.lower.setData(t, np.ascontiguousarray(lo))
        self.model_entropy.setPen(None if sparse(c.reverse_entropy_bits) else PEN_HELDOUT)
        self.model_entropy.setData(*finite_xy(t, c.reverse_entropy_bits))
