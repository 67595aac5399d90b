"""The inpainting panel: posterior sampling p̃(x^0) ∝ p(x^0)·r(x^0) on the current model (paper §2.5,
App. C) — inpainting and denoising for image models, a painted region or a Gaussian r on the plane for
2-D models, fixed bits for binary models.

Layout: a side column of controls (the page's own, then samples, Run/Cancel, progress, export) and the
page's views, with a step slider that scrubs the conditioned trajectory and, for SMC, the effective
sample size over t. The panel reads the :class:`~explorer.state.AppState` (model, data, norm), reports
through ``state.post`` and resets with the model (:meth:`InpaintPanel.reset_for_model`, connected to
``state.session_changed``). A run is a superqt generator worker (the kind :func:`explorer.workers.run_task`
uses for functions) iterating :func:`request.stream` on a copy of the model, in a one-thread pool of the
panel's own; the form → library call mapping is Qt-free (:mod:`.request`). Images and masks come in
through :class:`.opening.ImageInput` (files are read off the GUI thread).
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QSizePolicy, QSlider, QSpinBox, QStackedWidget, QToolButton, QVBoxLayout,
                               QWidget)
from superqt.utils import create_worker

from models.files import atomic_write, save_trajectory
from models.runtime import MAX_BATCH

from ...workers import copy_model
from . import request as R
from .bits_page import BitsPage
from .image_page import ImagePage
from .opening import ImageInput
from .plane_page import PlanePage

SIDE_WIDTH = 262  # the side column's width (px)
DRAW_EVERY_MS = 33  # a run's frames are drawn at most this often (the latest one; never while hidden)
PAGE_INDEX = {"image": 1, "plane": 2, "bits": 3}


class InpaintPanel(ImageInput, QWidget):
    """Posterior sampling on the state's model (see the module docstring)."""

    running_changed = Signal(bool)  # a run started (True) or ended (False)
    result_ready = Signal()  # a run reached x^0
    loaded = Signal(str, bool)  # a file read for the image page landed: its name, and whether it was used

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setAcceptDrops(True)
        self.page: str | None = None
        self.model = None  # a copy of the state's model, taken when it was last reset (training owns the live one)
        self.norm: dict = {}
        self.run_state: R.Run | None = None
        self._worker = None
        self._done_event = self._stop_event = threading.Event()
        self._live: set = set()
        # runs get a thread of their own: a long run never holds up the app's tasks in the global pool
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._run_started = 0.0
        self._follow = True
        # a run hands over a state every few steps: only the latest is drawn, at most every DRAW_EVERY_MS,
        # and nothing while the panel is hidden (another tab shown); showing it draws what it missed
        self._stale = False
        self.draws = 0  # states drawn (tests and bench/soak.py)
        self._draw_timer = QTimer(self, singleShot=True, interval=DRAW_EVERY_MS)
        self._draw_timer.timeout.connect(self._draw_if_stale)
        self._init_input()
        self._build()
        for seq, fn in ((QKeySequence.StandardKey.Paste, self.paste),
                        (QKeySequence.StandardKey.Undo, lambda: self._canvas_do("undo")),
                        (QKeySequence("Ctrl+Shift+Z"), lambda: self._canvas_do("redo")),
                        (QKeySequence.StandardKey.Redo, lambda: self._canvas_do("redo")),
                        (QKeySequence("Ctrl+Return"), self.run)):
            sc = QShortcut(QKeySequence(seq), self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        state.session_changed.connect(self.reset_for_model)
        state.schedule_changed.connect(self._on_schedule)
        state.trajectory_changed.connect(self._on_trajectory)
        app = QGuiApplication.instance()
        if app is not None:  # never leave a sampling thread running at exit
            app.aboutToQuit.connect(self._cancel_and_wait)  # a bound slot: the app does not keep the panel alive
        self.reset_for_model()

    def sizeHint(self) -> QSize:  # noqa: N802 - the views take what they are given
        return QSize(900, 600)

    # =========================================================================================
    # building
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(6)
        outer.addWidget(self._build_side())
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        self.pages = QStackedWidget()
        self.empty_label = QLabel("Open or train a model to sample its posteriors here: inpainting and denoising "
                                  "(images), a region on the plane (2-D points), fixed bits (binary).")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setMinimumWidth(10)
        self.image_page, self.plane_page, self.bits_page = ImagePage(), PlanePage(), BitsPage()
        self.pages.addWidget(self.empty_label)
        for p in (self.image_page, self.plane_page, self.bits_page):
            self.pages.addWidget(p)
            self.page_controls.addWidget(p.controls)
            p.controls.hide()
            p.message.connect(self.state.post)
            p.changed.connect(self._on_form_changed)
        self.image_page.open_btn.clicked.connect(self._open_dialog)
        self.image_page.paste_btn.clicked.connect(self.paste)
        self.image_page.tools.load_requested.connect(self._load_mask_dialog)
        self.image_page.tools.save_requested.connect(self._save_mask_dialog)
        cl.addWidget(self.pages, 1)
        self.ess_plot = pg.PlotWidget(background="#202124")
        self.ess_plot.setObjectName("inpaint_ess")
        self.ess_plot.setFixedHeight(110)
        self.ess_plot.setMinimumWidth(80)
        self.ess_plot.setToolTip("SMC: the effective sample size of the particle weights at each step, as a\n"
                                 "fraction of the particles (mean over the samples), before resampling")
        pi = self.ess_plot.getPlotItem()
        pi.setLabel("bottom", "t")
        pi.setLabel("left", "ESS")
        pi.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")]])
        pi.getAxis("left").setWidth(48)
        pi.setYRange(0, 1.05, padding=0)
        pi.setMouseEnabled(y=False)
        pi.invertX(True)  # the chain runs from t = T (left) to t = 0 (right), like the slider
        self.ess_curve = self.ess_plot.plot([], [], pen=pg.mkPen(90, 200, 255, width=1.5))
        self.ess_cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen(255, 200, 40, style=Qt.PenStyle.DashLine))
        self.ess_plot.addItem(self.ess_cursor)
        self.ess_plot.hide()
        cl.addWidget(self.ess_plot)
        self.slider_row = QWidget()
        row = QHBoxLayout(self.slider_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        self.time_slider = QSlider(Qt.Orientation.Horizontal)
        self.time_slider.setObjectName("inpaint_time_slider")
        self.time_slider.setRange(0, 0)
        self.time_slider.setEnabled(False)
        self.time_slider.setMinimumWidth(60)
        self.time_slider.setToolTip("scrub the conditioned trajectory (left: x^T, right: x^0)")
        self.time_slider.valueChanged.connect(self._on_slider)
        self.time_label = QLabel("no run yet")
        self.time_label.setMinimumWidth(150)
        row.addWidget(QLabel("step"))
        row.addWidget(self.time_slider, 1)
        row.addWidget(self.time_label)
        cl.addWidget(self.slider_row)
        outer.addWidget(central, 1)

    def _build_side(self) -> QWidget:
        side = QWidget()
        v = QVBoxLayout(side)
        v.setContentsMargins(0, 0, 4, 0)
        v.setSpacing(4)
        controls = QWidget()  # the shown page's controls (the others are hidden)
        self.page_controls = QVBoxLayout(controls)
        self.page_controls.setContentsMargins(0, 0, 0, 0)
        v.addWidget(controls)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        v.addWidget(line)
        f = QFormLayout()
        f.setContentsMargins(0, 0, 0, 0)
        f.setVerticalSpacing(3)
        self.samples_spin = QSpinBox()
        self.samples_spin.setObjectName("inpaint_samples")
        self.samples_spin.setRange(1, MAX_BATCH)
        self.samples_spin.setToolTip("independent samples of the posterior")
        self.particles_spin = QSpinBox()
        self.particles_spin.setObjectName("inpaint_particles")
        self.particles_spin.setRange(1, MAX_BATCH)
        self.particles_spin.setToolTip("SMC particles per sample: the posterior is exact as they grow;\n"
                                       "time and memory grow in proportion")
        srow = QHBoxLayout()
        srow.setContentsMargins(0, 0, 0, 0)
        srow.addWidget(self.samples_spin, 1)
        self.particles_label = QLabel("× particles")
        srow.addWidget(self.particles_label)
        srow.addWidget(self.particles_spin, 1)
        f.addRow("Samples", srow)
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("inpaint_seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.valueChanged.connect(lambda v: self.image_page.refresh_observation(seed=v))
        dice = QToolButton()
        dice.setText("⚄")
        dice.setToolTip("a random seed")
        dice.clicked.connect(lambda: self.seed_spin.setValue(int(np.random.default_rng().integers(0, 2**31 - 1))))
        drow = QHBoxLayout()
        drow.setContentsMargins(0, 0, 0, 0)
        drow.addWidget(self.seed_spin, 1)
        drow.addWidget(dice)
        f.addRow("Seed", drow)
        v.addLayout(f)
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
        v.addLayout(brow)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setMaximumHeight(16)
        v.addWidget(self.progress)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setMinimumWidth(10)
        v.addWidget(self.status_label)
        erow = QHBoxLayout()
        self.save_png_btn = QPushButton("Save result…")
        self.save_png_btn.setToolTip("the step shown: images as PNG (samples side by side); points or bits as .npy or PNG")
        self.save_png_btn.clicked.connect(self._save_png_dialog)
        self.save_traj_btn = QPushButton("Trajectory…")
        self.save_traj_btn.setToolTip("every kept state x^t of the conditioned chain (HDF5, normalised units)")
        self.save_traj_btn.clicked.connect(self._save_traj_dialog)
        for b in (self.save_png_btn, self.save_traj_btn):
            b.setEnabled(False)
            b.setMinimumWidth(10)
            erow.addWidget(b)
        v.addLayout(erow)
        v.addStretch(1)
        scroll = QScrollArea()  # only for very short windows: the column fits 800 px tall screens
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(side)
        scroll.setFixedWidth(SIDE_WIDTH)
        scroll.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        self.side = scroll
        return scroll

    # =========================================================================================
    # the model
    def reset_for_model(self, model=None) -> None:
        """The state's model changed (new session): cancel any run, forget the image, mask, region, bits
        and results, and put the page's defaults back (sample count, particles, method). ``model``: a
        copy of the state's model to use (default: the panel copies ``state.model`` itself when
        training is idle)."""
        self._drop_run()
        self._drop_reads()
        s = self.state
        if model is None and s.model is not None and s.training == "idle":
            model = copy_model(s.model)
        self.model = model
        self.norm = dict(s.norm or {})
        page = None if model is None else R.page_for(s.kind, model.config.example_shape)
        self.page = page
        self.pages.setCurrentIndex(PAGE_INDEX.get(page, 0))
        for p in (self.image_page, self.plane_page, self.bits_page):
            p.controls.setVisible(p is self._page_widget())
        if model is not None and page is None:
            self.empty_label.setText(f"This panel does not handle a {model.config.kernel} model of examples shaped "
                                     f"{tuple(model.config.example_shape)}.")
        self._update_run_btn()
        self.side.setVisible(page is not None)
        self.slider_row.setVisible(page is not None)
        self.samples_spin.setValue(R.DEFAULT_SAMPLES.get(page, 2))
        self.particles_spin.setValue(R.DEFAULT_PARTICLES.get(page, 8))
        self.seed_spin.setValue(0)
        if page == "image":
            self.image_page.reset(model, self.norm, self._examples())
        else:
            self.image_page.reset(None, {}, None)
        if page == "plane":
            self.plane_page.reset(model, *self._underlay())
        else:
            self.plane_page.reset(None, None, "")
        self.bits_page.reset(model if page == "bits" else None)
        self.status_label.setText("")
        self._on_form_changed()

    def _examples(self) -> np.ndarray | None:
        z = self.state.heldout_sample(16)
        if z is None:
            return None
        return R.img.to_pixels(z, self.norm)

    def _underlay(self) -> tuple[np.ndarray | None, str]:
        """What to draw under the paint layer: the held-out data, else the model's own samples."""
        s = self.state
        z = s.heldout_sample(1000)
        if z is not None:
            return z.detach().cpu().numpy().astype(np.float32), "held-out data"
        traj = s.trajectories.get("reverse")
        if traj is not None and traj.kind == "points":
            return traj.frames[0], "model samples"
        if s.samples is not None:
            return s.samples, "model samples"
        return None, ""

    def _on_trajectory(self, direction: str) -> None:
        if self.page == "plane" and self.state.data is None and direction == "reverse":
            self.plane_page.set_underlay(*self._underlay())

    def _on_schedule(self) -> None:
        """β edited: the same kind of model with a new schedule; results are stale, the form stays."""
        self._drop_run()
        if self.state.model is not None and self.state.training == "idle":
            self.model = copy_model(self.state.model)
            self.image_page.model = self.plane_page.model = self.bits_page.model = self.model

    def _on_form_changed(self) -> None:
        smc = self._method() == "smc"
        self.particles_spin.setVisible(smc)
        self.particles_label.setVisible(smc)

    def _method(self) -> str:
        p = {"image": self.image_page, "plane": self.plane_page, "bits": self.bits_page}.get(self.page)
        return p.method if p is not None else ""

    def _page_widget(self):
        return {"image": self.image_page, "plane": self.plane_page, "bits": self.bits_page}.get(self.page)

    def _canvas_do(self, action: str) -> None:
        if self.page == "image":
            self.image_page.canvas.do(action)
        elif self.page == "plane":
            self.plane_page.plane.do(action)

    # =========================================================================================
    # running
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    @property
    def frames(self) -> list[np.ndarray]:
        """The kept states x^t of the last run (float32 [N, *S], normalised units), in chain order."""
        return self.run_state.frames if self.run_state is not None else []

    @property
    def frame_times(self) -> list[int]:
        return self.run_state.times if self.run_state is not None else []

    def request(self) -> R.Request:
        """The run the form describes (raises ValueError with a message for the user)."""
        page = self._page_widget()
        if page is None or self.model is None:
            raise ValueError("no model this panel can condition: open or train one first")
        if self.state.training == "idle" and self.state.model is not None:
            self.model = copy_model(self.state.model)  # the latest weights
            page.model = self.model
        else:
            self.state.post("warning", "inpainting while training runs: the model as it was when the panel last "
                                       "took it (pause or stop training to use the latest weights)")
        sampling = R.Sampling(n=self.samples_spin.value(), seed=self.seed_spin.value(),
                              particles=self.particles_spin.value())
        return R.build_request(self.model, self.norm, page.form(sampling))

    def run(self) -> bool:
        """Start sampling with the form's settings (no-op while running). False if it cannot start."""
        if self.is_running:
            return False
        if self._reads:  # a half-opened image or mask is not run
            self.state.post("warning", f"inpainting: still reading {self.reading}; run once it is open")
            return False
        try:
            req = self.request()
        except ValueError as e:
            self.state.post("error", f"inpainting: {e}")
            return False
        for note in req.notes:
            self.state.post("warning", f"inpainting: {note}")
        self._clear_results()
        run = R.Run(req)
        self.run_state = run
        self._follow = True
        self.progress.setRange(0, max(1, req.total - 1))
        self.progress.setValue(0)
        self._run_started = time.perf_counter()
        done, stop = threading.Event(), threading.Event()

        def frames():  # in the worker thread; a cancel lands between two steps
            try:
                for fr in R.stream(req):
                    if stop.is_set():
                        return
                    yield fr
            finally:
                done.set()

        worker = create_worker(frames, _start_thread=False)
        worker.yielded.connect(lambda fr, r=run: self._on_frame(r, fr))
        worker.errored.connect(lambda e, r=run: self._on_error(r, e))
        worker.finished.connect(lambda r=run, w=worker: self._on_finished(r, w))
        self._live.add(worker)  # kept until its thread is done, even once the panel has dropped the run
        worker.finished.connect(lambda w=worker: self._release(w))
        self._worker, self._done_event, self._stop_event = worker, done, stop
        self._set_running(True)
        self.status_label.setText("running…")
        self._pool.start(worker)
        return True

    def _release(self, worker) -> None:
        """A run's thread is done: forget its worker. The slots connected in :meth:`run` hold the worker and
        the run (model copy, frames) through Qt, a cycle Python's gc cannot see, so they are disconnected."""
        self._live.discard(worker)
        for sig in (worker.yielded, worker.errored, worker.finished):
            sig.disconnect()

    def _cancel_and_wait(self) -> None:
        self._drop_reads()
        self.cancel(wait=True)

    def cancel(self, wait: bool = False) -> None:
        """Stop the run between two steps (the states so far stay). ``wait``: block until its thread is
        done (at most 10 s)."""
        if self._worker is None:
            return
        self._stop_event.set()
        if wait:
            self._done_event.wait(10.0)

    def _drop_run(self) -> None:
        """Cancel a run and forget it (its queued signals are ignored from now on)."""
        if self._worker is not None:
            self.cancel(wait=True)
            self._worker = None
            self._set_running(False)
        self.run_state = None
        self._clear_results()

    def _set_running(self, on: bool) -> None:
        self._update_run_btn()
        self.cancel_btn.setEnabled(on)
        self.running_changed.emit(on)

    def _update_run_btn(self) -> None:
        self.run_btn.setEnabled(self._worker is None and self.page is not None and not self._reads)

    def _on_frame(self, run: R.Run, fr: R.Frame) -> None:
        if run is not self.run_state:
            return
        self.progress.setValue(min(fr.index, self.progress.maximum()))
        if not run.add(fr):
            return
        n = len(run.frames)
        self.time_slider.blockSignals(True)
        self.time_slider.setRange(0, n - 1)
        if self._follow:
            self.time_slider.setValue(n - 1)
        self.time_slider.blockSignals(False)
        self.time_slider.setEnabled(True)
        if self._follow:
            self._request_show()

    def _on_error(self, run: R.Run, exc: Exception) -> None:
        if run is not self.run_state:
            return
        self.status_label.setText("failed")
        self.state.post("error", f"inpainting failed: {type(exc).__name__}: {exc}")

    def _on_finished(self, run: R.Run, worker) -> None:
        if worker is self._worker:
            self._worker = None
            self._set_running(False)
        if run is not self.run_state:
            return
        secs = time.perf_counter() - self._run_started
        total = run.request.total
        run.completed = bool(run.indices) and run.indices[-1] == total - 1
        if run.completed:
            self.progress.setValue(self.progress.maximum())
            x0 = run.frames[-1]
            bad = int((~np.isfinite(x0.reshape(x0.shape[0], -1))).any(axis=1).sum())
            text = f"done in {secs:.1f} s: {len(run.frames)} states kept"
            if bad:
                text += f"; {bad} of {x0.shape[0]} samples are not finite"
                self.state.post("warning", f"inpainting: {bad} of {x0.shape[0]} samples are not finite")
        elif self.status_label.text() == "failed":
            text = "failed"
        else:
            text = f"cancelled after {secs:.1f} s; {len(run.frames)} states kept"
        self.status_label.setText(text)
        self.state.post("info", f"inpainting: {text}")
        has = bool(run.frames)
        self.save_png_btn.setEnabled(has)
        self.save_traj_btn.setEnabled(has)
        if has:
            self._request_show()
        if run.completed:
            self.result_ready.emit()

    def _clear_results(self) -> None:
        self._stale = False
        self.time_slider.blockSignals(True)
        self.time_slider.setRange(0, 0)
        self.time_slider.blockSignals(False)
        self.time_slider.setEnabled(False)
        self.time_label.setText("no run yet")
        self.save_png_btn.setEnabled(False)
        self.save_traj_btn.setEnabled(False)
        self.progress.setValue(0)
        for p in (self.image_page, self.plane_page, self.bits_page):
            p.clear_results()
        self.ess_curve.setData([], [])
        self.ess_plot.hide()

    # =========================================================================================
    # display
    def _request_show(self) -> None:
        """Draw the state at the slider: now if nothing was drawn in the last DRAW_EVERY_MS, else the
        latest when that time is up; while the panel is hidden, once it is shown again."""
        self._stale = True
        if not self.isVisible() or self._draw_timer.isActive():
            return
        self._draw_if_stale()

    def _draw_if_stale(self) -> None:
        if self._stale and self.isVisible():
            self._stale = False
            self._show(self.time_slider.value())
            self._draw_timer.start()

    def showEvent(self, ev):  # noqa: N802 - the tab is shown again: catch up with the run
        super().showEvent(ev)
        if self._stale:
            QTimer.singleShot(0, self._draw_if_stale)  # once the page has its size

    def _on_slider(self, v: int) -> None:
        self._follow = v >= self.time_slider.maximum()
        self._show(v)

    def _show(self, i: int) -> None:
        run = self.run_state
        if run is None or not run.frames:
            return
        i = min(max(i, 0), len(run.frames) - 1)
        x, t = run.frames[i], run.times[i]
        self.draws += 1
        self.time_label.setText(f"t = {t}  ·  state {run.indices[i] + 1} of {run.request.total}")
        page = self._page_widget()
        if page is not None:
            page.show_state(x, t)
        if run.ess:
            self.ess_plot.show()
            self.ess_curve.setData(np.asarray(run.ess_t, float), np.asarray(run.ess, float))
            self.ess_cursor.setValue(t)

    def current_state(self) -> np.ndarray | None:
        """The state at the slider, float32 [N, *S] (normalised), or None."""
        run = self.run_state
        if run is None or not run.frames:
            return None
        return run.frames[min(self.time_slider.value(), len(run.frames) - 1)]

    # =========================================================================================
    # export
    def save_result(self, path) -> bool:
        """The state at the slider: images as a PNG (samples side by side); points and bits as .npy
        (normalised units) if the path ends so, else a PNG."""
        x = self.current_state()
        if x is None:
            self.state.post("error", "inpainting: nothing to save yet: run first")
            return False
        try:
            if self.page == "image":
                self.image_page.save_png(path, x)
            elif str(path).endswith(".npy"):
                with atomic_write(path) as tmp:
                    np.save(tmp, x)
            else:
                R.img.save_png(path, x.reshape(x.shape[0], -1) if self.page == "bits" else self.plane_page.points_png(x))
        except (OSError, ValueError) as e:
            self.state.post("error", f"{path}: cannot save: {e}")
            return False
        self.state.post("info", f"inpainting: saved {path}")
        return True

    def save_trajectory(self, path) -> bool:
        """The kept states of the run as HDF5 (the library's trajectory format): traj [S, N, *shape] in
        normalised units, t [S] (not monotone for RePaint), meta (method, seed, …)."""
        run = self.run_state
        if run is None or not run.frames:
            self.state.post("error", "inpainting: nothing to save yet: run first")
            return False
        meta = dict(run.request.meta, direction="reverse", completed=run.completed,
                    index=[int(i) for i in run.indices])
        if run.ess:
            meta.update(ess=[float(e) for e in run.ess], ess_t=[int(t) for t in run.ess_t])
        try:
            save_trajectory(path, np.stack(run.frames), t=np.asarray(run.times, dtype=np.int64), meta=meta)
        except (OSError, ValueError) as e:
            self.state.post("error", f"{path}: cannot save the trajectory: {e}")
            return False
        self.state.post("info", f"inpainting: trajectory saved to {path}")
        return True

    def _save_png_dialog(self):
        default = "inpainted.png" if self.page == "image" else "samples.npy"
        path, _ = QFileDialog.getSaveFileName(self, "Save result", default, "PNG images (*.png);;NumPy (*.npy)")
        if path:
            self.save_result(path)

    def _save_traj_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save trajectory", "conditioned_trajectory.h5", "HDF5 (*.h5 *.hdf5)")
        if path:
            self.save_trajectory(path)

    def closeEvent(self, ev):
        self.cancel(wait=True)
        super().closeEvent(ev)

