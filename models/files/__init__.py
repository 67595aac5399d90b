"""Files the product reads and writes: one validating HDF5 reader (:mod:`.hdf5`) used for model
files (:mod:`.model_file`), trajectories (:mod:`.trajectory`) and data files; images opened with a
format allow-list (:mod:`.images`); atomic writes and an output lock (:mod:`.atomic`). Nothing is
unpickled. Every problem with a file raises a :class:`FileError` (:class:`CheckpointError` for model
and trajectory files, :class:`DataError` for data and images) whose message starts with the path.
See models/README.md, **File formats** and **Limits**.
"""
from .errors import CheckpointError, DataError, FileError, check_regular_file, listing  # noqa: I001 (first)
from .atomic import LockError, OutputLock, atomic_write, lock_output
from .hdf5 import open_hdf5, sniff_format
from .images import IMAGE_EXTENSIONS, IMAGE_FORMATS, open_image
from .model_file import (FORMAT, FORMAT_VERSION, SOFTWARE, Checkpoint, LoadedModel, load_checkpoint, load_model,
                         save_checkpoint, save_model)
from .trajectory import TRAJECTORY_FORMAT, TRAJECTORY_FORMAT_VERSION, Trajectory, load_trajectory, save_trajectory

__all__ = [
    "FileError", "DataError", "CheckpointError", "LockError", "check_regular_file", "listing",
    "atomic_write", "OutputLock", "lock_output", "open_hdf5", "sniff_format", "open_image", "IMAGE_FORMATS", "IMAGE_EXTENSIONS",
    "FORMAT", "FORMAT_VERSION", "SOFTWARE", "Checkpoint", "save_checkpoint", "load_checkpoint",
    "LoadedModel", "save_model", "load_model",
    "TRAJECTORY_FORMAT", "TRAJECTORY_FORMAT_VERSION", "Trajectory", "save_trajectory", "load_trajectory",
]
