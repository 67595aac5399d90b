"""Trajectory files: the states of one forward or reverse run, as HDF5 (never pickled).

A trajectory file (``"dpm-explorer-trajectory"`` version 1) has the checksum header and root attrs of a
model file (:mod:`models.files.model_file`) and holds ``traj`` float32 [S, N, *shape] (the states x_t),
``t`` int64 [S] (the time index of each state) and ``meta`` JSON. Reading goes through
:mod:`models.files.hdf5`; every problem raises :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import CheckpointError
from .hdf5 import open_hdf5, write_array, write_str, writing
from .model_file import _check_finite, _dump_json

__all__ = ["TRAJECTORY_FORMAT", "TRAJECTORY_FORMAT_VERSION", "MAX_TRAJECTORY_BYTES", "Trajectory",
           "save_trajectory", "load_trajectory"]

TRAJECTORY_FORMAT = "dpm-explorer-trajectory"
TRAJECTORY_FORMAT_VERSION = 1
#: The states of one trajectory file, declared size, checked before reading (models/README.md, **Limits**).
MAX_TRAJECTORY_BYTES = 1024**3


@dataclass(frozen=True)
class Trajectory:
    """States of one forward or reverse run.

    traj: float32 [S, N, *shape]: the states x_t of N samples at S recorded steps.
    t:    int64 [S]: the time index of each recorded state.
    meta: JSON object: kind, direction, model file, seed, ...
    """

    traj: np.ndarray
    t: np.ndarray
    meta: dict


def _check_trajectory(traj: np.ndarray, t: np.ndarray, path: str) -> None:
    if traj.ndim < 2:
        raise CheckpointError(path, f"traj must be [S, N, *shape], got shape {traj.shape}")
    if traj.dtype != np.float32:
        raise CheckpointError(path, f"traj must be float32, got {traj.dtype}")
    _check_finite(traj, "traj", path)
    if t.ndim != 1 or t.dtype.kind not in "iu":
        raise CheckpointError(path, f"t must be an integer array [S], got {t.dtype} {t.shape}")
    if t.shape[0] != traj.shape[0]:
        raise CheckpointError(path, f"t has {t.shape[0]} entries but traj has S = {traj.shape[0]} states")


def save_trajectory(path: str | os.PathLike[str], traj: np.ndarray, *, t: np.ndarray, meta: dict) -> None:
    """Write a trajectory atomically.

    traj: float32 [S, N, *shape], the states x_t; t: int [S], their time indices (stored int64);
    meta: JSON object (kind, direction, model file, seed, ...).
    """
    p = os.fspath(path)
    traj = np.asarray(traj)
    if traj.dtype.kind == "f":
        traj = traj.astype(np.float32, copy=False)
    t = np.asarray(t)
    _check_trajectory(traj, t, p)
    t = t.astype(np.int64, copy=False)
    meta_json = _dump_json(meta, "meta", p)
    with writing(p, TRAJECTORY_FORMAT, TRAJECTORY_FORMAT_VERSION) as f:
        write_str(f, "meta", meta_json)
        write_array(f, "traj", traj)
        write_array(f, "t", t)


def load_trajectory(path: str | os.PathLike[str]) -> Trajectory:
    """Read and validate a trajectory file; every problem raises CheckpointError naming the file."""
    with open_hdf5(path, CheckpointError, max_dataset_bytes=MAX_TRAJECTORY_BYTES,
                   max_total_bytes=MAX_TRAJECTORY_BYTES + (1 << 24)) as r:
        r.format_version(TRAJECTORY_FORMAT, TRAJECTORY_FORMAT_VERSION)
        meta = r.json_object(r.f, "meta", "meta", required=False) or {}
        traj = r.numeric(r.child(r.f, "traj", "traj"), "traj")
        t = r.numeric(r.child(r.f, "t", "t"), "t")
        _check_trajectory(traj, t, r.path)
    return Trajectory(traj=traj, t=t.astype(np.int64, copy=False), meta=meta)