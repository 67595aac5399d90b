"""The diffusion-rate schedule: β_t (log scale) and ᾱ_t against t, the β_1 cap on K − L_null
(models/README.md, Ceilings), and — for a Gaussian model that has not been trained — handles to drag β by hand.

Editing: handle 0 sets β_1 itself (the fixed first step that caps K). The other handles sit at evenly
spaced t ≥ 2; dragging one shifts logit β_t there, and the shift is interpolated linearly in t between
handles, so the shape of the schedule one started from is kept between them. Every edit goes through
``state.set_betas`` and the ᾱ, entropy-bound and cap displays update at once."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..state import AppState
from ._plots import PEN_BETA, PEN_FAINT, StaggeredRefresh, TimeCursor, make_plot, steps_axis

BETA_MIN, BETA_MAX = 1e-6, 0.999
N_HANDLES = 10


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class _Handles(pg.ScatterPlotItem):
    """Draggable points: emits (index, y in view coordinates) while dragging vertically."""

    sigHandleMoved = Signal(int, float)
    sigDragFinished = Signal()

    def __init__(self):
        super().__init__(size=11, pen=pg.mkPen(120, 60, 0, width=1.5), brush=pg.mkBrush(255, 170, 60, 220),
                         hoverable=True, hoverBrush=pg.mkBrush(255, 220, 120), tip=None)
        self.editable = True
        self._drag: int | None = None

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.LeftButton or not self.editable:
            ev.ignore()
            return
        if ev.isStart():
            pts = self.pointsAt(ev.buttonDownPos())
            if len(pts) == 0:
                ev.ignore()
                return
            self._drag = int(pts[0].index())
        if self._drag is None:
            ev.ignore()
            return
        ev.accept()
        self.sigHandleMoved.emit(self._drag, float(ev.pos().y()))
        if ev.isFinish():
            self._drag = None
            self.sigDragFinished.emit()


class SchedulePanel(QWidget):
    """β_t and ᾱ_t plots; hand-editing for untrained Gaussian models."""

    edited = Signal()  # a drag or reset changed β (after the state was updated)

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._base: np.ndarray | None = None  # the schedule that handle shifts are relative to
        self._deltas = np.zeros(N_HANDLES)
        self._beta1: float | None = None
        self._handle_t = np.array([1.0])
        self.beta_plot = make_plot("Diffusion rate β_t", "t", "β_t", name="beta_plot")
        left = self.beta_plot.getPlotItem().getAxis("left")
        left.setLogMode(True)
        self.abar_plot = make_plot("ᾱ_t = ∏(1 − β_s): signal left", "t", "ᾱ_t", name="alpha_bar_plot")
        self.initial = self.beta_plot.plot(pen=PEN_FAINT)
        self.beta = self.beta_plot.plot(pen=PEN_BETA)
        self.handles = _Handles()
        self.beta_plot.addItem(self.handles)
        self.abar = self.abar_plot.plot(pen=pg.mkPen(60, 120, 200, width=2), fillLevel=0,
                                        fillBrush=pg.mkBrush(60, 120, 200, 40))
        self.abar_plot.setYRange(0, 1.02, padding=0)
        self.cursors = (TimeCursor(state, self.beta_plot), TimeCursor(state, self.abar_plot))
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.RichText)
        self.info.setToolTip("β₁ caps the bound: K − L_null ≤ ½·log₂((1 − ᾱ_T)/β₁) bits per dimension (models/README.md, Ceilings)")
        self.hint = QLabel()
        self.hint.setStyleSheet("color: palette(mid);")
        self.hint.setWordWrap(True)
        self.reset = QPushButton("Reset β")
        self.reset.setToolTip("Undo hand edits: back to the schedule before dragging")
        plots = QHBoxLayout()
        plots.setContentsMargins(0, 0, 0, 0)
        plots.addWidget(self.beta_plot, 1)
        plots.addWidget(self.abar_plot, 1)
        row = QHBoxLayout()
        row.addWidget(self.info, 1)
        row.addWidget(self.reset)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(plots, 1)
        lay.addLayout(row)
        lay.addWidget(self.hint)
        self.handles.sigHandleMoved.connect(self._on_drag)
        self.reset.clicked.connect(self.reset_edits)
        self._pending = None
        self._apply_timer = QTimer(self, singleShot=True, interval=0)
        self._apply_timer.timeout.connect(self._apply_pending)
        state.session_changed.connect(self._on_session)
        state.schedule_changed.connect(self._on_schedule_changed)
        self._later = StaggeredRefresh(self, self.refresh, 120)
        state.curves_changed.connect(lambda: self._later(state.curves_live))
        state.training_changed.connect(lambda _s: self._update_editable())
        self._on_session()

    # ---- editing ------------------------------------------------------------------------------------
    @property
    def editable(self) -> bool:
        s = self.state
        return (s.model is not None and s.model.is_gaussian and not s.is_trained and s.training == "idle")

    def _update_editable(self) -> None:
        ed = self.editable
        self.handles.editable = ed
        self.handles.setVisible(ed)
        self.reset.setVisible(ed)
        s = self.state
        if s.model is None:
            self.hint.setText("")
        elif not s.model.is_gaussian:
            self.hint.setText("binomial diffusion uses the fixed schedule β_t = 1/(T − t + 1)")
        elif ed:
            self.hint.setText("drag the handles to draw β (the first is β₁, which caps K), or pick a named schedule")
        elif s.training != "idle":
            self.hint.setText("the schedule is read-only while training"
                              + (" (β₂..T are being learned)" if s.model.config.learn_beta else ""))
        else:
            self.hint.setText("this model is trained; start a new model to edit β")

    def _rebase(self) -> None:
        c = self.state.curves
        if c is None:
            return
        self._base = np.array(c.beta, dtype=np.float64)
        self._deltas = np.zeros(N_HANDLES)
        self._beta1 = float(self._base[0])
        T = len(self._base)
        n = min(N_HANDLES, T - 1)
        self._deltas = np.zeros(n)
        self._handle_t = np.concatenate([[1.0], np.linspace(2, T, n)]) if T > 2 else np.array([1.0, 2.0])[: T]

    def _on_session(self) -> None:
        self._rebase()
        c = self.state.curves
        if c is not None:
            self.initial.setData(steps_axis(c.T), np.log10(np.clip(c.beta, 1e-12, None)))
        self._update_editable()
        self.refresh()

    def _on_schedule_changed(self) -> None:
        if self.state.schedule_source != "drawn":  # a named schedule replaced the drawn one
            self._rebase()
            c = self.state.curves
            self.initial.setData(steps_axis(c.T), np.log10(np.clip(c.beta, 1e-12, None)))
        self._update_editable()

    def drawn_betas(self) -> np.ndarray:
        """β [T] from the base schedule, the handle shifts and β_1."""
        base = self._base
        T = len(base)
        beta = base.copy()
        if T > 1 and len(self._deltas):
            t = np.arange(2, T + 1, dtype=np.float64)
            shift = np.interp(t, self._handle_t[1:], self._deltas)
            beta[1:] = _sigmoid(_logit(np.clip(base[1:], BETA_MIN, BETA_MAX)) + shift)
        beta[0] = self._beta1
        return np.clip(beta, BETA_MIN, BETA_MAX)

    def move_handle(self, index: int, beta_value: float) -> None:
        """Set handle ``index`` to β = ``beta_value`` (index 0 is β_1). What a drag does."""
        if not self.editable or self._base is None:
            return
        beta_value = float(np.clip(beta_value, BETA_MIN, BETA_MAX))
        if index == 0:
            self._beta1 = beta_value
        else:
            j = index - 1
            t = self._handle_t[index]
            base_t = float(np.interp(t, np.arange(1, len(self._base) + 1), self._base))
            self._deltas[j] = _logit(beta_value) - _logit(min(max(base_t, BETA_MIN), BETA_MAX))
        self._pending = self.drawn_betas()
        self._apply_pending()

    def _on_drag(self, index: int, y: float) -> None:
        if not self.editable:
            return
        beta_value = 10.0 ** float(np.clip(y, math.log10(BETA_MIN), math.log10(BETA_MAX)))
        if index == 0:
            self._beta1 = beta_value
        else:
            t = self._handle_t[index]
            base_t = float(np.interp(t, np.arange(1, len(self._base) + 1), self._base))
            self._deltas[index - 1] = _logit(beta_value) - _logit(min(max(base_t, BETA_MIN), BETA_MAX))
        self._pending = self.drawn_betas()
        if not self._apply_timer.isActive():  # coalesce drag events into one update per event-loop turn
            self._apply_timer.start()

    def _apply_pending(self) -> None:
        if self._pending is None:
            return
        beta, self._pending = self._pending, None
        self.state.set_betas(beta, source="drawn")
        self.edited.emit()

    def reset_edits(self) -> None:
        if self._base is None or not self.editable:
            return
        self._deltas[:] = 0
        self._beta1 = float(self._base[0])
        self.state.set_betas(self._base.copy(), source="named")
        self.edited.emit()

    # ---- drawing ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        c = self.state.curves
        if c is None:
            return
        t = steps_axis(c.T)
        logb = np.log10(np.clip(c.beta, 1e-12, None))
        self.beta.setData(t, logb)
        self.abar.setData(t, np.ascontiguousarray(c.alpha_bar))
        if self.editable and self._base is not None and len(self._handle_t) == min(N_HANDLES, c.T - 1) + 1:
            hy = np.interp(self._handle_t, t, logb)
            self.handles.setData(x=self._handle_t, y=hy)
        unit = self.state.unit
        parts = [f"β₁ = {c.beta_1:.3g}", f"ᾱ_T = {c.alpha_bar[-1]:.3g}"]
        if c.cap_bits is not None:
            parts.append(f"cap on K − L_null: <b>{c.cap_bits_per_dim:.3g} bits/dim</b> = {c.cap_bits:.3g} {unit}")
        src = {"named": f"schedule “{self.state.model.config.schedule}”" if self.state.model else "",
               "learned": "β₂..T learned", "drawn": "drawn by hand"}.get(self.state.schedule_source, "")
        if self.state.model is not None and self.state.model.config.learn_beta and self.state.schedule_source != "learned":
            src += ", β₂..T learned"
        self.info.setText(" · ".join(parts) + (f" · {src}" if src else ""))
