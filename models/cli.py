"""The ``dpm`` command line: train, evaluate, sample, inspect, inpaint and denoise, headless.

    dpm train swissroll --seconds 60 --out swissroll.h5
    dpm train --data points.csv --steps 5000 --out mine.h5
    dpm train --resume swissroll.h5 --steps 2000 --out swissroll.h5
    dpm eval swissroll.h5 --ais 16 --json
    dpm sample swissroll.h5 -n 1000 --out samples.npy
    dpm info swissroll.h5
    dpm inpaint bark.h5 photo.png --mask hole.png --out filled.png
    dpm denoise bark.h5 photo.png --sigma 0.5 --out clean.png

argparse lives here and nowhere else in ``models``; nothing here imports Qt. :func:`main` takes an
argument list and returns the exit status, so tests run it in-process. Every failure (unknown preset,
unreadable or malformed model file, bad data, wrong shapes, no CUDA) is one line
``dpm: error: <file>: <problem>`` on stderr and exit status 2, never a traceback (set ``DPM_DEBUG=1``
to see one for an unexpected error).

Units: K is in bits per the data's unit (``bits/point``, ``bits/seq``, ``bits/pixel`` with colour
channels summed), computed exactly over all T steps on held-out data (spec §2.3); the Parzen estimate
(spec §1.4) is in nats per example.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

import numpy as np
import torch

from .bound import LN2, BoundSummary, ais_log_likelihood_nats, evaluate_bound, unit_divisor
from .checkpoint import CheckpointError, atomic_write, save_trajectory
from .config import ModelConfig
from .data import DataError, DataSet, Normalization, load_file, load_preset
from .io import LoadedModel, load_model, save_model
from .presets import PRESETS, Preset
from .model import DiffusionModel
from .sampling import reverse_steps
from .training import TrainConfig, Trainer, TrainProgress, resolve_device

__all__ = ["main", "CLIError", "evaluate_model_file", "parzen_log_likelihood_nats", "EvalData"]

UNITS = {"points": "bits/point", "binary": "bits/seq", "images": "bits/pixel"}
#: Own data: the preset whose network and training options each kind of data starts from.
KIND_TEMPLATE = {"points": "swissroll", "binary": "heartbeat", "images": "bark"}
#: Own data: default number of diffusion steps per kind (spec §3: images 1000; binary: the heartbeat's
#: 2000 is more than own data needs).
KIND_T = {"points": 40, "binary": 1000, "images": 1000}
PARZEN_SIGMAS = np.logspace(-1, 0, 10)  # spec §1.4


class CLIError(Exception):
    """A failure reported as one line ``dpm: error: <message>``."""


def fail(message: str) -> NoReturn:
    raise CLIError(message)


# ---------------------------------------------------------------------------------------------------
# argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (through :class:`CLIError`) instead of exiting."""

    def error(self, message: str):  # noqa: D401
        sub = self.prog.removeprefix("dpm").strip()
        raise CLIError(f"{sub}: {message}" if sub else message)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dpm", description="Diffusion probabilistic models (Sohl-Dickstein et al. 2015), headless.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def device_arg(q):
        q.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N] (default auto)")
        threads_arg(q)

    def threads_arg(q):
        q.add_argument("--threads", type=_positive_int, metavar="N",
                       help="CPU threads for torch (default: torch's own choice; 1 is fastest on a busy machine)")

    # ---- train -----------------------------------------------------------------------------------
    t = sub.add_parser("train", help="train a model on a preset or your own data",
                       description="Train on a preset (spec §11) or your own data; evaluate K exactly on the "
                                   "held-out set at the end and save the model (HDF5).")
    t.add_argument("preset", nargs="?", metavar="PRESET", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--data", metavar="FILE", help="own data: .npy, .csv, .h5 (dataset x), an image, or a folder of images")
    t.add_argument("--out", required=True, metavar="MODEL.h5", help="model file to write (also autosaved)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int, metavar="N", help="train for N iterations")
    budget.add_argument("--seconds", type=_positive_float, metavar="S",
                        help="train for S seconds (default: the preset's time budget)")
    device_arg(t)
    t.add_argument("--T", type=int, metavar="N", help="number of diffusion steps")
    t.add_argument("--kernel", choices=("gaussian", "binomial"), help="forward process (binomial needs {0,1} data)")
    t.add_argument("--arch", choices=("mlp", "rbf", "conv"), help="reverse network")
    t.add_argument("--param", choices=("paper", "code", "residual", "posterior"),
                   help="reverse parameterisation: paper (§4.3), code (the reference code's), residual "
                        "(binomial), posterior (q(x^{t−1} | x^t, x̂^0) at the net's estimate of x^0)")
    t.add_argument("--beta1", type=float, metavar="X", help="fixed first step β_1 (caps K − L_null, spec §2.3)")
    lb = t.add_mutually_exclusive_group()
    lb.add_argument("--learn-beta", dest="learn_beta", action="store_true", default=None,
                    help="learn β_2..β_T by gradient ascent on K (Gaussian only)")
    lb.add_argument("--fixed-beta", dest="learn_beta", action="store_false", help="keep the β schedule fixed")
    t.add_argument("--batch-size", type=_positive_int, metavar="N")
    t.add_argument("--lr", type=_positive_float, metavar="X", help="learning rate")
    t.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    t.add_argument("--resume", metavar="MODEL.h5",
                   help="continue training a model file: weights, optimiser state, iteration count and history")
    t.add_argument("--autosave-seconds", type=_nonneg_float, default=60.0, metavar="S",
                   help="save OUT atomically at least every S seconds while training (0 = at every report; default 60)")
    t.add_argument("--report-every", type=_positive_int, metavar="N", help="iterations between progress reports")
    t.add_argument("--n-eval", type=_positive_int, metavar="N",
                   help="held-out examples for the final exact K (default: the whole held-out set)")
    t.add_argument("--cifar-dir", metavar="DIR", help="folder with the CIFAR-10 binary batches (preset cifar10)")
    t.add_argument("--patch-size", type=_positive_int, default=32, metavar="N", help="patch side for one-image data (default 32)")
    t.add_argument("--quiet", action="store_true", help="no progress output")

    # ---- eval ------------------------------------------------------------------------------------
    e = sub.add_parser("eval", help="exact K on held-out data, optionally AIS and Parzen",
                       description="Exact K (all T steps) on held-out data: the preset named in the file, the "
                                   "held-out split stored in the file, or --data (normalised as the model's data).")
    e.add_argument("model", metavar="MODEL.h5")
    e.add_argument("--data", metavar="FILE|PRESET", help="evaluate on this data instead")
    e.add_argument("--n", type=_positive_int, metavar="N", help="use the first N held-out examples (default all)")
    e.add_argument("--ais", type=_positive_int, metavar="M", help="add the AIS/Jarzynski estimate with M trajectories (spec §7)")
    e.add_argument("--parzen", action="store_true", help="add the Parzen-window estimate (spec §1.4)")
    e.add_argument("--parzen-samples", type=_positive_int, default=10_000, metavar="N",
                   help="model samples for --parzen (default 10000, as in the protocol)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=_positive_int, metavar="N", help="examples per network batch")
    e.add_argument("--cifar-dir", metavar="DIR", help="folder with the CIFAR-10 binary batches")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    device_arg(e)

    # ---- sample ----------------------------------------------------------------------------------
    s = sub.add_parser("sample", help="draw samples (.npy, .h5 trajectory, .png)",
                       description="Run the reverse chain. .npy: samples in data units (or --normalized); "
                                   ".h5: every state x^t (trajectory file); .png: an image grid, a bit raster "
                                   "or a point scatter.")
    s.add_argument("model", metavar="MODEL.h5")
    s.add_argument("-n", type=_positive_int, default=16, metavar="N", help="number of samples (default 16)")
    s.add_argument("--out", required=True, metavar="FILE", help=".npy, .h5 or .png")
    s.add_argument("--trajectory", action="store_true",
                   help=".npy: save every state [S, N, ...] (t ascending); .png: a strip over time")
    s.add_argument("--stride", type=_positive_int, default=1, metavar="K",
                   help="trajectories: keep every K-th step (plus t = 0 and t = T)")
    s.add_argument("--normalized", action="store_true", help=".npy: the model's normalised units, not data units")
    s.add_argument("--size", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="image size to sample at (fully convolutional models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=_positive_int, metavar="N", help="samples per batch")
    device_arg(s)

    # ---- info ------------------------------------------------------------------------------------
    i = sub.add_parser("info", help="show a model file's config, schedule, recorded K and history")
    i.add_argument("model", metavar="MODEL.h5")
    i.add_argument("--json", action="store_true")

    # ---- inpaint / denoise -----------------------------------------------------------------------
    ip = sub.add_parser("inpaint", help="fill the masked part of an image (spec §6)",
                        description="Fill the black part of MASK in IMAGE with the model (white = known, black = "
                                    "to fill; RePaint's convention) and write a PNG (--samples side by side).")
    ip.add_argument("model", metavar="MODEL.h5")
    ip.add_argument("image", metavar="IMAGE")
    ip.add_argument("--mask", required=True, metavar="MASK.png", help="white = keep (known), black = fill in")
    ip.add_argument("--out", required=True, metavar="OUT.png")
    ip.add_argument("--trajectory", metavar="FILE.h5", help="also save every state x^t")
    ip.add_argument("--method", choices=("clamp", "annealed", "repaint"), default="clamp",
                    help="clamp: the paper's/code's (known pixels fixed); annealed: a Gaussian r around the known "
                         "pixels; repaint: RePaint resampling (default clamp)")
    ip.add_argument("--seed", type=int, default=0)
    ip.add_argument("--samples", type=_positive_int, default=1, metavar="N")
    ip.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ip.add_argument("--device", default=None, help="auto, cpu or cuda")
    threads_arg(ip)

    dn = sub.add_parser("denoise", help="denoise an image (spec §6, the code's SNR-1 experiment)",
                        description="Multiply each reverse step by N(x; y, σ²) (spec §6). Unless --assume-noisy, "
                                    "noise of σ is first added to IMAGE (seeded).")
    dn.add_argument("model", metavar="MODEL.h5")
    dn.add_argument("image", metavar="IMAGE")
    dn.add_argument("--sigma", required=True, type=_positive_float, metavar="S",
                    help="noise σ, in the model's normalised units (the code's SNR-1 experiment: 1) or --sigma-units pixels")
    dn.add_argument("--sigma-units", choices=("normalised", "pixels"), default="normalised")
    dn.add_argument("--out", required=True, metavar="OUT.png")
    dn.add_argument("--assume-noisy", action="store_true", help="the image is already noisy (else noise is added first)")
    dn.add_argument("--noisy-out", metavar="NOISY.png", help="also write the noisy input")
    dn.add_argument("--trajectory", metavar="FILE.h5", help="also save every state x^t")
    dn.add_argument("--seed", type=int, default=0)
    dn.add_argument("--samples", type=_positive_int, default=1, metavar="N")
    dn.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    dn.add_argument("--device", default=None, help="auto, cpu or cuda")
    threads_arg(dn)
    return p


# ---------------------------------------------------------------------------------------------------
# small helpers


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as e:
        fail(f"--device {name}: {e}")


def _generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` (torch needs the generator on the tensors' device)."""
    return torch.Generator(device=device).manual_seed(int(seed))


def _finite(v):
    """JSON-safe: NaN/Inf → None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _jsonable(v):
    """A JSON-safe copy: numpy scalars → Python, NaN/Inf → None, tuples → lists, recursively."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return _finite(v)
    return str(v)


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _check_out_path(path: str, suffixes: tuple[str, ...], what: str) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() not in suffixes:
        fail(f"{p}: {what} must end in {' or '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        fail(f"{p}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        fail(f"{p}: the folder {parent} is not writable")
    if p.is_dir():
        fail(f"{p}: is a folder, not a file")
    return p


def _load(path: str, device: torch.device | str = "cpu") -> LoadedModel:
    """load_model; every problem is a CheckpointError naming the file."""
    try:
        return load_model(path, device=device)
    except CheckpointError:
        raise
    except (ValueError, RuntimeError, TypeError, KeyError) as e:
        raise CheckpointError(os.fspath(path), f"cannot rebuild the model ({e})") from None


def _model_norm(lm: LoadedModel) -> Normalization:
    try:
        return Normalization.from_dict(dict(lm.norm))
    except (ValueError, TypeError) as e:
        raise CheckpointError(os.fspath(lm.path), f"the stored normalisation is malformed ({e})") from None


def _data_kind(lm: LoadedModel) -> str:
    kind = lm.meta.get("data_kind")
    if kind in UNITS:
        return kind
    c = lm.config
    if c.kernel == "binomial":
        return "binary"
    return "images" if len(c.example_shape) == 3 else "points"


def _unit_of(lm: LoadedModel) -> str:
    u = lm.meta.get("unit")
    return u if isinstance(u, str) and u else UNITS[_data_kind(lm)]


def _to_display(z: np.ndarray, norm: Normalization, kind: str, display_range=None) -> np.ndarray:
    """Normalised z → data units; images → [0, 1] (as DataSet.display)."""
    v = np.asarray(norm.inverse(np.asarray(z, dtype=np.float32)), dtype=np.float32)
    if kind == "images":
        if display_range is not None:
            lo, hi = float(display_range[0]), float(display_range[1])
            if (lo, hi) != (0.0, 1.0) and hi > lo:
                v = (v - lo) / (hi - lo)
        v = np.clip(v, 0.0, 1.0)
    return np.ascontiguousarray(v, dtype=np.float32)


class _Status:
    """Progress on stderr: a redrawn line on a terminal, plain lines otherwise, nothing when quiet."""

    def __init__(self, quiet: bool, stream=None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._open = False

    def line(self, text: str) -> None:
        if self.quiet:
            return
        self.end()
        print(text, file=self.stream, flush=True)

    def bar(self, text: str) -> None:
        """A transient line (redrawn on a tty; skipped otherwise)."""
        if self.quiet or not self.tty:
            return
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 0
        width = width if width >= 20 else 100
        self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._open = True

    def end(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _progress_bar(fraction: float | None, width: int = 24) -> str:
    if fraction is None:
        return ""
    f = min(1.0, max(0.0, fraction))
    n = int(round(f * width))
    return "[" + "#" * n + "." * (width - n) + f"] {100 * f:3.0f}%  "


# ---------------------------------------------------------------------------------------------------
# data for training and evaluation


def _load_data(*, preset: str | None = None, path: str | None = None, cifar_dir=None, image_size: int = 32,
               patch_size: int = 32) -> DataSet:
    if preset is not None:
        if preset not in PRESETS:
            fail(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} (or pass --data FILE)")
        kw: dict[str, Any] = {}
        if preset == "cifar10":
            kw["cifar_dir"] = cifar_dir
        if preset in ("bark", "deadleaves"):
            kw["image_size"] = image_size
        return load_preset(preset, **kw)
    return load_file(path, patch_size=patch_size)


def _mean_activity(data: DataSet) -> float:
    """Mean fraction of ones of binary data (training batch and held-out set), kept in [0.01, 0.99]."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([data.sample_train(4096, g).reshape(-1), data.heldout().reshape(-1)])
    return float(min(0.99, max(0.01, float(x.float().mean()))))


def _default_config(data: DataSet) -> ModelConfig:
    """A model for own data, by kind: vectors → the Swiss-roll MLP; bits → the heartbeat's binomial MLP
    with p̄ = the data's mean activity; images → the bark preset's fully convolutional net."""
    base = PRESETS[KIND_TEMPLATE[data.kind]].model
    shape = tuple(data.example_shape)
    T = KIND_T[data.kind]
    if data.kind == "points":
        return base.replace(example_shape=shape, T=T)
    if data.kind == "binary":
        D = shape[0]
        hidden = max(50, min(256, 2 * D))
        small = T * hidden * D <= 4_000_000  # one readout per step, as in the paper, when it stays small
        return base.replace(example_shape=shape, T=T, hidden=hidden, p_bar=_mean_activity(data),
                            readout="per_step" if small else "bump", time_features=0 if small else 10)
    H, W = shape[1], shape[2]
    n_scales = max(1, min(4, int(math.log2(max(2, min(H, W)))) - 1))
    return base.replace(example_shape=shape, T=T, n_scales=n_scales)


def _model_config(args, data: DataSet, preset: Preset | None, what: str) -> ModelConfig:
    cfg = preset.model if preset is not None else _default_config(data)
    changes: dict[str, Any] = {"example_shape": tuple(data.example_shape)}
    kernel = args.kernel or cfg.kernel
    if args.kernel and args.kernel != cfg.kernel:
        if args.kernel == "binomial":
            changes.update(kernel="binomial", schedule="binomial", param="posterior", learn_beta=False, beta_1=None,
                           p_bar=_mean_activity(data) if data.kind == "binary" else 0.5)
        else:
            changes.update(kernel="gaussian", schedule="reference", param="paper")
    if kernel == "binomial" and data.kind != "binary":
        fail(f"{what}: the binomial kernel needs {{0, 1}} data, but this data holds {data.kind}")
    arch = args.arch or cfg.arch
    if data.kind == "images" and arch in ("mlp", "rbf"):
        fail(f"{what}: --arch {arch} works on vectors, but this data holds images {tuple(data.example_shape)}; "
             "use --arch conv")
    if data.kind != "images" and arch == "conv":
        fail(f"{what}: --arch conv works on images, but this data holds {data.kind} of shape {tuple(data.example_shape)}")
    if args.arch:
        changes["arch"] = args.arch
    if args.T is not None:
        if args.T < 2:
            fail(f"--T must be an integer >= 2, got {args.T}")
        changes["T"] = args.T
    if args.param is not None:
        changes["param"] = args.param
    if args.beta1 is not None:
        changes["beta_1"] = args.beta1
    if args.learn_beta is not None:
        changes["learn_beta"] = args.learn_beta
    try:
        return cfg.replace(**changes)
    except ValueError as e:
        fail(f"{what}: {e}")


def _train_config_fields(d: dict) -> dict:
    names = {f.name for f in fields(TrainConfig)}
    return {k: v for k, v in d.items() if k in names}


# ---------------------------------------------------------------------------------------------------
# dpm train


@dataclass
class _TrainSetup:
    data: DataSet
    data_meta: dict
    model: DiffusionModel
    config: TrainConfig
    budget: dict  # {"steps": N} or {"seconds": S}: this run's own budget
    history: dict | None = None
    optimizer: dict | None = None
    iteration: int = 0
    resumed_from: str | None = None


def _setup_training(args) -> _TrainSetup:
    if args.preset is not None and args.data is not None:
        fail(f"give a PRESET or --data FILE, not both (got {args.preset!r} and --data {args.data})")
    preset_name, data_path = args.preset, args.data
    if preset_name is not None and preset_name not in PRESETS and Path(preset_name).expanduser().exists():
        preset_name, data_path = None, preset_name  # `dpm train points.csv` means --data points.csv
    lm: LoadedModel | None = None
    if args.resume:
        lm = _load(args.resume)
        for flag, val in (("--T", args.T), ("--kernel", args.kernel), ("--arch", args.arch), ("--beta1", args.beta1),
                          ("--learn-beta/--fixed-beta", args.learn_beta)):
            if val is not None:
                fail(f"{args.resume}: {flag} cannot change a model being resumed (its config is in the file)")
        meta = lm.meta
        if preset_name is None and data_path is None:
            if meta.get("data_source") == "file":
                data_path = meta.get("data_path")
                if not data_path or not Path(data_path).exists():
                    fail(f"{args.resume}: its training data {data_path!r} is gone; pass --data FILE")
            elif meta.get("data") in PRESETS:
                preset_name = meta["data"]
            else:
                fail(f"{args.resume}: the file does not name its training data; pass PRESET or --data FILE")
    if preset_name is None and data_path is None:
        fail("train: give a PRESET (" + ", ".join(PRESETS) + ") or --data FILE")

    shape = tuple(lm.config.example_shape) if lm is not None else None
    image_size = shape[-1] if shape is not None and len(shape) == 3 else 32
    cifar_dir = args.cifar_dir or (lm.meta.get("cifar_dir") if lm is not None else None)
    data = _load_data(preset=preset_name, path=data_path, cifar_dir=cifar_dir, image_size=image_size,
                      patch_size=args.patch_size)
    preset = PRESETS[preset_name] if preset_name is not None else None
    what = f"preset {preset_name!r}" if preset is not None else str(Path(data_path).expanduser())
    data_meta: dict[str, Any] = {
        "data": data.name, "data_source": "preset" if preset is not None else "file", "data_kind": data.kind,
        "data_description": data.source, "unit": data.unit, "example_shape": list(data.example_shape),
    }
    if preset is None:
        data_meta["data_path"] = str(Path(data_path).expanduser().resolve())
        data_meta["patch_size"] = args.patch_size
    if preset_name == "cifar10" and cifar_dir:
        data_meta["cifar_dir"] = str(Path(cifar_dir).expanduser().resolve())
    display_range = getattr(data, "_display_range", (0.0, 1.0))
    if data.kind == "images" and tuple(display_range) != (0.0, 1.0):
        data_meta["display_range"] = [float(display_range[0]), float(display_range[1])]

    if lm is not None:  # ---- resume
        model = lm.model
        c = model.config
        if data.kind == "images":
            ok = len(data.example_shape) == 3 and data.example_shape[0] == c.example_shape[0]
        else:
            ok = tuple(data.example_shape) == tuple(c.example_shape)
        if not ok:
            fail(f"{what}: examples have shape {tuple(data.example_shape)}, but the model in {args.resume} "
                 f"expects {tuple(c.example_shape)}")
        if c.kernel == "binomial" and data.kind != "binary":
            fail(f"{what}: the model in {args.resume} is binomial, but this data holds {data.kind}")
        base = _train_config_fields(dict(lm.meta.get("train_config") or {}))
        try:
            tc = TrainConfig(**base) if base else (preset.train if preset is not None else
                                                   PRESETS[KIND_TEMPLATE[data.kind]].train)
        except (TypeError, ValueError) as e:
            fail(f"{args.resume}: the recorded training options are malformed ({e})")
        hist = lm.history
        iteration = int(lm.meta.get("iterations") or (int(hist["iteration"][-1]) if len(hist.get("iteration", [])) else 0))
        seconds_before = float(hist["seconds"][-1]) if len(hist.get("seconds", [])) else 0.0
        prev_budget = lm.meta.get("budget") if isinstance(lm.meta.get("budget"), dict) else {}
        if args.steps is not None:
            budget = {"steps": args.steps}
        elif args.seconds is not None:
            budget = {"seconds": args.seconds}
        elif prev_budget.get("steps") or prev_budget.get("seconds"):
            budget = {k: prev_budget[k] for k in ("steps", "seconds") if prev_budget.get(k)}
        else:
            budget = {"seconds": (preset.train if preset else PRESETS[KIND_TEMPLATE[data.kind]].train).seconds}
        steps = iteration + int(budget["steps"]) if "steps" in budget else None
        seconds = seconds_before + float(budget["seconds"]) if "seconds" in budget else None
        changes = dict(steps=steps, seconds=seconds, n_samples=0)
        for key, val in (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                         ("report_every", args.report_every)):
            if val is not None:
                changes[key] = val
        changes["n_eval"] = min(tc.n_eval, data.n_heldout)
        tc = TrainConfig(**{**asdict(tc), **changes})
        opt = lm.optimizer
        if opt is not None and args.lr is not None:  # the stored state would otherwise restore the old lr
            for g in opt.get("param_groups", []):
                if isinstance(g, dict):
                    g["base_lr"] = args.lr
                    g["lr"] = args.lr
        return _TrainSetup(data=data, data_meta=data_meta, model=model, config=tc, budget=budget,
                           history=hist, optimizer=opt, iteration=iteration, resumed_from=str(args.resume))

    # ---- fresh model
    mc = _model_config(args, data, preset, what)
    try:
        model = DiffusionModel(mc)
    except (ValueError, RuntimeError) as e:
        fail(f"{what}: cannot build the model ({e})")
    base_tc = preset.train if preset is not None else PRESETS[KIND_TEMPLATE[data.kind]].train
    if args.steps is not None:
        budget = {"steps": args.steps}
    elif args.seconds is not None:
        budget = {"seconds": args.seconds}
    elif base_tc.steps:
        budget = {"steps": base_tc.steps}
    else:
        budget = {"seconds": base_tc.seconds}
    changes = dict(steps=budget.get("steps"), seconds=budget.get("seconds"), n_samples=0,
                   n_eval=min(base_tc.n_eval, data.n_heldout))
    for key, val in (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                     ("report_every", args.report_every)):
        if val is not None:
            changes[key] = val
    try:
        tc = TrainConfig(**{**asdict(base_tc), **changes})
    except ValueError as e:
        fail(str(e))
    return _TrainSetup(data=data, data_meta=data_meta, model=model, config=tc, budget=budget)


@contextlib.contextmanager
def _graceful_interrupt(on_first: Callable[[], None]):
    """First Ctrl-C: ``on_first()`` (stop after this iteration, then evaluate and save); second: abort."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = [0]

    def handler(signum, frame):
        count[0] += 1
        if count[0] == 1:
            on_first()
        else:
            raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _fraction(p: TrainProgress, tc: TrainConfig) -> float | None:
    fr = []
    if tc.steps:
        fr.append(p.iteration / tc.steps)
    if tc.seconds:
        fr.append(p.seconds / tc.seconds)
    return max(fr) if fr else None


def cmd_train(args, argv: Sequence[str]) -> int:
    out = _check_out_path(args.out, (".h5", ".hdf5"), "the model file (--out)")
    device = _device(args.device)
    st = _setup_training(args)
    status = _Status(args.quiet)
    data, tc = st.data, st.config
    try:
        trainer = Trainer(st.model, data, tc, device=device, history=st.history, optimizer_state=st.optimizer,
                          iteration=st.iteration)
    except (ValueError, KeyError, RuntimeError) as e:
        where = st.resumed_from or data.name
        fail(f"{where}: cannot set up training ({e})")
    command = shlex.join(["dpm", *argv])
    c = trainer.model.config
    meta_base = dict(st.data_meta)
    meta_base.update(train_command=command, train_config=asdict(tc), budget=st.budget, device=str(device),
                     preset=meta_base["data"] if meta_base["data_source"] == "preset" else None)
    if st.resumed_from:
        meta_base["resumed_from"] = st.resumed_from
    heldout_store = data.heldout().numpy() if meta_base["data_source"] == "file" else None

    def save(model: DiffusionModel, extra: dict) -> None:
        meta = {**meta_base, **extra}
        save_model(out, model, norm=data.norm.to_dict(), history=trainer.history_arrays(), meta=meta,
                   optimizer=trainer.optimizer.state_dict(), heldout=heldout_store)

    budget_txt = (f"{st.budget['steps']} iterations" if "steps" in st.budget else f"{st.budget['seconds']:g} s")
    status.line(f"training {data.name} ({data.kind} {tuple(data.example_shape)}, {data.unit}): {c.kernel} T={c.T}, "
                f"{c.arch} net, {trainer.model.count_parameters():,} parameters, on {device}, for {budget_txt}"
                + (f", from iteration {st.iteration} of {st.resumed_from}" if st.resumed_from else ""))
    last_save = time.monotonic()
    n_autosaves = 0
    final: TrainProgress | None = None

    def on_interrupt():
        trainer.stop()
        status.line("stopping after this iteration, then evaluating and saving (Ctrl-C again to abort)")

    try:
        with _graceful_interrupt(on_interrupt):
            its = 0.0
            for p in trainer.run():
                final = p
                frac = _fraction(p, tc)
                its = p.its_per_s if p.its_per_s > 0 else its  # the final record may cover no iterations
                text = (f"{_progress_bar(frac)}it {p.iteration}  {its:7.1f} it/s  "
                        f"K held-out {_fmt(p.K_heldout_bits)} {data.unit}  {p.seconds:6.1f} s")
                if status.tty:
                    status.bar(text)
                else:
                    status.line(text)
                if not p.done and time.monotonic() - last_save >= args.autosave_seconds:
                    save(trainer.eval_model, dict(complete=False, iterations=p.iteration, train_seconds=p.seconds,
                                                  K_heldout_live_bits=p.K_heldout_bits))
                    last_save = time.monotonic()
                    n_autosaves += 1
            status.end()
    except KeyboardInterrupt:
        status.end()
        raise CLIError(f"{out}: training aborted" + ("; the last autosave is in the file" if out.exists() else ""))
    assert final is not None
    if final.message.startswith("training diverged"):
        print(f"dpm: warning: {final.message}", file=sys.stderr)

    model = trainer.model
    model.eval()
    n_eval = min(args.n_eval or data.n_heldout, data.n_heldout)
    x_held = data.heldout(n_eval).to(device)
    status.line(f"evaluating K exactly on {n_eval} held-out examples ({c.T - 1} KL terms each)")
    extra = dict(complete=True, iterations=final.iteration, train_seconds=final.seconds,
                 skipped_updates=final.skipped_updates, message=final.message, autosaves=n_autosaves)
    try:
        summary = evaluate_bound(model, x_held, data.unit, generator=_generator(device, 0),
                                 batch_size=_eval_batch(data.kind, model),
                                 progress=lambda d, n: status.bar(f"evaluating K: {d}/{n}"))
        status.end()
    except KeyboardInterrupt:
        status.end()
        save(model, extra)
        raise CLIError(f"{out}: evaluation aborted; the trained model was saved without its K")
    extra.update(K_bits=summary.K_bits, K_stderr_bits=summary.K_stderr_bits,
                 K_minus_Lnull_bits=summary.K_minus_Lnull_bits, L_null_bits=summary.L_null_bits,
                 cap_bits=summary.cap_bits, beta_1=summary.beta_1, n_eval=summary.n_eval, unit=summary.unit)
    save(model, extra)
    _print_summary(summary, PRESETS.get(meta_base["data"]) if meta_base["data_source"] == "preset" else None)
    print(f"saved {out}  ({final.iteration} iterations, {final.seconds:.1f} s on {device}; {final.message})")
    return 0


def _eval_batch(kind: str, model: DiffusionModel) -> int:
    return 256 if kind == "images" else 4096


def _print_summary(s: BoundSummary, preset: Preset | None) -> None:
    paper_K = f"   (paper: {preset.paper_K:g})" if preset is not None and preset.paper_K is not None else ""
    paper_L = (f"   (paper: {preset.paper_K_minus_Lnull:g})"
               if preset is not None and preset.paper_K_minus_Lnull is not None else "")
    print(f"K          = {s.K_bits:.4f} ± {_fmt(s.K_stderr_bits, 4)} {s.unit}   (exact over all steps, "
          f"{s.n_eval} held-out examples){paper_K}")
    cap = f"   (β_1 cap {s.cap_bits:.3f})" if s.cap_bits is not None else ""
    print(f"K − L_null = {s.K_minus_Lnull_bits:.4f} {s.unit}{paper_L}{cap}")
    if preset is not None and preset.ceiling is not None:
        print(f"ceiling    = {preset.ceiling:.4f} {s.unit}   (K ≤ ceiling, spec §12)")
    print(f"β_1        = {s.beta_1:.6g}")


# ---------------------------------------------------------------------------------------------------
# dpm eval


@dataclass
class EvalData:
    """Held-out data for evaluating a model: ``x`` [N, *S] in the model's normalised units."""

    x: torch.Tensor
    unit: str
    kind: str
    description: str
    dataset: DataSet | None = None  # when the data came from a data set (validation data for Parzen)


def _convert_norm(z: torch.Tensor, src: Normalization, dst: Normalization) -> torch.Tensor:
    if src == dst:
        return z
    return dst.forward(src.inverse(z)).to(torch.float32)


def _check_shape(lm: LoadedModel, shape: tuple[int, ...], what: str) -> None:
    c = lm.config
    want = tuple(c.example_shape)
    if c.arch == "conv":
        if len(shape) != 3 or shape[0] != want[0]:
            fail(f"{what}: examples have shape {shape}, but {lm.path} holds an image model for {want[0]} "
                 f"channel(s) ([C, H, W] = {want})")
    elif tuple(shape) != want:
        fail(f"{what}: examples have shape {shape}, but the model in {lm.path} expects {want}")


def resolve_eval_data(lm: LoadedModel, data: str | None = None, n: int | None = None, cifar_dir=None) -> EvalData:
    """The held-out set to evaluate ``lm`` on: ``data`` (a preset name or a file), else the preset named
    in the file's meta "data", else the held-out split stored in the file."""
    norm = _model_norm(lm)
    meta = lm.meta
    shape = tuple(lm.config.example_shape)
    ds: DataSet | None = None
    what = ""
    if data is not None:
        if data in PRESETS and not Path(data).exists():
            ds = _load_data(preset=data, cifar_dir=cifar_dir, image_size=shape[-1] if len(shape) == 3 else 32)
            what = f"preset {data!r}"
        else:
            ds = _load_data(path=data, patch_size=shape[-1] if len(shape) == 3 else int(meta.get("patch_size") or 32))
            what = str(Path(data).expanduser())
    elif meta.get("data") in PRESETS and meta.get("data_source", "preset") == "preset":
        name = meta["data"]
        ds = _load_data(preset=name, cifar_dir=cifar_dir or meta.get("cifar_dir"),
                        image_size=shape[-1] if len(shape) == 3 else 32)
        what = f"preset {name!r}"
    elif lm.heldout is not None:
        x = torch.from_numpy(np.ascontiguousarray(lm.heldout, dtype=np.float32))
        if tuple(x.shape[1:]) != shape and lm.config.arch != "conv":
            raise CheckpointError(os.fspath(lm.path), f"the stored held-out set has examples of shape "
                                                      f"{tuple(x.shape[1:])}, the model expects {shape}")
        if n is not None:
            x = x[:n]
        kind = _data_kind(lm)
        return EvalData(x=x, unit=_unit_of(lm), kind=kind,
                        description=f"held-out split stored in {lm.path} ({meta.get('data', 'own data')})")
    else:
        fail(f"{lm.path}: the file names no preset and stores no held-out data; pass --data FILE|PRESET")
    assert ds is not None
    _check_shape(lm, tuple(ds.example_shape), what)
    if lm.config.kernel == "binomial" and ds.kind != "binary":
        fail(f"{what}: the model in {lm.path} is binomial, but this data holds {ds.kind}")
    n_use = ds.n_heldout if n is None else min(n, ds.n_heldout)
    x = _convert_norm(ds.heldout(n_use), ds.norm, norm)
    return EvalData(x=x, unit=ds.unit, kind=ds.kind, description=f"{what}: held-out set ({ds.source})", dataset=ds)


@torch.no_grad()
def parzen_log_likelihood_nats(x: torch.Tensor, samples: torch.Tensor, sigma: float | Sequence[float],
                               chunk: int = 256) -> torch.Tensor:
    """Isotropic Gaussian Parzen window (Goodfellow et al.'s parzen_ll, spec §1.4): log p(x) in nats for
    each row of ``x`` [N, D] under the mixture of N(s_i, σ²I) over ``samples`` [S, D]. ``sigma`` a float
    → [N]; a list of σ → [len(σ), N]."""
    sigmas = [float(sigma)] if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    s = samples.reshape(samples.shape[0], -1).to(x.device, torch.float64)
    S, D = s.shape
    s2 = (s * s).sum(1)
    out = torch.empty(len(sigmas), x.shape[0], dtype=torch.float64, device=x.device)
    for i in range(0, x.shape[0], chunk):
        xb = x[i:i + chunk]
        d2 = ((xb * xb).sum(1, keepdim=True) + s2[None] - 2 * xb @ s.T).clamp_min(0)  # [b, S]
        for j, sg in enumerate(sigmas):
            out[j, i:i + chunk] = (torch.logsumexp(-d2 / (2 * sg * sg), dim=1) - math.log(S)
                                   - 0.5 * D * math.log(2 * math.pi * sg * sg))
    return out[0] if isinstance(sigma, (int, float)) else out


def _draw_samples(model: DiffusionModel, n: int, device: torch.device, seed: int, batch: int,
                  shape: tuple[int, ...] | None = None, progress=None) -> torch.Tensor:
    g = _generator(device, seed)
    out = []
    done = 0
    while done < n:
        b = min(batch, n - done)
        x = None
        for st in reverse_steps(model, b, generator=g, example_shape=shape):
            x = st.x
        out.append(x.float().cpu())
        done += b
        if progress is not None:
            progress(done, n)
    return torch.cat(out)


def evaluate_model_file(path: str, *, data: str | None = None, n: int | None = None, ais: int | None = None,
                        parzen: bool = False, parzen_samples: int = 10_000, device: str = "auto", seed: int = 0,
                        batch_size: int | None = None, cifar_dir=None,
                        status: _Status | None = None) -> dict:
    """Everything ``dpm eval`` reports, as a dict (JSON-safe): exact K (mean, standard error), K − L_null,
    β_1 and its cap, optionally AIS (bits, same unit) and Parzen (nats per example)."""
    status = status or _Status(True)
    dev = _device(device)
    lm = _load(path, dev)
    model = lm.model
    ed = resolve_eval_data(lm, data, n, cifar_dir)
    x = ed.x.to(dev)
    if x.shape[0] < 1:
        fail(f"{path}: no held-out examples to evaluate on")
    bs = batch_size or _eval_batch(ed.kind, model)
    t0 = time.perf_counter()
    status.line(f"evaluating K exactly on {x.shape[0]} examples ({model.T - 1} KL terms each): {ed.description}")
    summary = evaluate_bound(model, x, ed.unit, generator=_generator(dev, seed), batch_size=bs,
                             progress=lambda d, m: status.bar(f"K: {d}/{m}"))
    status.end()
    res: dict[str, Any] = dict(model=str(path), data=ed.description, kind=ed.kind, unit=summary.unit,
                               n_eval=summary.n_eval, K_bits=summary.K_bits, K_stderr_bits=summary.K_stderr_bits,
                               K_minus_Lnull_bits=summary.K_minus_Lnull_bits, L_null_bits=summary.L_null_bits,
                               beta_1=summary.beta_1, cap_bits=summary.cap_bits, T=model.T,
                               kernel=model.config.kernel, device=str(dev))
    div = unit_divisor(tuple(x.shape[1:]))
    if ais:
        status.line(f"AIS with {ais} trajectories per example")
        g = _generator(dev, seed + 1)
        per = max(1, bs // ais)
        vals = []
        for i in range(0, x.shape[0], per):
            vals.append(ais_log_likelihood_nats(model, x[i:i + per], n_traj=ais, generator=g).cpu())
            status.bar(f"AIS: {min(i + per, x.shape[0])}/{x.shape[0]}")
        status.end()
        a = torch.cat(vals) / LN2 / div
        res.update(ais_bits=float(a.mean()),
                   ais_stderr_bits=float(a.std() / math.sqrt(a.numel())) if a.numel() > 1 else None,
                   ais_minus_Lnull_bits=float(a.mean()) - summary.L_null_bits, ais_n_traj=ais)
    if parzen:
        res.update(_parzen(lm, ed, x, parzen_samples, dev, seed, bs, status))
    res["seconds"] = time.perf_counter() - t0
    return _jsonable(res)


def _parzen(lm: LoadedModel, ed: EvalData, x: torch.Tensor, n_samples: int, dev: torch.device, seed: int,
            batch: int, status: _Status) -> dict:
    """Spec §1.4: σ from logspace(−1, 0, 10) chosen on validation data, then the mean log-likelihood
    (nats) of the test set with standard error. Images in pixels [0, 1]; other data in normalised units."""
    norm = _model_norm(lm)
    kind = ed.kind
    disp = lm.meta.get("display_range")

    def space(z: torch.Tensor) -> torch.Tensor:
        if kind == "images":
            return torch.from_numpy(_to_display(z.cpu().numpy(), norm, kind, disp))
        return z.cpu().float()

    test = x
    if ed.dataset is not None:  # validation: training examples (the protocol uses MNIST train 50000–60000)
        n_val = min(1000, max(1, ed.dataset.n_train or 1000))
        ds = ed.dataset
        val = _convert_norm(ds.sample_train(n_val, torch.Generator().manual_seed(seed + 2)), ds.norm, norm)
        val_desc = f"{n_val} training examples"
    else:  # only a stored held-out split: its first part validates, the rest is the test set
        if x.shape[0] < 2:
            fail(f"{lm.path}: --parzen needs at least 2 held-out examples")
        n_val = min(1000, x.shape[0] // 2)
        val, test = x[:n_val], x[n_val:]
        val_desc = f"the first {n_val} held-out examples (the rest are the test set)"
    status.line(f"Parzen: drawing {n_samples} samples")
    shape = tuple(x.shape[1:]) if lm.config.arch == "conv" else None
    samples = _draw_samples(lm.model, n_samples, dev, seed + 3, batch, shape,
                            progress=lambda d, m: status.bar(f"Parzen samples: {d}/{m}"))
    status.end()
    samp = space(samples).to(dev)
    val_ll = parzen_log_likelihood_nats(space(val).to(dev), samp, list(PARZEN_SIGMAS)).mean(dim=1).cpu()
    best = int(torch.argmax(val_ll))
    sigma = float(PARZEN_SIGMAS[best])
    ll = parzen_log_likelihood_nats(space(test).to(dev), samp, sigma).cpu()
    n = ll.numel()
    se = float(ll.std() / math.sqrt(n)) if n > 1 else None
    return dict(parzen_nats=float(ll.mean()), parzen_stderr_nats=se, parzen_bits=float(ll.mean()) / LN2,
                parzen_stderr_bits=None if se is None else se / LN2, parzen_sigma=sigma, parzen_samples=n_samples,
                parzen_n_test=n, parzen_validation=val_desc,
                parzen_space="pixels in [0, 1]" if kind == "images" else "normalised units")


def cmd_eval(args) -> int:
    status = _Status(args.quiet or not sys.stderr.isatty())
    res = evaluate_model_file(args.model, data=args.data, n=args.n, ais=args.ais, parzen=args.parzen,
                              parzen_samples=args.parzen_samples, device=args.device, seed=args.seed,
                              batch_size=args.batch_size, cifar_dir=args.cifar_dir, status=status)
    if args.json:
        print(json.dumps(_jsonable(res), sort_keys=True, allow_nan=False))
        return 0
    u = res["unit"]
    print(f"model      {res['model']}")
    print(f"data       {res['data']}")
    print(f"K          = {res['K_bits']:.4f} ± {_fmt(res['K_stderr_bits'], 4)} {u}   (exact, n = {res['n_eval']})")
    cap = f"   (β_1 cap {res['cap_bits']:.3f})" if res.get("cap_bits") is not None else ""
    print(f"K − L_null = {res['K_minus_Lnull_bits']:.4f} {u}{cap}")
    print(f"β_1        = {res['beta_1']:.6g}")
    if "ais_bits" in res:
        print(f"AIS        = {res['ais_bits']:.4f} ± {_fmt(res['ais_stderr_bits'], 4)} {u}   "
              f"({res['ais_n_traj']} trajectories; K ≤ AIS in expectation)")
    if "parzen_nats" in res:
        print(f"Parzen     = {res['parzen_nats']:.2f} ± {_fmt(res['parzen_stderr_nats'], 2)} nats "
              f"({res['parzen_bits']:.2f} bits), σ = {res['parzen_sigma']:.4g}, {res['parzen_samples']} samples, "
              f"{res['parzen_space']}")
    return 0


# ---------------------------------------------------------------------------------------------------
# dpm sample


def _grid(imgs: np.ndarray, ncol: int | None = None, pad: int = 1, min_side: int = 256) -> np.ndarray:
    """[N, C, H, W] in [0, 1] → one uint8 image [H', W'] or [H', W', 3] on a light grey background."""
    N, C, H, W = imgs.shape
    ncol = ncol or int(math.ceil(math.sqrt(N)))
    nrow = int(math.ceil(N / ncol))
    canvas = np.full((max(C, 1), nrow * (H + pad) + pad, ncol * (W + pad) + pad), 0.85, dtype=np.float32)
    for i in range(N):
        r, c = divmod(i, ncol)
        canvas[:, pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = imgs[i]
    scale = max(1, min_side // max(canvas.shape[1:]))
    if scale > 1:
        canvas = canvas.repeat(scale, axis=1).repeat(scale, axis=2)
    out = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    if C == 1:
        return out[0]
    if C == 3:
        return np.transpose(out, (1, 2, 0))
    return np.transpose(out[:3] if C > 3 else np.concatenate([out, out[-1:]], 0), (1, 2, 0))


def _scatter(points: np.ndarray, size: int = 512) -> np.ndarray:
    """[N, D] points (first two coordinates) → uint8 [size, size] scatter, white background."""
    p = points[:, :2] if points.shape[1] >= 2 else np.concatenate([points, np.zeros_like(points)], 1)
    lo, hi = np.percentile(p, 0.5, axis=0), np.percentile(p, 99.5, axis=0)
    span = float(max(hi - lo)) or 1.0
    centre = (lo + hi) / 2
    lo, hi = centre - 0.55 * span, centre + 0.55 * span
    img = np.full((size, size), 255, dtype=np.uint8)
    ij = np.round((p - lo) / (hi - lo) * (size - 1)).astype(np.int64)
    ok = np.all((ij >= 1) & (ij < size - 1), axis=1)
    x, y = ij[ok, 0], size - 1 - ij[ok, 1]
    for dx in (0, 1):
        for dy in (0, 1):
            img[np.clip(y - dy, 0, size - 1), np.clip(x + dx, 0, size - 1)] = 30
    return img


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def cmd_sample(args) -> int:
    out = _check_out_path(args.out, (".npy", ".h5", ".hdf5", ".png"), "the sample file (--out)")
    dev = _device(args.device)
    lm = _load(args.model, dev)
    model = lm.model
    norm = _model_norm(lm)
    kind = _data_kind(lm)
    shape = tuple(model.config.example_shape)
    if args.size:
        if model.config.arch != "conv":
            fail(f"{args.model}: --size needs a fully convolutional image model (this one is {model.config.arch})")
        shape = (shape[0], args.size[0], args.size[1])
    ext = out.suffix.lower()
    want_traj = ext in (".h5", ".hdf5") or args.trajectory
    g = _generator(dev, args.seed)
    batch = args.batch_size or (64 if kind == "images" else 4096)
    xs, trajs, ts = [], [], None
    done = 0
    while done < args.n:
        b = min(batch, args.n - done)
        keep: dict[int, torch.Tensor] = {}
        x = None
        for st in reverse_steps(model, b, generator=g, example_shape=shape):
            x = st.x
            if want_traj and (st.t % args.stride == 0 or st.t in (0, model.T)):
                keep[st.t] = st.x.detach().float().cpu()
        xs.append(x.detach().float().cpu())
        if want_traj:
            ts = sorted(keep)
            trajs.append(torch.stack([keep[t] for t in ts]))
        done += b
    z = torch.cat(xs).numpy()  # [N, *S], normalised units
    traj = torch.cat(trajs, dim=1).numpy() if want_traj else None  # [S, N, *S], t ascending
    disp = lm.meta.get("display_range")
    if ext == ".npy":
        arr = traj if args.trajectory else z
        if not args.normalized:
            arr = norm.inverse(arr).astype(np.float32)
            if kind == "binary":
                arr = np.round(arr).astype(np.float32)
        with atomic_write(out) as tmp:
            np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))
    elif ext in (".h5", ".hdf5"):
        save_trajectory(out, traj, t=np.asarray(ts, dtype=np.int64),
                        meta=dict(kind="samples", direction="reverse", model=str(Path(args.model).resolve()),
                                  seed=args.seed, n=args.n, T=model.T, stride=args.stride, units="normalized",
                                  norm=norm.to_dict(), data_kind=kind, example_shape=list(shape),
                                  data=lm.meta.get("data")))
    else:  # .png
        if kind == "images":
            if args.trajectory:
                n_rows = min(args.n, 8)
                cols = np.unique(np.linspace(0, len(ts) - 1, min(len(ts), 11)).round().astype(int))[::-1]  # T → 0
                sel = traj[cols][:, :n_rows]  # [c, r, C, H, W]
                imgs = np.transpose(sel, (1, 0, 2, 3, 4)).reshape(-1, *sel.shape[2:])
                imgs = _to_display(imgs, norm, kind, disp)
                arr = _grid(imgs, ncol=len(cols))
            else:
                arr = _grid(_to_display(z, norm, kind, disp))
        elif kind == "binary":
            bits = np.round(np.clip(z.reshape(z.shape[0], -1), 0, 1))
            cell = max(2, min(16, 512 // max(bits.shape[1], 1)))
            arr = (255 - bits * 225).astype(np.uint8).repeat(cell, 0).repeat(cell, 1)
        else:
            arr = _scatter(norm.inverse(z.reshape(z.shape[0], -1)))
        _write_png(out, arr)
    what = "trajectory" if (ext in (".h5", ".hdf5") or (args.trajectory and ext == ".npy")) else "samples"
    print(f"wrote {args.n} {what} to {out}")
    return 0


# ---------------------------------------------------------------------------------------------------
# dpm info


@torch.no_grad()
def model_info(path: str) -> dict:
    lm = _load(path)
    m, c, meta = lm.model, lm.config, lm.meta
    s = m.schedule_tensors()
    beta = s.beta.detach().cpu().numpy()
    hist = lm.history
    n_hist = int(len(next(iter(hist.values())))) if hist else 0
    info = dict(
        file=str(path), config=c.to_dict(), parameters=m.count_parameters(),
        T=c.T, beta_1=float(beta[0]), beta_T=float(beta[-1]), alpha_bar_T=float(s.alpha_bar[-1]),
        beta_learned=bool(c.learn_beta), history_records=n_hist,
        last_iteration=int(hist["iteration"][-1]) if n_hist and "iteration" in hist else None,
        has_optimizer=lm.optimizer is not None, heldout_stored=None if lm.heldout is None else list(lm.heldout.shape),
        meta={k: v for k, v in meta.items() if k not in ("train_config",)}, train_config=meta.get("train_config"),
        norm=lm.norm,
    )
    return info


def cmd_info(args) -> int:
    info = model_info(args.model)
    if args.json:
        print(json.dumps(_jsonable(info), sort_keys=True, allow_nan=False))
        return 0
    c, meta = info["config"], info["meta"]
    shape = tuple(c["example_shape"])
    print(f"file         {info['file']}")
    print(f"created      {meta.get('created', '?')}  ({meta.get('software', '?')})")
    print(f"data         {meta.get('data', '?')}" + (f"  [{meta.get('data_kind')}]" if meta.get("data_kind") else "")
          + (f"  {meta['data_path']}" if meta.get("data_path") else ""))
    print(f"model        {c['kernel']} kernel, T = {c['T']}, {c['arch']} net, example shape {shape}, "
          f"{info['parameters']:,} parameters, param {c['param']!r}"
          + (f", p̄ = {c['p_bar']:g}" if c["kernel"] == "binomial" else ""))
    keys = ("hidden", "layers", "activation", "readout", "J", "time_features", "rbf_units", "conv_layers",
            "n_scales", "dense_layers", "dense_hidden", "conv_activation")
    print("network      " + ", ".join(f"{k}={c[k]}" for k in keys if k in c))
    print(f"schedule     {c['schedule']}{' (β learned)' if info['beta_learned'] else ''}: β_1 = {info['beta_1']:.6g}, "
          f"β_T = {info['beta_T']:.6g}, ᾱ_T = {info['alpha_bar_T']:.4g}")
    if meta.get("K_bits") is not None:
        unit = meta.get("unit", "")
        print(f"K            = {meta['K_bits']:.4f} ± {_fmt(meta.get('K_stderr_bits'), 4)} {unit}   "
              f"(n = {meta.get('n_eval', '?')})")
        if meta.get("K_minus_Lnull_bits") is not None:
            cap = f"   (β_1 cap {meta['cap_bits']:.3f})" if meta.get("cap_bits") is not None else ""
            print(f"K − L_null   = {meta['K_minus_Lnull_bits']:.4f} {unit}{cap}")
    else:
        print("K            not recorded" + ("  (autosave of an unfinished run)" if meta.get("complete") is False else ""))
    it = meta.get("iterations", info["last_iteration"])
    secs = meta.get("train_seconds")
    print(f"training     {it if it is not None else '?'} iterations"
          + (f", {secs:.1f} s" if isinstance(secs, (int, float)) else "")
          + (f" on {meta['device']}" if meta.get("device") else "")
          + f"; history: {info['history_records']} records"
          + ("; optimiser state stored (resumable)" if info["has_optimizer"] else ""))
    if info["heldout_stored"]:
        print(f"held-out     {info['heldout_stored'][0]} examples stored in the file")
    if meta.get("train_command"):
        print(f"command      {meta['train_command']}")
    return 0


# ---------------------------------------------------------------------------------------------------
# dpm inpaint / denoise (thin wrappers around models.inpainting)


def _inpainting():
    try:
        from . import inpainting
    except ImportError as e:
        fail(f"inpainting is not available in this installation (models.inpainting: {e})")
    return inpainting


def _print_result(res: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_jsonable(res if isinstance(res, dict) else {"result": res}), sort_keys=True, allow_nan=False))
        return
    if isinstance(res, dict):
        for k, v in res.items():
            if isinstance(v, float):
                v = f"{v:.6g}"
            print(f"{k:<14} {v}")


def _device_kw(args) -> dict:
    if args.device is None:
        return {}
    _device(args.device)  # validate with a clear message
    return {"device": args.device}


def _wrap_inpainting(args, call: Callable[[], dict]) -> dict:
    try:
        return call()
    except (CheckpointError, DataError):
        raise
    except ValueError as e:  # a problem of this image with this model; name both
        fail(f"{args.image} with {args.model}: {e}")


def cmd_inpaint(args) -> int:
    mod = _inpainting()
    out = _check_out_path(args.out, (".png",), "the output image (--out)")
    if args.trajectory:
        _check_out_path(args.trajectory, (".h5", ".hdf5"), "the trajectory file (--trajectory)")
    res = _wrap_inpainting(args, lambda: mod.inpaint_image(
        args.model, args.image, args.mask, out, method=args.method, seed=args.seed, trajectory_path=args.trajectory,
        n_samples=args.samples, **_device_kw(args)))
    _print_result(res, args.json)
    return 0


def cmd_denoise(args) -> int:
    mod = _inpainting()
    out = _check_out_path(args.out, (".png",), "the output image (--out)")
    if args.trajectory:
        _check_out_path(args.trajectory, (".h5", ".hdf5"), "the trajectory file (--trajectory)")
    kw = _device_kw(args)
    if args.samples != 1:
        kw["n_samples"] = args.samples
    if args.sigma_units != "normalised":
        kw["sigma_units"] = args.sigma_units
    if args.noisy_out:
        kw["noisy_path"] = str(_check_out_path(args.noisy_out, (".png",), "the noisy image (--noisy-out)"))
    res = _wrap_inpainting(args, lambda: mod.denoise_image(
        args.model, args.image, args.sigma, out, seed=args.seed, assume_noisy=args.assume_noisy,
        trajectory_path=args.trajectory, **kw))
    _print_result(res, args.json)
    return 0


# ---------------------------------------------------------------------------------------------------
# entry point


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dpm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status (0 ok, 2 error,
    130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help
            return int(e.code or 0) if not isinstance(e.code, str) else 2
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        if args.command == "train":
            return cmd_train(args, argv)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "sample":
            return cmd_sample(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "inpaint":
            return cmd_inpaint(args)
        if args.command == "denoise":
            return cmd_denoise(args)
        fail(f"unknown command {args.command!r}")
    except (CLIError, CheckpointError, DataError) as e:
        msg = str(e)
    except BrokenPipeError:  # `dpm eval ... | head`: stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except FileNotFoundError as e:
        msg = f"{e.filename}: no such file or folder" if e.filename else str(e)
    except OSError as e:
        msg = f"{e.filename}: {e.strerror}" if e.filename else str(e)
    except (ValueError, TypeError, RuntimeError, MemoryError) as e:
        if os.environ.get("DPM_DEBUG"):
            raise
        msg = f"{type(e).__name__}: {e}"
    except KeyboardInterrupt:
        print("dpm: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("DPM_DEBUG"):
            raise
        msg = f"internal error ({type(e).__name__}: {e}); run with DPM_DEBUG=1 for a traceback"
    print(f"dpm: error: {_one_line(msg)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
