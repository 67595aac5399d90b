"""File ▸ Watch model file… (explorer/watch.py): the app follows a model file that training keeps
replacing atomically; a version that does not validate (its checksum) is never applied, and is read
again on the next tick; the GUI is not blocked (the read runs in a worker)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from models.files import save_model
from models.model import DiffusionModel
from models.presets import PRESETS, load_data
from models.training import TrainConfig, Trainer


@pytest.fixture
def ctl(qapp, one_torch_thread):
    from explorer.controller import Controller
    from explorer.state import AppState

    c = Controller(AppState(), traj_points=200)
    yield c
    c.shutdown()


def _save(path, trainer, data):
    history = {"iteration": np.array([float(trainer.iteration)]), "K_heldout_bits": np.array([-5.0])}  # as a record
    save_model(path, trainer.model, norm=data.norm.to_dict(), history=history,
               meta={"preset": "swissroll", "data_source": "preset", "iterations": trainer.iteration,
                     "complete": False})


def _betas(model) -> np.ndarray:
    return model.schedule_tensors().beta.detach().cpu().numpy()


def test_watched_file_updates_the_app_as_it_is_replaced(qtbot, ctl, tmp_path):
    torch.manual_seed(0)
    data = load_data(preset="swissroll")
    model = DiffusionModel(dataclasses.replace(PRESETS["swissroll"].model, T=8))
    tc = TrainConfig(steps=None, batch_size=32, report_every=10**6, n_eval=32, eval_steps=4, ema=None, lr=0.05)
    trainer = Trainer(model, data, tc)
    for _ in range(3):
        trainer.update()
    path = tmp_path / "run.h5"
    _save(path, trainer, data)

    s = ctl.state
    ctl.watch_model(path)
    ctl.watcher._timer.setInterval(50)
    qtbot.waitUntil(lambda: s.model is not None and ctl.watcher.versions == 1, timeout=60_000)
    first_beta = _betas(s.model)
    np.testing.assert_allclose(first_beta, _betas(trainer.model), rtol=1e-12)
    assert s.iteration == 3 and s.model_path == path

    # a damaged version (bytes changed after its checksum was written) lands: never applied
    for _ in range(20):
        trainer.update()
    tmp = tmp_path / "run.h5.part"
    _save(tmp, trainer, data)
    raw = bytearray(tmp.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    tmp.write_bytes(bytes(raw))
    os.replace(tmp, path)
    qtbot.wait(600)  # several ticks: it is read and refused each time, quietly
    assert ctl.watcher.versions == 1 and s.iteration == 3
    np.testing.assert_array_equal(_betas(s.model), first_beta)

    # the next autosave (an atomic replace of a whole, further-trained file) is applied
    _save(path, trainer, data)
    qtbot.waitUntil(lambda: ctl.watcher.versions == 2, timeout=60_000)
    assert s.iteration == 23
    np.testing.assert_allclose(_betas(s.model), _betas(trainer.model), rtol=1e-12)
    assert not np.allclose(_betas(s.model), first_beta)  # the learned β moved, and the app shows it
    for a, b in zip(s.model.parameters(), trainer.model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)
    qtbot.waitUntil(lambda: "reverse" in s.trajectories, timeout=60_000)  # samples redrawn from the new model

    ctl.stop_watching()
    assert ctl.watcher is None
