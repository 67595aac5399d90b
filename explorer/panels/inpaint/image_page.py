"""The image page: inpainting and denoising an image with an image model (paper §2.5, Fig. 5).

View: original | mask | samples, side by side (the samples twice as wide). Controls (for the panel's
side column): where the image comes from and how it is fitted, the task and method, and the mask tools.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QEvent, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGraphicsRectItem, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from models.config import CONV_ARCHS
from models.runtime import MAX_IMAGE_SIDE
from models.files import LoadedModel

from ...mask import MaskModel, default_fill
from .canvas import MaskCanvas, MaskTools
from . import request as R
from .request import img


FIT_LABELS = {"whole": "whole image", "crop": "crop centre"}


def _view(name: str) -> tuple[QWidget, QLabel, pg.ViewBox, pg.ImageItem, pg.GraphicsView]:
    box = QWidget()
    v = QVBoxLayout(box)
    v.setContentsMargins(0, 0, 0, 0)
    v.setSpacing(1)
    title = QLabel()
    title.setMinimumWidth(10)
    gv = pg.GraphicsView(background="#202124")
    gv.setObjectName(name)
    gv.setAcceptDrops(False)
    gv.viewport().setAcceptDrops(False)
    gv.setMinimumSize(80, 80)
    vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    gv.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    v.addWidget(title)
    v.addWidget(gv, 1)
    return box, title, vb, item, gv


def _hwc(px: np.ndarray) -> np.ndarray:
    """[C, H, W] → what ImageItem draws: [H, W] or [H, W, 3]."""
    return np.ascontiguousarray(px[0] if px.shape[0] == 1 else np.moveaxis(px, 0, -1))


class Ready:
    """An image made ready for the page away from the GUI thread (:meth:`ImagePage.ready`): the library's
    PreparedImage for the settings in ``key`` (None if preparing failed: the page then tries again and
    reports), and the original as drawn."""

    def __init__(self, pixels: np.ndarray, key: tuple):
        self.key = key
        model, norm, max_side, fit = key
        try:
            self.prepared = img.prepare_image(pixels, LoadedModel(model, norm, {}, {}), max_side=max_side, fit=fit)
        except Exception:  # noqa: BLE001 - the page prepares it again on the GUI thread, and reports
            self.prepared = None
        self.shown = _hwc(pixels)


def best_columns(n: int, h: int, w: int, view_w: float, view_h: float) -> int:
    """How many columns to tile n images of h×w in so that they are drawn largest in a view_w×view_h view."""
    best, best_scale = 1, -1.0
    for ncol in range(1, max(1, n) + 1):
        nrow = math.ceil(n / ncol)
        scale = min(view_w / (ncol * w), view_h / (nrow * h))
        if scale > best_scale + 1e-9:
            best, best_scale = ncol, scale
    return best


def mosaic(px: np.ndarray, fill: float, ncol: int | None = None) -> np.ndarray:
    """Samples [N, C, H, W] → one image [H', W'] or [H', W', 3] in ``ncol`` columns (default one row)."""
    return _hwc(img.tile(px, ncol=ncol, gap=2, fill=fill))


class ImagePage(QWidget):
    """Views and controls of the image page; the panel owns the run."""

    message = Signal(str, str)  # level, text (the panel posts it to the state)
    changed = Signal()  # something that changes the request (the panel clears stale results)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = None
        self.norm: dict = {}
        self.config = None
        self.source: np.ndarray | None = None  # pixels [C, H, W] in [0, 1] as opened
        self.source_name = ""
        self.prepared = None  # the library's PreparedImage for the current model
        self.examples: np.ndarray | None = None  # held-out examples, pixels [n, C, H, W]
        self._example = -1
        self.noisy: torch.Tensor | None = None  # the denoising observation shown, [1, C, H, W]
        self._seed = 0  # the run's seed: the added noise is drawn from it
        self.mask_model = MaskModel((1, 1), brush_size=8)
        self._build_view()
        self._build_controls()
        self._on_task()

    # ---- building -----------------------------------------------------------------------------
    def _build_view(self) -> None:
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        h.setSpacing(4)
        left = QVBoxLayout()
        left.setSpacing(4)
        box, self.original_title, self.original_vb, self.original_item, self.original_view = _view("inpaint_original")
        self.original_title.setText("original")
        pen = QPen(QColor(255, 200, 40))
        pen.setCosmetic(True)
        pen.setStyle(Qt.PenStyle.DashLine)
        self.crop_item = QGraphicsRectItem()
        self.crop_item.setPen(pen)
        self.crop_item.setZValue(5)
        self.crop_item.hide()
        self.original_vb.addItem(self.crop_item)
        left.addWidget(box, 1)
        mbox = QWidget()
        mv = QVBoxLayout(mbox)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.setSpacing(1)
        self.canvas_title = QLabel("mask (magenta: fill)")
        self.canvas_title.setMinimumWidth(10)
        self.canvas = MaskCanvas(self.mask_model)
        self.canvas.setObjectName("inpaint_canvas")
        self.canvas.setMinimumSize(80, 80)
        self.canvas.setToolTip("paint the region to fill; middle drag pans, wheel zooms; [ ] brush size")
        mv.addWidget(self.canvas_title)
        mv.addWidget(self.canvas, 1)
        left.addWidget(mbox, 1)
        h.addLayout(left, 2)
        rbox, self.result_title, self.result_vb, self.result_item, self.result_view = _view("inpaint_results")
        self.result_title.setText("samples appear here (Run)")
        h.addWidget(rbox, 3)
        self._shown: tuple[np.ndarray, int] | None = None
        self._ncol = 0
        self.result_view.installEventFilter(self)
        self.canvas.maskChanged.connect(self.changed)

    def _build_controls(self) -> None:
        self.controls = QWidget()
        f = QFormLayout(self.controls)
        f.setContentsMargins(0, 0, 0, 0)
        f.setVerticalSpacing(3)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open…")
        self.open_btn.setToolTip("open an image file (or drop one on this panel)")
        self.paste_btn = QPushButton("Paste")
        self.paste_btn.setToolTip("paste an image from the clipboard (Ctrl+V)")
        self.example_btn = QPushButton("Example")
        self.example_btn.setToolTip("a held-out example of the model's data (again: the next one)")
        self.example_btn.clicked.connect(self.next_example)
        for b in (self.open_btn, self.paste_btn, self.example_btn):
            b.setMinimumWidth(10)
            row.addWidget(b)
        f.addRow(row)
        self.fit_row = QWidget()
        fr = QHBoxLayout(self.fit_row)
        fr.setContentsMargins(0, 0, 0, 0)
        self.fit_combo = QComboBox()
        self.fit_combo.setObjectName("inpaint_fit")
        for fit in img.FITS:  # the library's default first
            self.fit_combo.addItem(FIT_LABELS.get(fit, fit), fit)
        self.fit_combo.setToolTip("a larger image is shrunk as a whole to the longest side (default), or its\n"
                                  "centre is cut out at full resolution (a texture model learned one scale)")
        self.fit_combo.currentIndexChanged.connect(lambda *_: self.prepare())
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setObjectName("inpaint_max_side")
        self.max_side_spin.setRange(8, MAX_IMAGE_SIDE)
        self.max_side_spin.setValue(R.MAX_SIDE)
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setToolTip("longest side the model works at (a conv model takes any size; the time\n"
                                      "per step grows with the pixel count)")
        self.max_side_spin.editingFinished.connect(self._on_max_side)
        fr.addWidget(self.fit_combo, 1)
        fr.addWidget(self.max_side_spin)
        f.addRow(self.fit_row)
        self.note_label = QLabel("drop an image here, paste one (Ctrl+V) or open a file")
        self.note_label.setObjectName("inpaint_note")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("color: #8ab4f8;")
        self.note_label.setMinimumWidth(10)
        f.addRow(self.note_label)
        self.task_combo = QComboBox()
        self.task_combo.addItem("Inpaint the painted region", "inpaint")
        self.task_combo.addItem("Denoise", "denoise")
        self.task_combo.currentIndexChanged.connect(self._on_task)
        f.addRow("Task", self.task_combo)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("inpaint_method")
        self.method_combo.currentIndexChanged.connect(self._on_method)
        f.addRow("Method", self.method_combo)
        self.jump_row = QWidget()
        jr = QHBoxLayout(self.jump_row)
        jr.setContentsMargins(0, 0, 0, 0)
        self.jump_len = QSpinBox()
        self.jump_len.setRange(1, 100)
        self.jump_len.setValue(10)
        self.jump_len.setToolTip("RePaint: steps per jump back up")
        self.jump_n = QSpinBox()
        self.jump_n.setRange(1, 20)
        self.jump_n.setValue(5)
        self.jump_n.setToolTip("RePaint: times each stretch is run (1 = no resampling)")
        jr.addWidget(self.jump_len)
        jr.addWidget(QLabel("×"))
        jr.addWidget(self.jump_n)
        f.addRow("Jumps", self.jump_row)
        self.sigma_r = QDoubleSpinBox()
        self.sigma_r.setDecimals(3)
        self.sigma_r.setRange(0.001, 1.0)
        self.sigma_r.setSingleStep(0.01)
        self.sigma_r.setValue(0.05)
        self.sigma_r.setToolTip("annealed: the width of r on the known pixels (normalised units)")
        f.addRow("σ_r", self.sigma_r)
        self.sigma_row = QWidget()
        sr = QHBoxLayout(self.sigma_row)
        sr.setContentsMargins(0, 0, 0, 0)
        self.sigma_slider = QSlider(Qt.Orientation.Horizontal)
        self.sigma_slider.setObjectName("inpaint_sigma")
        self.sigma_slider.setRange(1, 100)
        self.sigma_slider.setValue(20)
        self.sigma_slider.setToolTip("noise σ on the [0, 1] pixel scale")
        self.sigma_label = QLabel("0.20")
        self.sigma_slider.valueChanged.connect(self._on_sigma)
        sr.addWidget(self.sigma_slider, 1)
        sr.addWidget(self.sigma_label)
        f.addRow("Noise σ", self.sigma_row)
        self.noise_combo = QComboBox()
        self.noise_combo.addItem("add noise of this σ", "add")
        self.noise_combo.addItem("image is already noisy", "noisy")
        self.noise_combo.currentIndexChanged.connect(self._on_task)
        f.addRow("Noise", self.noise_combo)
        self.tools = MaskTools(self.canvas, files=True)
        f.addRow(self.tools)
        self._form = f

    # ---- model ----------------------------------------------------------------------------------
    def reset(self, model, norm: dict, examples: np.ndarray | None, fit: str | None = None) -> None:
        """A new model: forget the image, mask and results; show the first held-out example if any.
        ``examples``: pixels [n, C, H, W] of the model's data, or None."""
        self.model, self.norm = model, dict(norm or {})
        self.config = None if model is None else model.config
        self.source, self.source_name, self.prepared, self.noisy = None, "", None, None
        self.examples = examples
        self._example = -1
        self.task_combo.setCurrentIndex(0)
        self.fit_combo.blockSignals(True)
        self.fit_combo.setCurrentIndex(max(self.fit_combo.findData(fit), 0))
        self.fit_combo.blockSignals(False)
        self.max_side_spin.setValue(R.MAX_SIDE)
        self.fit_row.setVisible(self.config is not None and self.config.arch in CONV_ARCHS)
        self.example_btn.setEnabled(examples is not None and len(examples) > 0)
        self.mask_model.reset((1, 1))
        self._has_mask = False
        self.canvas.set_image(np.zeros((1, 1), np.float32))
        self.original_item.clear()
        self.crop_item.hide()
        self.clear_results()
        self._fill_methods()
        self.note_label.setText("drop an image here, paste one (Ctrl+V) or open a file")
        if self.examples is not None and len(self.examples):
            self.next_example()

    def _fill_methods(self) -> None:
        cur = self.method_combo.currentData()
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        for m in R.methods_for(self.task):
            t = R.METHOD_TEXT[self.task][m]
            self.method_combo.addItem(t.label, m)
            i = self.method_combo.count() - 1
            self.method_combo.setItemData(i, t.tip, Qt.ItemDataRole.ToolTipRole)
            gaussian_only = m in ("annealed", "repaint") or self.task == "denoise"
            if gaussian_only and self.model is not None and not self.model.is_gaussian:
                self.method_combo.model().item(i).setEnabled(False)
        i = self.method_combo.findData(cur)
        self.method_combo.setCurrentIndex(max(i, 0))
        self.method_combo.blockSignals(False)
        self._on_method()

    @property
    def task(self) -> str:
        return self.task_combo.currentData()

    @property
    def method(self) -> str:
        return self.method_combo.currentData() or R.methods_for(self.task)[0]

    @property
    def sigma_pixels(self) -> float:
        return self.sigma_slider.value() / 100

    def _on_task(self, *_):
        denoise = self.task == "denoise"
        if self.method_combo.count():
            self._fill_methods()
        self.canvas.set_editable(not denoise)
        self.canvas.set_overlay_visible(not denoise)
        self.tools.setEnabled(not denoise)
        self.tools.setVisible(not denoise)
        self._update_rows()
        self.refresh_observation()
        self.changed.emit()

    def _on_method(self, *_):
        m = self.method
        self.method_combo.setToolTip(R.METHOD_TEXT[self.task][m].tip if m in R.METHOD_TEXT[self.task] else "")
        self._update_rows()
        self.changed.emit()

    def _update_rows(self) -> None:
        denoise, m, f = self.task == "denoise", self.method, self._form
        for w, on in ((self.jump_row, not denoise and m == "repaint"), (self.sigma_r, not denoise and m == "annealed"),
                      (self.sigma_row, denoise), (self.noise_combo, denoise)):
            f.setRowVisible(w, on)

    def _on_sigma(self, *_):
        self.sigma_label.setText(f"{self.sigma_pixels:.2f}")
        self.refresh_observation()
        self.changed.emit()

    # ---- images ---------------------------------------------------------------------------------
    def ready_key(self) -> tuple:
        """What preparing an image depends on: (model, norm, longest side, fit), for :class:`Ready`."""
        return self.model, self.norm, self.max_side_spin.value(), self.fit_combo.currentData()

    def accept(self, pixels: np.ndarray, name: str, ready: Ready | None = None) -> str | None:
        """Use ``pixels`` [C, H, W] in [0, 1] as the image (``ready``: it prepared in a worker, used if the
        settings it was prepared for are still the page's). Returns an error message (the current image
        is kept) or None."""
        old = (self.source, self.source_name)
        self.source, self.source_name = pixels, name
        if self.model is None:
            self.note_label.setText(f"{name}: kept until an image model is loaded")
            return None
        usable = ready is not None and ready.prepared is not None and all(
            a is b or a == b for a, b in zip(ready.key, self.ready_key()))
        err = self.prepare(new_image=True, ready=ready if usable else None)
        if err is not None:
            self.source, self.source_name = old
        return err

    def next_example(self) -> None:
        ex = self.examples
        if ex is None or not len(ex):
            self.message.emit("warning", "this model has no held-out examples here; open or drop an image instead")
            return
        self._example = (self._example + 1) % len(ex)
        err = self.accept(np.asarray(ex[self._example], dtype=np.float32), f"held-out example {self._example}")
        if err is not None:
            self.message.emit("error", err)

    def _on_max_side(self) -> None:
        if self.max_side_spin.value() != getattr(self, "_prepared_side", None):
            self.prepare()

    def prepare(self, new_image: bool = False, ready: Ready | None = None) -> str | None:
        """Fit the source image to the model (the library's prepare_image, unless ``ready`` has it); keep
        the mask's drawing when only the size changes. Returns an error message or None."""
        if self.source is None or self.model is None:
            return None
        try:
            prep = ready.prepared if ready is not None else img.prepare_image(
                self.source, LoadedModel(self.model, self.norm, {}, {}), max_side=self.max_side_spin.value(),
                fit=self.fit_combo.currentData())
        except ValueError as e:  # DataError is a ValueError
            return f"{self.source_name}: {e}"
        old_shape = self.mask_model.shape
        self.prepared = prep
        self._prepared_side = self.max_side_spin.value()
        hw = prep.shape_hw
        if self._has_mask and not new_image and old_shape != hw:
            self.mask_model.reset(hw, self.mask_model.resized(hw))
        elif new_image or not self._has_mask or old_shape != hw:
            self.mask_model.reset(hw, default_fill(hw))
        self._has_mask = True
        self.mask_model.brush_size = max(1, round(max(hw) / 12))
        C, H, W = prep.pixels.shape
        note = f"{self.source_name}: {W}×{H}, " + ("colour" if C == 3 else "grey")
        if self.source.shape[0] == 3 and C == 1:
            note += " (this model is grey: converted)"
        extra = prep.note.replace("converted colour→grey", "").strip("; ")
        self.note_label.setText(note + (f"; {extra}" if extra else ""))
        shown = ready.shown if ready is not None else _hwc(self.source)
        self.original_item.setImage(shown, autoLevels=False, levels=(0.0, 1.0))
        h0, w0 = self.source.shape[-2:]
        cropped = self.fit_combo.currentData() == "crop" and (H, W) != (h0, w0) and "cropped" in prep.note
        if cropped:  # the part the model sees, as the library cuts it (the centre)
            self.crop_item.setRect(QRectF((w0 - W) // 2, (h0 - H) // 2, W, H))
        self.crop_item.setVisible(cropped)
        self.original_vb.autoRange(padding=0.02)
        self.clear_results()
        self.refresh_observation()
        self.canvas.reset_view()
        self.changed.emit()
        return None

    def refresh_observation(self, seed: int | None = None) -> None:
        """Show what the chain is conditioned on: the image (inpainting) or the noisy y (denoising, with
        the clean image in the original view when there is one)."""
        if seed is not None:
            self._seed = int(seed)
        prep = self.prepared
        if prep is None or self.model is None:
            return
        self.noisy = None
        if self.task == "denoise":
            y = prep.y
            if self.noise_combo.currentData() == "add":
                sz = img.sigma_to_normalised(self.sigma_pixels, self.norm)
                y = R.noisy_observation(prep.y, sz, self._seed)
            self.noisy = y
            px = img.to_pixels(y.reshape(prep.pixels.shape), self.norm)
            self.canvas_title.setText("noisy observation y")
            clean = self.noise_combo.currentData() == "add"
            self.original_title.setText("clean image" if clean else "original, already noisy")
        else:
            px = prep.pixels
            self.canvas_title.setText("mask (magenta: fill)")
            self.original_title.setText("original" + (" (colour)" if self.source is not None and
                                                      self.source.shape[0] == 3 and prep.pixels.shape[0] == 1 else ""))
        self.canvas.set_image(px)

    # ---- the run ----------------------------------------------------------------------------------
    def form(self, sampling: R.Sampling) -> R.ImageForm:
        if self.prepared is None:
            raise ValueError("no image: drop one here, paste one (Ctrl+V), open a file or take an example")
        return R.ImageForm(y=self.prepared.y, known=self.mask_model.known.copy(), task=self.task, method=self.method,
                           sampling=sampling, sigma_r=self.sigma_r.value(), jump_length=self.jump_len.value(),
                           jump_n=self.jump_n.value(), sigma_pixels=self.sigma_pixels,
                           noise=self.noise_combo.currentData(), image_name=self.source_name)

    def pixels(self, x: np.ndarray) -> np.ndarray | None:
        """A state x [N, *S] (normalised) → pixels [N, C, H, W]."""
        if self.prepared is None:
            return None
        return img.to_pixels(x.reshape(x.shape[0], *self.prepared.pixels.shape), self.norm)

    def eventFilter(self, obj, ev):
        if obj is self.result_view and ev.type() == QEvent.Type.Resize and self._shown is not None:
            self.show_state(*self._shown)
        return False

    def show_state(self, x: np.ndarray, t: int) -> None:
        px = self.pixels(x)
        if px is None:
            return
        self._shown = (x, t)
        n, _, h, w = px.shape
        ncol = best_columns(n, h, w, self.result_view.width(), self.result_view.height())
        m = mosaic(px, fill=0.13, ncol=ncol)
        first = self.result_item.image is None or self.result_item.image.shape != m.shape or ncol != self._ncol
        self._ncol = ncol
        self.result_item.setImage(m, autoLevels=False, levels=(0.0, 1.0))
        if first:
            self.result_vb.autoRange(padding=0.02)
        n = px.shape[0]
        self.result_title.setText(f"{n} sample{'s' if n > 1 else ''} · t = {t}" + (" (result)" if t == 0 else ""))

    def clear_results(self) -> None:
        self._shown = None
        self.result_item.clear()
        self.result_title.setText("samples appear here (Run)")

    def save_png(self, path, x: np.ndarray) -> None:
        img.save_png(path, self.pixels(x))
