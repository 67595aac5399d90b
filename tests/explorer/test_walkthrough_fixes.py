"""What a new-user walkthrough in a real window (1280×800 and 1440×900) found: the K printed was hidden
under the K plot's legend (deadleaves, drawn points) or under the ceiling label (heartbeat, whose paper
label sat under the ceiling's); a model saved after training past its last history record reopened
with the record's iteration instead of its own; the trajectory's progress text was cut at 1280×800."""
from __future__ import annotations

import numpy as np
import pytest
from explorer_helpers import tiny_session

from models.paths import bundled_model


def test_the_ringed_K_is_drawn_over_the_legend_and_the_reference_lines(qapp):
    from explorer import session as sessions
    from explorer.panels.curves import KCurvePanel
    from explorer.state import AppState

    sess = sessions.model_file_session(bundled_model("heartbeat"))  # the preset with a paper K and a ceiling
    s = AppState()
    s.set_session(sess.model, sess.data, preset=sess.preset, path=sess.path, train_history=sess.train_history,
                  recorded=sess.recorded, source="bundled", file_meta=sess.file_meta)
    panel = KCurvePanel(s)
    pi = panel.plot.getPlotItem()
    vb = pi.getViewBox()
    data = (panel.train, panel.heldout, panel.exact, panel.current, panel.exact_err)
    assert pi.legend.parentItem() is vb and pi.legend.zValue() < vb.childGroup.zValue()
    for line in (panel.paper, panel.ceiling):
        assert line.isVisible() and all(line.zValue() < item.zValue() for item in data)
    assert panel.paper.label.orthoPos != pytest.approx(panel.ceiling.label.orthoPos)  # never on top of each other


def test_a_model_saved_after_its_last_history_record_reopens_at_its_own_iteration(qapp, tmp_path):
    """Stop lands between two history records: the file records the model's iteration (dpm info says
    so); reopening it must not fall back to the last record's (the app said 93,228 for 93,353)."""
    from explorer import files
    from explorer import session as sessions
    from explorer.state import AppState

    sess = tiny_session()
    s = AppState()
    hist = {"iteration": np.array([10.0, 20.0]), "K_train_bits": np.array([-1.0, -0.5]),
            "K_heldout_bits": np.array([-1.1, -0.6]), "K_minus_Lnull_bits": np.array([1.0, 1.5])}
    s.set_session(sess.model, sess.data, train_history=hist, source="drawn")
    assert s.iteration == 20
    s.iteration = 25  # trained on after the last record, then stopped
    out = tmp_path / "stopped.h5"
    files.save_model_file(s, out)
    again = sessions.model_file_session(out)
    assert again.file_meta["iterations"] == 25
    s.set_session(again.model, again.data, path=out, train_history=again.train_history, source="file",
                  file_meta=again.file_meta)
    assert s.iteration == 25
    assert list(s.history.iteration) == [10.0, 20.0]  # the curve is the file's, unchanged


def test_the_progress_text_shows_only_while_there_is_something_to_say(qapp):
    from explorer.panels.trajectory import TrajectoryPanel
    from explorer.state import AppState

    s = AppState()
    panel = TrajectoryPanel(s)
    label = panel.progress_label
    assert not label.isVisibleTo(panel)  # idle: the slider has the row
    s.trajectory_progress.emit(s.direction, 0.5)
    assert label.isVisibleTo(panel) and label.text()
    s.trajectory_progress.emit(s.direction, 1.0)
    assert not label.isVisibleTo(panel)
    s.trajectory_progress.emit(s.direction, -1.0)
    assert label.isVisibleTo(panel) and "cancelled" in label.text()


@pytest.mark.parametrize("name, corner", [("heartbeat", "bottom right"), ("deadleaves", "top left")])
def test_the_legend_goes_where_the_ringed_K_is_not(qapp, name, corner):
    """deadleaves' K (0.68) sits halfway up to the paper's 1.49: the bottom-right legend covered it."""
    from explorer import session as sessions
    from explorer.panels.curves import KCurvePanel
    from explorer.state import AppState

    sess = sessions.model_file_session(bundled_model(name))
    s = AppState()
    s.set_session(sess.model, sess.data, preset=sess.preset, path=sess.path, train_history=sess.train_history,
                  recorded=sess.recorded, source="bundled", file_meta=sess.file_meta)
    assert KCurvePanel(s).legend_corner == corner


def test_the_legend_names_only_what_is_drawn_and_avoids_a_low_reference_line(qapp):
    """bark: a bundled model has no held-out curve (two legend rows, not three), and the paper's K
    (−0.55) runs along the bottom, under where the legend used to be."""
    from explorer import session as sessions
    from explorer.panels.curves import KCurvePanel
    from explorer.state import AppState

    sess = sessions.model_file_session(bundled_model("bark"))
    s = AppState()
    s.set_session(sess.model, sess.data, preset=sess.preset, path=sess.path, train_history=sess.train_history,
                  recorded=sess.recorded, source="bundled", file_meta=sess.file_meta)
    panel = KCurvePanel(s)
    assert panel.legend_names == ["K train minibatches", "K exact (end of training)"]
    assert len(panel.legend.items) == 2
    assert panel.legend_corner == "top left"
