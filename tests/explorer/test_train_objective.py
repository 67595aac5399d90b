"""The app trains with the same objective as ``dpm train`` (models/README.md, **Training objective**)."""
from __future__ import annotations

import numpy as np

from explorer.session import app_train_config, data_file_session, default_model_config
from models.model import DiffusionModel
from models.presets import PRESETS, default_train_config, load_data


def test_app_training_objective_follows_the_presets_and_the_model(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "imgs.npy", rng.integers(0, 256, (30, 8, 8)).astype(np.uint8))
    np.save(tmp_path / "pts.npy", rng.normal(size=(50, 2)).astype(np.float32))
    imgs = load_data(path=tmp_path / "imgs.npy")
    cfg = default_model_config(data_file_session(tmp_path / "imgs.npy"))
    assert app_train_config(DiffusionModel(cfg), imgs, None, None).objective == default_train_config("images").objective
    assert default_train_config("images").objective == "hybrid"
    # the user switched the network to the paper's parameterisation: the hybrid objective cannot train it
    paper = DiffusionModel(cfg.replace(param="paper"))
    assert app_train_config(paper, imgs, None, None).objective == "K"
    pts = load_data(path=tmp_path / "pts.npy")
    pcfg = default_model_config(data_file_session(tmp_path / "pts.npy"))
    assert app_train_config(DiffusionModel(pcfg), pts, None, None).objective == "K"
    for name in ("digits", "swissroll"):
        p = PRESETS[name]
        assert app_train_config(DiffusionModel(p.model), load_data(preset=name), p, None).objective == p.train.objective
