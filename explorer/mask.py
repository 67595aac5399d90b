"""Mask painting: a Qt-free :class:`MaskModel` (the bool mask, brush, undo/redo per stroke) and a
pyqtgraph :class:`MaskCanvas` that shows an image with the mask overlaid and turns mouse and keys into
model edits (ux.md item 7: forgiving mask tools).

Convention: ``MaskModel.fill`` is bool ``[H, W]``, True = painted = to fill (unknown). ``known`` is its
complement, the convention of the library's image helpers and of mask files (white = known).

Coordinates: x is the column, y the row, in pixel units with pixel (r, c) covering [c, c+1)×[r, r+1)
(its centre at (c + ½, r + ½)), which is how pyqtgraph's ImageItem places pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from models.images import read_mask, write_mask

Tool = Literal["brush", "eraser", "rectangle", "fill"]
TOOLS: tuple[str, ...] = ("brush", "eraser", "rectangle", "fill")
BBox = tuple[int, int, int, int]  # (row0, row1, col0, col1), half-open

MIN_BRUSH = 1
MAX_BRUSH = 512


@dataclass(frozen=True)
class _Edit:
    """One undoable edit: the rectangle it touched and its contents before and after."""

    bbox: BBox
    before: np.ndarray
    after: np.ndarray
    label: str


def _union(a: BBox | None, b: BBox | None) -> BBox | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def flood_region(a: np.ndarray, row: int, col: int) -> np.ndarray:
    """The 4-connected region of pixels equal to ``a[row, col]`` that contains (row, col): bool [H, W]."""
    same = a == a[row, col]
    try:  # scipy is optional: fast labelling when present
        from scipy import ndimage

        lab, _ = ndimage.label(same)
        return lab == lab[row, col]
    except ImportError:
        pass
    region = np.zeros_like(same)
    region[row, col] = True
    while True:  # geodesic dilation inside ``same`` until stable
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= same
        if np.array_equal(grown, region):
            return region
        region = grown


def _crossed_cells(x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Every unit cell the segment passes through (grid traversal, Amanatides & Woo 1987): (cols, rows)."""
    cx, cy = int(math.floor(x0)), int(math.floor(y0))
    ex, ey = int(math.floor(x1)), int(math.floor(y1))
    dx, dy = x1 - x0, y1 - y0
    sx, sy = (1 if dx > 0 else -1), (1 if dy > 0 else -1)
    tmx = ((cx + (sx > 0)) - x0) / dx if dx else math.inf
    tmy = ((cy + (sy > 0)) - y0) / dy if dy else math.inf
    tdx = abs(1 / dx) if dx else math.inf
    tdy = abs(1 / dy) if dy else math.inf
    cols, rows = [cx], [cy]
    for _ in range(abs(ex - cx) + abs(ey - cy)):
        if tmx < tmy:
            cx += sx
            tmx += tdx
        else:
            cy += sy
            tmy += tdy
        cols.append(cx)
        rows.append(cy)
    return np.asarray(cols), np.asarray(rows)


class MaskModel:
    """A bool mask with painting tools and an undo history of one entry per stroke or action.

    Listeners (``add_listener(fn)``) are called as ``fn(bbox)`` after every change, with the touched
    rectangle (row0, row1, col0, col1) or None for "everything" (new shape, load)."""

    def __init__(self, shape_hw: tuple[int, int] = (1, 1), *, brush_size: float = 12, max_undo: int = 100):
        h, w = (int(v) for v in shape_hw)
        self._fill = np.zeros((max(h, 1), max(w, 1)), dtype=bool)
        self._brush = float(np.clip(brush_size, MIN_BRUSH, MAX_BRUSH))
        self.max_undo = int(max_undo)
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self._listeners: list[Callable[[BBox | None], None]] = []
        self._brush_listeners: list[Callable[[float], None]] = []
        self._stroke_before: np.ndarray | None = None
        self._stroke_bbox: BBox | None = None
        self._stroke_value = True
        self._last: tuple[float, float] | None = None

    # ---- state ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self._fill.shape  # type: ignore[return-value]

    @property
    def fill(self) -> np.ndarray:
        """bool [H, W], True = to fill. A read-only view; edit through the methods."""
        v = self._fill.view()
        v.flags.writeable = False
        return v

    @property
    def known(self) -> np.ndarray:
        """bool [H, W], True = known (a new array)."""
        return ~self._fill

    def add_listener(self, fn: Callable[[BBox | None], None]) -> None:
        self._listeners.append(fn)

    def add_brush_listener(self, fn: Callable[[float], None]) -> None:
        self._brush_listeners.append(fn)

    def _changed(self, bbox: BBox | None) -> None:
        for fn in list(self._listeners):
            fn(bbox)

    def reset(self, shape_hw: tuple[int, int], fill: np.ndarray | None = None) -> None:
        """A new mask of ``shape_hw`` (all known, or ``fill``); clears the undo history."""
        h, w = (int(v) for v in shape_hw)
        if h < 1 or w < 1:
            raise ValueError(f"a mask needs at least one pixel, got {h}×{w}")
        if fill is not None:
            fill = np.asarray(fill, dtype=bool)
            if fill.shape != (h, w):
                raise ValueError(f"fill has shape {fill.shape}, expected {(h, w)}")
        self._fill = np.zeros((h, w), dtype=bool) if fill is None else fill.copy()
        self._undo.clear()
        self._redo.clear()
        self._stroke_before = None
        self._changed(None)

    def resized(self, shape_hw: tuple[int, int]) -> np.ndarray:
        """This mask resized (nearest) to ``shape_hw``: bool [h, w] (the model is unchanged)."""
        h, w = (int(v) for v in shape_hw)
        H, W = self.shape
        rows = np.minimum((np.arange(h) + 0.5) * H / h, H - 1).astype(int)
        cols = np.minimum((np.arange(w) + 0.5) * W / w, W - 1).astype(int)
        return self._fill[rows][:, cols]

    # ---- brush size -------------------------------------------------------------------------
    @property
    def brush_size(self) -> float:
        """Brush diameter in pixels."""
        return self._brush

    @brush_size.setter
    def brush_size(self, d: float) -> None:
        d = float(np.clip(d, MIN_BRUSH, MAX_BRUSH))
        if d != self._brush:
            self._brush = d
            for fn in list(self._brush_listeners):
                fn(d)

    def grow_brush(self) -> None:
        """``]``: about 20 % bigger (at least one pixel)."""
        self.brush_size = max(self._brush + 1, round(self._brush * 1.2))

    def shrink_brush(self) -> None:
        """``[``: about 20 % smaller (at least one pixel)."""
        self.brush_size = min(self._brush - 1, round(self._brush / 1.2))

    # ---- undo -------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _record(self, before: np.ndarray, label: str) -> bool:
        """Push the difference between ``before`` (a full copy) and now; False if nothing changed."""
        diff = before != self._fill
        if not diff.any():
            return False
        rows = np.flatnonzero(diff.any(axis=1))
        cols = np.flatnonzero(diff.any(axis=0))
        bb = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        sl = np.s_[bb[0]:bb[1], bb[2]:bb[3]]
        self._undo.append(_Edit(bb, before[sl].copy(), self._fill[sl].copy(), label))
        if len(self._undo) > self.max_undo:
            del self._undo[0]
        self._redo.clear()
        return True

    def undo(self) -> bool:
        if self._stroke_before is not None:
            self.end_stroke()
        if not self._undo:
            return False
        e = self._undo.pop()
        self._fill[e.bbox[0]:e.bbox[1], e.bbox[2]:e.bbox[3]] = e.before
        self._redo.append(e)
        self._changed(e.bbox)
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        e = self._redo.pop()
        self._fill[e.bbox[0]:e.bbox[1], e.bbox[2]:e.bbox[3]] = e.after
        self._undo.append(e)
        self._changed(e.bbox)
        return True

    def _action(self, label: str, fn: Callable[[], BBox | None]) -> bool:
        if self._stroke_before is not None:
            self.end_stroke()
        before = self._fill.copy()
        bbox = fn()
        if self._record(before, label):
            self._changed(bbox)
            return True
        return False

    # ---- strokes ----------------------------------------------------------------------------
    def begin_stroke(self, x: float, y: float, value: bool = True) -> None:
        """Start a brush stroke at (x, y); ``value`` True paints "to fill", False erases (known)."""
        if self._stroke_before is not None:
            self.end_stroke()
        self._stroke_before = self._fill.copy()
        self._stroke_bbox = None
        self._stroke_value = bool(value)
        self._last = (float(x), float(y))
        self._paint_segment(x, y, x, y)

    def stroke_to(self, x: float, y: float) -> None:
        """Continue the stroke to (x, y), painting the whole segment from the last point (no gaps)."""
        if self._stroke_before is None:
            self.begin_stroke(x, y)
            return
        x0, y0 = self._last
        self._last = (float(x), float(y))
        self._paint_segment(x0, y0, x, y)

    def end_stroke(self) -> bool:
        """Finish the stroke: one undo entry if it changed anything."""
        if self._stroke_before is None:
            return False
        before, self._stroke_before = self._stroke_before, None
        self._last = None
        return self._record(before, "stroke")

    @property
    def in_stroke(self) -> bool:
        return self._stroke_before is not None

    def _paint_segment(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Every pixel whose centre lies within brush/2 of the segment, plus every pixel the segment
        passes through (so a 1-pixel brush still draws a connected line)."""
        H, W = self.shape
        r = self._brush / 2
        pad = r + 1
        c0 = max(0, int(math.floor(min(x0, x1) - pad)))
        c1 = min(W, int(math.ceil(max(x0, x1) + pad)))
        r0 = max(0, int(math.floor(min(y0, y1) - pad)))
        r1 = min(H, int(math.ceil(max(y0, y1) + pad)))
        if c0 >= c1 or r0 >= r1:
            return
        cy, cx = np.mgrid[r0:r1, c0:c1].astype(np.float64) + 0.5
        dx, dy = x1 - x0, y1 - y0
        L2 = dx * dx + dy * dy
        if L2 > 0:
            s = np.clip(((cx - x0) * dx + (cy - y0) * dy) / L2, 0.0, 1.0)
        else:
            s = 0.0
        d2 = (cx - (x0 + s * dx)) ** 2 + (cy - (y0 + s * dy)) ** 2
        hit = d2 <= r * r
        # pixels crossed by the segment
        px, py = _crossed_cells(x0, y0, x1, y1)
        ok = (px >= c0) & (px < c1) & (py >= r0) & (py < r1)
        hit[py[ok] - r0, px[ok] - c0] = True
        if hit.any():
            self._fill[r0:r1, c0:c1][hit] = self._stroke_value
            bb = (r0, r1, c0, c1)
            self._stroke_bbox = _union(self._stroke_bbox, bb)
            self._changed(bb)

    def paint_line(self, x0: float, y0: float, x1: float, y1: float, value: bool = True) -> bool:
        """A whole straight stroke as one action."""
        self.begin_stroke(x0, y0, value)
        self.stroke_to(x1, y1)
        return self.end_stroke()

    # ---- actions (one undo entry each) --------------------------------------------------------
    def rectangle(self, x0: float, y0: float, x1: float, y1: float, value: bool = True) -> bool:
        """Set every pixel whose centre lies in the rectangle with corners (x0, y0), (x1, y1)."""
        H, W = self.shape
        ca = max(0, int(math.ceil(min(x0, x1) - 0.5)))
        cb = min(W, int(math.floor(max(x0, x1) - 0.5)) + 1)
        ra = max(0, int(math.ceil(min(y0, y1) - 0.5)))
        rb = min(H, int(math.floor(max(y0, y1) - 0.5)) + 1)
        if ca >= cb or ra >= rb:  # a click or a thin drag: at least the pixel under each corner
            ca, cb = max(0, int(math.floor(min(x0, x1)))), min(W, int(math.floor(max(x0, x1))) + 1)
            ra, rb = max(0, int(math.floor(min(y0, y1)))), min(H, int(math.floor(max(y0, y1))) + 1)
            if ca >= cb or ra >= rb:
                return False

        def do():
            self._fill[ra:rb, ca:cb] = value
            return (ra, rb, ca, cb)

        return self._action("rectangle", do)

    def flood_fill(self, x: float, y: float, value: bool = True) -> bool:
        """Set the 4-connected region of equal pixels around (x, y) to ``value``."""
        H, W = self.shape
        c, r = int(math.floor(x)), int(math.floor(y))
        if not (0 <= r < H and 0 <= c < W) or self._fill[r, c] == value:
            return False

        def do():
            self._fill[flood_region(self._fill, r, c)] = value
            return None

        return self._action("fill", do)

    def clear(self) -> bool:
        """Nothing to fill (everything known)."""
        return self._action("clear", lambda: self._fill.fill(False))

    def fill_all(self) -> bool:
        """Everything to fill."""
        return self._action("fill all", lambda: self._fill.fill(True))

    def invert(self) -> bool:
        return self._action("invert", lambda: np.logical_not(self._fill, out=self._fill))

    def set_fill(self, fill: np.ndarray, label: str = "set") -> bool:
        """Replace the mask (same shape) as one undoable action."""
        fill = np.asarray(fill, dtype=bool)
        if fill.shape != self.shape:
            raise ValueError(f"the mask has shape {fill.shape}, expected {self.shape}")

        def do():
            self._fill[...] = fill
            return None

        return self._action(label, do)

    def set_known(self, known: np.ndarray, label: str = "set") -> bool:
        return self.set_fill(~np.asarray(known, dtype=bool), label)

    # ---- files ----------------------------------------------------------------------------------
    def load(self, path) -> None:
        """Load a mask PNG (white = known), resized to this mask's shape; one undoable action.
        Raises DataError naming the file; the current mask is kept on error."""
        known = read_mask(path, self.shape)
        self.set_known(known, "load")

    def save(self, path) -> None:
        write_mask(path, self.known)


def default_fill(shape_hw: tuple[int, int]) -> np.ndarray:
    """A centred square hole of half the shorter side (the paper's bark figure fills the centre)."""
    h, w = shape_hw
    s = max(1, min(h, w) // 2)
    r0, c0 = (h - s) // 2, (w - s) // 2
    f = np.zeros((h, w), dtype=bool)
    f[r0:r0 + s, c0:c0 + s] = True
    return f


# =============================================================================================
# the canvas (Qt from here on)

import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal  # noqa: E402
from PySide6.QtGui import QColor, QKeySequence, QPen  # noqa: E402
from PySide6.QtWidgets import (QButtonGroup, QGraphicsEllipseItem, QGraphicsRectItem, QGridLayout,  # noqa: E402
                               QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolButton, QWidget)

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
