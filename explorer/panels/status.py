"""The status bar's permanent widgets: the K shown (:meth:`explorer.state.AppState.k_reading`),
iterations per second, the device, and a progress bar for training or a trajectory being computed
(moving without an end while a file or preset is being opened, :attr:`explorer.state.AppState.busy`)."""
from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from ..state import AppState


class StatusWidgets:
    def __init__(self, state: AppState, bar: QStatusBar):
        self.state = state
        self.bar = bar
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(170)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("idle")
        self.speed_label = QLabel("")
        self.device_label = QLabel("")
        self.k_label = QLabel("")
        self.k_label.setObjectName("k_status")
        bar.addPermanentWidget(self.k_label)
        for w in (self.speed_label, self.device_label, self.progress_bar):
            bar.addPermanentWidget(w)
        for sig in (state.training_changed, state.progress_added, state.session_changed, state.evaluated,
                    state.trajectory_progress, state.settings_changed, state.busy_changed):
            sig.connect(lambda *_a: self.update())
        self.update()

    def show_message(self, text: str, timeout_ms: int = 0) -> str:
        """A message left of the permanent widgets, cut with "…" to the room there is (Qt would clip it
        mid-word under the K readout); the whole text is the bar's tooltip (and in the Log tab)."""
        shown = [w for w in (self.k_label, self.speed_label, self.device_label, self.progress_bar) if w.isVisible()]
        left = min((w.geometry().left() for w in shown), default=self.bar.width())  # where they start, as laid out
        room = max(120, left - 24)  # the message's margin and the size grip's
        shown = self.bar.fontMetrics().elidedText(text, Qt.ElideRight, room)
        self.bar.setToolTip(text)
        self.bar.showMessage(shown, timeout_ms)
        return shown

    def update(self) -> None:
        s = self.state
        self.device_label.setText(f"device: {s.device.upper()}")
        k = s.k_reading()
        if k.known:
            extra = f" · K − L_null = {k.minus_null_bits:.3f}" if math.isfinite(k.minus_null_bits) else ""
            b1 = f" · β₁ = {s.curves.beta_1:.3g}" if s.curves is not None else ""
            self.k_label.setText(k.text() + extra + b1)
            self.k_label.setToolTip(self.k_label.text())
        elif s.curves is not None:
            cap = f" · K − L_null ≤ {s.curves.cap_bits:.3g} {s.unit}" if s.curves.cap_bits is not None else ""
            self.k_label.setText(f"{'untrained' if not s.is_trained else 'K not measured yet'} · "
                                 f"β₁ = {s.curves.beta_1:.3g}{cap}")
        else:
            self.k_label.setText("")
        p, bar = s.last_progress, self.progress_bar
        frac = s.trajectory_fraction.get(s.direction, 1.0)
        busy = bool(s.busy) and s.training not in ("running", "paused", "stopping") and not 0.0 <= frac < 1.0
        bar.setRange(0, 0 if busy else 1000)  # 0..0: Qt's busy indicator
        bar.setToolTip(s.busy if busy else "")
        if s.training in ("running", "paused", "stopping"):
            its = p.its_per_s if p is not None else float("nan")
            self.speed_label.setText(f"{its:,.1f} it/s" if math.isfinite(its) else "")
            if s.budget_s:
                done = p.seconds if p is not None else 0.0
                bar.setValue(int(min(1.0, done / s.budget_s) * 1000))
                bar.setFormat(f"{s.training} · {max(0.0, s.budget_s - done):.0f} s left")
            else:
                bar.setValue(0)
                bar.setFormat(f"{s.training} · it {s.iteration:,}")
            return
        self.speed_label.setText("")
        if 0.0 <= frac < 1.0:
            bar.setValue(int(frac * 1000))
            bar.setFormat(f"trajectory {100 * frac:.0f} %")
        else:
            bar.setValue(0)
            bar.setFormat("idle")
