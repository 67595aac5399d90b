"""Model files: a :class:`DiffusionModel` plus its data normalisation, history and metadata, as HDF5
(via :mod:`models.checkpoint`; never pickled). Loading rebuilds the model from its config and checks
every tensor's shape, raising :class:`CheckpointError` that names the file and the problem."""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import ModelConfig
from .model import DiffusionModel

SOFTWARE = "dpm-explorer 0.1.0"


@dataclass
class LoadedModel:
    """A model read from a file, with what was stored beside it."""

    model: DiffusionModel
    norm: dict
    history: dict[str, np.ndarray]
    meta: dict
    path: Path | None = None
    optimizer: dict | None = None
    heldout: np.ndarray | None = None

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def save_model(path, model: DiffusionModel, *, norm: dict, history: dict | None = None, meta: dict | None = None,
               optimizer: dict | None = None, heldout: np.ndarray | None = None) -> None:
    """Write ``model`` atomically to ``path`` (HDF5)."""
    meta = dict(meta or {})
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("software", SOFTWARE)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    betas = model.schedule().detach().cpu().numpy().astype(np.float64)
    hist = {k: np.asarray(v) for k, v in (history or {}).items()}
    save_checkpoint(path, Checkpoint(config=model.config.to_dict(), state=state, betas=betas, norm=dict(norm),
                                     history=hist, meta=meta, optimizer=optimizer, heldout=heldout))


def load_model(path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file; every problem is a :class:`CheckpointError` naming ``path``."""
    ck = load_checkpoint(path, map_location="cpu")
    try:
        config = ModelConfig.from_dict(dict(ck.config))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid model config: {e}") from None
    model = DiffusionModel(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ck.state))
    extra = sorted(set(ck.state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: the stored tensors do not match the model config "
                              f"(missing: {', '.join(missing[:5]) or 'none'}; unexpected: {', '.join(extra[:5]) or 'none'})")
    for k, v in expected.items():
        got = ck.state[k]
        if tuple(got.shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: tensor {k!r} has shape {tuple(got.shape)}, expected {tuple(v.shape)}")
    model.load_state_dict({k: ck.state[k].to(expected[k].dtype) for k in expected})
    model.to(device)
    model.eval()
    return LoadedModel(model=model, norm=dict(ck.norm), history={k: np.asarray(v) for k, v in ck.history.items()},
                       meta=dict(ck.meta), path=Path(path), optimizer=ck.optimizer, heldout=ck.heldout)


__all__ = ["LoadedModel", "save_model", "load_model", "CheckpointError"]
