"""Views draw only while they are shown. The inpainting panel: a hidden panel (another tab in front)
draws none of a run's states, and showing it draws the latest at once; a shown panel draws the latest
state at a bounded rate, not every state the run hands over. The trajectory view: frames played while
it is hidden are not drawn; showing it draws the current one."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtWidgets import QLabel, QTabWidget

from explorer.panels.inpaint import InpaintPanel
from explorer.state import AppState
from models.config import ModelConfig
from models.model import DiffusionModel

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture
def tabs(qtbot):
    """A tab widget holding another page (shown) and the inpainting panel (hidden behind it)."""
    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=60, example_shape=(1, 8, 8), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3)
    state = AppState()
    state.set_session(DiffusionModel(cfg).eval(), None, norm=dict(NORM))
    w = QTabWidget()
    qtbot.addWidget(w)
    other = QLabel("the trajectory")
    panel = InpaintPanel(state)
    w.addTab(other, "Trajectory")
    w.addTab(panel, "Inpaint")
    w.resize(1000, 700)
    w.show()
    qtbot.waitExposed(w)
    panel.set_image(np.random.default_rng(1).integers(0, 256, (10, 12)).astype(np.uint8), "noise")
    yield w, panel
    panel.cancel(wait=True)


def run_to_end(qtbot, panel):
    states = []
    panel.image_page.show_state = _counting(panel.image_page.show_state, states)
    assert panel.run()
    qtbot.waitUntil(lambda: not panel.is_running, timeout=60_000)
    return states


def _counting(fn, seen):
    def wrapped(x, t):
        seen.append(t)
        return fn(x, t)
    return wrapped


def test_a_hidden_panel_draws_nothing_and_catches_up_when_shown(qtbot, tabs):
    w, panel = tabs
    assert not panel.isVisible()
    drawn = run_to_end(qtbot, panel)
    qtbot.wait(100)  # anything queued after the run lands
    assert len(panel.frames) > 10 and panel.frame_times[-1] == 0
    assert drawn == [] and panel.draws == 0
    assert panel.image_page.result_item.image is None  # nothing was put in the result view
    w.setCurrentWidget(panel)  # the user shows the tab: the result is drawn
    qtbot.waitUntil(lambda: panel.draws == 1, timeout=60_000)
    assert drawn == [0] and "t = 0" in panel.image_page.result_title.text()
    assert panel.image_page.result_item.image is not None
    qtbot.wait(100)
    assert panel.draws == 1  # once


def test_a_shown_panel_draws_the_latest_state_not_every_one(qtbot, tabs):
    from explorer.panels.inpaint import panel as module

    w, panel = tabs
    w.setCurrentWidget(panel)
    qtbot.waitUntil(panel.isVisible, timeout=60_000)
    panel._draw_timer.setInterval(10_000)  # one draw per 10 s: the whole run lands within one interval
    drawn = run_to_end(qtbot, panel)
    assert len(panel.frames) > 10
    assert drawn[:1] == [60] and len(drawn) == 1  # the first state at once, the rest coalesced
    panel._draw_timer.stop()
    panel._draw_timer.timeout.emit()  # the interval is up: the latest state is drawn
    assert drawn == [60, 0] and "t = 0" in panel.image_page.result_title.text()
    assert module.DRAW_EVERY_MS <= 50


def test_the_trajectory_view_draws_nothing_while_hidden(qtbot, qapp):
    """The same rule for the trajectory view: frames played while another tab is in front are not
    drawn; showing the view draws the current one."""
    from explorer_helpers import tiny_session

    from explorer.panels.trajectory import TrajectoryPanel
    from explorer.state import Trajectory

    s = AppState()
    sess = tiny_session(T=10)
    s.set_session(sess.model, sess.data)
    w = QTabWidget()
    qtbot.addWidget(w)
    tp = TrajectoryPanel(s)
    w.addTab(tp, "Trajectory")
    w.addTab(QLabel("inpaint"), "Inpaint")
    w.show()
    qtbot.waitExposed(w)
    s.set_trajectory(Trajectory("reverse", np.zeros((11, 5, 2), np.float32), np.arange(11), "points"))
    w.setCurrentIndex(1)
    qtbot.waitUntil(lambda: not tp.isVisible(), timeout=60_000)
    n0 = tp.frames_drawn
    for i in range(10):
        s.set_frame(i)
        qtbot.wait(20)
    assert tp.frames_drawn == n0
    w.setCurrentIndex(0)
    qtbot.waitUntil(lambda: tp.frames_drawn == n0 + 1, timeout=60_000)
    assert tp.time_label.text() == "t = 9 / 10"
