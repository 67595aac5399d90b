"""Small image models, images and masks shared by the image and conditioning tests."""
from __future__ import annotations

import numpy as np
import torch

from models.config import ModelConfig
from models.files import LoadedModel
from models.model import DiffusionModel

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}


def conv_model(T=10, C=1, hw=8, seed=0) -> DiffusionModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(C, hw, hw), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3, time_features=0)
    return DiffusionModel(cfg).eval()


def loaded(model, norm=NORM) -> LoadedModel:
    return LoadedModel(model=model, norm=dict(norm), history={}, meta={})


def image(h=8, w=8, seed=0, c=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape).astype(np.uint8)


def hole(h=8, w=8) -> np.ndarray:
    known = np.ones((h, w), bool)
    known[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = False
    return known
