"""Training curves: K in bits (train minibatches and held out) against iteration, with the paper's
Table 1 value and, where known, the ceiling of spec §12 as reference lines."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..state import AppState
from ._plots import PEN_CEILING, PEN_HELDOUT, PEN_REFERENCE, PEN_TRAIN, StaggeredRefresh, finite_xy, make_plot


class KCurvePanel(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plot = make_plot("Bound K on the log-likelihood", "iteration", "K", name="k_plot")
        pi = self.plot.getPlotItem()
        pi.addLegend(offset=(-8, -8), labelTextSize="8pt")
        pi.getViewBox().setDefaultPadding(0.08)
        self.train = pi.plot(name="K train (minibatch)", pen=PEN_TRAIN)
        self.heldout = pi.plot(name="K held out", pen=PEN_HELDOUT, symbol="o", symbolSize=4,
                               symbolBrush=PEN_HELDOUT.color(), symbolPen=None)
        self.paper = pg.InfiniteLine(angle=0, pen=PEN_REFERENCE, movable=False,
                                     label="paper {value:.3g}", labelOpts=dict(position=0.98, color=(40, 150, 60), anchors=[(1, 0.5), (1, 0.5)],
                                                                      fill=(255, 255, 255, 210)))
        self.ceiling = pg.InfiniteLine(angle=0, pen=PEN_CEILING, movable=False,
                                       label="ceiling {value:.4g}", labelOpts=dict(position=0.98, color=(200, 50, 50), anchors=[(1, 0.5), (1, 0.5)],
                                                                         fill=(255, 255, 255, 210)))
        pi.addItem(self.paper)
        pi.addItem(self.ceiling)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)
        state.session_changed.connect(self._on_session)
        state.history_reset.connect(self.refresh)
        self._later = StaggeredRefresh(self, self.refresh, 0)
        state.progress_added.connect(lambda _p: self._later(True))
        state.evaluated.connect(self.refresh)
        self._on_session()

    def _on_session(self) -> None:
        p = self.state.preset
        pi = self.plot.getPlotItem()
        pi.setLabel("left", f"K ({self.state.unit})")
        paper = p.paper_K if p is not None else None
        self.paper.setVisible(paper is not None)
        if paper is not None:
            self.paper.setValue(paper)
        ceiling = p.ceiling if p is not None else None
        self.ceiling.setVisible(ceiling is not None)
        if ceiling is not None:
            self.ceiling.setValue(ceiling)
        self.refresh()

    def refresh(self) -> None:
        h = self.state.history
        its = np.asarray(h.iteration, dtype=np.float64)
        self.train.setData(*finite_xy(its, h.K_train_bits))
        self.heldout.setData(*finite_xy(its, h.K_heldout_bits))
        unit = self.state.unit
        rec = self.state.recorded
        p = self.state.preset
        paper = (f" · paper: K = {p.paper_K:g}, K − L_null = {p.paper_K_minus_Lnull:g}"
                 if p is not None and p.paper_K is not None else "")
        if rec is not None and self.state.last_progress is None:
            # the file's exact K (all steps, n_eval examples) rather than the curve's last live estimate
            self.summary.setText(f"K = {rec['K_bits']:.3f} ± {rec['K_stderr_bits']:.3f} {unit} held out, exact over all "
                                 f"steps on {rec['n_eval']:,} examples (end of training), K − L_null = "
                                 f"{rec['K_minus_Lnull_bits']:.3f} {unit}{paper}")
        elif len(h) and math.isfinite(h.K_heldout_bits[-1]):
            p = self.state.preset
            txt = (f"K = {h.K_heldout_bits[-1]:.3f} {unit} held out, K − L_null = {h.K_minus_Lnull_bits[-1]:.3f} "
                   f"{unit}, at iteration {int(h.iteration[-1]):,}")
            if p is not None and p.paper_K is not None:
                txt += f" · paper: K = {p.paper_K:g}, K − L_null = {p.paper_K_minus_Lnull:g}"
            self.summary.setText(txt)
        elif self.state.evaluation is not None and math.isfinite(self.state.evaluation["K_heldout_bits"]):
            ev = self.state.evaluation
            self.summary.setText(f"K = {ev['K_heldout_bits']:.3f} {unit} held out, K − L_null = "
                                 f"{ev['K_minus_Lnull_bits']:.3f} {unit} (this model, {'untrained' if not self.state.is_trained else 'evaluated now'})")
        else:
            self.summary.setText(f"no training yet · K is reported in {unit}")
