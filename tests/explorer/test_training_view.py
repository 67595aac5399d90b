"""Training from the window: updates stream into every plot, pause stops the updates, resume restarts
them, stop takes effect within 1 s; the schedule editor moves ᾱ, the entropy bounds and the β_1 cap."""
from __future__ import annotations

import math
import time

import numpy as np
from explorer_helpers import apply_tiny


def _iteration(window) -> int:
    tr = window.controller.train_worker.trainer if window.controller.train_worker is not None else None
    return tr.iteration if tr is not None else -1


def test_training_updates_pauses_resumes_and_stops_within_a_second(qtbot, window):
    state = apply_tiny(qtbot, window, T=8)
    window.controls.budget.setValue(0)  # until stopped
    assert window.controls.train.isEnabled()
    window.controls.train.click()
    assert state.training == "running"
    assert not window.controls.train.isEnabled() and window.controls.stop.isEnabled()
    qtbot.waitUntil(lambda: len(state.history) >= 2, timeout=60_000)

    # updates reached every plot (each panel redraws a little later, staggered)
    qtbot.waitUntil(lambda: len(window.k_curve.heldout.getData()[0]) >= 2 and len(window.terms.terms.getData()[0]) > 0
                    and len(window.samples.scatter) > 0 and len(window.entropy.model_entropy.getData()[0]) > 0,
                    timeout=60_000)
    x, y = window.k_curve.heldout.getData()
    assert len(x) >= 2 and np.all(np.isfinite(y))
    assert len(window.terms.terms.getData()[0]) > 0  # per-t bound terms
    ex, ey = window.entropy.model_entropy.getData()
    assert len(ex) > 0 and np.all(np.isfinite(ey))  # the model's reverse entropy, finite points only
    lo, hi = window.entropy.lower.getData()[1], window.entropy.upper.getData()[1]
    assert np.all(lo <= hi + 1e-9)
    assert state.samples is not None and len(window.samples.scatter) == len(state.samples)
    assert "K = " in window.k_label.text() and "bits/point" in window.k_label.text()
    assert "β₁" in window.k_label.text()
    assert len(window.schedule.beta.getData()[0]) == 8

    # pause: no more updates
    window.controls.pause.click()
    assert state.training == "paused" and window.controls.pause.text() == "Resume"
    time.sleep(0.3)  # let an in-flight step reach its cancellation point
    qtbot.wait(50)
    it0 = _iteration(window)
    qtbot.wait(500)
    assert _iteration(window) == it0
    n_records = len(state.history)

    # resume: updates again
    window.controls.pause.click()
    assert state.training == "running"
    qtbot.waitUntil(lambda: _iteration(window) > it0, timeout=60_000)
    qtbot.waitUntil(lambda: len(state.history) > n_records, timeout=60_000)

    # stop: the worker stops at its next step and trains no further (how fast: bench/gui_latency.py)
    window.controls.stop.click()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    assert math.isfinite(window.controller.last_stop_latency_s)
    it_stopped = state.iteration
    qtbot.wait(300)
    assert state.iteration == it_stopped
    assert state.is_trained and state.iteration > 0
    assert state.train_history["iteration"]
    assert any("training stopped" in text for _l, text in state.log)
    # the trajectory is recomputed from the trained model
    qtbot.waitUntil(lambda: state.trajectory is not None, timeout=60_000)


def test_a_time_budget_ends_training_by_itself(qtbot, window):
    state = apply_tiny(qtbot, window, T=6, learn_beta=False)
    window.controls.budget.setValue(2)
    window.controller.start_training()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    assert state.last_progress.done and state.last_progress.message == "finished"
    assert state.last_progress.seconds >= 2.0


def test_beta_edit_changes_alpha_bar_bounds_and_cap(qtbot, window):
    state = apply_tiny(qtbot, window, T=8)
    sp = window.schedule
    assert sp.editable and sp.handles.isVisible()
    c0 = state.curves
    abar0, upper0, lower0, cap0 = c0.alpha_bar.copy(), c0.entropy_upper_bits.copy(), c0.entropy_lower_bits.copy(), c0.cap_bits_per_dim
    plotted0 = window.schedule.abar.getData()[1].copy()

    sp.move_handle(3, 0.3)  # a handle at t ≥ 2
    c1 = state.curves
    assert state.schedule_source == "drawn"
    assert not np.allclose(c1.alpha_bar, abar0)
    assert not np.allclose(c1.entropy_upper_bits, upper0) and not np.allclose(c1.entropy_lower_bits, lower0)
    assert c1.beta[0] == c0.beta[0]  # β_1 untouched
    assert not np.allclose(window.schedule.abar.getData()[1], plotted0)  # the plot moved at once
    assert np.allclose(window.entropy.upper.getData()[1], c1.entropy_upper_bits)
    np.testing.assert_allclose(state.model.schedule().detach().numpy(), c1.beta)
    assert window.controls.schedule.currentText() == "drawn by hand"

    sp.move_handle(0, 0.01)  # β_1: the cap (models/README.md, Ceilings) follows
    c2 = state.curves
    assert c2.beta[0] == 0.01
    expected = 0.5 * math.log2((1 - np.prod(1 - c2.beta)) / 0.01)
    assert math.isclose(c2.cap_bits_per_dim, expected, rel_tol=1e-9)
    assert c2.cap_bits_per_dim < cap0
    assert f"{c2.cap_bits_per_dim:.3g} bits/dim" in window.schedule.info.text()

    sp.reset_edits()
    np.testing.assert_allclose(state.curves.alpha_bar, abar0)
    # the trajectory is recomputed for the edited schedule (debounced)
    qtbot.waitUntil(lambda: state.trajectory is not None, timeout=60_000)


def test_dragging_a_handle_with_the_mouse_edits_beta(qtbot, window):
    from PySide6.QtCore import QPointF

    state = apply_tiny(qtbot, window, T=8)
    sp = window.schedule
    b0 = state.curves.beta.copy()

    class FakeDrag:  # what pyqtgraph's MouseDragEvent offers the item
        def __init__(self, y, start=False, finish=False):
            self._y, self._s, self._f = y, start, finish
            self.accepted = False

        def button(self):
            from PySide6.QtCore import Qt

            return Qt.LeftButton

        def isStart(self):
            return self._s

        def isFinish(self):
            return self._f

        def buttonDownPos(self):
            return QPointF(sp._handle_t[2], np.log10(b0[int(sp._handle_t[2]) - 1]))

        def pos(self):
            return QPointF(sp._handle_t[2], self._y)

        def accept(self):
            self.accepted = True

        def ignore(self):
            self.accepted = False

    for ev in (FakeDrag(-1.0, start=True), FakeDrag(-0.7), FakeDrag(-0.5, finish=True)):
        sp.handles.mouseDragEvent(ev)
    qtbot.waitUntil(lambda: state.schedule_source == "drawn", timeout=60_000)
    qtbot.wait(20)
    k = int(round(sp._handle_t[2])) - 1
    assert abs(state.curves.beta[k] - 10 ** -0.5) < 0.02
    assert not np.allclose(state.curves.beta, b0)


def test_schedule_is_read_only_while_training_and_after(qtbot, window):
    state = apply_tiny(qtbot, window, T=6)
    window.controller.start_training()
    assert not window.schedule.editable and not window.schedule.handles.isVisible()
    qtbot.waitUntil(lambda: len(state.history) >= 1, timeout=60_000)
    window.controller.stop_training()
    qtbot.waitUntil(lambda: state.training == "idle", timeout=60_000)
    assert not window.schedule.editable
    assert "trained" in window.schedule.hint.text()


def test_named_schedule_and_T_edits_rebuild_an_untrained_model(qtbot, window):
    state = apply_tiny(qtbot, window, T=8)
    c = window.controls
    c.schedule.setCurrentText("linear")
    assert state.model.config.schedule == "linear"
    c.T.setValue(12)
    c.T.editingFinished.emit()
    assert state.model.T == 12 and state.curves.T == 12
    qtbot.waitUntil(lambda: state.trajectory is not None and state.trajectory.T == 12, timeout=60_000)
