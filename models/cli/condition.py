"""``dpm condition``: samples of a vector or binary model with some coordinates held fixed (§2.5,
multiplying distributions), values in the data's raw units; the headless twin of the app's plane and bits
tools.

    dpm condition swissroll --fix 0=0.5 -n 500 --out cond.npy
    dpm condition heartbeat --fix 0=1,1=0 --method clamp -n 100 --out beats.npy
"""
from __future__ import annotations

import time

import numpy as np

from ..conditioning import DEFAULT_PARTICLES, condition, count_inpaint_steps, parse_fix
from ..config import METHODS
from ..files import atomic_write, load_model
from ..runtime import make_generator
from .console import Console, bounded_int, check_out_path, fail, model_path, refuse_overwriting_inputs


def add_parser(sub, device_args) -> None:
    c = sub.add_parser("condition", help="sample a vector or binary model with some coordinates fixed",
                       description="Sample x^0 of MODEL with the coordinates in --fix held at the given values "
                                   "(raw data units; 0 or 1 for a binary model) and save the samples as .npy "
                                   "[N, D] in raw units. MODEL is a model file or a bundled model's preset name.")
    c.add_argument("model", metavar="MODEL")
    c.add_argument("--fix", required=True, metavar="I=V[,I=V…]",
                   help="coordinates to fix: index=value pairs, comma separated (indices from 0)")
    c.add_argument("--method", choices=METHODS, default="smc",
                   help="smc: sequential Monte Carlo, exact as --particles grows (default); clamp: the paper's; "
                        "annealed: an annealed narrow Gaussian r; repaint: RePaint resampling (the last three "
                        "are biased)")
    c.add_argument("--particles", type=bounded_int(1, 4096, "particles"), default=DEFAULT_PARTICLES, metavar="N",
                   help=f"--method smc: particles per sample (default {DEFAULT_PARTICLES})")
    c.add_argument("-n", type=bounded_int(1, 1_000_000, "samples"), default=100, metavar="N", dest="n",
                   help="samples (default 100)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, metavar="FILE.npy")
    c.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    c.add_argument("--quiet", action="store_true", help="no progress output")
    device_args(c)


def run(args, console: Console, device) -> int:
    path = model_path(args.model)
    out = check_out_path(args.out, (".npy",), "the output (--out)")
    refuse_overwriting_inputs([out], [path])
    try:
        fix = parse_fix(args.fix)
    except ValueError as e:
        fail(str(e))
    t0 = time.perf_counter()
    loaded = load_model(path, device=device)
    model = loaded.model.eval()
    g = make_generator(model.device, args.seed)
    total = count_inpaint_steps(model.T, args.method)
    label = f"conditioning ({args.method}{f', {args.particles} particles' if args.method == 'smc' else ''})"
    try:
        x = condition(loaded, fix, method=args.method, particles=args.particles, n=args.n, generator=g,
                      track=lambda steps: console.track(steps, total, label))
    except ValueError as e:
        fail(f"{path}: {e}")
    with atomic_write(out, suffix=".npy") as tmp, open(tmp, "wb") as f:
        np.save(f, x)
    res = dict(output=str(out), model=str(path), fix={str(k): v for k, v in sorted(fix.items())}, method=args.method,
               particles=args.particles if args.method == "smc" else None, n=args.n, seed=args.seed,
               shape=list(x.shape), mean=[round(float(v), 6) for v in x.mean(0)][:16], units="raw",
               seconds=round(time.perf_counter() - t0, 3))
    if args.json:
        console.json(res)
    else:
        console.table(res)
    return 0
