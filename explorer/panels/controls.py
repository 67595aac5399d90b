"""The left dock, "Data and model": preset, own data, drawing; architecture, T, schedule, device;
Train / Pause / Stop; model files and recent files. The panel only emits requests (the controller acts);
the settings it shows live in the state (``pending_config``, ``budget_s``), not in its widgets."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QMenu, QPushButton, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from models.config import ModelConfig
from models.presets import BUNDLED, PRESETS
from models.schedules import SCHEDULE_NAMES

from ..session import describe_data, describe_model
from ..state import AppState

ARCHS_BY_KIND = {"points": ("mlp", "rbf"), "binary": ("mlp", "rbf"), "images": ("conv", "unet")}
DRAWN = "drawn by hand"
ORIGIN = "__origin__"  # the Preset box's first item: what is shown when it is not a preset's model


class SciSpinBox(QDoubleSpinBox):
    """A spin box for small positive numbers, shown like 1e-05 or 0.002; steps multiply by ~1.26."""

    def __init__(self, lo: float, hi: float, parent=None):
        super().__init__(parent)
        self.setDecimals(10)
        self.setRange(lo, hi)

    def textFromValue(self, v: float) -> str:  # noqa: N802
        return f"{v:.3g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        from PySide6.QtGui import QValidator

        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            ok = t == "" or all(ch in "0123456789.eE+-" for ch in t)
            return (QValidator.Intermediate if ok else QValidator.Invalid), text, pos
        return (QValidator.Acceptable if self.minimum() <= v <= self.maximum() else QValidator.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.setValue(min(max(self.value() * 10 ** (0.1 * steps), self.minimum()), self.maximum()))
        self.editingFinished.emit()


def available_devices() -> list[str]:
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class ControlsPanel(QWidget):
    preset_chosen = Signal(str)
    open_data_requested = Signal()
    draw_requested = Signal()
    config_edited = Signal(object)  # a ModelConfig proposed by the user
    new_model_requested = Signal()
    train_requested = Signal()
    pause_requested = Signal()  # toggles pause / resume
    stop_requested = Signal()
    open_model_requested = Signal()
    save_model_requested = Signal()
    recent_requested = Signal(str)
    device_changed = Signal(str)

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._syncing = False

        # --- data ----------------------------------------------------------------------------------
        self.preset = QComboBox()
        self.preset.setObjectName("preset_combo")
        self.preset.setPlaceholderText("loading …")
        for name, p in PRESETS.items():
            label = name if name in BUNDLED else f"{name} (your files)"
            self.preset.addItem(label, name)
            tip = "opens the bundled trained model" if name in BUNDLED else "opens an untrained model on your copy"
            self.preset.setItemData(self.preset.count() - 1, f"{tip} · {p.note or p.unit}", Qt.ToolTipRole)
        self.preset.setToolTip("The paper's experiments: choosing one opens its bundled trained model "
                               "(New model starts an untrained one)")
        self.open_data = QPushButton("Open data…")
        self.open_data.setToolTip("A .npy / .csv / .h5 file, an image or a folder of images (or drop one on the window)")
        self.draw = QPushButton("Draw…")
        self.draw.setToolTip("Paint a 2-D distribution with the mouse and train on it")
        self.data_label = QLabel()
        self.data_label.setWordWrap(True)
        self.data_label.setObjectName("data_label")
        data_box = QGroupBox("Data")
        g = QGridLayout(data_box)
        g.addWidget(QLabel("Preset"), 0, 0)
        g.addWidget(self.preset, 0, 1, 1, 2)
        g.addWidget(self.open_data, 1, 1)
        g.addWidget(self.draw, 1, 2)
        g.addWidget(self.data_label, 2, 0, 1, 3)

        # --- model ---------------------------------------------------------------------------------
        self.arch = QComboBox()
        self.width = QSpinBox()
        self.width.setRange(2, 1024)
        self.width.setToolTip("Hidden units (MLP), channels (conv) or RBF units")
        self.T = QSpinBox()
        self.T.setRange(2, 5000)
        self.T.setToolTip("Number of diffusion steps")
        self.schedule = QComboBox()
        self.schedule.setToolTip("The β_t schedule; drag β on the schedule plot to draw one by hand")
        self.beta_1 = SciSpinBox(1e-8, 0.5)
        self.beta_1.setToolTip("Fixed first step β_1: caps K − L_null at ½·log2((1 − ᾱ_T)/β_1) bits per dimension")
        self.learn_beta = QCheckBox("learn β₂..T")
        self.learn_beta.setToolTip("Learn the schedule by gradient ascent on K, β_1 fixed (paper §2.4.1)")
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setToolTip("Where training runs (CUDA appears when a GPU is available)")
        self.new_model = QPushButton("New model")
        self.new_model.setToolTip("Start an untrained model with these settings on the current data")
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setObjectName("model_label")
        self.model_label.setStyleSheet("color: palette(dark);")
        model_box = QGroupBox("Model")
        f = QFormLayout(model_box)
        f.setVerticalSpacing(4)
        arch_row = QHBoxLayout()
        arch_row.addWidget(self.arch, 1)
        arch_row.addWidget(QLabel("width"))
        arch_row.addWidget(self.width)
        f.addRow("Network", arch_row)
        f.addRow("Steps T", self.T)
        f.addRow("Schedule", self.schedule)
        beta_row = QHBoxLayout()
        beta_row.addWidget(self.beta_1, 1)
        beta_row.addWidget(self.learn_beta)
        f.addRow("β₁", beta_row)
        dev_row = QHBoxLayout()
        dev_row.addWidget(self.device, 1)
        dev_row.addWidget(self.new_model)
        f.addRow("Device", dev_row)
        f.addRow(self.model_label)

        # --- training ------------------------------------------------------------------------------
        self.budget = QSpinBox()
        self.budget.setRange(0, 24 * 3600)
        self.budget.setSuffix(" s")
        self.budget.setSpecialValueText("until stopped")
        self.budget.valueChanged.connect(lambda v: None if self._syncing else state.set_budget(v))
        self.budget.setToolTip("Training time (0 = until you press Stop)")
        self.budget.setValue(int(state.budget_s))
        self.train = QPushButton("Train")
        self.train.setObjectName("train_button")
        self.train.setToolTip("Train the current model (continues a trained one) (Ctrl+T)")
        self.pause = QPushButton("Pause")
        self.pause.setObjectName("pause_button")
        self.pause.setToolTip("Pause / resume training (Ctrl+P)")
        self.stop = QPushButton("Stop")
        self.stop.setObjectName("stop_button")
        self.stop.setToolTip("Stop training; the model keeps what it learned (Ctrl+.)")
        train_box = QGroupBox("Training")
        tg = QGridLayout(train_box)
        tg.addWidget(QLabel("Budget"), 0, 0)
        tg.addWidget(self.budget, 0, 1, 1, 2)
        tg.addWidget(self.train, 1, 0)
        tg.addWidget(self.pause, 1, 1)
        tg.addWidget(self.stop, 1, 2)

        # --- files ---------------------------------------------------------------------------------
        self.open_model = QPushButton("Open model…")
        self.save_model = QPushButton("Save model…")
        self.recent = QToolButton()
        self.recent.setText("Recent")
        self.recent.setPopupMode(QToolButton.InstantPopup)
        self.recent_menu = QMenu(self.recent)
        self.recent.setMenu(self.recent_menu)
        files_box = QGroupBox("Files")
        fg = QGridLayout(files_box)
        fg.addWidget(self.open_model, 0, 0)
        fg.addWidget(self.save_model, 0, 1)
        fg.addWidget(self.recent, 0, 2)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(6)
        for box in (data_box, model_box, train_box, files_box):
            lay.addWidget(box)
        lay.addStretch(1)

        # --- wiring ----------------------------------------------------------------------------------
        self.preset.activated.connect(self._preset_activated)
        self.open_data.clicked.connect(self.open_data_requested)
        self.draw.clicked.connect(self.draw_requested)
        for w in (self.arch, self.schedule):
            w.currentIndexChanged.connect(self._edited)
        for w in (self.width, self.T):
            w.editingFinished.connect(self._edited)
        self.beta_1.editingFinished.connect(self._edited)
        self.learn_beta.toggled.connect(self._edited)
        self.device.currentTextChanged.connect(self._device)
        self.new_model.clicked.connect(self.new_model_requested)
        self.train.clicked.connect(self.train_requested)
        self.pause.clicked.connect(self.pause_requested)
        self.stop.clicked.connect(self.stop_requested)
        self.open_model.clicked.connect(self.open_model_requested)
        self.save_model.clicked.connect(self.save_model_requested)
        state.session_changed.connect(self.sync)
        state.schedule_changed.connect(self.sync)
        state.training_changed.connect(lambda _s: self.sync())
        state.recent_changed.connect(self._fill_recent)
        state.progress_added.connect(lambda _p: self._update_model_label())
        state.settings_changed.connect(self._on_settings)
        self._fill_recent()
        self.sync()

    # ---- state → widgets ------------------------------------------------------------------------------
    def _sync_preset(self) -> None:
        """The Preset box names what is shown: the preset, or (an extra first item) drawn points, a data
        file or a model file of no preset; blank while nothing is loaded."""
        s, box = self.state, self.preset
        if box.itemData(0) == ORIGIN:
            box.removeItem(0)
        if s.model is None:
            box.setCurrentIndex(-1)
        elif s.preset is not None and s.source not in ("drawn", "data"):
            box.setCurrentIndex(box.findData(s.preset.name))
        else:
            box.insertItem(0, s.origin, ORIGIN)
            box.setItemData(0, "what is shown now (choose a preset to open its trained model)", Qt.ToolTipRole)
            box.setCurrentIndex(0)

    def _on_settings(self) -> None:
        self._syncing = True
        try:
            self.budget.setValue(int(self.state.budget_s))
        finally:
            self._syncing = False
        self._update_model_label()

    def sync(self) -> None:
        s = self.state
        self._syncing = True
        try:
            self._sync_preset()
            for w in (self.width, self.T, self.beta_1):  # no placeholder numbers while nothing is loaded
                w.setSpecialValueText("" if s.model is not None else "–")
                if s.model is None:
                    w.setValue(w.minimum())
            self.data_label.setText(describe_data(s.data) if s.model is not None else "loading …")
            self.data_label.setToolTip(getattr(s.data, "source", "") if s.data is not None else "")
            if s.model is not None:
                c = s.model.config
                self.arch.clear()
                archs = ARCHS_BY_KIND[s.kind]
                self.arch.addItems(archs if c.arch in archs else (*archs, c.arch))
                self.arch.setCurrentText(c.arch)
                self.width.setValue(c.rbf_units if c.arch == "rbf" else c.hidden)
                self.T.setValue(c.T)
                self.schedule.clear()
                names = [n for n in SCHEDULE_NAMES if (n == "binomial") == (c.kernel == "binomial")]
                self.schedule.addItems(names)
                if s.schedule_source == "drawn":
                    self.schedule.addItem(DRAWN)
                    self.schedule.setCurrentText(DRAWN)
                else:
                    self.schedule.setCurrentText(c.schedule)
                beta1 = s.curves.beta_1 if s.curves is not None else (c.beta_1 or 1e-3)
                self.beta_1.setValue(beta1)
                self.learn_beta.setChecked(c.learn_beta)
                gaussian = c.kernel == "gaussian"
                self.learn_beta.setEnabled(gaussian)
                self.beta_1.setEnabled(gaussian)
            self.device.setCurrentText(s.device)
            self._update_model_label()
            self._update_buttons()
        finally:
            self._syncing = False

    def _update_model_label(self) -> None:
        s = self.state
        if s.model is None:
            self.model_label.setText("no model")
            return
        self.model_label.setToolTip(describe_model(s.model))
        where = f"from {s.model_path.name}" if s.model_path is not None else "not saved"
        if s.model_path is not None and s.unsaved:
            where += ", changed since"
        trained = f"trained {s.iteration:,} iterations" if s.is_trained else "untrained"
        c = s.model.config
        text = (f"{c.kernel}, {s.model.count_parameters():,} parameters · {trained} · {where}")
        pending = s.pending_config is not None
        self.new_model.setStyleSheet("font-weight: bold;" if pending else "")
        if pending:
            text += " · <b>settings changed: press New model to apply</b>"
        self.model_label.setText(text)

    def _update_buttons(self) -> None:
        s = self.state
        idle = s.training == "idle"
        has_data = s.data is not None
        self.train.setEnabled(idle and has_data and s.model is not None)
        self.train.setToolTip("Train the current model (Ctrl+T)" if has_data else "open data to train this model")
        self.pause.setEnabled(s.training in ("running", "paused"))
        self.pause.setText("Resume" if s.training == "paused" else "Pause")
        self.stop.setEnabled(s.training in ("running", "paused"))
        for w in (self.preset, self.open_data, self.draw, self.open_model, self.device, self.recent):
            w.setEnabled(idle)
        for w in (self.arch, self.width, self.T, self.schedule, self.beta_1, self.learn_beta, self.new_model):
            w.setEnabled(idle and s.model is not None)
        self.save_model.setEnabled(s.training in ("idle", "paused") and s.model is not None)
        if idle and s.model is not None:
            g = s.model.is_gaussian
            self.learn_beta.setEnabled(g)
            self.beta_1.setEnabled(g)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.state.recent:
            act = self.recent_menu.addAction(Path(p).name)
            act.setToolTip(p)
            act.setStatusTip(p)
            act.triggered.connect(lambda _c=False, p=p: self.recent_requested.emit(p))
        self.recent.setEnabled(bool(self.state.recent) and self.state.training == "idle")

    # ---- widgets → requests -----------------------------------------------------------------------------
    def proposed_config(self) -> ModelConfig | None:
        s = self.state
        if s.model is None:
            return None
        c = s.model.config
        arch = self.arch.currentText() or c.arch
        width = int(self.width.value())
        sched = self.schedule.currentText()
        changes = dict(arch=arch, T=int(self.T.value()), learn_beta=bool(self.learn_beta.isChecked()))
        if arch == "rbf":
            changes["rbf_units"] = width
        else:
            changes["hidden"] = width
        if arch != "mlp":
            changes["skip"] = 0.0  # the linear skip path belongs to the MLP
        if sched and sched != DRAWN:
            changes["schedule"] = sched
        if c.kernel == "gaussian":
            changes["beta_1"] = float(self.beta_1.value())
        return c.replace(**changes)

    def _edited(self, *_a) -> None:
        if self._syncing:
            return
        s = self.state
        try:
            cfg = self.proposed_config()
        except ValueError as e:
            s.post("warning", f"invalid model settings: {e}")
            return
        if cfg is None:
            return
        if self.schedule.currentText() == DRAWN and cfg == s.model.config:
            return
        if cfg == s.model.config and not (s.schedule_source == "drawn" and self.schedule.currentText() != DRAWN):
            if not (s.curves is not None and abs(s.curves.beta_1 - float(self.beta_1.value())) > 1e-12):
                return
        self.config_edited.emit(cfg)

    def _preset_activated(self, i: int) -> None:
        name = self.preset.itemData(i)
        if name and name != ORIGIN:
            self.preset_chosen.emit(name)
        self.sync()  # the box names what is shown until the new model has arrived (or if it was cancelled)

    def _device(self, name: str) -> None:
        if not self._syncing and name:
            self.device_changed.emit(name)
