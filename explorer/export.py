"""Exports: the animation as a GIF (Pillow), and a trajectory with the bound curves as an HDF5
trajectory file (:func:`models.files.save_trajectory`) that the app opens again.

The trajectory file's ``meta`` holds, besides kind/direction/space, the bound curves (β, ᾱ, entropy
bounds, the model's reverse entropy, per-step KL terms; NaN stored as null) and the K history, so a
re-opened file restores the plots as they were."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage

from models.config import KINDS
from models.files import atomic_write, load_trajectory, save_trajectory

from .state import BoundCurves, History, Trajectory

CURVE_FIELDS = ("beta", "alpha_bar", "entropy_lower_bits", "entropy_upper_bits", "reverse_entropy_bits",
                "kl_bits_per_step")


def qimage_to_rgb(img: QImage) -> np.ndarray:
    """A QImage → uint8 [H, W, 3] (copied)."""
    img = img.convertToFormat(QImage.Format_RGBA8888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    arr = buf.reshape(h, img.bytesPerLine() // 4, 4)[:, :w, :3]
    return np.array(arr, copy=True)


def write_gif(path, frames: list[np.ndarray], fps: float = 15.0, hold_last_s: float = 1.0) -> None:
    """Frames uint8 [H, W, 3] → an endlessly looping GIF at ``fps`` (the last frame held longer)."""
    if not frames:
        raise ValueError("no frames to write")
    ims = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for f in frames]
    dt = int(round(1000.0 / max(fps, 0.1)))
    durations = [dt] * len(ims)
    durations[-1] = max(dt, int(hold_last_s * 1000))
    with atomic_write(Path(path), suffix=".gif") as tmp:  # a full disk leaves the previous GIF as it was
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=durations, loop=0,
                    disposal=2)


def _jsonable(a) -> list:
    return [None if (v is None or not math.isfinite(v)) else float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _array(v) -> np.ndarray:
    return np.array([math.nan if x is None else float(x) for x in v], dtype=np.float64)


def trajectory_meta(traj: Trajectory, *, curves: BoundCurves | None, history: History | None, unit: str,
                    source: dict) -> dict:
    meta = dict(kind=traj.kind, direction=traj.direction, space=traj.space, T=int(traj.T), unit=unit,
                software="dpm-explorer", **source)
    if curves is not None:
        meta["curves"] = {f: _jsonable(getattr(curves, f)) for f in CURVE_FIELDS}
        meta["curves"]["cap_bits_per_dim"] = curves.cap_bits_per_dim
        meta["curves"]["cap_bits"] = curves.cap_bits
    if history is not None and len(history):
        meta["history"] = {k: _jsonable(getattr(history, k)) for k in
                           ("iteration", "K_train_bits", "K_heldout_bits", "K_minus_Lnull_bits")}
    return meta


def save_trajectory_file(path, traj: Trajectory, *, curves: BoundCurves | None, history: History | None, unit: str,
                         source: dict) -> None:
    """Write the cached trajectory (float32 [S, N, *shape]) and its curves; raises CheckpointError."""
    save_trajectory(path, traj.frames, t=traj.t,
                    meta=trajectory_meta(traj, curves=curves, history=history, unit=unit, source=source))


def load_trajectory_file(path) -> tuple[Trajectory, BoundCurves | None, History | None, dict]:
    """Read a trajectory file written by :func:`save_trajectory_file` (or any valid trajectory file:
    kind is then guessed from the array's shape). Raises CheckpointError / ValueError naming the file."""
    tr = load_trajectory(path)
    meta = dict(tr.meta)
    frames = np.ascontiguousarray(tr.traj, dtype=np.float32)
    kind = meta.get("kind")
    if kind not in KINDS:
        kind = "images" if frames.ndim == 5 else "points"
        if kind == "points" and frames.size and np.all((frames == 0) | (frames == 1)):
            kind = "binary"
    if kind == "images" and frames.ndim != 5:
        raise ValueError(f"{path}: an image trajectory needs traj [S, N, C, H, W], got shape {frames.shape}")
    if kind != "images" and frames.ndim != 3:
        raise ValueError(f"{path}: a {kind} trajectory needs traj [S, N, D], got shape {frames.shape}")
    t = np.asarray(tr.t, dtype=np.int64)
    order = np.argsort(t, kind="stable")
    frames, t = np.ascontiguousarray(frames[order]), t[order]
    direction = meta.get("direction") if meta.get("direction") in ("forward", "reverse") else "reverse"
    space = meta.get("space", "display" if kind != "points" else "normalised")
    traj = Trajectory(direction=direction, frames=frames, t=t, kind=kind, space=space, source=f"file:{path}")
    curves = None
    c = meta.get("curves")
    if isinstance(c, dict) and all(f in c for f in CURVE_FIELDS):
        arrs = {f: _array(c[f]) for f in CURVE_FIELDS}
        if len({len(a) for a in arrs.values()}) == 1:
            curves = BoundCurves(**arrs, cap_bits_per_dim=c.get("cap_bits_per_dim"), cap_bits=c.get("cap_bits"))
    history = None
    h = meta.get("history")
    if isinstance(h, dict):
        history = History.from_arrays({k: _array(v) for k, v in h.items() if isinstance(v, list)})
    return traj, curves, history, meta
