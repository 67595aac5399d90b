"""Posterior sampling on the current model (paper §2.5, App. C; spec §6): inpainting and denoising for
image models, a painted region or a Gaussian r(x) on the plane for 2-D models, fixed bits for binary
models. The conditioned chain runs in a background thread (the :mod:`models.inpainting` generators);
every few steps a float32 copy of x^t streams into the view, and afterwards the whole conditioned
trajectory is cached, scrubbable with the timestep slider and exportable (PNG, HDF5).

The main window adds this panel as a tab, calls :meth:`InpaintPanel.set_model` whenever the model
changes, routes image drops to :meth:`InpaintPanel.open_image` and shows :attr:`InpaintPanel.error`
messages. Bad input never loses the image or the mask being edited.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QMimeData, QRectF, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QPainter, QColor, QPen, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSlider,
                               QSpinBox, QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from models import inpainting as I
from models.checkpoint import save_trajectory
from models.data import IMAGE_EXTENSIONS, DataError
from models.io import LoadedModel
from models.sampling import Step

from ..mask import MaskCanvas, MaskModel, default_fill
from ..render import tile_images

MAX_SIDE = 128  # default: a conv model's input is shrunk to this longest side (CPU time grows with the pixels)
MAX_FRAMES = 600  # frames kept per run (every k-th state)
CACHE_BYTES = 256 * 2**20
PLANE_EXTENT = (-3.5, 3.5, -3.5, 3.5)  # normalised units
PLANE_GRID = 64

_METHOD_LABELS = {"clamp": "Clamp (paper, Fig. 5)", "annealed": "Annealed Gaussian r", "repaint": "RePaint resampling"}
_START_LABELS = {"observation": "start at y (reference code)", "prior": "start at π·r (paper)",
                 "matched": "matched noise level (exact)"}


def _kind(loaded: LoadedModel | None) -> str:
    if loaded is None:
        return "none"
    c = loaded.config
    shape = tuple(c.example_shape)
    if c.kernel == "binomial":
        return "bits" if len(shape) == 1 else "unsupported"
    if shape == (2,):
        return "points"
    try:
        I.image_geometry(c)
        return "image"
    except ValueError:
        return "unsupported"


def _default_fit(loaded: LoadedModel) -> str:
    """Crop large images for models trained on patches of larger images (textures), else shrink."""
    meta = loaded.meta or {}
    text = " ".join(str(meta.get(k) or "") for k in ("preset", "data", "data_description")).lower()
    return "crop" if ("patch" in text or "bark" in text or "texture" in text) else "shrink"


def qimage_to_array(img: QImage) -> np.ndarray:
    """A QImage → uint8 [H, W, 3] (alpha dropped)."""
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


class _RunThread(QThread):
    """Iterates one step generator; emits every ``every``-th state (and the last) as float32 numpy.
    ``cancel()`` takes effect before the next step."""

    frame = Signal(int, int, object)  # index in the chain, paper time t, x float32 [N, *S]
    done = Signal(bool)  # True: ran to the end; False: cancelled
    failed = Signal(str)

    def __init__(self, make_steps: Callable[[], Iterator[Step]], every: int, parent=None):
        super().__init__(parent)
        self._make = make_steps
        self._every = max(1, int(every))
        self._cancel = False

    def cancel(self) -> None:
        self._cancel = True

    @property
    def cancelled(self) -> bool:
        return self._cancel

    def run(self) -> None:  # QThread entry point
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore", UserWarning)
                steps = self._make()
                last, i, sent = None, -1, -1
                try:
                    for i, st in enumerate(steps):
                        if self._cancel:
                            self.done.emit(False)
                            return
                        last = st
                        if i % self._every == 0:
                            self.frame.emit(i, int(st.t), st.x.detach().cpu().numpy().astype(np.float32, copy=True))
                            sent = i
                finally:
                    close = getattr(steps, "close", None)
                    if close is not None:
                        close()
                if last is not None and sent != i:
                    self.frame.emit(i, int(last.t), last.x.detach().cpu().numpy().astype(np.float32, copy=True))
            self.done.emit(True)
        except Exception as e:  # reported in the panel, never raised in a thread
            self.failed.emit(f"sampling failed: {type(e).__name__}: {e}")


class BitsEditor(QWidget):
    """A row (wrapped) of D bits to fix: click cycles free → 1 → 0 → free; right click frees."""

    changed = Signal()
    CELL = 20

    def __init__(self, D: int = 0, parent=None):
        super().__init__(parent)
        self.bits = np.full(D, -1, dtype=np.int64)
        self.setMinimumHeight(self.CELL + 8)
        self.setToolTip("click a bit: free → 1 → 0 → free; right click: free")

    def set_length(self, D: int) -> None:
        if len(self.bits) != D:
            self.bits = np.full(D, -1, dtype=np.int64)
        self._resize()
        self.update()

    def _cols(self) -> int:
        return max(1, min(len(self.bits), max(1, (self.width() - 8) // self.CELL)))

    def _resize(self) -> None:
        rows = math.ceil(len(self.bits) / self._cols()) if len(self.bits) else 1
        self.setMinimumHeight(rows * self.CELL + 8)

    def resizeEvent(self, ev):
        self._resize()
        super().resizeEvent(ev)

    def cell_at(self, x: float, y: float) -> int | None:
        c, r = int((x - 4) // self.CELL), int((y - 4) // self.CELL)
        i = r * self._cols() + c
        if 0 <= c < self._cols() and r >= 0 and 0 <= i < len(self.bits):
            return i
        return None

    def set_bit(self, i: int, v: int) -> None:
        self.bits[i] = v
        self.update()
        self.changed.emit()

    def mousePressEvent(self, ev):
        i = self.cell_at(ev.position().x(), ev.position().y())
        if i is None:
            return
        if ev.button() == Qt.MouseButton.RightButton:
            self.set_bit(i, -1)
        else:
            self.set_bit(i, {-1: 1, 1: 0, 0: -1}[int(self.bits[i])])

    def paintEvent(self, ev):
        p = QPainter(self)
        cols = self._cols()
        for i, b in enumerate(self.bits):
            r, c = divmod(i, cols)
            rect = QRectF(4 + c * self.CELL, 4 + r * self.CELL, self.CELL - 2, self.CELL - 2)
            p.fillRect(rect, QColor(*{-1: (110, 110, 110), 1: (245, 245, 245), 0: (20, 20, 20)}[int(b)]))
            p.setPen(QPen(QColor(255, 60, 160) if b >= 0 else QColor(60, 60, 60)))
            p.drawRect(rect)
            if b < 0:
                p.setPen(QColor(200, 200, 200))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "·")
        p.end()


class InpaintPanel(QWidget):
    """Inpainting / denoising / regions / fixed bits on the current model (see the module docstring)."""

    error = Signal(str)  # a clear, non-modal message about bad input or a failed run
    message = Signal(str)  # progress and results, for a status bar
    running_changed = Signal(bool)
    result_ready = Signal()

    def __init__(self, state=None, parent=None):
        super().__init__(parent)
        self.state = state
        self.setAcceptDrops(True)
        self.loaded: LoadedModel | None = None
        self.kind = "none"
        self._source: np.ndarray | None = None  # pixels [C, H, W] as opened
        self._source_name = ""
        self.prepared: I.PreparedImage | None = None
        self._noisy_z: torch.Tensor | None = None
        self._thread: _RunThread | None = None
        self._frames: list[np.ndarray] = []
        self._frame_t: list[int] = []
        self._frame_i: list[int] = []
        self._run_meta: dict = {}
        self._run_started = 0.0
        self._first_frame_s: float | None = None
        self._total_steps = 1
        self._follow = True
        self._display_timer = QTimer(self)
        self._display_timer.setSingleShot(True)
        self._display_timer.setInterval(40)
        self._display_timer.timeout.connect(self._show_current)

        self.mask_model = MaskModel((1, 1), brush_size=8)
        self.region_model = MaskModel((PLANE_GRID, PLANE_GRID), brush_size=6)
        self._build()
        self._set_kind("none")
        for seq, fn in ((QKeySequence.StandardKey.Paste, self.paste),
                        (QKeySequence.StandardKey.Undo, lambda: self._active_canvas().do("undo")),
                        (QKeySequence("Ctrl+Shift+Z"), lambda: self._active_canvas().do("redo")),
                        (QKeySequence.StandardKey.Redo, lambda: self._active_canvas().do("redo"))):
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        app = QGuiApplication.instance()
        if app is not None:  # never leave a sampling thread running at exit
            app.aboutToQuit.connect(lambda: self.cancel(wait=True))

    # =========================================================================================
    # building
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        # banner: a non-modal message that stays until closed or replaced
        self.banner = QWidget()
        bl = QHBoxLayout(self.banner)
        bl.setContentsMargins(8, 4, 4, 4)
        self.banner_label = QLabel()
        self.banner_label.setWordWrap(True)
        self.banner_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip("dismiss")
        close.clicked.connect(self.clear_banner)
        bl.addWidget(self.banner_label, 1)
        bl.addWidget(close)
        self.banner.hide()
        outer.addWidget(self.banner)

        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split, 1)
        split.addWidget(self._build_controls())
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_empty_page())
        self.pages.addWidget(self._build_image_page())
        self.pages.addWidget(self._build_plane_page())
        self.pages.addWidget(self._build_bits_page())
        cl.addWidget(self.pages, 1)
        # the timestep slider over the cached conditioned trajectory
        row = QHBoxLayout()
        self.time_slider = QSlider(Qt.Orientation.Horizontal)
        self.time_slider.setObjectName("inpaint_time_slider")
        self.time_slider.setRange(0, 0)
        self.time_slider.setEnabled(False)
        self.time_slider.setToolTip("scrub the conditioned trajectory (left: x^T, right: x^0)")
        self.time_slider.valueChanged.connect(self._on_slider)
        self.time_label = QLabel("no run yet")
        self.time_label.setMinimumWidth(190)
        row.addWidget(QLabel("step"))
        row.addWidget(self.time_slider, 1)
        row.addWidget(self.time_label)
        cl.addLayout(row)
        split.addWidget(central)
        split.setStretchFactor(1, 1)
        split.setSizes([320, 1000])
        split.setCollapsible(0, False)

    def _build_controls(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(2, 2, 2, 2)

        # ---- image
        self.image_group = QGroupBox("Image")
        g = QVBoxLayout(self.image_group)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open…")
        self.open_btn.setToolTip("open an image file (or drop one on this panel)")
        self.open_btn.clicked.connect(self._open_dialog)
        self.paste_btn = QPushButton("Paste")
        self.paste_btn.setToolTip("paste an image from the clipboard (Ctrl+V)")
        self.paste_btn.clicked.connect(self.paste)
        self.heldout_btn = QPushButton("Example")
        self.heldout_btn.setToolTip("use a held-out example stored with the model")
        self.heldout_btn.clicked.connect(self._use_heldout)
        for b in (self.open_btn, self.paste_btn, self.heldout_btn):
            row.addWidget(b)
        g.addLayout(row)
        srow = QHBoxLayout()
        srow.addWidget(QLabel("Longest side"))
        self.max_side_spin = QSpinBox()
        self.max_side_spin.setObjectName("inpaint_max_side")
        self.max_side_spin.setRange(8, 4096)
        self.max_side_spin.setValue(MAX_SIDE)
        self.max_side_spin.setSuffix(" px")
        self.max_side_spin.setToolTip("a fully convolutional model works at any size; larger images are shrunk to\n"
                                      "this longest side first (the time per step grows with the pixel count)")
        self.max_side_spin.editingFinished.connect(self._on_max_side)
        srow.addWidget(self.max_side_spin, 1)
        self.fit_combo = QComboBox()
        self.fit_combo.setObjectName("inpaint_fit")
        self.fit_combo.addItem("crop centre", "crop")
        self.fit_combo.addItem("shrink", "shrink")
        self.fit_combo.setToolTip("a larger image is cut down to its centre at full resolution (a texture model\n"
                                  "learned its texture at one scale) or shrunk as a whole")
        self.fit_combo.currentIndexChanged.connect(lambda *_: self._on_max_side(force=True))
        srow.addWidget(self.fit_combo)
        self.max_side_row = QWidget()
        self.max_side_row.setLayout(srow)
        srow.setContentsMargins(0, 0, 0, 0)
        g.addWidget(self.max_side_row)
        self.note_label = QLabel("drop an image here, paste one (Ctrl+V) or open a file")
        self.note_label.setObjectName("inpaint_note")
        self.note_label.setWordWrap(True)
        self.note_label.setStyleSheet("color: #8ab4f8;")
        g.addWidget(self.note_label)
        lay.addWidget(self.image_group)

        # ---- task (images)
        self.task_group = QGroupBox("Posterior")
        f = QFormLayout(self.task_group)
        self.task_combo = QComboBox()
        self.task_combo.addItem("Inpaint (fill the painted region)", "inpaint")
        self.task_combo.addItem("Denoise", "denoise")
        self.task_combo.currentIndexChanged.connect(self._on_task)
        f.addRow("Task", self.task_combo)
        self.method_combo = QComboBox()
        for m in I.METHODS:
            self.method_combo.addItem(_METHOD_LABELS[m], m)
        self.method_combo.setToolTip("clamp: the paper's r = δ on the known pixels, constant in t;\n"
                                     "annealed: a narrow Gaussian r raised to (T−t)/T, exact clamp at the end;\n"
                                     "RePaint: forward-noised known pixels, with jumps back up to harmonise")
        self.method_combo.currentIndexChanged.connect(self._update_visibility)
        f.addRow("Method", self.method_combo)
        self.jump_len = QSpinBox()
        self.jump_len.setRange(1, 100)
        self.jump_len.setValue(10)
        self.jump_n = QSpinBox()
        self.jump_n.setRange(1, 20)
        self.jump_n.setValue(5)
        self.jump_len.setToolTip("RePaint: steps per jump back up")
        self.jump_n.setToolTip("RePaint: times each stretch is run (1 = no resampling)")
        self.jump_row = QWidget()
        jr = QHBoxLayout(self.jump_row)
        jr.setContentsMargins(0, 0, 0, 0)
        jr.addWidget(QLabel("jump"))
        jr.addWidget(self.jump_len)
        jr.addWidget(QLabel("×"))
        jr.addWidget(self.jump_n)
        f.addRow("", self.jump_row)
        self.sigma_r = QDoubleSpinBox()
        self.sigma_r.setDecimals(3)
        self.sigma_r.setRange(0.001, 1.0)
        self.sigma_r.setSingleStep(0.01)
        self.sigma_r.setValue(0.05)
        self.sigma_r.setToolTip("annealed: the width of r on the known pixels (normalised units)")
        f.addRow("σ_r", self.sigma_r)
        # denoising
        self.sigma_slider = QSlider(Qt.Orientation.Horizontal)
        self.sigma_slider.setObjectName("inpaint_sigma")
        self.sigma_slider.setRange(1, 100)
        self.sigma_slider.setValue(20)
        self.sigma_slider.setToolTip("noise σ in pixel units (0–1 scale)")
        self.sigma_label = QLabel()
        self.sigma_slider.valueChanged.connect(self._on_sigma)
        srow = QWidget()
        sl = QHBoxLayout(srow)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.sigma_slider, 1)
        sl.addWidget(self.sigma_label)
        self.sigma_row = srow
        f.addRow("σ", srow)
        self.noise_combo = QComboBox()
        self.noise_combo.addItem("add noise of this σ", "add")
        self.noise_combo.addItem("image is already noisy", "noisy")
        self.noise_combo.currentIndexChanged.connect(self._refresh_denoise_preview)
        f.addRow("Noise", self.noise_combo)
        self.start_combo = QComboBox()
        for s in I.DENOISE_STARTS:
            self.start_combo.addItem(_START_LABELS[s], s)
        self.start_combo.setToolTip("observation / π·r: every step multiplied by N(y, σ²) (spec §6);\n"
                                    "matched: the plain chain started at the step whose noise equals σ")
        f.addRow("Chain", self.start_combo)
        lay.addWidget(self.task_group)
        self._task_form = f

        # ---- 2-D regions
        self.plane_group = QGroupBox("r(x) on the plane")
        f2 = QFormLayout(self.plane_group)
        self.region_combo = QComboBox()
        self.region_combo.addItem("painted region", "region")
        self.region_combo.addItem("Gaussian", "gaussian")
        self.region_combo.currentIndexChanged.connect(self._update_visibility)
        f2.addRow("r", self.region_combo)
        self.centre_x = QDoubleSpinBox()
        self.centre_y = QDoubleSpinBox()
        for sp in (self.centre_x, self.centre_y):
            sp.setRange(-10, 10)
            sp.setDecimals(2)
            sp.setSingleStep(0.1)
        self.centre_x.setValue(1.0)
        self.gauss_std = QDoubleSpinBox()
        self.gauss_std.setRange(0.02, 10)
        self.gauss_std.setDecimals(2)
        self.gauss_std.setSingleStep(0.05)
        self.gauss_std.setValue(0.5)
        for sp in (self.centre_x, self.centre_y, self.gauss_std):
            sp.valueChanged.connect(self._update_gauss_item)
        crow = QWidget()
        cr = QHBoxLayout(crow)
        cr.setContentsMargins(0, 0, 0, 0)
        cr.addWidget(self.centre_x)
        cr.addWidget(self.centre_y)
        self.centre_row = crow
        f2.addRow("centre", crow)
        f2.addRow("std", self.gauss_std)
        self.softness = QDoubleSpinBox()
        self.softness.setObjectName("inpaint_softness")
        self.softness.setRange(0.0, 5.0)
        self.softness.setDecimals(2)
        self.softness.setSingleStep(0.05)
        self.softness.setValue(0.25)
        self.softness.setToolTip("r falls off as exp(−d²/2s²) with the distance d from the painted region;\n"
                                 "0 = the bare painted indicator (it only acts at the region's edge)")
        f2.addRow("softness", self.softness)
        self.plane_hint = QLabel("paint where r is high; click the plane to move the Gaussian's centre")
        self.plane_hint.setWordWrap(True)
        f2.addRow(self.plane_hint)
        lay.addWidget(self.plane_group)
        self._plane_form = f2

        # ---- bits
        self.bits_group = QGroupBox("Fixed bits")
        bl = QVBoxLayout(self.bits_group)
        lbl = QLabel("click bits above the samples to fix them to 1 or 0; the free ones are sampled")
        lbl.setWordWrap(True)
        bl.addWidget(lbl)
        free = QPushButton("Free all")
        free.clicked.connect(lambda: (self.bits_editor.bits.fill(-1), self.bits_editor.update()))
        bl.addWidget(free)
        lay.addWidget(self.bits_group)

        # ---- run
        run_group = QGroupBox("Sampling")
        f3 = QFormLayout(run_group)
        self.samples_spin = QSpinBox()
        self.samples_spin.setObjectName("inpaint_samples")
        self.samples_spin.setRange(1, 10000)
        self.samples_spin.setValue(2)
        f3.addRow("Samples", self.samples_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("inpaint_seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(0)
        self.seed_spin.valueChanged.connect(self._refresh_denoise_preview)
        dice = QToolButton()
        dice.setText("⚄")
        dice.setToolTip("a random seed")
        dice.clicked.connect(lambda: self.seed_spin.setValue(int(np.random.default_rng().integers(0, 2**31 - 1))))
        srow = QWidget()
        sr = QHBoxLayout(srow)
        sr.setContentsMargins(0, 0, 0, 0)
        sr.addWidget(self.seed_spin, 1)
        sr.addWidget(dice)
        f3.addRow("Seed", srow)
        brow = QHBoxLayout()
        self.run_btn = QPushButton("Run")
        self.run_btn.setObjectName("inpaint_run")
        self.run_btn.setToolTip("sample the conditioned chain (Ctrl+Return)")
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setObjectName("inpaint_cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        brow.addWidget(self.run_btn)
        brow.addWidget(self.cancel_btn)
        f3.addRow(brow)
        sc = QShortcut(QKeySequence("Ctrl+Return"), self)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(self.run)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        f3.addRow(self.progress)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        f3.addRow(self.status_label)
        lay.addWidget(run_group)

        # ---- export
        ex = QGroupBox("Export")
        el = QHBoxLayout(ex)
        self.save_png_btn = QPushButton("Result PNG…")
        self.save_png_btn.setToolTip("the frame shown (all samples side by side)")
        self.save_png_btn.clicked.connect(self._save_png_dialog)
        self.save_traj_btn = QPushButton("Trajectory HDF5…")
        self.save_traj_btn.setToolTip("every cached state x^t of the conditioned chain")
        self.save_traj_btn.clicked.connect(self._save_traj_dialog)
        for b in (self.save_png_btn, self.save_traj_btn):
            b.setEnabled(False)
            el.addWidget(b)
        lay.addWidget(ex)
        lay.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(w)
        scroll.setMinimumWidth(w.sizeHint().width() + 24)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        return scroll

    def _build_empty_page(self) -> QWidget:
        self.empty_label = QLabel("Open or train a model to sample its posteriors here:\n"
                                  "inpainting and denoising (images), a region on the plane (2-D), fixed bits (binary).")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        return self.empty_label

    def _tool_row(self, canvas: MaskCanvas, model: MaskModel, with_files: bool) -> tuple[QWidget, dict]:
        bar = QWidget()
        h = QHBoxLayout(bar)
        h.setContentsMargins(0, 0, 0, 0)
        group = QButtonGroup(bar)
        group.setExclusive(True)
        buttons = {}
        for tool, text, key, tip in (("brush", "Brush", "B", "paint the region to fill"),
                                     ("eraser", "Eraser", "E", "mark pixels as known again"),
                                     ("rectangle", "Rect", "R", "drag a rectangle (right button: erase)"),
                                     ("fill", "Fill", "F", "flood-fill a region (right button: erase)")):
            b = QToolButton()
            b.setText(text)
            b.setCheckable(True)
            b.setToolTip(f"{tip} ({key}; right button does the opposite)")
            b.clicked.connect(lambda _=False, t=tool, c=canvas: c.set_tool(t))
            group.addButton(b)
            h.addWidget(b)
            buttons[tool] = b
        buttons["brush"].setChecked(True)
        canvas.toolChanged.connect(lambda t, bs=buttons: bs[t].setChecked(True))
        size = QSlider(Qt.Orientation.Horizontal)
        size.setRange(1, 128)
        size.setValue(int(model.brush_size))
        size.setMaximumWidth(140)
        size.setToolTip("brush size in pixels ([ and ])")
        size_label = QLabel(f"{model.brush_size:.0f} px")
        size_label.setMinimumWidth(44)
        size.valueChanged.connect(lambda v, m=model: setattr(m, "brush_size", v))

        def on_size(d, s=size, lab=size_label):
            s.blockSignals(True)
            s.setValue(int(round(min(d, s.maximum()))))
            s.blockSignals(False)
            lab.setText(f"{d:.0f} px")

        canvas.brushSizeChanged.connect(on_size)
        h.addSpacing(8)
        h.addWidget(QLabel("size"))
        h.addWidget(size)
        h.addWidget(size_label)
        h.addSpacing(8)
        acts = {}
        for action, text, tip in (("undo", "Undo", "undo the last stroke (Ctrl+Z)"),
                                  ("redo", "Redo", "redo (Ctrl+Shift+Z)"),
                                  ("clear", "Clear", "nothing to fill (Delete)"),
                                  ("invert", "Invert", "swap known and to-fill (X)")):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, a=action, c=canvas: c.do(a))
            h.addWidget(b)
            acts[action] = b

        def on_history(c=canvas, m=model, a=acts):
            a["undo"].setEnabled(m.can_undo)
            a["redo"].setEnabled(m.can_redo)

        canvas.historyChanged.connect(on_history)
        on_history()
        if with_files:
            h.addSpacing(8)
            lm = QToolButton()
            lm.setText("Load mask…")
            lm.setToolTip("a PNG: white = known, black = to fill")
            lm.clicked.connect(self._load_mask_dialog)
            sm = QToolButton()
            sm.setText("Save mask…")
            sm.setToolTip("as a PNG: white = known, black = to fill")
            sm.clicked.connect(self._save_mask_dialog)
            h.addWidget(lm)
            h.addWidget(sm)
            acts["load"], acts["save"] = lm, sm
        h.addStretch(1)
        acts.update(buttons)
        acts["size"] = size
        return bar, acts

    def _build_image_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 0, 0, 0)
        self.canvas = MaskCanvas(self.mask_model)
        self.canvas.setObjectName("inpaint_canvas")
        self.canvas.setToolTip("paint the region to fill; middle drag pans, wheel zooms")
        self.image_tools, self._image_actions = self._tool_row(self.canvas, self.mask_model, True)
        v.addWidget(self.image_tools)
        self.canvas.maskChanged.connect(self._on_mask_changed)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        self.canvas_title = QLabel("observed image · magenta = to fill")
        ll.addWidget(self.canvas_title)
        ll.addWidget(self.canvas, 1)
        split.addWidget(left)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.result_title = QLabel("samples")
        rl.addWidget(self.result_title)
        self.result_view = pg.GraphicsView(background="#202124")
        self.result_view.setObjectName("inpaint_results")
        self.result_view.setAcceptDrops(False)
        self.result_view.viewport().setAcceptDrops(False)
        self.result_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.result_view.setCentralItem(self.result_vb)
        self.result_item = pg.ImageItem(axisOrder="row-major")
        self.result_vb.addItem(self.result_item)
        rl.addWidget(self.result_view, 1)
        split.addWidget(right)
        split.setSizes([500, 500])
        v.addWidget(split, 1)
        return page

    def _build_plane_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 0, 0, 0)
        self.plane = MaskCanvas(self.region_model, invert_y=False)
        self.plane.setObjectName("inpaint_plane")
        self.plane_tools, self._plane_actions = self._tool_row(self.plane, self.region_model, False)
        v.addWidget(self.plane_tools)
        x0, x1, y0, y1 = PLANE_EXTENT
        self.plane.set_image(np.zeros((PLANE_GRID, PLANE_GRID), np.float32), rect=(x0, y0, x1 - x0, y1 - y0))
        self.plane.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        grid = pg.GridItem()
        grid.setZValue(5)
        self.plane.vb.addItem(grid)
        self.scatter = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(120, 200, 255, 170))
        self.scatter.setZValue(30)
        self.plane.vb.addItem(self.scatter)
        pen = QPen(QColor(255, 200, 40))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self.gauss_items = []
        for k in (1, 2):
            it = pg.QtWidgets.QGraphicsEllipseItem()
            p = QPen(pen)
            if k == 2:
                p.setStyle(Qt.PenStyle.DashLine)
            it.setPen(p)
            it.setZValue(25)
            self.plane.vb.addItem(it)
            self.gauss_items.append(it)
        self.plane.clicked.connect(self._on_plane_click)
        self.plane_caption = QLabel("x₁, x₂ in the model's normalised units")
        v.addWidget(self.plane, 1)
        v.addWidget(self.plane_caption)
        self._update_gauss_item()
        return page

    def _build_bits_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(QLabel("bits to fix (grey = free, white = 1, black = 0)"))
        self.bits_editor = BitsEditor(0)
        self.bits_editor.setObjectName("inpaint_bits")
        v.addWidget(self.bits_editor)
        v.addWidget(QLabel("samples (one per row)"))
        self.bits_view = pg.GraphicsView(background="#202124")
        self.bits_view.setAcceptDrops(False)
        self.bits_view.viewport().setAcceptDrops(False)
        self.bits_vb = pg.ViewBox(invertY=True, enableMenu=False)
        self.bits_view.setCentralItem(self.bits_vb)
        self.bits_item = pg.ImageItem(axisOrder="row-major")
        self.bits_vb.addItem(self.bits_item)
        v.addWidget(self.bits_view, 1)
        return page

    # =========================================================================================
    # messages
    def show_banner(self, text: str, level: str = "error") -> None:
        colours = {"error": ("#5c1f1f", "#ffb4ab"), "warning": ("#4d3b00", "#ffe08a"), "info": ("#1f3a5c", "#cfe3ff")}
        bg, fg = colours.get(level, colours["info"])
        self.banner.setStyleSheet(f"background: {bg}; color: {fg}; border-radius: 4px;")
        self.banner_label.setText(text)
        self.banner.show()

    def clear_banner(self) -> None:
        self.banner.hide()
        self.banner_label.setText("")

    @property
    def banner_text(self) -> str:
        """The message shown in the banner ('' when none)."""
        return "" if self.banner.isHidden() else self.banner_label.text()

    def _fail(self, text: str) -> None:
        self.show_banner(text, "error")
        self.error.emit(text)

    def _active_canvas(self) -> MaskCanvas:
        return self.plane if self.kind == "points" else self.canvas

    # =========================================================================================
    # model
    def set_model(self, loaded: LoadedModel | None) -> None:
        """Use ``loaded`` (None: no model). A run in progress is cancelled; the image and mask stay."""
        if loaded is self.loaded:
            return
        old = self.loaded
        if (old is not None and loaded is not None and old.config == loaded.config and old.norm == loaded.norm):
            # the same kind of model (a training snapshot, say): keep the image, mask, run and results
            self.loaded = loaded
            return
        if self.is_running:
            self.cancel(wait=True)
            # forget the cancelled run: its queued frame/done signals must not reach the new model's view
            self._thread = None
            self._set_running(False)
            self.status_label.setText("the run was cancelled: the model changed")
        self.loaded = loaded
        self._clear_frames()
        kind = _kind(loaded)
        self._set_kind(kind)
        if kind == "image":
            self.fit_combo.blockSignals(True)
            self.fit_combo.setCurrentIndex(self.fit_combo.findData(_default_fit(loaded)))
            self.fit_combo.blockSignals(False)
            if self._source is not None:
                self._prepare(keep_mask=True)
            elif loaded.heldout is not None and len(loaded.heldout):
                self._use_heldout()
            else:
                self.note_label.setText("drop an image here, paste one (Ctrl+V) or open a file")
        elif kind == "bits":
            self.bits_editor.set_length(int(np.prod(loaded.config.example_shape)))
            self.samples_spin.setValue(max(self.samples_spin.value(), 16))
        elif kind == "points":
            self.samples_spin.setValue(max(self.samples_spin.value(), 500))
        elif kind == "unsupported":
            self.empty_label.setText(f"This panel does not handle a {loaded.config.kernel} model of examples shaped "
                                     f"{tuple(loaded.config.example_shape)}.")

    def _set_kind(self, kind: str) -> None:
        self.kind = kind
        self.pages.setCurrentIndex({"image": 1, "points": 2, "bits": 3}.get(kind, 0))
        self.image_group.setVisible(kind == "image")
        self.task_group.setVisible(kind == "image")
        self.plane_group.setVisible(kind == "points")
        self.bits_group.setVisible(kind == "bits")
        self.run_btn.setEnabled(kind in ("image", "points", "bits"))
        self.max_side_row.setVisible(kind == "image" and self.loaded.config.arch == "conv")
        if kind == "image" and self.loaded is not None:
            self.method_combo.model().item(1).setEnabled(self.loaded.model.is_gaussian)
            self.method_combo.model().item(2).setEnabled(self.loaded.model.is_gaussian)
        self._update_visibility()

    def _update_visibility(self, *_):
        denoise = self.task
        method = self.method_combo.currentData()
        f = self._task_form
        for wdg, on in ((self.method_combo, denoise == "inpaint"), (self.jump_row, denoise == "inpaint" and method == "repaint"),
                        (self.sigma_r, denoise == "inpaint" and method == "annealed"),
                        (self.sigma_row, denoise == "denoise"), (self.noise_combo, denoise == "denoise"),
                        (self.start_combo, denoise == "denoise")):
            f.setRowVisible(wdg, on)
        gauss = self.region_combo.currentData() == "gaussian"
        self._plane_form.setRowVisible(self.centre_row, gauss)
        self._plane_form.setRowVisible(self.gauss_std, gauss)
        self._plane_form.setRowVisible(self.softness, not gauss)
        for it in self.gauss_items:
            it.setVisible(gauss)
        self.plane.set_editable(not gauss)
        self.plane.set_overlay_visible(not gauss)
        self.plane_tools.setEnabled(not gauss)
        self.plane_hint.setText("click the plane to move the centre (an exact Gaussian product at every step)"
                                if gauss else "paint where r is high: r = 1 inside, falling off outside; applied as "
                                "a smooth r (App. C: each step's mean moves by Σ·∇log r)")

    @property
    def task(self) -> str:
        return self.task_combo.currentData()

    def _on_task(self, *_):
        self._update_visibility()
        denoise = self.task == "denoise"
        self.canvas.set_editable(not denoise)
        self.canvas.set_overlay_visible(not denoise)
        self.image_tools.setEnabled(not denoise)
        self.canvas_title.setText("noisy observation y" if denoise else "observed image · magenta = to fill")
        self._refresh_denoise_preview()

    def _on_sigma(self, *_):
        self.sigma_label.setText(f"{self.sigma_pixels:.2f}")
        self._refresh_denoise_preview()

    @property
    def sigma_pixels(self) -> float:
        return self.sigma_slider.value() / 100

    # =========================================================================================
    # images
    def open_image(self, path) -> bool:
        """Open an image file; on failure the message is shown and the current image is kept."""
        try:
            px = I.coerce_image(Path(path))
        except (DataError, OSError, ValueError) as e:
            self._fail(str(e))
            return False
        return self._accept_source(px, Path(path).name)

    def set_image(self, array, name: str = "image") -> bool:
        """Use an array ([H, W], [H, W, C] or [C, H, W]; uint8, uint16 or float in [0, 1])."""
        try:
            px = I.coerce_image(array, what=name)
        except (DataError, ValueError) as e:
            self._fail(str(e))
            return False
        return self._accept_source(px, name)

    def _accept_source(self, px: np.ndarray, name: str) -> bool:
        old = (self._source, self._source_name)
        self._source, self._source_name = px, name
        if self.kind == "image" and not self._prepare(keep_mask=True):
            self._source, self._source_name = old
            return False
        if self.kind != "image":
            self.note_label.setText(f"{name}: kept until an image model is loaded")
        self.clear_banner()
        self.message.emit(f"inpainting: opened {name}")
        return True

    def _on_max_side(self, force: bool = False) -> None:
        """Re-prepare the image if the new longest side (or fit) changes it (conv models only)."""
        if self.kind != "image" or self._source is None or self.prepared is None or self.loaded.config.arch != "conv":
            return
        if force:
            self._prepare(keep_mask=True)
            return
        h0, w0 = self._source.shape[-2:]
        s = self.max_side_spin.value()
        f = s / max(h0, w0)
        want = (h0, w0) if f >= 1 else (max(1, round(h0 * f)), max(1, round(w0 * f)))
        if want != self.prepared.shape_hw:
            self._prepare(keep_mask=True)

    def _prepare(self, keep_mask: bool) -> bool:
        try:
            prep = I.prepare_image(self._source, self.loaded, max_side=self.max_side_spin.value(),
                                   fit=self.fit_combo.currentData())
        except (DataError, ValueError) as e:
            self._fail(f"{self._source_name}: {e}")
            return False
        old_shape = self.mask_model.shape
        self.prepared = prep
        self._clear_frames()
        hw = prep.shape_hw
        if keep_mask and self._has_image_mask and old_shape != hw:
            fill = self.mask_model.resized(hw)
            self.mask_model.reset(hw, fill)
        elif not (keep_mask and self._has_image_mask):
            self.mask_model.reset(hw, default_fill(hw))
        self._has_image_mask = True
        if old_shape != hw:
            self.mask_model.brush_size = max(1, round(max(hw) / 16))
        C, H, W = prep.pixels.shape
        note = f"{self._source_name}: {W}×{H}" + (", colour" if C == 3 else ", grey")
        self.note_label.setText(note + (f" — {prep.note}" if prep.note else ""))
        self._refresh_denoise_preview()
        self.canvas.reset_view()
        return True

    _has_image_mask = False

    def _refresh_denoise_preview(self, *_):
        if self.kind != "image" or self.prepared is None:
            return
        self._noisy_z = None
        if self.task == "denoise":
            y = self.prepared.y
            if self.noise_combo.currentData() == "add":
                rng = np.random.default_rng([self.seed_spin.value(), 1])
                sz = I.sigma_to_normalised(self.sigma_pixels, self.loaded.norm)
                y = y + torch.from_numpy(sz * rng.standard_normal(tuple(y.shape)).astype(np.float32))
            self._noisy_z = y
            px = I.to_pixels(y.reshape(self.prepared.pixels.shape), self.loaded.norm)
        else:
            px = self.prepared.pixels
        self.canvas.set_image(px)

    def _use_heldout(self) -> None:
        lm = self.loaded
        if lm is None or lm.heldout is None or not len(lm.heldout):
            self._fail("this model file stores no held-out examples; open or drop an image instead")
            return
        n = len(lm.heldout)
        i = int(np.random.default_rng().integers(0, n)) if self._source_name.startswith("held-out") else 0
        c = lm.config
        Cm, H, W, _flat = I.image_geometry(c)
        z = np.asarray(lm.heldout[i], dtype=np.float32).reshape(Cm, H, W)
        self._accept_source(I.to_pixels(z, lm.norm), f"held-out example {i}")

    def paste(self) -> bool:
        """Paste an image (or an image file's path) from the clipboard."""
        md = QGuiApplication.clipboard().mimeData()
        return self._open_mime(md, "the clipboard")

    def _open_mime(self, md: QMimeData | None, where: str) -> bool:
        if md is None:
            self._fail(f"nothing to open from {where}")
            return False
        if md.hasUrls():
            files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if files:
                return self.open_image(files[0])
        if md.hasImage():
            img = md.imageData()
            if isinstance(img, QImage) and not img.isNull():
                return self.set_image(qimage_to_array(img), f"image from {where}")
        self._fail(f"{where} holds no image or image file")
        return False

    # drag and drop -----------------------------------------------------------------------------
    def dragEnterEvent(self, ev):
        md = ev.mimeData()
        if (md.hasUrls() and any(u.isLocalFile() for u in md.urls())) or md.hasImage():
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev):
        self.dragEnterEvent(ev)

    def dropEvent(self, ev):
        ok = self._open_mime(ev.mimeData(), "the drop")
        if ok:
            ev.acceptProposedAction()
        else:
            ev.ignore()

    # masks ---------------------------------------------------------------------------------------
    def _on_mask_changed(self) -> None:
        pass

    def load_mask(self, path) -> bool:
        try:
            self.mask_model.load(path)
        except (DataError, OSError, ValueError) as e:
            self._fail(str(e))
            return False
        self.message.emit(f"inpainting: mask loaded from {Path(path).name}")
        return True

    def save_mask(self, path) -> bool:
        try:
            self.mask_model.save(path)
        except (OSError, ValueError) as e:
            self._fail(f"{path}: cannot save the mask: {e}")
            return False
        self.message.emit(f"inpainting: mask saved to {path}")
        return True

    def _open_dialog(self):
        exts = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", f"Images ({exts});;All files (*)")
        if path:
            self.open_image(path)

    def _load_mask_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "PNG images (*.png);;All files (*)")
        if path:
            self.load_mask(path)

    def _save_mask_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.png", "PNG images (*.png)")
        if path:
            self.save_mask(path)

    # =========================================================================================
    # 2-D
    def _on_plane_click(self, x: float, y: float) -> None:
        if self.region_combo.currentData() == "gaussian":
            self.centre_x.setValue(x)
            self.centre_y.setValue(y)

    def _update_gauss_item(self, *_):
        cx, cy, s = self.centre_x.value(), self.centre_y.value(), self.gauss_std.value()
        for k, it in zip((1, 2), self.gauss_items):
            it.setRect(QRectF(cx - k * s, cy - k * s, 2 * k * s, 2 * k * s))

    # =========================================================================================
    # running
    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def _steps_factory(self) -> tuple[Callable[[], Iterator[Step]], int, int, dict] | None:
        """(make_steps, total states, bytes per state, meta) for the current settings, or None after
        reporting why not."""
        lm = self.loaded
        if lm is None:
            self._fail("no model: open or train one first")
            return None
        model = copy.deepcopy(lm.model).eval()  # training may go on with the original
        n = self.samples_spin.value()
        seed = self.seed_spin.value()
        g = torch.Generator(device=model.device).manual_seed(seed)
        T = model.T
        meta = dict(kind="", model=str(lm.path) if lm.path else "", seed=seed, n_samples=n, units="normalised",
                    norm=dict(lm.norm))
        if self.kind == "image":
            if self.prepared is None:
                self._fail("no image: drop one here, paste one (Ctrl+V) or open a file")
                return None
            prep = self.prepared
            per = prep.y.numel() * n * 4
            if self.task == "denoise":
                if not model.is_gaussian:
                    self._fail("denoising needs a Gaussian model")
                    return None
                y = self._noisy_z if self._noisy_z is not None else prep.y
                sz = I.sigma_to_normalised(self.sigma_pixels, lm.norm)
                start = self.start_combo.currentData()
                meta.update(kind="denoise", sigma_pixels=self.sigma_pixels, sigma_normalised=sz, start=start,
                            noise=self.noise_combo.currentData(), image=self._source_name)
                total = T + 1 if start != "matched" else I.matched_start_index(model, sz) + 1
                return (lambda: I.denoise_steps(model, y, sz, n_samples=n, generator=g, start=start)), total, per, meta
            known = self.mask_model.known
            note = I.mask_note(known)
            if note:
                self.show_banner(note, "warning")
                self.error.emit(note)
            method = self.method_combo.currentData()
            jl, jn, sr = self.jump_len.value(), self.jump_n.value(), self.sigma_r.value()
            meta.update(kind="inpaint", method=method, image=self._source_name, jump_length=jl, jump_n=jn, sigma_r=sr)
            total = 1 if known.all() else I.count_inpaint_steps(T, method, jump_length=jl, jump_n=jn)
            y = prep.y
            return (lambda: I.inpaint_steps(model, y, known, method=method, n_samples=n, generator=g, sigma_r=sr,
                                             jump_length=jl, jump_n=jn)), total, per, meta
        if self.kind == "points":
            per = n * 2 * 4
            if self.region_combo.currentData() == "gaussian":
                c = (self.centre_x.value(), self.centre_y.value())
                s = self.gauss_std.value()
                meta.update(kind="gaussian_region", centre=list(c), std=s)
                return (lambda: I.gaussian_region_steps(model, c, s, n, g)), T + 1, per, meta
            w = self.region_model.fill.astype(np.float32)
            if not w.any():
                self._fail("the region is empty: paint some of the plane first (or pick a Gaussian r)")
                return None
            soft = self.softness.value()
            meta.update(kind="region", extent=list(PLANE_EXTENT), softness=soft)
            return (lambda: I.region_steps(model, w, PLANE_EXTENT, n, g, softness=soft)), T + 1, per, meta
        if self.kind == "bits":
            bits = self.bits_editor.bits.copy()
            meta.update(kind="fixed_bits", bits=bits.tolist())
            per = n * len(bits) * 4
            return (lambda: I.fix_bits_steps(model, bits, n, g)), T + 1, per, meta
        self._fail("this model is not supported here")
        return None

    def run(self) -> bool:
        """Start sampling with the current settings (no-op while running). False if it cannot start."""
        if self.is_running:
            return False
        self.clear_banner()
        try:
            made = self._steps_factory()
        except (ValueError, RuntimeError) as e:
            self._fail(str(e))
            return False
        if made is None:
            return False
        make, total, per, meta = made
        every = max(1, math.ceil(total / MAX_FRAMES), math.ceil(total * per / CACHE_BYTES))
        meta["stride"] = every
        self._clear_frames()
        self._run_meta = meta
        self._total_steps = total
        self._follow = True
        self.progress.setRange(0, max(1, total - 1))
        self.progress.setValue(0)
        self._run_started = time.perf_counter()
        self._first_frame_s = None
        th = _RunThread(make, every, self)
        th.frame.connect(self._on_frame)
        th.done.connect(self._on_done)
        th.failed.connect(self._on_failed)
        th.finished.connect(self._on_thread_finished)
        self._thread = th
        self._set_running(True)
        self.status_label.setText("running…")
        th.start()
        return True

    def cancel(self, wait: bool = False) -> None:
        """Stop the run between two steps (the states so far stay cached)."""
        th = self._thread
        if th is None:
            return
        th.cancel()
        if wait:
            th.wait(10_000)

    def _set_running(self, on: bool) -> None:
        self.run_btn.setEnabled(not on and self.kind in ("image", "points", "bits"))
        self.cancel_btn.setEnabled(on)
        self.running_changed.emit(on)

    def _on_frame(self, i: int, t: int, x: np.ndarray) -> None:
        if self.sender() is not self._thread:
            return
        if self._first_frame_s is None and i > 0:
            self._first_frame_s = time.perf_counter() - self._run_started
        self._frames.append(x)
        self._frame_t.append(t)
        self._frame_i.append(i)
        self.progress.setValue(min(i, self.progress.maximum()))
        n = len(self._frames)
        self.time_slider.blockSignals(True)
        self.time_slider.setRange(0, n - 1)
        if self._follow:
            self.time_slider.setValue(n - 1)
        self.time_slider.blockSignals(False)
        self.time_slider.setEnabled(True)
        if self._follow and not self._display_timer.isActive():
            self._display_timer.start()

    def _on_done(self, completed: bool) -> None:
        if self.sender() is not self._thread:
            return
        secs = time.perf_counter() - self._run_started
        if completed:
            self.progress.setValue(self.progress.maximum())
            text = f"done: {len(self._frames)} frames cached in {secs:.1f} s"
            if self._first_frame_s is not None:
                text += f" (first step after {self._first_frame_s:.2f} s)"
        else:
            text = f"cancelled after {secs:.1f} s; {len(self._frames)} frames kept"
        self.status_label.setText(text)
        self.message.emit(f"inpainting: {text}")
        self._run_meta["completed"] = completed
        self._show_current()
        if completed:
            self.result_ready.emit()

    def _on_failed(self, text: str) -> None:
        if self.sender() is not self._thread:
            return
        self.status_label.setText("failed")
        self._fail(text)

    def _on_thread_finished(self) -> None:
        th = self.sender()
        if th is self._thread:
            self._thread = None
            self._set_running(False)
            has = bool(self._frames)
            self.save_png_btn.setEnabled(has)
            self.save_traj_btn.setEnabled(has)
        if th is not None:
            th.deleteLater()

    def _clear_frames(self) -> None:
        self._frames.clear()
        self._frame_t.clear()
        self._frame_i.clear()
        self.time_slider.blockSignals(True)
        self.time_slider.setRange(0, 0)
        self.time_slider.blockSignals(False)
        self.time_slider.setEnabled(False)
        self.time_label.setText("no run yet")
        self.save_png_btn.setEnabled(False)
        self.save_traj_btn.setEnabled(False)
        self.result_item.clear()
        self.scatter.setData([], [])
        self.bits_item.clear()

    # =========================================================================================
    # display
    @property
    def frames(self) -> list[np.ndarray]:
        """The cached states x^t (float32 [N, *S], normalised units), in the order they were produced."""
        return self._frames

    @property
    def frame_times(self) -> list[int]:
        return self._frame_t

    def _on_slider(self, v: int) -> None:
        self._follow = v >= self.time_slider.maximum()
        self._show_current()

    def current_pixels(self) -> np.ndarray | None:
        """The frame at the slider as pixels [N, C, H, W] (image models) or None."""
        if not self._frames or self.kind != "image" or self.prepared is None:
            return None
        i = min(self.time_slider.value(), len(self._frames) - 1)
        x = self._frames[i]
        return I.to_pixels(x.reshape(x.shape[0], *self.prepared.pixels.shape), self.loaded.norm)

    def _show_current(self) -> None:
        if not self._frames:
            return
        i = min(self.time_slider.value(), len(self._frames) - 1)
        x = self._frames[i]
        t = self._frame_t[i]
        self.time_label.setText(f"t = {t}  (state {self._frame_i[i] + 1} of {self._total_steps})")
        if self.kind == "image":
            px = self.current_pixels()
            self.result_item.setImage(self._mosaic(px, fill=0.13), autoLevels=False, levels=(0.0, 1.0))
            n = px.shape[0]
            self.result_title.setText(f"{n} sample{'s' if n > 1 else ''} · x^{t}" + (" (result)" if t == 0 else ""))
            if self._first_display(px.shape):
                self.result_vb.autoRange(padding=0.02)
        elif self.kind == "points":
            self.scatter.setData(x[:, 0], x[:, 1])
        elif self.kind == "bits":
            img = x.reshape(x.shape[0], -1).astype(np.float32)
            self.bits_item.setImage(img, autoLevels=False, levels=(0.0, 1.0))
            if self._first_display(img.shape):
                self.bits_vb.autoRange(padding=0.02)

    @staticmethod
    def _mosaic(px: np.ndarray, fill: float) -> np.ndarray:
        """Samples [N, C, H, W] → one image [H', W'] or [H', W', 3]: a row for up to 4, else a grid."""
        if px.shape[0] <= 4:
            m = I.tile(px, gap=2, fill=fill)  # [C, H, W']
            return np.ascontiguousarray(m[0] if m.shape[0] == 1 else np.moveaxis(m, 0, -1))
        return tile_images(px, gap=2, fill=fill)

    _shown_shape = None

    def _first_display(self, shape) -> bool:
        if shape != self._shown_shape:
            self._shown_shape = shape
            return True
        return False

    # =========================================================================================
    # export
    def save_result(self, path) -> bool:
        """The frame at the slider: images as a PNG (samples side by side); 2-D points and bits as
        .npy if the path ends so, else (bits) a PNG."""
        if not self._frames:
            self._fail("nothing to save yet: run first")
            return False
        try:
            if self.kind == "image":
                m = self._mosaic(self.current_pixels(), fill=1.0)
                I.save_png(path, np.moveaxis(m, -1, 0) if m.ndim == 3 else m)
            else:
                x = self._frames[min(self.time_slider.value(), len(self._frames) - 1)]
                if str(path).endswith(".npy"):
                    from models.checkpoint import atomic_write

                    with atomic_write(path) as tmp:
                        np.save(tmp, x)
                else:
                    I.save_png(path, x.reshape(x.shape[0], -1) if self.kind == "bits" else
                               self._points_png(x))
        except (OSError, ValueError) as e:
            self._fail(f"{path}: cannot save: {e}")
            return False
        self.message.emit(f"inpainting: saved {path}")
        return True

    @staticmethod
    def _points_png(x: np.ndarray, size: int = 256) -> np.ndarray:
        img = np.zeros((size, size), np.float32)
        x0, x1, y0, y1 = PLANE_EXTENT
        c = ((x[:, 0] - x0) / (x1 - x0) * (size - 1)).round().astype(int)
        r = ((y1 - x[:, 1]) / (y1 - y0) * (size - 1)).round().astype(int)
        ok = (c >= 0) & (c < size) & (r >= 0) & (r < size)
        img[r[ok], c[ok]] = 1.0
        return img

    def save_trajectory(self, path) -> bool:
        """The cached conditioned trajectory as HDF5 (models.checkpoint.save_trajectory): traj
        [S, N, *shape] in normalised units, t [S] (not monotone for RePaint), meta (method, seed, …)."""
        if not self._frames:
            self._fail("nothing to save yet: run first")
            return False
        try:
            save_trajectory(path, np.stack(self._frames), t=np.asarray(self._frame_t, dtype=np.int64),
                            meta=dict(self._run_meta, direction="reverse", index=list(map(int, self._frame_i))))
        except (OSError, ValueError) as e:
            self._fail(f"{path}: cannot save the trajectory: {e}")
            return False
        self.message.emit(f"inpainting: trajectory saved to {path}")
        return True

    def _save_png_dialog(self):
        default = "inpainted.png" if self.kind == "image" else "samples.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save result", default, "PNG images (*.png);;NumPy (*.npy)")
        if path:
            self.save_result(path)

    def _save_traj_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save trajectory", "conditioned_trajectory.h5", "HDF5 (*.h5 *.hdf5)")
        if path:
            self.save_trajectory(path)

    # =========================================================================================
    def closeEvent(self, ev):
        self.cancel(wait=True)
        super().closeEvent(ev)
