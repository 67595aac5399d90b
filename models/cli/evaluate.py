"""``dpm eval``: the exact K of a model on held-out data, optionally AIS and Parzen.

    dpm eval swissroll.h5 --ais 16 --json
    dpm eval swissroll            (the bundled model)
"""
from __future__ import annotations

from ..evaluation import evaluate_model_file
from ..files import load_model
from ..runtime import MAX_AIS_TRAJECTORIES, MAX_BATCH, MAX_SAMPLES
from .console import Console, bounded_int, fmt, model_path, positive_int


def add_parser(sub, device_args) -> None:
    e = sub.add_parser("eval", help="exact K on held-out data, optionally AIS and Parzen",
                       description="Exact K (all T steps) on held-out data: the preset named in the file, the "
                                   "held-out split stored in the file, or --data (normalised as the model's data). "
                                   "MODEL is a model file or a bundled model's preset name.")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--data", metavar="FILE|PRESET", help="evaluate on this data instead")
    e.add_argument("--n", "--n-eval", dest="n", type=positive_int, metavar="N",
                   help="use the first N held-out examples (default all)")
    e.add_argument("--ais", type=bounded_int(1, MAX_AIS_TRAJECTORIES, "AIS trajectories"), metavar="M",
                   help="add the AIS/Jarzynski estimate with M trajectories per example")
    e.add_argument("--parzen", action="store_true", help="add the Parzen-window estimate")
    e.add_argument("--parzen-samples", type=bounded_int(1, MAX_SAMPLES, "samples"), default=10_000, metavar="N",
                   help="model samples for --parzen (default 10000, as in the protocol)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH, "examples per batch"), metavar="N",
                   help="examples per network batch")
    e.add_argument("--cifar-dir", metavar="DIR", help="folder with the CIFAR-10 binary batches")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    device_args(e)


def run(args, console: Console, device) -> int:
    path = model_path(args.model)
    lm = load_model(path, device=device)
    if console.tty:
        console.note(f"evaluating {path}: K exactly over all {lm.model.T - 1} KL terms"
                     + (f", AIS with {args.ais} trajectories" if args.ais else "") + (", Parzen" if args.parzen else ""))
    ev = evaluate_model_file(path, data=args.data, n=args.n, ais=args.ais, parzen=args.parzen,
                             parzen_samples=args.parzen_samples, device=device, seed=args.seed,
                             batch_size=args.batch_size, cifar_dir=args.cifar_dir, loaded=lm,
                             progress=console.progress(""))
    console.end()
    if args.json:
        res = dict(ev.to_dict(), model=str(path), kind=_kind(lm), kernel=lm.config.kernel, device=str(device))
        console.json(res)
        return 0
    u = ev.unit
    console.print(f"model      {path}")
    console.print(f"data       {ev.data}")
    console.print(f"K          = {ev.K_bits:.4f} ± {fmt(ev.K_stderr_bits, 4)} {u}   (exact, n = {ev.n})")
    cap = f"   (β_1 cap {ev.cap_bits:.3f})" if ev.cap_bits is not None else ""
    console.print(f"K − L_null = {ev.K_minus_Lnull_bits:.4f} {u}{cap}")
    console.print(f"β_1        = {ev.beta_1:.6g}")
    if ev.ais is not None:
        a = ev.ais
        console.print(f"AIS        = {a.bits:.4f} ± {fmt(a.stderr_bits, 4)} {u}   ({a.n_traj} trajectories; "
                      "K ≤ AIS in expectation)")
    if ev.parzen is not None:
        p = ev.parzen
        console.print(f"Parzen     = {p.nats:.2f} ± {fmt(p.stderr_nats, 2)} nats ({p.bits:.2f} bits), σ = {p.sigma:.4g}, "
                      f"{p.n_samples} samples, {p.space}")
    return 0


def _kind(lm) -> str:
    from ..metadata import data_kind

    return data_kind(lm)
