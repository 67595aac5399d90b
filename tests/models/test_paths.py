"""Bundled resources are found in a checkout, in an installed wheel's layout and through ``DPM_RESOURCES``;
the packaging configuration ships every file the code needs at run time.

Building and installing the real wheel takes a minute, so it is done by ``.ci/run`` (from a fresh virtual
environment outside the checkout); here the configuration it is built from is checked.
"""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import setuptools

import models.paths as paths
from models.presets import BUNDLED

ROOT = Path(__file__).resolve().parents[2]

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _setup_kwargs(monkeypatch) -> dict:
    """What setup.py passes to setuptools.setup (run with setup() captured, nothing built)."""
    seen: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: seen.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    return seen


def _runtime_files() -> set[str]:
    """Files under resources/ that the code reads at run time, relative to resources/."""
    res = ROOT / "resources"
    files = {"LICENSES.md"}
    for sub in ("data", "models"):
        files |= {p.relative_to(res).as_posix() for p in (res / sub).rglob("*") if p.is_file()}
    return files


def test_checkout_resolves_to_the_repository_resources():
    assert paths.resources_dir() == ROOT / "resources"
    assert paths.MODELS_DIR == paths.RESOURCES / "models" and paths.DATA_DIR == paths.RESOURCES / "data"
    assert (paths.MODELS_DIR / "swissroll.h5").is_file()


def test_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("DPM_RESOURCES", str(tmp_path))
    assert paths.resources_dir() == tmp_path


def test_wheel_maps_resources_and_ships_every_runtime_file(monkeypatch):
    cfg = _pyproject()["tool"]["setuptools"]
    assert cfg["package-dir"] == {"dpm_resources": "resources"}
    packages = _setup_kwargs(monkeypatch)["packages"]
    assert "dpm_resources" in packages
    # every code package (a folder with __init__.py) is in the list, so a new subpackage is never left out
    code = {".".join(p.parent.relative_to(ROOT).parts) for top in ("models", "explorer")
            for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert code and code <= set(packages), sorted(code - set(packages))
    assert "tests" not in packages and "bench" not in packages
    res = ROOT / "resources"
    shipped = {p.relative_to(res).as_posix() for g in cfg["package-data"]["dpm_resources"] for p in res.glob(g)}
    missing = _runtime_files() - shipped
    assert not missing, f"pyproject.toml package-data leaves these out of the wheel: {sorted(missing)}"
    assert "models/swissroll.h5" in shipped and "LICENSES.md" in shipped
    assert not any(s.startswith("screenshots/") for s in shipped)


def test_installed_layout_finds_dpm_resources(tmp_path):
    """A wheel's layout: models/ and dpm_resources/ side by side in site-packages, no pyproject.toml,
    dpm_resources a data-only (namespace) package. Run in a fresh interpreter with only that folder."""
    site = tmp_path / "site"
    (site / "models").mkdir(parents=True)
    (site / "models" / "__init__.py").write_text("")
    (site / "models" / "paths.py").write_text((ROOT / "models" / "paths.py").read_text())
    (site / "dpm_resources" / "models").mkdir(parents=True)
    (site / "dpm_resources" / "models" / "swissroll.h5").write_bytes(b"")
    (site / "dpm_resources" / "models" / "notes.txt").write_text("")
    code = textwrap.dedent("""
        import models.paths as p
        print(p.RESOURCES); print(p.bundled_models()); print(p.bundled_model("swissroll"))
    """)
    env = {k: v for k, v in os.environ.items() if k != "DPM_RESOURCES"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert Path(lines[0]) == site / "dpm_resources"
    assert lines[1] == "['swissroll']"
    assert Path(lines[2]) == site / "dpm_resources" / "models" / "swissroll.h5"


def test_bundled_models_by_name():
    assert set(paths.bundled_models()) == set(BUNDLED)
    assert paths.bundled_model("swissroll") == paths.MODELS_DIR / "swissroll.h5"
    for not_a_name in ("nosuchpreset", "swissroll.h5", "../models/swissroll", "", "/swissroll", ".hidden"):
        assert paths.bundled_model(not_a_name) is None, not_a_name


def test_bundled_models_empty_when_folder_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "MODELS_DIR", tmp_path / "absent")
    assert paths.bundled_models() == [] and paths.bundled_model("swissroll") is None
