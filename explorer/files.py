"""Saving, opening and exporting, without widgets: the model file of the current state (with its
provenance record, :class:`models.metadata.ModelMeta`, and the exact K of the file it came from while
the model is unchanged), trajectory files, and the animation as a GIF with a t label on each frame.

Errors are the library's (:class:`models.files.CheckpointError` and friends, naming the file); the
controller reports them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from models.files import CheckpointError, save_model, sniff_format
from models.metadata import ModelMeta, RecordedK, model_meta

from .drawn import DrawnDataSet
from .export import load_trajectory_file, save_trajectory_file, write_gif
from .state import AppState, BoundCurves, History, Trajectory

DATA_SUFFIXES = {".npy", ".csv", ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                 ".pbm", ".pnm"}
H5_SUFFIXES = {".h5", ".hdf5"}
SAVE_ERRORS = (CheckpointError, OSError, ValueError, TypeError)
OPEN_ERRORS = (CheckpointError, OSError, ValueError)
UNBIASED_KEY = "K_heldout_unbiased"  # history column: 1 where the held-out K of a record is unbiased
CACHE_VERSION = "1"
CACHE_MAX_BYTES = 64 * 1024**2  # trajectories larger than this are not cached


def sniff_h5(path: Path) -> str:
    """"model", "trajectory" or "data" for an HDF5 file (by its format attribute)."""
    try:  # through the checked reader: a hostile file never reaches HDF5 in this process
        fmt = sniff_format(path)
    except Exception:  # noqa: BLE001 - let the real loader report the problem
        return "model"
    if fmt == "dpm-explorer-trajectory":
        return "trajectory"
    if fmt == "dpm-explorer-model":
        return "model"
    return "data"


def path_kind(path: Path) -> str:
    """What opening ``path`` means: "model", "trajectory" or "data" (a data file or folder)."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() not in H5_SUFFIXES:
        return "data"
    return sniff_h5(p)


# ---- model files ---------------------------------------------------------------------------------
def model_file_meta(state: AppState, *, autosave: bool = False) -> ModelMeta:
    """The provenance record written with the state's model. While the model is the one a file held
    (no training since), that file's record is kept whole, its exact K included; after training, a
    fresh record (the exact K belongs to the old weights and is dropped)."""
    s = state
    unchanged = s.last_progress is None and s.file_meta is not None
    if unchanged:
        meta = ModelMeta.from_dict(s.file_meta)
        if meta.recorded is None and s.recorded is not None:  # read by this app from an older layout
            r = s.recorded
            meta = meta.replace(recorded=RecordedK(K_bits=r["K_bits"], K_stderr_bits=r["K_stderr_bits"],
                                                   K_minus_Lnull_bits=r["K_minus_Lnull_bits"], n_eval=r["n_eval"],
                                                   unit=s.unit), complete=True)
        meta = meta.replace(schedule_source=s.schedule_source)
    else:
        drawn = None
        if isinstance(s.data, DrawnDataSet) and len(s.data.points) <= 50_000:
            drawn = np.round(s.data.points.astype(np.float64), 6).tolist()
        src = str(getattr(s.data, "source", "")).split(":")[0]
        data_path = src if (s.preset is None and drawn is None and src and Path(src).exists()) else None
        k = s.k_reading()
        meta = model_meta(s.data, preset=s.preset.name if s.preset is not None else None, data_path=data_path,
                          drawn_points=drawn, iterations=int(s.iteration), unit=s.unit, device=s.device,
                          schedule_source=s.schedule_source, complete=False,
                          K_heldout_live_bits=k.bits if k.source == "live" else None)
        if s.file_meta is not None and s.model_path is not None:
            meta = meta.replace(resumed_from=str(s.model_path))
    if autosave:
        meta = meta.replace(extra={**meta.extra, "autosave": True})
    return meta


def model_file_history(state: AppState, history: dict | None) -> dict[str, np.ndarray]:
    """The Trainer's history arrays plus the column saying which records' held-out K is unbiased."""
    hist = {k: np.asarray(v) for k, v in (history or {}).items() if k != UNBIASED_KEY}
    n = len(hist.get("iteration", []))
    if n:
        marks = state.history.unbiased if len(state.history.unbiased) == n else [False] * n
        hist[UNBIASED_KEY] = np.asarray(marks, dtype=np.float64)
    return hist


def model_file_norm(state: AppState) -> dict:
    """The data normalisation written with the state's model (the data set's, else the opened file's)."""
    if state.data is not None:
        return state.data.norm.to_dict()
    return state.norm or {"mean": 0.0, "std": 1.0, "levels": None}


def save_model_file(state: AppState, path, *, trainer=None, model=None, history: dict | None = None,
                    autosave: bool = False) -> None:
    """Write the state's model (or ``model`` with ``history``, a snapshot of a run) to ``path``
    atomically. ``trainer``: a paused run's Trainer, whose history and optimiser state are newer than
    the state's."""
    s = state
    optimizer = s.optimizer_state
    history = history if history is not None else s.train_history
    if trainer is not None:
        history, optimizer = trainer.history_arrays(), trainer.optimizer.state_dict()
    save_model(Path(path), model if model is not None else s.model, norm=model_file_norm(s),
               history=model_file_history(s, history), meta=model_file_meta(s, autosave=autosave).to_dict(),
               optimizer=None if autosave else optimizer)


# ---- trajectory files ------------------------------------------------------------------------------
def write_trajectory(state: AppState, path) -> None:
    s = state
    source = {"model": str(s.model_path) if s.model_path else "", "preset": s.preset.name if s.preset else "",
              "data": getattr(s.data, "name", ""), "seed": 0}
    save_trajectory_file(path, s.trajectory, curves=s.curves, history=s.history, unit=s.unit, source=source)


def read_trajectory(path) -> tuple[Trajectory, BoundCurves | None, History | None]:
    traj, curves, history, _meta = load_trajectory_file(path)
    return traj, curves, history


# ---- the animation --------------------------------------------------------------------------------
def gif_order(traj: Trajectory, max_frames: int) -> list[int]:
    """Frame indices in playing order (reverse: t = T → 0), at most ``max_frames`` evenly spread."""
    order = list(range(traj.n_frames))
    if traj.direction == "reverse":
        order.reverse()
    if len(order) > max_frames:
        idx = np.unique(np.linspace(0, len(order) - 1, max_frames).round().astype(int))
        order = [order[i] for i in idx]
    return order


def label_frame(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` uint8 [H, W, 3] with ``text`` in a white box at the top left."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb)
    d = ImageDraw.Draw(im)
    box = d.textbbox((6, 4), text)
    d.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(255, 255, 255))
    d.text((6, 4), text, fill=(20, 20, 20))
    return np.asarray(im)


def export_gif(traj: Trajectory, path, render: Callable[[int], np.ndarray], *, max_frames: int = 120,
               fps: float = 15.0) -> int:
    """Write the animation of ``traj`` to ``path``: ``render(i)`` gives frame i as uint8 [H, W, 3];
    each frame carries its "t = … / T" label. Returns the number of frames."""
    frames = [label_frame(render(i), f"t = {int(traj.t[i])} / {traj.T}") for i in gif_order(traj, max_frames)]
    write_gif(path, frames, fps=fps)
    return len(frames)


# ---- the trajectory cache --------------------------------------------------------------------------
# A model opened from a file and not changed since has the same trajectories every time (fixed seeds),
# so they are kept in the user's cache folder: the second time a model is opened its trajectory is
# there at once. Keyed by the file's bytes and everything the computation depends on; plain arrays in
# .npz files, read without unpickling; a file that does not read back is ignored and removed.
def cache_dir() -> Path:
    env = os.environ.get("DPM_EXPLORER_CACHE")
    if env:
        return Path(env)
    from PySide6.QtCore import QStandardPaths

    base = QStandardPaths.writableLocation(QStandardPaths.CacheLocation) or str(Path.home() / ".cache" / "dpm-explorer")
    return Path(base) / "trajectories"


def trajectory_cache_key(state: AppState, request) -> str | None:
    """The cache key of ``request`` (a :class:`explorer.workers.TrajectoryRequest`) for the state's model,
    or None when the model is not exactly a file's (trained or edited since it was opened)."""
    s = state
    if (s.model_path is None or s.file_meta is None or s.last_progress is not None or s.schedule_source == "drawn"
            or request.model is not s.model):
        return None
    try:
        digest = hashlib.sha256(Path(s.model_path).read_bytes()).hexdigest()
    except OSError:
        return None
    data = f"{getattr(s.data, 'name', '')}:{getattr(s.data, 'n_heldout', '')}:{getattr(s.data, 'source', '')}"
    parts = [CACHE_VERSION, digest, request.kind, request.n, request.seed, request.drift_grid, request.max_frames,
             request.max_bytes, request.extent, None if request.x0 is None else tuple(request.x0.shape), data]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def load_cached_trajectory(key: str, direction: str) -> Trajectory | None:
    path = cache_dir() / f"{key}-{direction}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            frames = np.ascontiguousarray(z["frames"], dtype=np.float32)
            t = np.asarray(z["t"], dtype=np.int64)
            kind, space = str(z["kind"]), str(z["space"])
            drift = np.ascontiguousarray(z["drift"], dtype=np.float32) if "drift" in z else None
            grid = np.ascontiguousarray(z["drift_grid"], dtype=np.float32) if "drift_grid" in z else None
        if frames.shape[0] != t.shape[0] or kind not in ("points", "binary", "images") or not np.all(np.diff(t) > 0):
            raise ValueError("inconsistent arrays")
    except (OSError, ValueError, KeyError):
        path.unlink(missing_ok=True)
        return None
    return Trajectory(direction=direction, frames=frames, t=t, kind=kind, space=space, drift=drift, drift_grid=grid,
                      source="")


def store_cached_trajectory(key: str, traj: Trajectory) -> None:
    """Write ``traj`` to the cache (atomically: a temporary file renamed); errors are ignored."""
    if traj.frames.nbytes > CACHE_MAX_BYTES:
        return
    d = cache_dir()
    arrays = dict(frames=traj.frames, t=traj.t, kind=np.asarray(traj.kind), space=np.asarray(traj.space))
    if traj.drift is not None:
        arrays.update(drift=traj.drift, drift_grid=traj.drift_grid)
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{key}-{traj.direction}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, d / f"{key}-{traj.direction}.npz")
    except OSError:
        pass
