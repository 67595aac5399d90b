"""``dpm sample``: run the reverse chain and write samples (.npy), a trajectory (.h5) or a picture (.png).

    dpm sample swissroll.h5 -n 1000 --out samples.npy
    dpm sample digits -n 36 --out grid.png          (the bundled digits model)
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write, save_trajectory
from ..evaluation import to_display
from ..files import load_model
from ..metadata import data_kind, loaded_norm
from ..runtime import MAX_BATCH, MAX_IMAGE_SIDE, MAX_OUTPUT_VALUES, MAX_SAMPLES, make_generator
from ..sampling import reverse_steps
from .console import Console, bounded_int, check_out_path, fail, model_path, positive_int, refuse_overwriting_inputs

SUFFIXES = (".npy", ".h5", ".hdf5", ".png")


def add_parser(sub, device_args) -> None:
    s = sub.add_parser("sample", help="draw samples (.npy, .h5 trajectory, .png)",
                       description="Run the reverse chain. .npy: samples in data units (or --normalized); "
                                   ".h5: every state x^t (trajectory file); .png: an image grid, a bit raster "
                                   "or a point scatter. MODEL is a model file or a bundled model's preset name.")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("-n", type=bounded_int(1, MAX_SAMPLES, "samples"), default=16, metavar="N",
                   help=f"number of samples (default 16, at most {MAX_SAMPLES:,})")
    s.add_argument("--out", required=True, metavar="FILE", help=".npy, .h5 or .png")
    s.add_argument("--trajectory", action="store_true",
                   help=".npy: save every state [S, N, ...] (t ascending); .png: a strip over time")
    s.add_argument("--stride", type=positive_int, default=1, metavar="K",
                   help="trajectories: keep every K-th step (plus t = 0 and t = T)")
    s.add_argument("--normalized", action="store_true", help=".npy: the model's normalised units, not data units")
    s.add_argument("--size", type=bounded_int(1, MAX_IMAGE_SIDE, "pixels per side"), nargs=2, metavar=("H", "W"),
                   help="image size to sample at (fully convolutional models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH, "samples per batch"), metavar="N",
                   help="samples per batch")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    device_args(s)


def _grid(imgs: np.ndarray, ncol: int | None = None, pad: int = 1, min_side: int = 256) -> np.ndarray:
    """[N, C, H, W] in [0, 1] → one uint8 image [H', W'] or [H', W', 3] on a light grey background."""
    from ..images import tile

    N, C, H, W = imgs.shape
    canvas = tile(imgs, ncol=ncol or int(math.ceil(math.sqrt(N))), gap=pad, fill=0.85, border=pad)
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

    with atomic_write(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def _write_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_write(path, suffix=".npy") as tmp, open(tmp, "wb") as f:  # a file object: no suffix appended
        np.save(f, np.ascontiguousarray(arr, dtype=np.float32))


def run(args, console: Console, device) -> int:
    out = check_out_path(args.out, SUFFIXES, "the sample file (--out)")
    path = model_path(args.model)
    refuse_overwriting_inputs([out], [path])
    lm = load_model(path, device=device)
    model = lm.model
    norm = loaded_norm(lm)
    kind = data_kind(lm)
    shape = tuple(model.config.example_shape)
    if args.size:
        if not model.config.fully_convolutional:
            fail(f"{path}: --size needs a fully convolutional image model (this one is {model.config.arch})")
        shape = (shape[0], args.size[0], args.size[1])
    ext = out.suffix.lower()
    want_traj = ext in (".h5", ".hdf5") or args.trajectory
    n_states = len({t for t in range(model.T + 1) if t % args.stride == 0 or t in (0, model.T)}) if want_traj else 1
    values = args.n * n_states * int(np.prod(shape))
    if values > MAX_OUTPUT_VALUES:
        fail(f"{out}: {args.n:,} samples × {n_states} states × {int(np.prod(shape)):,} values = {values:,} values, "
             f"above the limit of {MAX_OUTPUT_VALUES:,} per file; ask for fewer samples or a larger --stride")
    g = make_generator(device, args.seed)
    batch = args.batch_size or (64 if kind == "images" else 4096)
    n_batches = math.ceil(args.n / batch)
    if console.tty:
        console.note(f"sampling {args.n} from {path} ({model.T} reverse steps"
                     + (f", {n_batches} batches" if n_batches > 1 else "") + ")")
    xs, trajs, ts = [], [], None
    done = 0
    for bi in range(n_batches):
        b = min(batch, args.n - done)
        keep: dict[int, torch.Tensor] = {}
        x = None
        label = "sampling" + (f" (batch {bi + 1}/{n_batches})" if n_batches > 1 else "")
        for st in console.track(reverse_steps(model, b, generator=g, example_shape=shape), model.T + 1, label):
            x = st.x
            if want_traj and (st.t % args.stride == 0 or st.t in (0, model.T)):
                keep[st.t] = st.x.detach().float().cpu()
        xs.append(x.detach().float().cpu())
        if want_traj:
            ts = sorted(keep)
            trajs.append(torch.stack([keep[t] for t in ts]))
        done += b
    z = torch.cat(xs).numpy()  # [N, *S], normalised units
    if not np.isfinite(z).all():
        fail(f"{path}: the model produced non-finite samples; nothing was written")
    traj = torch.cat(trajs, dim=1).numpy() if want_traj else None  # [S, N, *S], t ascending
    disp = lm.meta.get("display_range")
    if ext == ".npy":
        arr = traj if args.trajectory else z
        if not args.normalized:
            arr = norm.inverse(arr).astype(np.float32)
            if kind == "binary":
                arr = np.round(arr).astype(np.float32)
        _write_npy(out, arr)
    elif ext in (".h5", ".hdf5"):
        save_trajectory(out, traj, t=np.asarray(ts, dtype=np.int64),
                        meta=dict(kind="samples", direction="reverse", model=str(Path(path).resolve()),
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
                arr = _grid(to_display(imgs, norm, kind, disp), ncol=len(cols))
            else:
                arr = _grid(to_display(z, norm, kind, disp))
        elif kind == "binary":
            bits = np.round(np.clip(z.reshape(z.shape[0], -1), 0, 1))
            cell = max(2, min(16, 512 // max(bits.shape[1], 1)))
            arr = (255 - bits * 225).astype(np.uint8).repeat(cell, 0).repeat(cell, 1)
        else:
            arr = _scatter(norm.inverse(z.reshape(z.shape[0], -1)))
        _write_png(out, arr)
    what = "trajectory" if (ext in (".h5", ".hdf5") or (args.trajectory and ext == ".npy")) else "samples"
    console.print(f"wrote {args.n} {what} to {out}")
    return 0
