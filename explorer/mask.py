"""Mask painting: a Qt-free :class:`MaskModel` (the bool mask, brush, undo/redo per stroke) and a
pyqtgraph :class:`MaskCanvas` that shows an image with the mask overlaid and turns mouse and keys into
model edits (forgiving tools: undo and redo per stroke).

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
