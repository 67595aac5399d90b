"""The explorer's state: one :class:`AppState` QObject with signals and no widgets.

The main window writes it (from user actions and worker results, always on the GUI thread); panels
read its attributes in their constructor and on its signals, and update the plot items they own.
Everything here can be tested without a window.

Units and indexing follow :mod:`models`: per-step arrays are ``[T]`` with Python index ``k = t − 1``;
entropies are shown in **bits per dimension**, K in the data set's unit (``unit``: bits/point,
bits/seq or bits/pixel). Trajectory caches are float32 ``[S, N, *shape]`` ordered by paper time t
ascending (``t[0] = 0`` is data, ``t[-1] = T`` is noise).

Public attributes other panels (e.g. the inpainting view) may rely on:

``model``        the current :class:`models.DiffusionModel` (never touched while ``training`` is
                 "running": the training thread owns it then; use ``snapshot`` for a copy)
``data``         a data set with the :class:`models.data.DataSet` interface, or ``None``
``preset``       the :class:`models.presets.Preset` the session came from, or ``None``
``kind``         "points" | "binary" | "images";  ``unit``: the unit K is reported in
``training``     "idle" | "running" | "paused" | "stopping"
``display(x)``   normalised model-space array → what to draw (images in [0, 1])
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal

from models.bound import LN2, unit_divisor
from models.config import UNITS
from models.kernels import ScheduleTensors
from models.metadata import ModelMeta
from models.model import DiffusionModel

TRAINING_STATES = ("idle", "running", "paused", "stopping")
DIRECTIONS = ("reverse", "forward")


def progress_unbiased(p, model) -> bool:
    """Whether a training record's held-out K is unbiased: its own mark when it carries one, else
    whether it summed every step (``eval_steps`` ≥ T − 1 makes the live estimate exact)."""
    ev = getattr(p, "evaluation", None)
    if ev is not None:  # models.evaluation: "live" (stratified, unbiased) or "exact"
        return getattr(ev, "method", "") in ("live", "exact")
    kl = np.asarray(getattr(p, "kl_bits_per_step", []), dtype=np.float64)
    return bool(len(kl) > 1 and np.isfinite(kl[1:]).all())


def model_kind(model: DiffusionModel) -> str:
    """What kind of data a model is for: "binary" (binomial kernel), "images" ([C, H, W]) or "points"."""
    c = model.config
    if c.kernel == "binomial":
        return "binary"
    return "images" if len(c.example_shape) == 3 else "points"


@dataclass
class BoundCurves:
    """Per-step curves shown by the schedule, entropy and bound-term plots. Every array is float64 [T]
    indexed by k = t − 1; NaN marks "not evaluated"."""

    beta: np.ndarray
    alpha_bar: np.ndarray
    entropy_lower_bits: np.ndarray  # bounds on H(X^{t−1}|X^t), bits per dimension (Eq. 24)
    entropy_upper_bits: np.ndarray
    reverse_entropy_bits: np.ndarray  # the model's own reverse-step entropy, bits per dimension
    kl_bits_per_step: np.ndarray  # held-out KL term per step, in the data's unit
    cap_bits_per_dim: float | None  # β_1 cap on K − L_null (Gaussian only)
    cap_bits: float | None  # the same cap in the data's unit (× D / unit divisor)

    @property
    def T(self) -> int:
        return int(self.beta.shape[0])

    @property
    def beta_1(self) -> float:
        return float(self.beta[0])


@dataclass(frozen=True)
class Trajectory:
    """A cached trajectory: ``frames`` float32 [S, N, *shape] (C-contiguous) at paper times ``t`` int64 [S]
    (ascending). Points are in normalised model space, binary and images in display space ([0, 1]).

    ``drift``: points only, float32 [S, G·G, 2]: the reverse drift f_μ(x, t) − x of the step that
    leaves x^t (k = t − 1) on the grid ``drift_grid`` [G·G, 2]; NaN rows at t = 0.

    ``n_ready``: while a reverse run is computed in two passes, only examples [0, n_ready) hold states;
    the others are placeholders until the second pass lands (None: every example is computed)."""

    direction: str
    frames: np.ndarray
    t: np.ndarray
    kind: str
    space: str = "normalised"
    drift: np.ndarray | None = None
    drift_grid: np.ndarray | None = None
    source: str = ""
    n_ready: int | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def T(self) -> int:
        return int(self.t[-1])


@dataclass
class History:
    """K curves for the training plot (one entry per progress record).

    ``unbiased[i]`` says whether record i's held-out K is an unbiased estimate (exact over every step,
    or a stratified sample of the steps). Histories read from files without that mark are not: older
    runs stored a log-spaced estimate that is far too low for image models, so the K plot draws their
    held-out column nowhere and shows the file's exact record instead (see :meth:`AppState.k_reading`)."""

    iteration: list = field(default_factory=list)
    K_train_bits: list = field(default_factory=list)
    K_heldout_bits: list = field(default_factory=list)
    K_minus_Lnull_bits: list = field(default_factory=list)
    unbiased: list = field(default_factory=list)

    def append(self, it, k_train, k_held, k_gain, unbiased: bool = True) -> None:
        self.iteration.append(float(it))
        self.K_train_bits.append(float(k_train))
        self.K_heldout_bits.append(float(k_held))
        self.K_minus_Lnull_bits.append(float(k_gain))
        self.unbiased.append(bool(unbiased))

    def heldout_unbiased(self) -> tuple[np.ndarray, np.ndarray]:
        """(iteration, K held out) of the records whose held-out K is unbiased and finite, float64."""
        it = np.asarray(self.iteration, dtype=np.float64)
        k = np.asarray(self.K_heldout_bits, dtype=np.float64)
        ok = np.asarray(self.unbiased, dtype=bool) & np.isfinite(k) & np.isfinite(it)
        return np.ascontiguousarray(it[ok]), np.ascontiguousarray(k[ok])

    @staticmethod
    def from_arrays(h: dict, unbiased: bool = False) -> "History":
        """A history from a file's (or the Trainer's) arrays; ``unbiased``: whether its held-out column
        may be drawn as K held out (an explicit ``K_heldout_unbiased`` array wins)."""
        out = History()
        its = np.asarray(h.get("iteration", []), dtype=np.float64).ravel()
        n = len(its)

        def col(name):
            v = np.asarray(h.get(name, np.full(n, np.nan)), dtype=np.float64).ravel()
            return list(v[:n]) if len(v) >= n else list(v) + [math.nan] * (n - len(v))

        out.iteration = list(its)
        out.K_train_bits = col("K_train_bits")
        out.K_heldout_bits = col("K_heldout_bits")
        out.K_minus_Lnull_bits = col("K_minus_Lnull_bits")
        marks = h.get("K_heldout_unbiased")
        if marks is not None and len(np.asarray(marks).ravel()) >= n:
            out.unbiased = [bool(v) for v in np.asarray(marks).ravel()[:n]]
        else:
            out.unbiased = [bool(unbiased)] * n
        return out

    def __len__(self) -> int:
        return len(self.iteration)


@dataclass(frozen=True)
class KReading:
    """The one K the app shows for the current model (status bar, K panel, ``--screenshot`` line).

    ``source``: "exact" (the file's end-of-training record: every step, ``n_eval`` held-out examples),
    "live" (an unbiased held-out estimate from a training record or a one-off evaluation), "train"
    (the training minibatches' unbiased one-random-step estimate, when the held-out figure of the
    record is not unbiased) or "none". Bits in ``unit``."""

    source: str
    bits: float = math.nan
    stderr_bits: float = math.nan
    minus_null_bits: float = math.nan
    iteration: int = 0
    n_eval: int = 0
    unit: str = ""

    @property
    def known(self) -> bool:
        return self.source != "none" and math.isfinite(self.bits)

    def text(self) -> str:
        """"K = 4.889 ± 0.027 bits/point exact" (or "K not measured yet")."""
        if not self.known:
            return "K not measured yet"
        err = f" ± {self.stderr_bits:.3f}" if math.isfinite(self.stderr_bits) else ""
        what = {"exact": "exact", "live": "held out", "train": "train minibatches"}[self.source]
        return f"K = {self.bits:.3f}{err} {self.unit} {what}"


SOURCES = ("bundled", "file", "preset", "new", "drawn", "data", "autosave")


class AppState(QObject):
    """The application's state. Attributes are read freely; write through the methods so that the
    right signals fire."""

    session_changed = Signal()  # model and/or data replaced (preset, opened model, new data, new model)
    schedule_changed = Signal()  # β edited by hand or by a named schedule (untrained model)
    curves_changed = Signal()  # ``curves`` replaced (schedule edit or training progress)
    progress_added = Signal(object)  # a TrainProgress record, after ``history``/``curves`` were updated
    evaluated = Signal()  # ``evaluation`` (a one-off evaluation of the current model) was set
    history_reset = Signal()
    training_changed = Signal(str)  # one of TRAINING_STATES
    trajectory_changed = Signal(str)  # the direction whose cache was replaced (or cleared)
    direction_changed = Signal(str)
    frame_changed = Signal(int)  # index into the current trajectory's frames
    samples_changed = Signal()
    message = Signal(str, str)  # level ("info" | "warning" | "error"), text
    busy_changed = Signal(str)  # text of the job in progress, "" when none
    recent_changed = Signal()
    settings_changed = Signal()  # pending_config, budget_s, speed or loop
    trajectory_progress = Signal(str, float)  # direction, fraction computed (1.0: complete)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.model: DiffusionModel | None = None
        self.data = None
        self.preset = None
        self.model_path: Path | None = None
        self.note = ""
        self.norm: dict | None = None  # normalisation stored with a model file (used when data is None)
        self.train_history: dict = {}  # the Trainer's history (saved with the model, resumes training)
        self.optimizer_state: dict | None = None
        self.iteration = 0
        self.history = History()
        self.curves: BoundCurves | None = None
        self.curves_live = False  # the last ``curves`` came from a training record (panels may defer redraws)
        self.schedule_source = "named"  # "named" | "learned" | "drawn"
        self.last_progress = None
        self.recorded: dict | None = None
        self.evaluation: dict | None = None  # a one-off evaluation of the current model (not training)
        self.samples: np.ndarray | None = None  # latest fixed-seed samples [n, *S], in ``samples_space``
        self.samples_space = "normalised"  # or "display" (binary and images from a trajectory)
        self.file_meta: dict | None = None  # the meta of the model file the session came from
        self.samples_iteration = 0
        self.trajectories: dict[str, Trajectory] = {}
        self.direction = "reverse"
        self.frame = 0
        self.training = "idle"
        self.device = "cpu"
        self.busy = ""
        self.recent: list[str] = []
        self.log: list[tuple[str, str]] = []
        self.source = "new"  # where the session came from: one of SOURCES
        self.unsaved = False  # trained since it was last saved or opened
        # settings (the widgets bind to these; none lives in a widget)
        self.pending_config = None  # a ModelConfig edited while a trained model is shown ("New model" applies it)
        self.budget_s = 0.0  # training budget in seconds (0 = until stopped)
        self.speed = 20  # playback speed, diffusion steps per second
        self.loop = True
        self.trajectory_fraction: dict[str, float] = {}  # direction → fraction computed while streaming

    # ---- derived ------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self.data is not None:
            return self.data.kind
        return model_kind(self.model) if self.model is not None else "points"

    @property
    def unit(self) -> str:
        if self.data is not None:
            return self.data.unit
        if self.preset is not None:
            return self.preset.unit
        return UNITS[self.kind]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.model.config.example_shape) if self.model is not None else (2,)

    @property
    def D(self) -> int:
        return int(np.prod(self.example_shape))

    @property
    def unit_div(self) -> int:
        return unit_divisor(self.example_shape)

    @property
    def is_trained(self) -> bool:
        return self.iteration > 0 or len(self.history) > 0

    @property
    def trajectory(self) -> Trajectory | None:
        return self.trajectories.get(self.direction)

    @property
    def origin(self) -> str:
        """What the Preset box and the ``--screenshot`` line name: "bundled model bark", "preset bark
        (untrained)", "model file mine.h5", "drawn points", "data file x.npy"."""
        if self.source == "bundled" and self.preset is not None:
            return f"bundled model {self.preset.name}"
        if self.source in ("file", "autosave") and self.model_path is not None:
            return f"model file {self.model_path.name}"
        if self.source == "drawn":
            return "drawn points"
        if self.source == "data" and self.data is not None:
            return f"data file {self.data.name}"
        if self.preset is not None:
            return f"preset {self.preset.name}"
        return getattr(self.data, "name", "no data") or "no data"

    def k_reading(self) -> KReading:
        """The K shown for the current model. The exact record of the file wins until the model trains
        further; then the last training record (its held-out K when unbiased, else the training
        minibatches' estimate); then a one-off evaluation of this model."""
        unit = self.unit
        rec = self.recorded
        if rec is not None and self.last_progress is None:
            return KReading("exact", rec["K_bits"], rec["K_stderr_bits"], rec["K_minus_Lnull_bits"],
                            self.iteration, int(rec["n_eval"]), unit)
        h = self.history
        if self.last_progress is not None and len(h):
            if h.unbiased[-1] and math.isfinite(h.K_heldout_bits[-1]):
                p = self.last_progress
                return KReading("live", h.K_heldout_bits[-1], float(getattr(p, "K_heldout_stderr_bits", math.nan)),
                                h.K_minus_Lnull_bits[-1], int(h.iteration[-1]), 0, unit)
            if math.isfinite(h.K_train_bits[-1]):
                return KReading("train", h.K_train_bits[-1], math.nan, math.nan, int(h.iteration[-1]), 0, unit)
        ev = self.evaluation
        if ev is not None and ev.get("unbiased") and math.isfinite(ev["K_heldout_bits"]):
            return KReading("live", ev["K_heldout_bits"], ev.get("K_heldout_stderr_bits", math.nan),
                            ev["K_minus_Lnull_bits"], self.iteration, int(ev.get("n_eval", 0)), unit)
        return KReading("none", unit=unit)

    def describe(self) -> str:
        """One line: what is shown (origin, trained or not, K). Used by ``--screenshot``."""
        if self.model is None:
            return "no model"
        trained = "trained" if self.is_trained or self.recorded is not None else "untrained"
        return f"{self.origin} ({trained}, {self.k_reading().text()})"

    # ---- settings -----------------------------------------------------------------------------
    def set_pending_config(self, cfg) -> None:
        self.pending_config = cfg
        self.settings_changed.emit()

    def set_budget(self, seconds: float) -> None:
        self.budget_s = max(0.0, float(seconds))
        self.settings_changed.emit()

    def set_speed(self, steps_per_s: int) -> None:
        self.speed = int(min(max(int(steps_per_s), 1), 1000))
        self.settings_changed.emit()

    def set_loop(self, on: bool) -> None:
        self.loop = bool(on)
        self.settings_changed.emit()

    @property
    def session_name(self) -> str:
        if self.model_path is not None:
            return self.model_path.name
        if self.preset is not None:
            return self.preset.name
        return getattr(self.data, "name", "model")

    def display(self, x) -> np.ndarray:
        """Normalised model-space values → what to draw, float32 (images in [0, 1], binary unchanged,
        points kept in normalised space so that the drift field and the prior share the axes)."""
        if isinstance(x, torch.Tensor):
            x = x.detach().to("cpu", torch.float32).numpy()
        x = np.asarray(x, dtype=np.float32)
        kind = self.kind
        if kind != "images":
            return np.ascontiguousarray(x)
        if self.data is not None:
            return self.data.display(x)
        norm = self.norm or {}
        mean = np.asarray(norm.get("mean", 0.0), dtype=np.float32)
        std = float(norm.get("std", 1.0))
        return np.ascontiguousarray(np.clip(x * std + mean, 0.0, 1.0), dtype=np.float32)

    # ---- writes -------------------------------------------------------------------------------
    def post(self, level: str, text: str) -> None:
        """Report something to the user (status bar, banner for warnings and errors, log dock)."""
        self.log.append((level, text))
        self.message.emit(level, text)

    def set_busy(self, text: str) -> None:
        self.busy = text
        self.busy_changed.emit(text)

    def set_session(self, model: DiffusionModel, data, *, preset=None, path: Path | None = None,
                    train_history: dict | None = None, optimizer_state: dict | None = None, norm: dict | None = None,
                    note: str = "", recorded: dict | None = None, source: str = "new",
                    history_unbiased: bool = False, file_meta: dict | None = None) -> None:
        """Replace model and data; resets curves, history, samples, trajectories, the pending settings
        and the unsaved mark. ``history_unbiased``: the stored history's held-out K may be drawn."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        model.eval()
        self.source = source
        self.unsaved = False
        self.pending_config = None
        self.trajectory_fraction = {}
        self.file_meta = dict(file_meta) if file_meta is not None else None
        self.model = model
        self.data = data
        self.preset = preset
        self.model_path = Path(path) if path is not None else None
        self.norm = norm if norm is not None else (data.norm.to_dict() if data is not None else None)
        self.note = note
        self.recorded = recorded  # exact K stored by dpm train; dropped once this model trains further
        self.train_history = {k: list(np.asarray(v)) for k, v in (train_history or {}).items()
                              if k != "K_heldout_unbiased"}  # the app's own column, not the Trainer's
        self.optimizer_state = optimizer_state
        its = self.train_history.get("iteration", [])
        # the file's own count: training may go on after its last history record (a run stopped between records)
        self.iteration = max(int(its[-1]) if len(its) else 0, ModelMeta.from_dict(file_meta).iterations or 0)
        self.history = History.from_arrays(train_history or {}, unbiased=history_unbiased)
        self.schedule_source = "learned" if model.config.learn_beta else "named"
        self.samples = None
        self.last_progress = None
        self.evaluation = None
        self.trajectories = {}
        self.frame = 0
        self.curves = self.schedule_curves()
        self.curves_live = False
        self.session_changed.emit()
        self.history_reset.emit()
        self.curves_changed.emit()
        self.samples_changed.emit()
        for d in DIRECTIONS:
            self.trajectory_changed.emit(d)

    def set_data(self, data) -> None:
        """Replace the data set, keeping the model (its shape must match)."""
        self.data = data
        self.norm = data.norm.to_dict() if data is not None else self.norm
        self.trajectories.pop("forward", None)
        self.session_changed.emit()
        self.trajectory_changed.emit("forward")

    def heldout_sample(self, n: int = 256) -> torch.Tensor | None:
        if self.data is None:
            return None
        n = max(1, min(n, int(getattr(self.data, "n_heldout", n))))
        return self.data.heldout(n)

    def schedule_curves(self, beta: np.ndarray | None = None) -> BoundCurves:
        """Curves implied by the schedule alone (no network): β, ᾱ, the entropy bounds and the β_1 cap.
        ``beta`` defaults to the model's current schedule."""
        m = self.model
        if beta is None:
            with torch.no_grad():
                beta = m.schedule().detach().cpu().numpy().astype(np.float64)
        beta = np.asarray(beta, dtype=np.float64)
        s = ScheduleTensors.from_beta(torch.from_numpy(beta.copy()))
        x0 = None
        if not m.is_gaussian:
            x0 = self.heldout_sample(256)
            if x0 is None:  # binomial bounds need the data's mean activity; fall back to p̄
                x0 = torch.full((1, *m.config.example_shape), float(m.config.p_bar))
            x0 = x0.to(torch.float64)
        lower, upper = m.kernel.entropy_bounds(s, x0)
        nan = np.full(len(beta), np.nan)
        cap_dim = m.kernel.cap_bits_per_dim(beta)  # None: no β_1 cap for this kernel
        cap = None if cap_dim is None else cap_dim * self.D / self.unit_div
        return BoundCurves(beta=beta, alpha_bar=s.alpha_bar.numpy().copy(),
                           entropy_lower_bits=lower.detach().cpu().numpy() / LN2,
                           entropy_upper_bits=upper.detach().cpu().numpy() / LN2,
                           reverse_entropy_bits=nan.copy(), kl_bits_per_step=nan.copy(),
                           cap_bits_per_dim=cap_dim, cap_bits=cap)

    def set_betas(self, beta: np.ndarray, source: str = "drawn") -> None:
        """Give the (untrained) model a new fixed schedule ``beta`` float64 [T] (drawn by hand or named).
        The network is kept; only the schedule module is rebuilt."""
        if self.training != "idle":
            raise RuntimeError("the schedule cannot change while training")
        beta = np.asarray(beta, dtype=np.float64)
        m = self.model
        if beta.shape != (m.T,):
            raise ValueError(f"β must have shape ({m.T},), got {beta.shape}")
        new = DiffusionModel(m.config, betas=beta)
        state = {k: v for k, v in m.state_dict().items() if not k.startswith("schedule.")}
        new.load_state_dict(state, strict=False)
        new.to(m.device).eval()
        self.model = new
        self.schedule_source = source
        self.trajectories = {}
        self.curves = self.schedule_curves(beta)
        self.curves_live = False
        self.schedule_changed.emit()
        self.curves_changed.emit()
        for d in DIRECTIONS:
            self.trajectory_changed.emit(d)

    def replace_model(self, model: DiffusionModel) -> None:
        """Swap in trained weights for the same session (after training), keeping history."""
        model.eval()
        self.model = model

    def add_progress(self, p) -> None:
        """Record one :class:`models.training.TrainProgress`."""
        self.last_progress = p
        self.recorded = None
        self.iteration = int(p.iteration)
        self.history.append(p.iteration, p.K_train_bits, p.K_heldout_bits, p.K_minus_Lnull_bits,
                            unbiased=progress_unbiased(p, self.model))
        self.curves = self._curves_from(p.beta, p.alpha_bar, p.entropy_lower, p.entropy_upper, p.reverse_entropy,
                                        p.kl_bits_per_step)
        self.curves_live = True
        if p.samples is not None:
            self.samples = np.ascontiguousarray(p.samples, dtype=np.float32)
            self.samples_space = "normalised"
            self.samples_iteration = int(p.iteration)
        self.progress_added.emit(p)
        self.curves_changed.emit()
        if p.samples is not None:
            self.samples_changed.emit()

    def _curves_from(self, beta, alpha_bar, lower_nats, upper_nats, rev_nats, kl_bits) -> BoundCurves:
        beta = np.asarray(beta, dtype=np.float64)
        cap_dim = None if self.model is None else self.model.kernel.cap_bits_per_dim(beta)
        cap = None if cap_dim is None else cap_dim * self.D / self.unit_div
        return BoundCurves(
            beta=beta, alpha_bar=np.asarray(alpha_bar, dtype=np.float64),
            entropy_lower_bits=np.asarray(lower_nats, dtype=np.float64) / LN2,
            entropy_upper_bits=np.asarray(upper_nats, dtype=np.float64) / LN2,
            reverse_entropy_bits=np.asarray(rev_nats, dtype=np.float64) / LN2,
            kl_bits_per_step=np.asarray(kl_bits, dtype=np.float64), cap_bits_per_dim=cap_dim, cap_bits=cap)

    def set_evaluation(self, ev: dict) -> None:
        """Show a one-off evaluation (the dict of ``Trainer.evaluate``) of the current model: curves,
        samples and K, without adding to the training history."""
        self.evaluation = dict(ev, iteration=self.iteration)
        self.curves_live = False
        self.curves = self._curves_from(ev["beta"], ev["alpha_bar"], ev["entropy_lower"], ev["entropy_upper"],
                                        ev["reverse_entropy"], ev["kl_bits_per_step"])
        if ev.get("samples") is not None:
            self.set_samples(ev["samples"])
        self.curves_changed.emit()
        self.evaluated.emit()

    def set_samples(self, x: np.ndarray, space: str = "normalised") -> None:
        """Fixed-seed samples of the current model [n, *S] (normalised, or display space)."""
        self.samples = np.ascontiguousarray(x, dtype=np.float32)
        self.samples_space = space
        self.samples_iteration = self.iteration
        self.samples_changed.emit()

    def set_curves(self, curves: BoundCurves) -> None:
        self.curves = curves
        self.curves_live = False
        self.curves_changed.emit()

    def set_training(self, status: str) -> None:
        if status not in TRAINING_STATES:
            raise ValueError(f"training state must be one of {TRAINING_STATES}, got {status!r}")
        if status != self.training:
            self.training = status
            self.training_changed.emit(status)

    def set_trajectory(self, traj: Trajectory, fraction: float = 1.0) -> None:
        """Show ``traj``; ``fraction`` < 1 while it streams in (its frames so far). A trajectory that
        replaces a growing one of the same direction keeps the shown t."""
        old = self.trajectories.get(traj.direction)
        self.trajectories[traj.direction] = traj
        self.trajectory_fraction[traj.direction] = float(fraction)
        if traj.direction == self.direction:
            if old is not None and old.n_frames and self.frame < old.n_frames and traj.source == old.source:
                self.frame = int(np.abs(traj.t - old.t[self.frame]).argmin())
            self.frame = min(self.frame, traj.n_frames - 1)
        self.trajectory_changed.emit(traj.direction)
        self.trajectory_progress.emit(traj.direction, float(fraction))

    def set_trajectory_progress(self, direction: str, fraction: float) -> None:
        """How much of ``direction``'s trajectory is computed (0..1), or −1 once it was cancelled."""
        self.trajectory_fraction[direction] = float(fraction)
        self.trajectory_progress.emit(direction, float(fraction))

    def streaming(self, direction: str | None = None) -> bool:
        """Whether the shown (or ``direction``'s) trajectory is being computed right now."""
        return 0.0 <= self.trajectory_fraction.get(direction or self.direction, 1.0) < 1.0

    def incomplete(self, direction: str | None = None) -> bool:
        """Whether the shown (or ``direction``'s) trajectory lacks frames (computing or cancelled)."""
        return self.trajectory_fraction.get(direction or self.direction, 1.0) < 1.0

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if direction != self.direction:
            self.direction = direction
            self.direction_changed.emit(direction)

    def set_frame(self, index: int) -> None:
        traj = self.trajectory
        n = traj.n_frames if traj is not None else 1
        index = int(min(max(index, 0), n - 1))
        if index != self.frame:
            self.frame = index
            self.frame_changed.emit(index)

    def set_recent(self, paths: list[str]) -> None:
        self.recent = list(paths)
        self.recent_changed.emit()

    def add_recent(self, path, limit: int = 10) -> None:
        p = str(Path(path).resolve())
        rec = [p] + [r for r in self.recent if r != p]
        self.set_recent(rec[:limit])
