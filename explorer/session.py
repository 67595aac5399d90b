"""Building sessions: a model and a data set from a preset, a model file or the user's data, and the
training options the app uses for live previews. Plain functions, no Qt, so the main window can run
them in a worker thread and tests can call them directly."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.config import ModelConfig
from models.io import LoadedModel, load_model
from models.presets import PRESETS, Preset
from models.model import DiffusionModel
from models.training import TrainConfig

try:  # models/data.py is written by another engineer; the app still starts without it
    from models.data import DataError, load_file, load_preset
except ImportError:  # pragma: no cover - only while models.data is missing
    DataError = ValueError  # type: ignore[assignment,misc]
    load_file = load_preset = None  # type: ignore[assignment]

# what the app's live view draws and evaluates, per kind of data
TRAJECTORY_N = {"points": 2000, "binary": 64, "images": 64}
LIVE_SAMPLES = {"points": 1000, "binary": 32, "images": 16}
SAMPLE_EVERY = {"points": 1, "binary": 4, "images": 20}
LIVE_EVAL = {"points": (500, 64), "binary": (256, 64), "images": (32, 8)}  # (n_eval, eval_steps)


@dataclass
class Session:
    """Everything :meth:`AppState.set_session` needs."""

    model: DiffusionModel
    data: object | None
    preset: Preset | None = None
    path: Path | None = None
    train_history: dict | None = None
    optimizer_state: dict | None = None
    norm: dict | None = None
    note: str = ""
    recorded: dict | None = None  # the exact held-out K a finished ``dpm train`` run stored in the file


def _require_data_module() -> None:
    if load_preset is None:
        raise RuntimeError("models.data is not available yet; data sets cannot be loaded")


def preset_session(name: str, **data_kw) -> Session:
    """An untrained model for preset ``name`` with its data set (spec §11)."""
    _require_data_module()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    data = load_preset(name, **data_kw)
    return Session(model=DiffusionModel(preset.model).eval(), data=data, preset=preset,
                   note=f"untrained {name} model")


def guess_preset(loaded: LoadedModel) -> str | None:
    """Which preset a model file belongs to: meta "preset" (or "data") if it names one, else a preset
    whose model config matches exactly."""
    for key in ("preset", "data", "dataset"):
        v = loaded.meta.get(key)
        if isinstance(v, str) and v in PRESETS:
            return v
    for name, p in PRESETS.items():
        if p.model == loaded.config:
            return name
    if any(k in loaded.meta for k in ("data", "dataset", "data_path", "drawn_points")):
        return None  # the file names its own data
    c = loaded.config  # no provenance at all: a generated preset with the same kernel and shape
    for name in ("swissroll", "heartbeat"):
        p = PRESETS[name]
        if (p.model.kernel, tuple(p.model.example_shape)) == (c.kernel, tuple(c.example_shape)):
            return name
    return None


def model_file_session(path, device: str = "cpu") -> Session:
    """A model file (via :func:`models.io.load_model`) and, when it names a bundled preset or its data
    file still exists, its data set. Raises CheckpointError naming the file."""
    loaded = load_model(path, device=device)
    name = guess_preset(loaded)
    preset = PRESETS.get(name) if name else None
    data = None
    note = ""
    drawn = loaded.meta.get("drawn_points")
    if isinstance(drawn, list) and name is None:
        from .drawn import DrawnDataSet

        try:
            data = DrawnDataSet(np.asarray(drawn, dtype=np.float32))
        except (ValueError, TypeError) as e:
            note = f"the drawn points stored with it are unusable ({e})"
    if data is None and load_preset is not None:
        try:
            if name is not None and name != "cifar10":
                data = load_preset(name)
            elif isinstance(loaded.meta.get("data_path"), str) and Path(loaded.meta["data_path"]).exists():
                data = load_file(loaded.meta["data_path"])
        except (DataError, OSError, ValueError) as e:
            note = f"its data could not be loaded ({e}); open data to train or see the forward process"
    if data is not None and tuple(data.example_shape) != tuple(loaded.config.example_shape):
        note = (f"its data set {data.name} has shape {tuple(data.example_shape)}, the model "
                f"{tuple(loaded.config.example_shape)}; open matching data to train")
        data = None
    if data is None and not note:
        note = "no data set recorded with this model; open data to train or see the forward process"
    return Session(model=loaded.model, data=data, preset=preset, path=Path(path),
                   train_history=loaded.history, optimizer_state=loaded.optimizer, norm=loaded.norm, note=note,
                   recorded=recorded_K(loaded.meta))


def recorded_K(meta: dict) -> dict | None:
    """The exact held-out K that ``dpm train`` measured at the end of a finished run (all T − 1 KL terms,
    ``n_eval`` examples, with its standard error), or None when the file holds no such figure."""
    try:
        rec = {k: float(meta[k]) for k in ("K_bits", "K_stderr_bits", "K_minus_Lnull_bits", "n_eval")}
    except (KeyError, TypeError, ValueError):
        return None
    if meta.get("complete") is not True or not all(math.isfinite(v) for v in rec.values()):
        return None
    rec["n_eval"] = int(rec["n_eval"])
    return rec


def data_file_session(path) -> object:
    """The user's data file or folder as a data set (models.data.load_file)."""
    _require_data_module()
    return load_file(path)


def default_model_config(data) -> ModelConfig:
    """A sensible model for a data set that has no preset (own files, drawn points)."""
    shape = tuple(int(s) for s in data.example_shape)
    if data.kind == "binary":
        p_bar = 0.5
        try:
            p_bar = float(data.heldout(min(256, data.n_heldout)).mean())
        except Exception:  # noqa: BLE001 - keep the default
            pass
        p_bar = min(max(p_bar, 0.05), 0.95)
        return ModelConfig(kernel="binomial", T=200, example_shape=shape, arch="mlp", hidden=64, layers=3,
                           activation="sigmoid", readout="bump", J=10, time_features=10, p_bar=p_bar,
                           schedule="binomial", param="posterior", skip=4.0)
    if data.kind == "images":
        H, W = shape[1], shape[2]
        n_scales = max(1, min(4, int(math.log2(max(min(H, W), 1))) - 1))
        return ModelConfig(kernel="gaussian", T=1000, example_shape=shape, arch="conv", hidden=32, conv_layers=3,
                           n_scales=n_scales, dense_layers=2, dense_hidden=64, activation="tanh",
                           conv_activation="softplus", J=10, schedule="reference", param="paper", time_features=10)
    return dataclasses.replace(PRESETS["swissroll"].model, example_shape=shape)


def model_matches_data(model: DiffusionModel, data) -> bool:
    c = model.config
    if tuple(c.example_shape) != tuple(data.example_shape):
        return False
    return (c.kernel == "binomial") == (data.kind == "binary")


def app_train_config(model: DiffusionModel, data, preset: Preset | None, budget_s: float | None,
                     seed: int = 0) -> TrainConfig:
    """The preset's training options (or defaults), sized for a live view: a held-out set no larger
    than the data's, a cheap live K, and fixed-seed samples at a cadence the CPU can afford.
    ``budget_s``: seconds of training (None = until stopped)."""
    kind = data.kind
    base = preset.train if preset is not None else TrainConfig(batch_size=256 if kind != "images" else 64,
                                                               lr=2e-3)
    n_eval, eval_steps = LIVE_EVAL[kind]
    n_eval = max(1, min(base.n_eval, n_eval, int(getattr(data, "n_heldout", n_eval))))
    return dataclasses.replace(
        base, steps=None, seconds=budget_s, n_eval=n_eval, eval_steps=min(base.eval_steps, eval_steps),
        n_samples=LIVE_SAMPLES[kind], sample_every=SAMPLE_EVERY[kind], seed=seed)


def reverse_sample_count(kind: str, requested: int | None = None) -> int:
    return int(requested) if requested else TRAJECTORY_N[kind]


def forward_x0(data, n: int, seed: int = 0):
    """Data for the forward trajectory: the fixed held-out set when it is large enough, else fixed-seed
    training draws. float32 [n, *S] or None without data."""
    if data is None:
        return None
    import torch

    n_held = int(getattr(data, "n_heldout", 0))
    if n_held >= n:
        return data.heldout(n)
    return data.sample_train(n, torch.Generator().manual_seed(seed + 99))


def describe_data(data) -> str:
    if data is None:
        return "no data"
    shape = "×".join(str(s) for s in data.example_shape)
    n = "unlimited" if getattr(data, "unlimited", False) else f"{getattr(data, 'n_train', '?')} train"
    return f"{data.name}: {data.kind} [{shape}], {n} / {getattr(data, 'n_heldout', '?')} held out"


def describe_model(model: DiffusionModel) -> str:
    c = model.config
    shape = "×".join(str(s) for s in c.example_shape)
    return (f"{c.kernel}, {c.arch}, T = {c.T}, [{shape}], {model.count_parameters():,} parameters, "
            f"schedule {c.schedule}{' (learned β)' if c.learn_beta else ''}")


__all__ = ["Session", "preset_session", "model_file_session", "data_file_session", "default_model_config",
           "model_matches_data", "app_train_config", "forward_x0", "describe_data", "describe_model", "DataError"]
