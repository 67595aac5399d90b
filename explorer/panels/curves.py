"""Training curves: K in bits against iteration, with the paper's Table 1 value and, where known, the
class ceiling (models/README.md, Ceilings) as reference lines.

What is drawn agrees with the K the app prints (:meth:`explorer.state.AppState.k_reading`): the
training minibatches' estimate (unbiased, noisy), the held-out K only where a record marks it
unbiased, and a file's exact end-of-training K as a point with its standard error."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..state import AppState
from ._plots import PEN_CEILING, PEN_HELDOUT, PEN_REFERENCE, PEN_TRAIN, StaggeredRefresh, finite_xy, make_plot

EXACT_COLOUR = (20, 20, 20)
REFERENCE_Z = -5  # the paper / ceiling lines (and their labels) are drawn under the curves and points
LEGEND_Z = -0.5  # the legend (a child of the view box) under the view's items (z 0), over its background


class KCurvePanel(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plot = make_plot("Bound K on the log-likelihood", "iteration", "K", name="k_plot", long=True)
        pi = self.plot.getPlotItem()
        self.legend = pi.addLegend(offset=(-8, -8), labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 215))
        self.legend.setZValue(LEGEND_Z)  # under the curves and the ringed K: the legend never hides a point
        self.legend_corner = "bottom right"
        self.legend_names = ["K train minibatches", "K held out", "K exact (end of training)"]
        pi.getViewBox().setDefaultPadding(0.08)
        self.train = pi.plot(name="K train minibatches", pen=PEN_TRAIN)
        self.heldout = pi.plot(name="K held out", pen=PEN_HELDOUT, symbol="o", symbolSize=4,
                               symbolBrush=PEN_HELDOUT.color(), symbolPen=None)
        self.exact = pi.plot(name="K exact (end of training)", pen=None, symbol="d", symbolSize=10,
                             symbolBrush=EXACT_COLOUR, symbolPen=None)
        self.current = pi.plot(pen=None, symbol="o", symbolSize=12, symbolBrush=None,
                               symbolPen=pg.mkPen(*EXACT_COLOUR, width=1.5))  # the K printed below
        self.exact_err = pg.ErrorBarItem(pen=pg.mkPen(*EXACT_COLOUR, width=1.5), beam=0)
        pi.addItem(self.exact_err)
        opts = dict(anchors=[(1, 0.5), (1, 0.5)], fill=(255, 255, 255, 210))
        # the two labels sit at different places along their lines (heartbeat's are 0.09 bits apart), both
        # left of the last iteration, where the ringed K is (at ~0.93 of the width with the view's padding)
        self.paper = pg.InfiniteLine(angle=0, pen=PEN_REFERENCE, movable=False, label="paper {value:.3g}",
                                     labelOpts=dict(color=(40, 150, 60), position=0.86, **opts))
        self.ceiling = pg.InfiniteLine(angle=0, pen=PEN_CEILING, movable=False, label="ceiling {value:.4g}",
                                       labelOpts=dict(color=(200, 50, 50), position=0.5, **opts))
        for line in (self.paper, self.ceiling):
            line.setZValue(REFERENCE_Z)  # reference lines and their labels under the data
            pi.addItem(line)
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
        self.plot.getPlotItem().setLabel("left", f"K ({self.state.unit})")
        for line, value in ((self.paper, p.paper_K if p is not None else None),
                            (self.ceiling, p.ceiling if p is not None else None)):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(value)
        self.refresh()

    def drawn_K(self) -> float | None:
        """The K this plot rings as the current one (the figure printed under it), or None."""
        _x, y = self.current.getData()
        return float(y[-1]) if y is not None and len(y) else None

    def refresh(self) -> None:
        s = self.state
        h = s.history
        its = np.asarray(h.iteration, dtype=np.float64)
        self.train.setData(*finite_xy(its, h.K_train_bits))
        k = s.k_reading()
        hx, hy = h.heldout_unbiased()
        if k.source == "live" and not len(hx):  # a one-off evaluation of this model
            hx, hy = np.array([float(k.iteration)]), np.array([k.bits])
        self.heldout.setData(hx, hy)
        if k.source == "exact":
            x = float(its[-1]) if len(its) else float(k.iteration)
            self.exact.setData([x], [k.bits])
            err = k.stderr_bits if math.isfinite(k.stderr_bits) else 0.0
            self.exact_err.setData(x=np.array([x]), y=np.array([k.bits]), height=np.array([2 * err]))
            self.exact_err.setVisible(True)
        else:
            self.exact.setData([], [])
            self.exact_err.setVisible(False)
        if k.known:
            x = float(its[-1]) if (k.source == "exact" and len(its)) else float(k.iteration)
            self.current.setData([x], [k.bits])
        else:
            self.current.setData([], [])
        self._sync_legend()
        self._place_legend(k.bits if k.known else None)
        unit = s.unit
        p = s.preset
        paper = (f" · paper: K = {p.paper_K:g}, K − L_null = {p.paper_K_minus_Lnull:g}"
                 if p is not None and p.paper_K is not None else "")
        gain = f", K − L_null = {k.minus_null_bits:.3f} {unit}" if math.isfinite(k.minus_null_bits) else ""
        if k.source == "exact":
            self.summary.setText(f"K = {k.bits:.3f} ± {k.stderr_bits:.3f} {unit} held out, exact over all steps on "
                                 f"{k.n_eval:,} examples (end of training){gain}{paper}")
        elif k.source == "live":
            n = f" on {k.n_eval:,} examples" if k.n_eval else ""
            when = f"at iteration {k.iteration:,}" if s.is_trained else "untrained"
            self.summary.setText(f"K = {k.bits:.3f} {unit} held out (unbiased estimate{n}), {when}{gain}{paper}")
        elif k.source == "train":
            self.summary.setText(f"K = {k.bits:.3f} {unit} on the training minibatches at iteration {k.iteration:,}"
                                 f" (no unbiased held-out figure in this record){paper}")
        else:
            self.summary.setText(f"no K yet · K is reported in {unit}{paper}")

    def _sync_legend(self) -> None:
        """The legend names only what is drawn (a bundled model: the training curve and the exact K), so
        it stays two rows high on a small K plot (1280×800)."""
        shown = [(item, name) for item, name in ((self.train, "K train minibatches"), (self.heldout, "K held out"),
                                                 (self.exact, "K exact (end of training)"))
                 if (y := item.getData()[1]) is not None and len(y)]
        if [name for _i, name in shown] != self.legend_names:
            self.legend.clear()
            for item, name in shown:
                self.legend.addItem(item, name)
            self.legend_names = [name for _i, name in shown]

    def _place_legend(self, k_bits: float | None) -> None:
        """The legend goes where the ringed K and the reference labels are not: bottom right while K is
        in the upper part of what is drawn (a curve rising to it) and no reference line runs low; top
        left when K sits low (below the paper's value, or alone) or a reference line runs along the
        bottom (bark's paper K is far below the model's)."""
        refs = [line.value() for line in (self.paper, self.ceiling) if line.isVisible()]
        values = [y for item in (self.train, self.heldout) if (y := item.getData()[1]) is not None and len(y)]
        corner = "bottom right"
        if k_bits is not None and math.isfinite(k_bits):
            ys = np.concatenate(values + [np.array(refs + [k_bits], dtype=np.float64)])
            lo, hi = float(ys.min()), float(ys.max())
            span = hi - lo
            if span <= 0 or (k_bits - lo) / span < 0.6 or any((r - lo) / span < 0.4 for r in refs):
                corner = "top left"
        if corner != self.legend_corner:
            self.legend_corner = corner
            if corner == "top left":
                self.legend.anchor(itemPos=(0, 0), parentPos=(0, 0), offset=(8, 8))
            else:
                self.legend.anchor(itemPos=(1, 1), parentPos=(1, 1), offset=(-8, -8))
