"""Shared by the tests of the ``dpm`` commands (models/cli/), run in-process through ``main(argv)``.

Tiny runs only (T = 10, a few iterations, small evaluation sets, one CPU thread)."""
from __future__ import annotations

import pytest
import torch

from cli_helpers import FAST

from models.cli import main


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every command test on one torch thread (tests/conftest.py)."""
    yield


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


@pytest.fixture
def sigterm_at_step(monkeypatch):
    """sigterm_at_step(n): the process sends itself SIGTERM at the n-th training update (inside the
    run, so ``dpm train``'s handler is installed by then)."""
    import os
    import signal

    from models.training import Trainer

    def arm(n: int) -> None:
        step = Trainer.update
        calls = [0]

        def counting(self):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(self)

        monkeypatch.setattr(Trainer, "update", counting)

    return arm
