"""Where bundled resources live (data sets, pretrained models, licences).

The repository keeps them in ``resources/`` at its root. An installed wheel carries the same folder as
the data-only package ``dpm_resources`` (``pyproject.toml`` maps ``dpm_resources`` onto ``resources``),
so the lookup order is:

1. ``DPM_RESOURCES`` (an environment variable naming a folder laid out like ``resources/``);
2. the checkout: ``resources/`` beside this package when the package sits in a source tree
   (a ``pyproject.toml`` next to it), so a checkout never reads an older installed copy;
3. the installed ``dpm_resources`` package (found without importing anything);
4. otherwise the checkout path again, so that messages name where the files were expected.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

_PACKAGE = "dpm_resources"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _installed() -> Path | None:
    """The folder of the installed ``dpm_resources`` package, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    # a data-only package without __init__.py is a namespace package: take the location with models
    for loc in spec.submodule_search_locations or ():
        if (Path(loc) / "models").is_dir():
            return Path(loc)
    return None


def resources_dir() -> Path:
    """The folder holding ``data/``, ``models/`` and ``LICENSES.md`` (see the module docstring)."""
    env = os.environ.get("DPM_RESOURCES")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parent.parent
    checkout = root / "resources"
    if (root / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return _installed() or checkout


#: The bundled-resources folder, resolved once at import (``DPM_RESOURCES`` overrides it).
RESOURCES = resources_dir()
DATA_DIR = RESOURCES / "data"
MODELS_DIR = RESOURCES / "models"


def bundled_models() -> list[str]:
    """The preset names that have a bundled pretrained model (``MODELS_DIR/<name>.h5``), sorted."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.stem for p in MODELS_DIR.glob("*.h5") if p.is_file())


def bundled_model(name: str) -> Path | None:
    """The bundled model file for preset ``name`` (e.g. ``"swissroll"`` → ``MODELS_DIR/swissroll.h5``),
    or None when ``name`` is not a plain name or no such file is bundled. A path-like ``name``
    (``"m.h5"``, ``"dir/x"``) is never a bundled model, so callers may try this first and fall back to
    treating the argument as a file."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return None
    p = MODELS_DIR / f"{name}.h5"
    return p if p.is_file() else None
