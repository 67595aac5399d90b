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
from models.files import LoadedModel, load_model
from models.metadata import ModelMeta
from models.paths import bundled_model
from models.presets import PRESETS, Preset, default_config, default_train_config, fit_objective
from models.model import DiffusionModel
from models.training import TrainConfig

try:  # the app still starts if models.data cannot be imported
    from models.data import DataError, load_file, load_preset
except ImportError:  # pragma: no cover - only while models.data is missing
    DataError = ValueError  # type: ignore[assignment,misc]
    load_file = load_preset = None  # type: ignore[assignment]

# what the app's live view draws and evaluates, per kind of data
TRAJECTORY_N = {"points": 2000, "binary": 64, "images": 16}
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
    source: str = "new"  # one of explorer.state.SOURCES
    history_unbiased: bool = False  # the stored history's held-out K is an unbiased estimate
    file_meta: dict | None = None  # the model file's meta (kept whole when saved again unchanged)


def _require_data_module() -> None:
    if load_preset is None:
        raise RuntimeError("models.data is not available yet; data sets cannot be loaded")


def preset_session(name: str, **data_kw) -> Session:
    """An untrained model for preset ``name`` with its data set (models/README.md, Presets and data sets)."""
    _require_data_module()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    data = load_preset(name, **data_kw)
    return Session(model=DiffusionModel(preset.model).eval(), data=data, preset=preset,
                   note=f"untrained {name} model", source="preset")


def bundled_session(name: str, device: str = "cpu", **data_kw) -> Session:
    """Preset ``name``'s bundled trained model (``resources/models/<name>.h5``) with its data set; the
    untrained preset (with a note saying so) when no trained model is bundled for it."""
    path = bundled_model(name)
    if path is None:
        sess = preset_session(name, **data_kw)
        sess.note = f"no trained {name} model is bundled: an untrained one (press Train)"
        return sess
    sess = model_file_session(path, device=device)
    sess.source = "bundled"
    return sess


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
    """A model file (via :func:`models.files.load_model`) and, when it names a bundled preset or its data
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
    unbiased = bool(loaded.meta.get("K_heldout_unbiased") is True)
    return Session(model=loaded.model, data=data, preset=preset, path=Path(path),
                   train_history=loaded.history, optimizer_state=loaded.optimizer, norm=loaded.norm, note=note,
                   recorded=recorded_K(loaded.meta), source="file", history_unbiased=unbiased,
                   file_meta=dict(loaded.meta))


def recorded_K(meta: dict) -> dict | None:
    """The exact held-out K that a finished run measured at its end (all T − 1 KL terms, ``n_eval``
    examples, with its standard error; :class:`models.metadata.RecordedK`), or None when the file holds
    no such figure."""
    if meta.get("complete") is not True:
        return None
    rec = ModelMeta.from_dict(meta).recorded
    if rec is None or rec.K_stderr_bits is None:
        return None
    out = {"K_bits": rec.K_bits, "K_stderr_bits": rec.K_stderr_bits, "K_minus_Lnull_bits": rec.K_minus_Lnull_bits,
           "n_eval": int(rec.n_eval)}
    if not all(math.isfinite(v) for v in out.values()):
        return None
    return out


def data_file_session(path) -> object:
    """The user's data file or folder as a data set (models.data.load_file)."""
    _require_data_module()
    return load_file(path)


def default_model_config(data) -> ModelConfig:
    """A sensible model for a data set that has no preset (own files, drawn points): the same as
    ``dpm train --data`` builds (:func:`models.presets.default_config`)."""
    return default_config(data)


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
    if preset is not None:
        base = preset.train
    else:  # own data: the template preset's objective (models.presets.default_train_config)
        base = TrainConfig(batch_size=256 if kind != "images" else 64, lr=2e-3,
                           objective=default_train_config(kind).objective)
    base = fit_objective(base, model.config)  # a model changed by the user may not fit the objective
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


__all__ = ["Session", "preset_session", "bundled_session", "model_file_session", "data_file_session", "default_model_config",
           "model_matches_data", "app_train_config", "forward_x0", "describe_data", "describe_model", "DataError"]
