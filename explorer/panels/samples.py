"""Fixed-seed samples (TrainProgress.samples): the same prior draw every time, so snapshots taken as
training goes are comparable."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..render import tile_images
from ..state import AppState
from ._items import FastPoints
from ._plots import StaggeredRefresh


class SamplesPanel(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("samples_plot")
        self.plot.setMinimumSize(200, 150)
        pi = self.plot.getPlotItem()
        pi.hideButtons()
        pi.layout.setContentsMargins(2, 2, 10, 2)
        self.view = pi.getViewBox()
        self.ghost = FastPoints(2.5, (150, 150, 150, 70))
        self.scatter = FastPoints(3.0, (200, 80, 40, 170))
        self.image = pg.ImageItem(axisOrder="row-major")
        for it in (self.image, self.ghost, self.scatter):
            pi.addItem(it)
        self.caption = QLabel("samples appear while training")
        self.caption.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.caption)
        self._later = StaggeredRefresh(self, self.refresh, 160)
        state.samples_changed.connect(lambda: self._later(state.training != "idle"))
        state.session_changed.connect(self._on_session)
        self._on_session()

    def _on_session(self) -> None:
        kind = self.state.kind
        pi = self.plot.getPlotItem()
        points = kind == "points"
        self.ghost.setVisible(points)
        self.scatter.setVisible(points)
        self.image.setVisible(not points)
        self.view.invertY(not points)
        self.view.setAspectLocked(kind != "binary")
        pi.showAxis("left", points)
        pi.showAxis("bottom", points)
        self.ghost.setData(np.empty((0, 2), np.float32))
        if points and self.state.example_shape == (2,):
            x = self.state.heldout_sample(1000)
            if x is not None:
                self.ghost.setData(x.numpy().astype(np.float32))
            self.view.setRange(xRange=(-3.2, 3.2), yRange=(-3.2, 3.2), padding=0)
        self.refresh()

    def refresh(self) -> None:
        x = self.state.samples
        if x is None:
            self.scatter.setData(np.empty((0, 2), np.float32))
            self.image.clear()
            self.caption.setText("fixed-seed samples appear here (end of the reverse trajectory, or while training)")
            return
        kind = self.state.kind
        if kind == "points":
            self.scatter.setData(np.ascontiguousarray(x[:, :2]))
        else:
            d = x if self.state.samples_space == "display" else self.state.display(x)
            img = tile_images(d) if kind == "images" else np.ascontiguousarray(d.reshape(d.shape[0], -1))
            self.image.setImage(img, autoLevels=False, levels=(0.0, 1.0))
            self.view.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0.02)
        it = self.state.samples_iteration
        noun = "sample" if len(x) == 1 else "samples"
        self.caption.setText(f"{len(x):,} fixed-seed {noun}" + (f" at iteration {it:,}" if it else "")
                             + (" (the reverse trajectory's t = 0)" if self.state.training == "idle" else ""))
