"""The explorer's state: one :class:`AppState` QObject with signals and no widgets (design.md).

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

from models.bound import LN2, beta1_cap_bits_per_dim, unit_divisor
from models.kernels import ScheduleTensors
from models.model import DiffusionModel

KIND_UNITS = {"points": "bits/point", "binary": "bits/seq", "images": "bits/pixel"}
TRAINING_STATES = ("idle", "running", "paused", "stopping")
DIRECTIONS = ("reverse", "forward")


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
    leaves x^t (k = t − 1) on the grid ``drift_grid`` [G·G, 2]; NaN rows at t = 0."""

    direction: str
    frames: np.ndarray
    t: np.ndarray
    kind: str
    space: str = "normalised"
    drift: np.ndarray | None = None
    drift_grid: np.ndarray | None = None
    source: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def T(self) -> int:
        return int(self.t[-1])


@dataclass
class History:
    """K curves for the training plot (one entry per progress record)."""

    iteration: list = field(default_factory=list)
    K_train_bits: list = field(default_factory=list)
    K_heldout_bits: list = field(default_factory=list)
    K_minus_Lnull_bits: list = field(default_factory=list)

    def append(self, it, k_train, k_held, k_gain) -> None:
        self.iteration.append(float(it))
        self.K_train_bits.append(float(k_train))
        self.K_heldout_bits.append(float(k_held))
        self.K_minus_Lnull_bits.append(float(k_gain))

    @staticmethod
    def from_arrays(h: dict) -> "History":
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
        return out

    def __len__(self) -> int:
        return len(self.iteration)


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
        self.samples: np.ndarray | None = None  # latest fixed-seed samples, normalised [n, *S]
        self.samples_iteration = 0
        self.trajectories: dict[str, Trajectory] = {}
        self.direction = "reverse"
        self.frame = 0
        self.training = "idle"
        self.device = "cpu"
        self.busy = ""
        self.recent: list[str] = []
        self.log: list[tuple[str, str]] = []

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
        return KIND_UNITS[self.kind]

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
                    note: str = "", recorded: dict | None = None) -> None:
        """Replace model and data; resets curves, history, samples and trajectories."""
        model.eval()
        self.model = model
        self.data = data
        self.preset = preset
        self.model_path = Path(path) if path is not None else None
        self.norm = norm if norm is not None else (data.norm.to_dict() if data is not None else None)
        self.note = note
        self.recorded = recorded  # exact K stored by dpm train; dropped once this model trains further
        self.train_history = {k: list(np.asarray(v)) for k, v in (train_history or {}).items()}
        self.optimizer_state = optimizer_state
        its = self.train_history.get("iteration", [])
        self.iteration = int(its[-1]) if len(its) else 0
        self.history = History.from_arrays(train_history or {})
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
        cap_dim = cap = None
        if m.is_gaussian:
            cap_dim = beta1_cap_bits_per_dim(beta)
            cap = cap_dim * self.D / self.unit_div
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
        self.history.append(p.iteration, p.K_train_bits, p.K_heldout_bits, p.K_minus_Lnull_bits)
        self.curves = self._curves_from(p.beta, p.alpha_bar, p.entropy_lower, p.entropy_upper, p.reverse_entropy,
                                        p.kl_bits_per_step)
        self.curves_live = True
        if p.samples is not None:
            self.samples = np.ascontiguousarray(p.samples, dtype=np.float32)
            self.samples_iteration = int(p.iteration)
        self.progress_added.emit(p)
        self.curves_changed.emit()
        if p.samples is not None:
            self.samples_changed.emit()

    def _curves_from(self, beta, alpha_bar, lower_nats, upper_nats, rev_nats, kl_bits) -> BoundCurves:
        beta = np.asarray(beta, dtype=np.float64)
        cap_dim = cap = None
        if self.model is not None and self.model.is_gaussian:
            cap_dim = beta1_cap_bits_per_dim(beta)
            cap = cap_dim * self.D / self.unit_div
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
            self.samples = np.ascontiguousarray(ev["samples"], dtype=np.float32)
            self.samples_iteration = self.iteration
            self.samples_changed.emit()
        self.curves_changed.emit()
        self.evaluated.emit()

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

    def set_trajectory(self, traj: Trajectory) -> None:
        self.trajectories[traj.direction] = traj
        if traj.direction == self.direction:
            self.frame = min(self.frame, traj.n_frames - 1)
        self.trajectory_changed.emit(traj.direction)

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
