"""Helpers for the explorer tests: tiny sessions that train and sample in milliseconds."""
from __future__ import annotations

import numpy as np
import torch


def spiral_points(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    th = rng.uniform(1.5 * np.pi, 4.5 * np.pi, n)
    return np.stack([th * np.cos(th), th * np.sin(th)], axis=1).astype(np.float32) / 10


def tiny_points_config(T: int = 8, learn_beta: bool = True):
    from models.config import ModelConfig

    return ModelConfig(kernel="gaussian", T=T, example_shape=(2,), arch="mlp", hidden=16, layers=2, readout="bump",
                       J=4, schedule="reference", beta_1=1e-3, learn_beta=learn_beta)


def tiny_session(T: int = 8, learn_beta: bool = True):
    from explorer.drawn import DrawnDataSet
    from explorer.session import Session
    from models.model import DiffusionModel

    torch.manual_seed(0)
    return Session(model=DiffusionModel(tiny_points_config(T, learn_beta)), data=DrawnDataSet(spiral_points()))


def apply_tiny(qtbot, window, T: int = 8, learn_beta: bool = True):
    """Apply a tiny 2-D session and wait until both trajectories are cached and it was evaluated."""
    window.apply_session(tiny_session(T, learn_beta))
    s = window.state
    qtbot.waitUntil(lambda: {"reverse", "forward"} <= set(s.trajectories) and not s.incomplete("reverse")
                    and not s.incomplete("forward") and s.evaluation is not None, timeout=60_000)
    return s


IMAGE_NORM = {"mean": 0.45, "std": 0.25, "levels": 256}  # a data normalisation for the tiny image models


def tiny_image_model(T: int = 6, side: int = 8):
    """A tiny seeded convolutional Gaussian model of grey ``side``×``side`` images, in eval mode."""
    from models.config import ModelConfig
    from models.model import DiffusionModel

    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(1, side, side), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3)
    return DiffusionModel(cfg).eval()
