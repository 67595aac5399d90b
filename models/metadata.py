"""The metadata record stored beside a model (the ``meta`` of :func:`models.files.save_model`): where its
training data came from, how long it trained, with which options, and the exact K measured at the end
(models/README.md, **File formats**).

One writer (:meth:`ModelMeta.to_dict`) and one reader (:meth:`ModelMeta.from_dict`), used by ``dpm`` and
by the app. Keys are fixed; the reader also accepts the keys older files used (``iteration`` for
``iterations``; no ``data_source``).

    meta = model_meta(data, preset="swissroll", iterations=2000, device="cpu")
    save_model(path, model, norm=data.norm.to_dict(), meta=meta.to_dict(), ...)
    ModelMeta.from_dict(load_model(path).meta).data_source   # "preset"
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from .config import UNITS  # the unit K is reported in, per kind of data

__all__ = ["ModelMeta", "RecordedK", "model_meta", "data_kind", "unit_of", "loaded_norm", "UNITS", "DATA_SOURCES"]

#: where a model's training data came from: a bundled preset, a file or folder, points drawn in the app
DATA_SOURCES = ("preset", "file", "drawn")
DataSource = Literal["preset", "file", "drawn"]


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(v) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None


@dataclass(frozen=True)
class RecordedK:
    """The exact held-out K of a finished run (all T − 1 KL terms; Eq. 14 with the per-example edge
    terms of App. B), in ``unit``, over ``n_eval`` examples, with its standard error."""

    K_bits: float
    K_stderr_bits: float | None
    K_minus_Lnull_bits: float
    n_eval: int
    unit: str
    L_null_bits: float | None = None
    beta_1: float | None = None
    cap_bits: float | None = None

    @staticmethod
    def from_evaluation(ev) -> "RecordedK":
        """From a :class:`models.evaluation.Evaluation`."""
        return RecordedK(K_bits=ev.K_bits, K_stderr_bits=_float(ev.K_stderr_bits),
                         K_minus_Lnull_bits=ev.K_minus_Lnull_bits, n_eval=ev.n, unit=ev.unit,
                         L_null_bits=ev.L_null_bits, beta_1=ev.beta_1, cap_bits=ev.cap_bits)


@dataclass(frozen=True)
class ModelMeta:
    """Provenance of a model file. Every field may be None where it is not known (old files).

    data: the data set's name; data_source: "preset" | "file" | "drawn"; preset: the preset name when
    the data is a preset's; data_path: the data file or folder (absolute) for own data; data_kind:
    "points" | "binary" | "images"; unit: the unit of K; iterations: optimiser updates so far;
    train_seconds: training time so far; train_config: the :class:`models.training.TrainConfig` as a
    dict; budget: {"steps": N} or {"seconds": S} of the last run; device: where it trained;
    world_size: processes that trained it (1 on one machine; N under ``torchrun``); effective_batch:
    examples per update over all processes (world_size × batch_size); complete: True once a run finished and
    recorded its exact K; recorded: that K. ``extra`` keeps keys this record does not know (written
    back unchanged).
    """

    data: str | None = None
    data_source: DataSource | None = None
    preset: str | None = None
    data_path: str | None = None
    data_kind: str | None = None
    data_description: str | None = None
    unit: str | None = None
    example_shape: tuple[int, ...] | None = None
    patch_size: int | None = None
    cifar_dir: str | None = None
    display_range: tuple[float, float] | None = None
    drawn_points: list | None = None
    iterations: int | None = None
    train_seconds: float | None = None
    train_config: dict | None = None
    budget: dict | None = None
    device: str | None = None
    world_size: int = 1
    effective_batch: int | None = None
    train_command: str | None = None
    resumed_from: str | None = None
    complete: bool | None = None
    skipped_updates: int | None = None
    message: str | None = None
    autosaves: int | None = None
    K_heldout_live_bits: float | None = None
    schedule_source: str | None = None
    recorded: RecordedK | None = None
    created: str | None = None
    software: str | None = None
    extra: dict = field(default_factory=dict)

    def replace(self, **changes) -> "ModelMeta":
        return replace(self, **changes)

    # ---- the one writer ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The flat, JSON-safe ``meta`` dict for :func:`models.files.save_model` (None values left out;
        the recorded K as the keys K_bits, K_stderr_bits, K_minus_Lnull_bits, L_null_bits, beta_1,
        cap_bits, n_eval, unit)."""
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name in ("extra", "recorded"):
                continue
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        if self.recorded is not None:
            r = self.recorded
            out.update(K_bits=r.K_bits, K_stderr_bits=r.K_stderr_bits, K_minus_Lnull_bits=r.K_minus_Lnull_bits,
                       L_null_bits=r.L_null_bits, beta_1=r.beta_1, cap_bits=r.cap_bits, n_eval=r.n_eval,
                       unit=r.unit)
            out = {k: v for k, v in out.items() if v is not None}
        return out

    # ---- the one reader ------------------------------------------------------------------------------
    @staticmethod
    def from_dict(meta: dict | None) -> "ModelMeta":
        """Read a stored ``meta`` dict (this record's keys, or an older file's). Values of the wrong
        type are dropped (read as unknown), never raised."""
        m = dict(meta or {})
        known = {f.name for f in fields(ModelMeta)} | {"iteration", "K_bits", "K_stderr_bits", "K_minus_Lnull_bits",
                                                          "L_null_bits", "beta_1", "cap_bits", "n_eval"}
        extra = {k: v for k, v in m.items() if k not in known}
        preset = _str(m.get("preset"))
        data = _str(m.get("data"))
        source = m.get("data_source") if m.get("data_source") in DATA_SOURCES else None
        if source is None:  # older files: infer
            if isinstance(m.get("drawn_points"), list):
                source = "drawn"
            elif _str(m.get("data_path")):
                source = "file"
            elif preset is not None or data is not None:
                source = "preset"
        if source == "preset" and preset is None:
            preset = data
        iterations = _int(m.get("iterations"))
        if iterations is None:
            iterations = _int(m.get("iteration"))
        shape = m.get("example_shape")
        shape = tuple(int(v) for v in shape) if isinstance(shape, list) and all(_int(v) for v in shape) else None
        disp = m.get("display_range")
        disp = (float(disp[0]), float(disp[1])) if (isinstance(disp, list) and len(disp) == 2
                                                   and all(_float(v) is not None for v in disp)) else None
        complete = m.get("complete") if isinstance(m.get("complete"), bool) else None
        recorded = None
        K, Kl, n = _float(m.get("K_bits")), _float(m.get("K_minus_Lnull_bits")), _int(m.get("n_eval"))
        if complete is not False and K is not None and Kl is not None and n is not None:
            recorded = RecordedK(K_bits=K, K_stderr_bits=_float(m.get("K_stderr_bits")), K_minus_Lnull_bits=Kl,
                                 n_eval=n, unit=_str(m.get("unit")) or "", L_null_bits=_float(m.get("L_null_bits")),
                                 beta_1=_float(m.get("beta_1")), cap_bits=_float(m.get("cap_bits")))
        elif K is not None:  # a K without its companions (an older app save: the last live estimate)
            extra["K_bits"] = K
            if Kl is not None:
                extra["K_minus_Lnull_bits"] = Kl
        return ModelMeta(
            data=data, data_source=source, preset=preset, data_path=_str(m.get("data_path")),
            data_kind=m.get("data_kind") if m.get("data_kind") in UNITS else None,
            data_description=_str(m.get("data_description")), unit=_str(m.get("unit")), example_shape=shape,
            patch_size=_int(m.get("patch_size")), cifar_dir=_str(m.get("cifar_dir")), display_range=disp,
            drawn_points=m.get("drawn_points") if isinstance(m.get("drawn_points"), list) else None,
            iterations=iterations, train_seconds=_float(m.get("train_seconds")),
            train_config=m.get("train_config") if isinstance(m.get("train_config"), dict) else None,
            budget=m.get("budget") if isinstance(m.get("budget"), dict) else None, device=_str(m.get("device")),
            world_size=_int(m.get("world_size")) or 1, effective_batch=_int(m.get("effective_batch")),
            train_command=_str(m.get("train_command")),
            resumed_from=_str(m.get("resumed_from")), complete=complete,
            skipped_updates=_int(m.get("skipped_updates")), message=_str(m.get("message")),
            autosaves=_int(m.get("autosaves")), K_heldout_live_bits=_float(m.get("K_heldout_live_bits")),
            schedule_source=_str(m.get("schedule_source")), recorded=recorded, created=_str(m.get("created")),
            software=_str(m.get("software")), extra=extra)


def model_meta(data, *, preset: str | None = None, data_path: str | os.PathLike | None = None,
               drawn_points: list | None = None, **fields_) -> ModelMeta:
    """The provenance record for a model trained on ``data`` (a :class:`models.data.DataSet`, or None):
    ``preset`` when the data is a preset's; else ``data_path`` (the file or folder it was read from;
    made absolute); else ``drawn_points`` (points drawn in the app). Other :class:`ModelMeta` fields as
    keywords (``iterations=``, ``device=``, ``train_config=`` …)."""
    if preset is not None:
        source: str | None = "preset"
    elif drawn_points is not None:
        source = "drawn"
    elif data_path is not None:
        source = "file"
    else:
        source = None
    display = None
    if data is not None and getattr(data, "kind", None) == "images":
        rng = tuple(float(v) for v in getattr(data, "_display_range", (0.0, 1.0)))
        display = rng if rng != (0.0, 1.0) else None
    base = dict(
        data=getattr(data, "name", None) if data is not None else preset, data_source=source, preset=preset,
        data_path=str(Path(data_path).expanduser().resolve()) if data_path is not None else None,
        data_kind=getattr(data, "kind", None), data_description=getattr(data, "source", None),
        unit=getattr(data, "unit", None),
        example_shape=tuple(int(v) for v in data.example_shape) if data is not None else None,
        display_range=display, drawn_points=drawn_points)
    base.update(fields_)
    return ModelMeta(**base)


# ---- reading a loaded model's meta ---------------------------------------------------------------------


def data_kind(loaded) -> str:
    """"points" | "binary" | "images" for a :class:`models.files.LoadedModel`: the meta's, else from its
    config (binomial → binary; [C, H, W] → images; else points)."""
    kind = loaded.meta.get("data_kind")
    if kind in UNITS:
        return kind
    c = loaded.config
    if c.kernel == "binomial":
        return "binary"
    return "images" if len(c.example_shape) == 3 else "points"


def unit_of(loaded) -> str:
    """The unit K of a loaded model is reported in."""
    u = loaded.meta.get("unit")
    return u if isinstance(u, str) and u in UNITS.values() else UNITS[data_kind(loaded)]


def loaded_norm(loaded):
    """The loaded model's data normalisation as a :class:`models.data.Normalization`; a malformed one
    is a CheckpointError naming the file."""
    from .files import CheckpointError
    from .data import Normalization

    try:
        return Normalization.from_dict(dict(loaded.norm))
    except (ValueError, TypeError) as e:
        raise CheckpointError(os.fspath(loaded.path or "model"), f"the stored normalisation is malformed ({e})") from None
