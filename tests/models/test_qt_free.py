"""The model library is headless: importing ``models`` or any of its submodules loads no Qt module.

Each check runs in a fresh interpreter, so modules imported by other tests (pytest-qt, the explorer
tests) cannot hide or fake a leak.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

FORBIDDEN = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "pyqtgraph", "superqt", "explorer",
             "pytestqt")

# modules the brief names explicitly: they must exist and import cleanly
REQUIRED = ("models", "models.schedules", "models.kernels", "models.kernels.gaussian", "models.kernels.binomial",
            "models.networks", "models.model", "models.bound", "models.sampling", "models.posterior",
            "models.training", "models.config")

_SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    forbidden = {forbidden!r}
    import models
    leaked_by_package = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    names = ["models"]
    errors = {{}}
    for info in pkgutil.walk_packages(models.__path__, "models."):
        names.append(info.name)
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # reported, not hidden
            errors[info.name] = f"{{type(exc).__name__}}: {{exc}}"
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({{"names": names, "errors": errors, "leaked": leaked,
                      "leaked_by_package": leaked_by_package}}))
    """
)


def _start() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _SCRIPT.format(forbidden=FORBIDDEN)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# A fresh interpreter importing torch takes seconds on a loaded machine: start it when this module is
# collected, so it runs alongside the other tests, and collect its report in the fixture.
_PROC: subprocess.Popen | None = _start()


@pytest.fixture(scope="module")
def import_report() -> dict:
    global _PROC
    proc, _PROC = (_PROC or _start()), None
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_import_models_loads_no_qt(import_report):
    assert import_report["leaked_by_package"] == []


def test_every_models_submodule_imports_without_qt(import_report):
    for name in REQUIRED:
        assert name in import_report["names"], f"{name} is missing"
    assert import_report["errors"] == {}, import_report["errors"]
    assert import_report["leaked"] == [], f"Qt/GUI modules loaded by the model library: {import_report['leaked']}"
