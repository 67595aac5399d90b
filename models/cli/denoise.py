"""``dpm denoise``: denoise an image by multiplying each reverse step by N(x; y, σ²) (§2.5, the
reference code's SNR-1 experiment) and write a PNG.

    dpm denoise bark photo.png --sigma 0.5 --out clean.png
"""
from __future__ import annotations

import math
import time

import torch

from ..files import save_trajectory
from ..runtime import make_generator
from .console import Console, fail, model_path, positive_float
from .inpaint import _images, add_image_args, check_outputs, prepared


def add_parser(sub, device_args) -> None:
    dn = sub.add_parser("denoise", help="denoise an image (the reference code's SNR-1 experiment)",
                        description="Multiply each reverse step by N(x; y, σ²). Unless --assume-noisy, noise of σ "
                                    "is first added to IMAGE (seeded). MODEL is a model file or a bundled model's "
                                    "preset name.")
    dn.add_argument("model", metavar="MODEL")
    dn.add_argument("image", metavar="IMAGE")
    dn.add_argument("--sigma", required=True, type=positive_float, metavar="S",
                    help="noise σ, in the model's normalised units (the code's SNR-1 experiment: 1) or --sigma-units pixels")
    dn.add_argument("--sigma-units", choices=("normalised", "pixels"), default="normalised")
    dn.add_argument("--assume-noisy", action="store_true", help="the image is already noisy (else noise is added first)")
    dn.add_argument("--noisy-out", metavar="NOISY.png", help="also write the noisy input")
    add_image_args(dn)
    device_args(dn)


def run(args, console: Console, device) -> int:
    from .. import conditioning as C
    from ..sampling import drain, stride_for

    I = _images()
    path = model_path(args.model)
    out, traj_path, noisy_path = check_outputs(args, [path, args.image])
    t0 = time.perf_counter()
    loaded, prep = prepared(args, path, device)
    if prep.note:
        console.note(prep.note)
    model = loaded.model
    sigma = args.sigma
    sigma_z = sigma if args.sigma_units == "normalised" else I.sigma_to_normalised(sigma, loaded.norm)
    if not (math.isfinite(sigma_z) and sigma_z > 0):
        fail(f"--sigma {sigma}: gives σ = {sigma_z} in the model's units")
    g = make_generator(model.device, args.seed)
    y = prep.y
    if not args.assume_noisy:
        y = y + sigma_z * torch.randn(y.shape, generator=g, dtype=y.dtype, device=g.device).cpu()
    if noisy_path is not None:
        I.save_png(noisy_path, I.to_pixels(y.reshape(prep.pixels.shape), loaded.norm))
    steps = C.denoise_steps(model, y, sigma_z, n_samples=args.samples, generator=g, start="observation")
    stride = stride_for(model.T + 1, prep.y.numel() * args.samples * 4)
    run_ = drain(console.track(steps, model.T + 1, f"denoising {prep.shape_hw[1]}×{prep.shape_hw[0]}"), stride,
                 keep=traj_path is not None)
    x0, traj, ts = run_.x, run_.traj, run_.t
    if not bool(x0.isfinite().all()):
        fail(f"{path}: the model produced non-finite values for {args.image}; nothing was written")
    I.save_png(out, I.to_pixels(x0.reshape(args.samples, *prep.pixels.shape), loaded.norm))
    if traj_path is not None:
        save_trajectory(traj_path, traj, t=ts, meta=dict(
            kind="denoise", direction="reverse", model=str(path), image=str(args.image), sigma=sigma,
            sigma_units=args.sigma_units, sigma_normalised=sigma_z, start="observation",
            assume_noisy=args.assume_noisy, seed=args.seed, n_samples=args.samples, units="normalised",
            norm=dict(loaded.norm)))
    res = dict(output=str(out), trajectory=None if traj_path is None else str(traj_path),
               noisy=None if noisy_path is None else str(noisy_path), model=str(path), image=str(args.image),
               sigma=sigma, sigma_units=args.sigma_units, sigma_normalised=sigma_z, start="observation",
               seed=args.seed, n_samples=args.samples, shape=list(prep.pixels.shape),
               steps=len(ts) if traj_path else None, seconds=round(time.perf_counter() - t0, 3), note=prep.note)
    if args.json:
        console.json(res)
    else:
        console.table(res)
    return 0
