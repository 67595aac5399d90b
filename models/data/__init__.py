"""Data sets: the named data sets of models/README.md, **Presets and data sets**, and the user's own
files. Every data set is a :class:`DataSet` (normalized float32 batches drawn with an explicit
generator, a fixed held-out set).

* :mod:`.dataset`: :class:`DataSet`, :class:`Normalization`, the value pipeline, kinds and units;
* :mod:`.synthetic`: the Swiss roll, the binary heartbeat, dead leaves;
* :mod:`.readers`: own files (.npy, .csv, HDF5, images, image folders) and CIFAR-10 batches;
* :mod:`.registry`: :data:`DATA_SETS` and :func:`load_preset`.

Nothing here imports Qt. Every problem raises :class:`DataError` naming the file.
"""
from .dataset import (HELDOUT_FRACTION, KINDS, MIN_EXAMPLES, UNITS, DataError, DataSet, Kind, Normalization,
                      numpy_rng)
from .synthetic import SWISSROLL_THETA, dead_leaves, heartbeat, swiss_roll
from .readers import (IMAGE_EXTENSIONS, MAX_ARRAY_BYTES, MAX_FILE_BYTES, load_file, load_image,  # noqa: I001
                      read_cifar10_binary)
from .registry import DATA_SETS, load_preset

__all__ = [
    "Kind", "KINDS", "UNITS", "DATA_SETS", "IMAGE_EXTENSIONS", "MAX_FILE_BYTES", "MAX_ARRAY_BYTES", "MIN_EXAMPLES",
    "HELDOUT_FRACTION", "DataError", "Normalization", "DataSet", "load_preset", "load_file", "swiss_roll",
    "heartbeat", "dead_leaves", "read_cifar10_binary", "load_image", "numpy_rng", "SWISSROLL_THETA",
]
