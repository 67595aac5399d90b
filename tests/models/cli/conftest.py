"""Shared by the tests of the ``dpm`` commands (models/cli/), run in-process through ``main(argv)``.

Tiny runs only (T = 10, a few iterations, small evaluation sets, one CPU thread)."""
from __future__ import annotations

import pytest
import torch

from cli_helpers import FAST

from models.cli import main


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run(capsys):
    """run(*argv) → (exit status, stdout, stderr)."""

    def _run(*argv):
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


@pytest.fixture(scope="module")
def swissroll_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "swissroll.h5"
    torch.set_num_threads(1)
    assert main(["train", "swissroll", "--steps", "20", "--out", str(path), *FAST]) == 0
    return path
