"""The mask canvas and its tools (Qt): :class:`MaskCanvas` shows an image with a
:class:`~explorer.mask.MaskModel` overlaid and turns mouse and keys into its edits (brush with a circular
cursor, eraser, rectangle, fill; one undo per stroke); :class:`MaskTools` is the matching button grid
for a side column.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QPen
from PySide6.QtWidgets import (QButtonGroup, QGraphicsEllipseItem, QGraphicsRectItem, QGridLayout,
                               QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QWidget)

from ...mask import MIN_BRUSH, TOOLS, MaskModel

OVERLAY_RGBA = (255, 60, 160, 140)  # to-fill pixels: semi-transparent magenta


class _CanvasViewBox(pg.ViewBox):
    """A ViewBox that hands left/right drags, clicks and hovers to the canvas; the middle button pans
    and the wheel zooms as usual."""

    def __init__(self, canvas: "MaskCanvas", **kw):
        super().__init__(**kw)
        self._canvas = canvas
        self.setMenuEnabled(False)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) and self._canvas.editable:
            ev.accept()
            self._canvas._drag(ev)
        else:
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):
        if ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            ev.accept()
            self._canvas._click(ev)
        else:
            super().mouseClickEvent(ev)

    def hoverEvent(self, ev):
        if ev.isExit():
            self._canvas._hover(None)
        else:
            self._canvas._hover(ev.scenePos())


class MaskCanvas(pg.GraphicsView):
    """An image with a mask overlay and painting tools.

    Left button: the current tool (brush, eraser, rectangle, fill); right button: the same tool with
    the opposite value (erase with the brush, un-fill a rectangle or region). Middle drag pans, the
    wheel zooms. Keys (while the canvas has focus): ``[`` / ``]`` brush size, B E R F tools,
    Ctrl+Z undo, Ctrl+Shift+Z (or Ctrl+Y) redo, X invert, Delete clear.

    ``rect`` places the image in view coordinates (x, y, width, height) (default: pixel units); with
    ``invert_y`` row 0 is at the top (images) or, without it, at the bottom (a 2-D plane)."""

    maskChanged = Signal()
    toolChanged = Signal(str)
    brushSizeChanged = Signal(float)
    clicked = Signal(float, float)  # view coordinates, when the canvas is not editable
    historyChanged = Signal()

    def __init__(self, model: MaskModel | None = None, parent=None, *, invert_y: bool = True):
        super().__init__(parent, background="#202124")
        self.setAcceptDrops(False)  # drops are the panel's
        self.viewport().setAcceptDrops(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.model = model or MaskModel()
        self.editable = True
        self._tool: str = "brush"
        self.vb = _CanvasViewBox(self, lockAspect=True, invertY=invert_y, enableMenu=False)
        self.setCentralItem(self.vb)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(10)
        self.vb.addItem(self.image_item)
        self.vb.addItem(self.overlay_item)
        pen = QPen(QColor(255, 255, 255, 230))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.cursor_item = QGraphicsEllipseItem(self.overlay_item)
        self.cursor_item.setPen(pen)
        self.cursor_item.setZValue(20)
        self.cursor_item.hide()
        inner = QPen(QColor(0, 0, 0, 200))
        inner.setCosmetic(True)
        inner.setStyle(Qt.PenStyle.DashLine)
        self.cursor_inner = QGraphicsEllipseItem(self.cursor_item)
        self.cursor_inner.setPen(inner)
        rpen = QPen(QColor(255, 255, 255))
        rpen.setCosmetic(True)
        rpen.setStyle(Qt.PenStyle.DashLine)
        self.rect_item = QGraphicsRectItem(self.overlay_item)
        self.rect_item.setPen(rpen)
        self.rect_item.hide()
        self._rect_start: QPointF | None = None
        self._rect_value = True
        self._overlay = np.zeros((1, 1, 4), np.uint8)
        self._rect = None
        self._image_shape: tuple[int, int] | None = None
        self._cursor_pos: QPointF | None = None
        self.model.add_listener(self._on_mask)
        self.model.add_brush_listener(self._on_brush)
        self.set_image(np.zeros((*self.model.shape, 1), np.float32))

    # ---- content ----------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray, rect: tuple[float, float, float, float] | None = None,
                  levels=(0.0, 1.0)) -> None:
        """Show ``pixels``: [H, W], [C, H, W] (C = 1, 3) or [H, W, C]; values in ``levels``. The mask
        model is not touched (reset it separately for a new shape)."""
        p = np.asarray(pixels, dtype=np.float32)
        if p.ndim == 3 and p.shape[0] in (1, 3) and p.shape[-1] not in (1, 3):
            p = np.moveaxis(p, 0, -1)
        if p.ndim == 3 and p.shape[-1] == 1:
            p = p[..., 0]
        self.image_item.setImage(np.ascontiguousarray(p), autoLevels=False, levels=levels)
        shape = p.shape[:2]
        self._rect = rect
        if rect is not None:
            r = QRectF(*rect)
            self.image_item.setRect(r)
            self.overlay_item.setRect(r)
        else:
            self.image_item.setRect(QRectF(0, 0, shape[1], shape[0]))
            self.overlay_item.setRect(QRectF(0, 0, shape[1], shape[0]))
        if shape != self._image_shape:
            self._image_shape = shape
            self.vb.autoRange(padding=0.02)
        self._refresh_overlay()

    def reset_view(self) -> None:
        self.vb.autoRange(padding=0.02)

    def _on_mask(self, bbox) -> None:
        self._refresh_overlay()
        self.maskChanged.emit()
        self.historyChanged.emit()

    def _refresh_overlay(self) -> None:
        f = self.model.fill
        if self._overlay.shape[:2] != f.shape:
            self._overlay = np.zeros((*f.shape, 4), np.uint8)
        self._overlay[...] = 0
        self._overlay[f] = OVERLAY_RGBA
        self.overlay_item.setImage(self._overlay, autoLevels=False, levels=(0, 255))
        if self._rect is not None:
            self.overlay_item.setRect(QRectF(*self._rect))
        else:
            self.overlay_item.setRect(QRectF(0, 0, f.shape[1], f.shape[0]))
        self.overlay_item.setVisible(self.editable or bool(f.any()))

    def set_overlay_visible(self, on: bool) -> None:
        self.overlay_item.setOpacity(1.0 if on else 0.0)

    def set_editable(self, on: bool) -> None:
        self.editable = bool(on)
        if not on:
            self.cursor_item.hide()
            self.rect_item.hide()
            if self.model.in_stroke:
                self.model.end_stroke()

    # ---- tools ------------------------------------------------------------------------------
    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {', '.join(TOOLS)}, got {tool!r}")
        if tool != self._tool:
            self._tool = tool
            self._update_cursor()
            self.toolChanged.emit(tool)

    def _on_brush(self, d: float) -> None:
        self._update_cursor()
        self.brushSizeChanged.emit(d)

    def _pixel(self, scene_pos) -> QPointF:
        """Scene position → pixel coordinates of the mask (x = column, y = row)."""
        return self.overlay_item.mapFromScene(scene_pos)

    def _update_cursor(self) -> None:
        if self._cursor_pos is None or not self.editable or self._tool not in ("brush", "eraser"):
            self.cursor_item.hide()
            return
        r = self.model.brush_size / 2
        p = self._cursor_pos
        self.cursor_item.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
        self.cursor_inner.setRect(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r))
        self.cursor_item.show()

    def _hover(self, scene_pos) -> None:
        self._cursor_pos = None if scene_pos is None else self._pixel(scene_pos)
        self._update_cursor()

    def _value(self, ev) -> bool:
        """Paint (True) or erase (False) for this tool and button."""
        base = self._tool != "eraser"
        if ev.button() == Qt.MouseButton.RightButton:
            base = not base
        return base

    def _drag(self, ev) -> None:
        p = self._pixel(ev.scenePos())
        self._cursor_pos = p
        if self._tool in ("brush", "eraser"):
            if ev.isStart():
                p0 = self._pixel(ev.buttonDownScenePos())
                self.model.begin_stroke(p0.x(), p0.y(), self._value(ev))
            self.model.stroke_to(p.x(), p.y())
            if ev.isFinish():
                self.model.end_stroke()
                self.historyChanged.emit()
            self._update_cursor()
        elif self._tool == "rectangle":
            if ev.isStart():
                self._rect_start = self._pixel(ev.buttonDownScenePos())
                self._rect_value = self._value(ev)
            s = self._rect_start
            self.rect_item.setRect(QRectF(s, p).normalized())
            self.rect_item.show()
            if ev.isFinish():
                self.rect_item.hide()
                self.model.rectangle(s.x(), s.y(), p.x(), p.y(), self._rect_value)
                self._rect_start = None
        elif self._tool == "fill" and ev.isFinish():
            self.model.flood_fill(p.x(), p.y(), self._value(ev))

    def _click(self, ev) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if not self.editable:
            v = self.vb.mapSceneToView(ev.scenePos())
            self.clicked.emit(float(v.x()), float(v.y()))
            return
        p = self._pixel(ev.scenePos())
        if self._tool in ("brush", "eraser"):
            self.model.begin_stroke(p.x(), p.y(), self._value(ev))
            self.model.end_stroke()
            self.historyChanged.emit()
        elif self._tool == "rectangle":
            self.model.rectangle(p.x(), p.y(), p.x(), p.y(), self._value(ev))
        elif self._tool == "fill":
            self.model.flood_fill(p.x(), p.y(), self._value(ev))

    # ---- keys -------------------------------------------------------------------------------
    _KEYS = {
        Qt.Key.Key_BracketLeft: "shrink",
        Qt.Key.Key_BracketRight: "grow",
        Qt.Key.Key_B: "brush",
        Qt.Key.Key_E: "eraser",
        Qt.Key.Key_R: "rectangle",
        Qt.Key.Key_F: "fill",
        Qt.Key.Key_X: "invert",
        Qt.Key.Key_Delete: "clear",
    }

    def _key_action(self, ev) -> str | None:
        if ev.matches(QKeySequence.StandardKey.Undo):
            return "undo"
        if ev.matches(QKeySequence.StandardKey.Redo) or (
                ev.key() == Qt.Key.Key_Z and ev.modifiers() == (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)):
            return "redo"
        if ev.modifiers() & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier):
            return None
        return self._KEYS.get(Qt.Key(ev.key()))

    def event(self, ev):
        # take our keys before any window-wide shortcut does, while the canvas has focus
        if ev.type() == QEvent.Type.ShortcutOverride and self._key_action(ev) is not None:
            ev.accept()
            return True
        return super().event(ev)

    def keyPressEvent(self, ev):
        action = self._key_action(ev)
        if action is None:
            super().keyPressEvent(ev)
            return
        ev.accept()
        self.do(action)

    def do(self, action: str) -> bool:
        """Run a named action: undo, redo, grow, shrink, clear, invert, or a tool name."""
        if action in TOOLS:
            self.set_tool(action)
            return True
        fn = {"undo": self.model.undo, "redo": self.model.redo, "grow": self.model.grow_brush,
              "shrink": self.model.shrink_brush, "clear": self.model.clear, "invert": self.model.invert}[action]
        out = fn()
        self.historyChanged.emit()
        return bool(out) if out is not None else True


class MaskTools(QWidget):
    """The mask tools in a narrow grid (for a side column): tool buttons, brush size, undo/redo/clear/
    invert and, with ``files``, load/save a mask PNG. ``load_requested`` / ``save_requested`` fire for
    the file buttons (the owner shows the dialogs and reports errors)."""

    load_requested = Signal()
    save_requested = Signal()

    def __init__(self, canvas: MaskCanvas, files: bool = True, parent=None):
        super().__init__(parent)
        self.canvas = canvas
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(2)
        grid.setVerticalSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        group.setExclusive(True)
        for col, (tool, text, key, tip) in enumerate((
                ("brush", "Brush", "B", "paint the region to fill"),
                ("eraser", "Eraser", "E", "mark pixels as known again"),
                ("rectangle", "Rect", "R", "drag a rectangle"),
                ("fill", "Fill", "F", "flood-fill a region"))):
            b = self._button(text, f"{tip} ({key}; the right button does the opposite)")
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, t=tool: canvas.set_tool(t))
            group.addButton(b)
            grid.addWidget(b, 0, col)
            self.buttons[tool] = b
        self.buttons[canvas.tool].setChecked(True)
        canvas.toolChanged.connect(lambda t: self.buttons[t].setChecked(True))
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(MIN_BRUSH, 128)
        self.size_slider.setToolTip("brush size in pixels ([ and ])")
        self.size_slider.valueChanged.connect(lambda v: setattr(canvas.model, "brush_size", v))
        self.size_label = QLabel()
        self.size_label.setMinimumWidth(44)
        size_row = QHBoxLayout()
        size_row.setContentsMargins(0, 0, 0, 0)
        size_row.addWidget(QLabel("size"))
        size_row.addWidget(self.size_slider, 1)
        size_row.addWidget(self.size_label)
        grid.addLayout(size_row, 1, 0, 1, 4)
        canvas.brushSizeChanged.connect(self._on_size)
        self._on_size(canvas.model.brush_size)
        for col, (action, text, tip) in enumerate((("undo", "Undo", "undo the last stroke (Ctrl+Z)"),
                                                  ("redo", "Redo", "redo (Ctrl+Shift+Z)"),
                                                  ("clear", "Clear", "nothing to fill (Delete)"),
                                                  ("invert", "Invert", "swap known and to-fill (X)"))):
            b = self._button(text, tip)
            b.clicked.connect(lambda _=False, a=action: canvas.do(a))
            grid.addWidget(b, 2, col)
            self.buttons[action] = b
        if files:
            lm = self._button("Load mask…", "a PNG: white = known, black = to fill")
            sm = self._button("Save mask…", "as a PNG: white = known, black = to fill")
            lm.clicked.connect(self.load_requested)
            sm.clicked.connect(self.save_requested)
            grid.addWidget(lm, 3, 0, 1, 2)
            grid.addWidget(sm, 3, 2, 1, 2)
            self.buttons["load"], self.buttons["save"] = lm, sm
        canvas.historyChanged.connect(self._on_history)
        canvas.maskChanged.connect(self._on_history)
        self._on_history()

    @staticmethod
    def _button(text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        b.setMinimumWidth(10)
        return b

    def _on_size(self, d: float) -> None:
        self.size_slider.blockSignals(True)
        self.size_slider.setValue(int(round(min(d, self.size_slider.maximum()))))
        self.size_slider.blockSignals(False)
        self.size_label.setText(f"{d:.0f} px")

    def _on_history(self) -> None:
        m = self.canvas.model
        self.buttons["undo"].setEnabled(m.can_undo)
        self.buttons["redo"].setEnabled(m.can_redo)
        self._on_size(m.brush_size)
