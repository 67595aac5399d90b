"""``dpm inpaint``: fill the masked part of an image with a model (§2.5, multiplying distributions;
RePaint's mask convention) and write a PNG.

    dpm inpaint bark photo.png --mask hole.png --out filled.png     (the bundled bark model)
"""
from __future__ import annotations

import time
import warnings

from ..config import METHODS
from ..files import save_trajectory
from ..files import load_model
from ..runtime import DEFAULT_IMAGE_SIDE, MAX_IMAGE_SAMPLES, MAX_IMAGE_SIDE, make_generator
from .console import Console, bounded_int, check_out_path, fail, model_path, refuse_overwriting_inputs



def add_image_args(p) -> None:
    """Arguments shared by ``dpm inpaint`` and ``dpm denoise``."""
    p.add_argument("--out", required=True, metavar="OUT.png")
    p.add_argument("--trajectory", metavar="FILE.h5", help="also save every state x^t")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=bounded_int(1, MAX_IMAGE_SAMPLES, "samples"), default=1, metavar="N",
                   help="samples side by side")
    p.add_argument("--max-side", type=bounded_int(8, MAX_IMAGE_SIDE, "pixels"), default=DEFAULT_IMAGE_SIDE, metavar="PX",
                   help=f"shrink a larger image to this longest side first (default {DEFAULT_IMAGE_SIDE})")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def add_parser(sub, device_args) -> None:
    ip = sub.add_parser("inpaint", help="fill the masked part of an image",
                        description="Fill the black part of MASK in IMAGE with the model (white = known, black = "
                                    "to fill; RePaint's convention) and write a PNG (--samples side by side). "
                                    "MODEL is a model file or a bundled model's preset name.")
    ip.add_argument("model", metavar="MODEL")
    ip.add_argument("image", metavar="IMAGE")
    ip.add_argument("--mask", required=True, metavar="MASK.png", help="white = keep (known), black = fill in")
    ip.add_argument("--method", choices=METHODS, default="clamp",
                    help="clamp: the paper's/code's (known pixels fixed); annealed: a Gaussian r around the known "
                         "pixels; repaint: RePaint resampling; smc: sequential Monte Carlo, exact as --particles "
                         "grows (default clamp; the first three are biased)")
    ip.add_argument("--particles", type=bounded_int(1, 4096, "particles"), default=16, metavar="N",
                    help="--method smc: particles per sample (default 16; the time grows with it)")
    add_image_args(ip)
    device_args(ip)


def check_outputs(args, inputs) -> tuple:
    out = check_out_path(args.out, (".png",), "the output image (--out)")
    traj = check_out_path(args.trajectory, (".h5", ".hdf5"), "the trajectory file (--trajectory)") if args.trajectory else None
    noisy = (check_out_path(args.noisy_out, (".png",), "the noisy image (--noisy-out)")
             if getattr(args, "noisy_out", None) else None)
    refuse_overwriting_inputs([out, traj, noisy], inputs)
    return out, traj, noisy


def _images():
    from .. import images

    return images


def _conditioning():
    from .. import conditioning

    return conditioning


def prepared(args, path, device):
    """The model and the image ready for it; a problem of this image with this model names both."""
    I = _images()
    loaded = load_model(path, device=device)
    try:
        prep = I.prepare_image(args.image, loaded, max_side=args.max_side)
    except ValueError as e:
        if type(e) is not ValueError:  # DataError and friends already name their file
            raise
        fail(f"{args.image} with {path}: {e}")
    return loaded, prep


def run(args, console: Console, device) -> int:
    I, C = _images(), _conditioning()
    from ..sampling import drain, stride_for

    path = model_path(args.model)
    out, traj_path, _ = check_outputs(args, [path, args.image, args.mask])
    t0 = time.perf_counter()
    loaded, prep = prepared(args, path, device)
    known = I.read_mask(args.mask, prep.shape_hw)
    notes = [n for n in (prep.note, I.mask_note(known)) if n]
    for n in notes:
        console.note(n)
    model = loaded.model
    g = make_generator(model.device, args.seed)
    n_states = C.count_inpaint_steps(model.T, args.method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        steps = C.inpaint_steps(model, prep.y, known, method=args.method, n_samples=args.samples, generator=g,
                                particles=args.particles)
        stride = stride_for(n_states, prep.y.numel() * args.samples * 4)
        run_ = drain(console.track(steps, n_states, f"inpainting {prep.shape_hw[1]}×{prep.shape_hw[0]}"), stride,
                     keep=traj_path is not None)
        x0, traj, ts = run_.x, run_.traj, run_.t
    if not bool(x0.isfinite().all()):
        fail(f"{path}: the model produced non-finite values for {args.image}; nothing was written")
    I.save_png(out, I.to_pixels(x0.reshape(args.samples, *prep.pixels.shape), loaded.norm))
    if traj_path is not None:
        save_trajectory(traj_path, traj, t=ts, meta=dict(
            kind="inpaint", direction="reverse", model=str(path), image=str(args.image), mask=str(args.mask),
            method=args.method, seed=args.seed, n_samples=args.samples, units="normalised", norm=dict(loaded.norm)))
    res = dict(output=str(out), trajectory=None if traj_path is None else str(traj_path), model=str(path),
               image=str(args.image), mask=str(args.mask), method=args.method, seed=args.seed,
               n_samples=args.samples, shape=list(prep.pixels.shape), known_fraction=float(known.mean()),
               steps=n_states, seconds=round(time.perf_counter() - t0, 3), note="; ".join(notes))
    if args.json:
        console.json(res)
    else:
        console.table(res)
    return 0
