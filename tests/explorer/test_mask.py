"""Mask painting: MaskModel (explorer/mask.py: Qt-free state, undo per stroke, gap-free strokes, tools) and
the inpainting panel's MaskCanvas keys and mouse strokes (pytest-qt, offscreen)."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from explorer.mask import MaskModel, default_fill, flood_region


def test_one_undo_per_stroke_and_redo():
    m = MaskModel((32, 32), brush_size=3)
    m.begin_stroke(2.5, 2.5)
    for x in range(3, 20):
        m.stroke_to(x + 0.5, 2.5)
    m.end_stroke()
    first = m.fill.copy()
    assert first[2, 2:20].all()
    m.begin_stroke(5.5, 10.5)
    m.stroke_to(5.5, 25.5)
    m.end_stroke()
    second = m.fill.copy()
    assert m.can_undo and not m.can_redo
    assert m.undo()
    np.testing.assert_array_equal(m.fill, first)
    assert m.undo()
    assert not m.fill.any() and not m.can_undo
    assert not m.undo()
    assert m.redo()
    np.testing.assert_array_equal(m.fill, first)
    assert m.redo()
    np.testing.assert_array_equal(m.fill, second)
    assert not m.redo()
    # a new edit clears the redo stack
    m.undo()
    m.clear()
    assert not m.can_redo


def test_a_stroke_that_changes_nothing_leaves_no_undo_entry():
    m = MaskModel((16, 16))
    m.begin_stroke(3, 3, value=False)  # erasing known pixels changes nothing
    m.stroke_to(10, 10)
    assert not m.end_stroke()
    assert not m.can_undo


@pytest.mark.parametrize("size", [1, 3, 9])
def test_fast_strokes_leave_no_gaps(size):
    """Two mouse positions far apart: the whole segment is painted, connected end to end."""
    m = MaskModel((64, 64), brush_size=size)
    m.begin_stroke(1.5, 1.5)
    m.stroke_to(60.5, 40.5)  # one big jump
    m.stroke_to(5.5, 62.5)  # and another
    m.end_stroke()
    f = m.fill
    if size == 1:  # a 1-pixel line is 8-connected; thicken to test with 4-connectivity
        g = f.copy()
        g[1:, 1:] |= f[:-1, :-1]
        f = g
    region = flood_region(f, 1, 1)
    assert region[40, 60] and region[62, 5]
    # every point along both segments is painted
    for (x0, y0), (x1, y1) in (((1.5, 1.5), (60.5, 40.5)), ((60.5, 40.5), (5.5, 62.5))):
        for s in np.linspace(0, 1, 400):
            assert m.fill[int(y0 + s * (y1 - y0)), int(x0 + s * (x1 - x0))]
    # the stroke is as wide as the brush (no more)
    if size == 9:
        assert m.fill[1, 1] and m.fill[1 + 4, 1] and not m.fill[1 + 6, 0]


def test_rectangle_fill_invert_clear_are_one_action_each():
    m = MaskModel((20, 20))
    assert m.rectangle(2, 2, 5, 5)
    assert m.fill[2:5, 2:5].all() and m.fill.sum() == 9
    # a closed outline, then flood fill its inside
    m2 = MaskModel((20, 20), brush_size=1)
    for a, b in (((4, 4), (15, 4)), ((15, 4), (15, 15)), ((15, 15), (4, 15)), ((4, 15), (4, 4))):
        m2.rectangle(a[0], a[1], b[0] + 1, b[1] + 1)
    outline = m2.fill.copy()
    assert m2.flood_fill(9.5, 9.5)
    assert m2.fill[5:15, 5:15].all() and not m2.fill[0:3].any()
    m2.undo()
    np.testing.assert_array_equal(m2.fill, outline)
    assert not m2.flood_fill(4.5, 4.5)  # already painted: nothing to do, no undo entry
    # fill the outside with "known" is a no-op too; fill the outside as to-fill works
    assert m2.flood_fill(0.5, 0.5)
    assert m2.fill[0].all() and not m2.fill[9, 9]
    # invert and clear
    before = m.fill.copy()
    assert m.invert()
    np.testing.assert_array_equal(m.fill, ~before)
    assert m.clear() and not m.fill.any()
    assert not m.clear()
    m.undo()
    np.testing.assert_array_equal(m.fill, ~before)
    m.undo()
    np.testing.assert_array_equal(m.fill, before)


def test_brush_size_steps_and_limits():
    m = MaskModel((8, 8), brush_size=10)
    seen = []
    m.add_brush_listener(seen.append)
    m.grow_brush()
    assert m.brush_size == 12
    m.shrink_brush()
    assert m.brush_size == 10
    m.brush_size = 1
    m.shrink_brush()
    assert m.brush_size == 1
    m.grow_brush()
    assert m.brush_size == 2
    assert seen == [12, 10, 1, 2]


def test_listeners_reset_and_resize():
    m = MaskModel((10, 10))
    calls = []
    m.add_listener(calls.append)
    m.paint_line(1, 1, 8, 8)
    assert calls and calls[-1] is not None
    m.reset((6, 8), default_fill((6, 8)))
    assert calls[-1] is None and m.shape == (6, 8) and not m.can_undo
    assert m.fill.sum() == 9  # a centred 3×3 hole
    big = m.resized((12, 16))
    assert big.shape == (12, 16) and big.sum() == 36
    with pytest.raises(ValueError):
        m.set_fill(np.zeros((3, 3), bool))


def test_fill_view_is_read_only():
    m = MaskModel((4, 4))
    with pytest.raises(ValueError):
        m.fill[0, 0] = True


def test_mask_files_round_trip(tmp_path):
    m = MaskModel((12, 9))
    m.rectangle(2, 3, 7, 10)
    m.save(tmp_path / "m.png")
    m2 = MaskModel((12, 9))
    m2.load(tmp_path / "m.png")
    np.testing.assert_array_equal(m2.fill, m.fill)
    assert m2.can_undo  # loading is undoable
    (tmp_path / "bad.png").write_bytes(b"no image")
    from models.data import DataError

    with pytest.raises(DataError, match="bad.png"):
        m2.load(tmp_path / "bad.png")
    np.testing.assert_array_equal(m2.fill, m.fill)  # kept


# ------------------------------------------------------------------------------------------------
# the canvas


@pytest.fixture
def canvas(qtbot):
    from explorer.panels.inpaint.canvas import MaskCanvas

    c = MaskCanvas(MaskModel((40, 40), brush_size=6))
    c.set_image(np.linspace(0, 1, 1600, dtype=np.float32).reshape(40, 40))
    qtbot.addWidget(c)
    c.resize(400, 400)
    c.show()
    qtbot.waitExposed(c)
    c.reset_view()
    return c


def test_bracket_keys_change_brush_size(canvas, qtbot):
    from PySide6.QtCore import Qt

    got = []
    canvas.brushSizeChanged.connect(got.append)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.model.brush_size > 6
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert canvas.model.brush_size < 6
    assert len(got) == 3
    qtbot.keyClick(canvas, Qt.Key.Key_R)
    assert canvas.tool == "rectangle"
    qtbot.keyClick(canvas, Qt.Key.Key_B)
    assert canvas.tool == "brush"


def test_ctrl_z_and_ctrl_shift_z(canvas, qtbot):
    from PySide6.QtCore import Qt

    canvas.model.paint_line(5, 5, 30, 30)
    painted = canvas.model.fill.copy()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not canvas.model.fill.any()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_array_equal(canvas.model.fill, painted)
    qtbot.keyClick(canvas, Qt.Key.Key_X)
    np.testing.assert_array_equal(canvas.model.fill, ~painted)


def _view_to_widget(canvas, x, y):
    from PySide6.QtCore import QPointF

    scene = canvas.vb.mapViewToScene(QPointF(x, y))
    return canvas.mapFromScene(scene)


def test_mouse_stroke_paints_one_undoable_stroke(canvas, qtbot):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    vp = canvas.viewport()
    pts = [_view_to_widget(canvas, x, y) for x, y in ((5, 5), (6, 6), (35, 8), (35, 35))]

    def send(kind, p, buttons):
        btn = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
        ev = QMouseEvent(kind, QPointF(p), vp.mapToGlobal(QPointF(p)), btn, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    send(QEvent.Type.MouseButtonPress, pts[0], Qt.MouseButton.LeftButton)
    for p in pts[1:]:
        qtbot.wait(30)
        send(QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, pts[-1], Qt.MouseButton.NoButton)
    f = canvas.model.fill
    assert f[5, 5] and f[8, 20] and f[8, 35] and f[20, 35] and f[35, 35]  # along both legs: no gaps
    assert not f[30, 10]
    assert canvas.model.undo() and not canvas.model.fill.any()
    assert not canvas.model.can_undo  # one stroke, one undo


def test_the_mask_model_and_the_request_need_no_qt():
    import subprocess
    import sys

    code = ("import sys, explorer.mask, explorer.panels.inpaint.request as r; "
            "assert 'PySide6' not in sys.modules, sorted(m for m in sys.modules if 'PySide6' in m)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
