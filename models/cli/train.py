"""``dpm train``: train on a preset or your own data, evaluate K exactly at the end, save the model.

    dpm train swissroll --seconds 60 --out swissroll.h5
    dpm train --data points.csv --steps 5000 --out mine.h5
    dpm train --resume mine.h5 --out mine.h5
    torchrun --standalone --nproc_per_node=4 $(command -v dpm) train cifar10 --out c.h5   (DDP, models.distributed)
"""
from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from .. import distributed
from ..bound import check_objective
from ..config import ARCHS, CONV_ARCHS, KERNELS, OBJECTIVES, PARAMS, ModelConfig
from ..evaluation import Evaluation, eval_batch_size, exact_K
from ..files import FileError, LoadedModel, load_model, lock_output, save_model
from ..metadata import ModelMeta, RecordedK, model_meta
from ..model import DiffusionModel
from ..presets import (PRESETS, Preset, default_config, default_train_config, fit_objective, load_data,
                       mean_activity)
from ..runtime import MAX_BATCH, MAX_T, make_generator
from ..training import TrainConfig, Trainer, TrainProgress
from .console import (CLIError, Console, bounded_int, check_out_path, fail, fmt, graceful_stop, nonneg_float,
                      positive_float, positive_int, refuse_overwriting_inputs)


def add_parser(sub, device_args) -> None:
    t = sub.add_parser("train", help="train a model on a preset or your own data",
                       description="Train on a preset or your own data; evaluate K exactly on the held-out set at "
                                   "the end and save the model (HDF5). Ctrl-C or SIGTERM: stop, evaluate and save.")
    t.add_argument("preset", nargs="?", metavar="PRESET", help=f"one of: {', '.join(PRESETS)}")
    t.add_argument("--data", metavar="FILE", help="own data: .npy, .csv, .h5 (dataset x), an image, or a folder of images")
    t.add_argument("--out", required=True, metavar="MODEL.h5", help="model file to write (also autosaved)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, metavar="N", help="train for N iterations")
    budget.add_argument("--seconds", type=positive_float, metavar="S",
                        help="train for S seconds (default: the preset's time budget)")
    device_args(t)
    t.add_argument("--T", type=bounded_int(2, MAX_T, "diffusion steps"), metavar="N", help="number of diffusion steps")
    t.add_argument("--kernel", choices=KERNELS, help="forward process (binomial needs {0,1} data)")
    t.add_argument("--arch", choices=ARCHS, help="reverse network (conv and unet for images)")
    t.add_argument("--param", choices=PARAMS,
                   help="reverse parameterisation: paper (§2.4), code (the reference code's), residual "
                        "(binomial), posterior (q(x^{t−1} | x^t, x̂^0) at the net's estimate of x^0)")
    t.add_argument("--beta1", type=float, metavar="X", help="fixed first step β_1 (caps K − L_null)")
    lb = t.add_mutually_exclusive_group()
    lb.add_argument("--learn-beta", dest="learn_beta", action="store_true", default=None,
                    help="learn β_2..β_T by gradient ascent on K (Gaussian only)")
    lb.add_argument("--fixed-beta", dest="learn_beta", action="store_false", help="keep the β schedule fixed")
    t.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH, "examples per batch"), metavar="N")
    t.add_argument("--lr", type=positive_float, metavar="X", help="learning rate")
    t.add_argument("--objective", choices=OBJECTIVES,
                   help="K: the paper's bound; hybrid: noise regression + K/T for the variance (ε-style Gaussian "
                        "models; the image presets' default)")
    t.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    t.add_argument("--resume", metavar="MODEL.h5",
                   help="continue training a model file: weights, optimiser state, iteration count and history")
    t.add_argument("--autosave-seconds", type=nonneg_float, default=60.0, metavar="S",
                   help="save OUT atomically at least every S seconds while training (0 = at every report; default 60)")
    t.add_argument("--report-every", type=positive_int, metavar="N", help="iterations between progress reports")
    t.add_argument("--n-eval", type=positive_int, metavar="N",
                   help="held-out examples for the final exact K (default: the whole held-out set)")
    t.add_argument("--cifar-dir", metavar="DIR", help="folder with the CIFAR-10 binary batches (preset cifar10)")
    t.add_argument("--patch-size", type=positive_int, default=32, metavar="N", help="patch side for one-image data (default 32)")
    t.add_argument("--quiet", action="store_true", help="no progress output")


# ---------------------------------------------------------------------------------------------------
# setting up a run


@dataclass
class _Setup:
    data: Any
    meta: ModelMeta  # provenance (no run figures yet)
    model: DiffusionModel
    config: TrainConfig
    budget: dict  # {"steps": N} or {"seconds": S}: this run's own budget
    history: dict | None = None
    optimizer: dict | None = None
    iteration: int = 0
    resumed_from: str | None = None


def _data_meta(data, preset: str | None, data_path, patch_size: int, cifar_dir) -> ModelMeta:
    extra = {}
    if preset is None:
        extra["patch_size"] = patch_size
    if preset == "cifar10" and cifar_dir:
        extra["cifar_dir"] = str(Path(cifar_dir).expanduser().resolve())
    return model_meta(data, preset=preset, data_path=data_path if preset is None else None, **extra)


def _model_config(args, data, preset: Preset | None, what: str) -> ModelConfig:
    cfg = preset.model if preset is not None else default_config(data)
    changes: dict[str, Any] = {"example_shape": tuple(data.example_shape)}
    kernel = args.kernel or cfg.kernel
    if args.kernel and args.kernel != cfg.kernel:
        if args.kernel == "binomial":
            changes.update(kernel="binomial", schedule="binomial", param="posterior", learn_beta=False, beta_1=None,
                           p_bar=mean_activity(data) if data.kind == "binary" else 0.5)
        else:
            changes.update(kernel="gaussian", schedule="reference", param="paper")
    if kernel == "binomial" and data.kind != "binary":
        fail(f"{what}: the binomial kernel needs {{0, 1}} data, but this data holds {data.kind}")
    arch = args.arch or cfg.arch
    if data.kind == "images" and arch not in CONV_ARCHS:
        fail(f"{what}: --arch {arch} works on vectors, but this data holds images {tuple(data.example_shape)}; "
             f"use --arch {' or '.join(CONV_ARCHS)}")
    if data.kind != "images" and arch in CONV_ARCHS:
        fail(f"{what}: --arch {arch} works on images, but this data holds {data.kind} of shape {tuple(data.example_shape)}")
    for key, val in (("arch", args.arch), ("T", args.T), ("param", args.param), ("beta_1", args.beta1),
                     ("learn_beta", args.learn_beta)):
        if val is not None:
            changes[key] = val
    try:
        return cfg.replace(**changes)
    except ValueError as e:
        fail(f"{what}: {e}")


def _train_config(base: TrainConfig, changes: dict, args, model_config: ModelConfig) -> TrainConfig:
    for key, val in (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                     ("report_every", args.report_every), ("objective", args.objective)):
        if val is not None:
            changes[key] = val
    if args.objective is not None:
        try:
            check_objective(args.objective, model_config)
        except ValueError as e:
            fail(f"--objective {args.objective}: {e}")
    try:
        # a template's objective that does not fit a model changed by other options falls back to K
        return fit_objective(TrainConfig(**{**asdict(base), **changes}), model_config)
    except (TypeError, ValueError) as e:
        fail(f"training options: {e}")


def _setup(args) -> _Setup:
    if args.preset is not None and args.data is not None:
        fail(f"give a PRESET or --data FILE, not both (got {args.preset!r} and --data {args.data})")
    preset_name, data_path = args.preset, args.data
    if preset_name is not None and preset_name not in PRESETS and Path(preset_name).expanduser().exists():
        preset_name, data_path = None, preset_name  # `dpm train points.csv` means --data points.csv
    lm: LoadedModel | None = None
    old = ModelMeta()
    if args.resume:
        lm = load_model(args.resume)
        for flag, val in (("--T", args.T), ("--kernel", args.kernel), ("--arch", args.arch), ("--beta1", args.beta1),
                          ("--learn-beta/--fixed-beta", args.learn_beta), ("--param", args.param)):
            if val is not None:
                fail(f"{args.resume}: {flag} cannot change a model being resumed (its config is in the file)")
        old = ModelMeta.from_dict(lm.meta)
        if preset_name is None and data_path is None:
            if old.data_source == "file":
                data_path = old.data_path
                if not data_path or not Path(data_path).exists():
                    fail(f"{args.resume}: its training data {data_path!r} is gone; pass --data FILE")
            elif old.data_source == "preset" and old.preset in PRESETS:
                preset_name = old.preset
            elif old.data_source == "drawn":
                fail(f"{args.resume}: it was trained on points drawn in the app; pass --data FILE")
            else:
                fail(f"{args.resume}: the file does not name its training data; pass PRESET or --data FILE")
    if preset_name is None and data_path is None:
        fail("train: give a PRESET (" + ", ".join(PRESETS) + ") or --data FILE")
    if data_path is not None:
        refuse_overwriting_inputs([args.out], [data_path])

    shape = tuple(lm.config.example_shape) if lm is not None else None
    image_size = shape[-1] if shape is not None and len(shape) == 3 else 32
    cifar_dir = args.cifar_dir or old.cifar_dir
    patch_size = args.patch_size if lm is None or old.patch_size is None else old.patch_size
    if preset_name is not None and preset_name not in PRESETS:
        fail(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)} (or pass --data FILE)")
    data = load_data(preset=preset_name, path=data_path, cifar_dir=cifar_dir, image_size=image_size,
                     patch_size=patch_size)
    preset = PRESETS[preset_name] if preset_name is not None else None
    what = f"preset {preset_name!r}" if preset is not None else str(Path(data_path).expanduser())
    meta = _data_meta(data, preset_name, data_path, patch_size, cifar_dir)
    template_train = preset.train if preset is not None else default_train_config(data.kind)

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
        names = {f.name for f in fields(TrainConfig)}
        recorded = {k: v for k, v in (old.train_config or {}).items() if k in names}
        try:
            tc = TrainConfig(**recorded) if recorded else template_train
        except (TypeError, ValueError) as e:
            fail(f"{args.resume}: the recorded training options are malformed ({e})")
        hist = lm.history
        iteration = old.iterations if old.iterations is not None else (
            int(hist["iteration"][-1]) if len(hist.get("iteration", [])) else 0)
        seconds_before = float(hist["seconds"][-1]) if len(hist.get("seconds", [])) else 0.0
        prev = old.budget or {}
        if args.steps is not None:
            budget = {"steps": args.steps}
        elif args.seconds is not None:
            budget = {"seconds": args.seconds}
        elif prev.get("steps") or prev.get("seconds"):
            budget = {k: prev[k] for k in ("steps", "seconds") if prev.get(k)}
        else:
            budget = {"seconds": template_train.seconds or 60.0}
        changes = dict(steps=iteration + int(budget["steps"]) if "steps" in budget else None,
                       seconds=seconds_before + float(budget["seconds"]) if "seconds" in budget else None,
                       n_samples=0, n_eval=min(tc.n_eval, data.n_heldout))
        tc = _train_config(tc, changes, args, model.config)
        opt = lm.optimizer
        if opt is not None and args.lr is not None:  # the stored state would otherwise restore the old lr
            for g in opt.get("param_groups", []):
                if isinstance(g, dict):
                    g["base_lr"] = args.lr
                    g["lr"] = args.lr
        return _Setup(data=data, meta=meta, model=model, config=tc, budget=budget, history=hist, optimizer=opt,
                      iteration=iteration, resumed_from=str(args.resume))

    # ---- a fresh model
    mc = _model_config(args, data, preset, what)
    try:
        model = DiffusionModel(mc)
    except (ValueError, RuntimeError) as e:
        fail(f"{what}: cannot build the model ({e})")
    if args.steps is not None:
        budget = {"steps": args.steps}
    elif args.seconds is not None:
        budget = {"seconds": args.seconds}
    elif template_train.steps:
        budget = {"steps": template_train.steps}
    else:
        budget = {"seconds": template_train.seconds}
    tc = _train_config(template_train, dict(steps=budget.get("steps"), seconds=budget.get("seconds"), n_samples=0,
                                            n_eval=min(template_train.n_eval, data.n_heldout)), args, mc)
    return _Setup(data=data, meta=meta, model=model, config=tc, budget=budget)


# ---------------------------------------------------------------------------------------------------
# the run


def _fraction(p: TrainProgress, tc: TrainConfig) -> float | None:
    fr = []
    if tc.steps:
        fr.append(p.iteration / tc.steps)
    if tc.seconds:
        fr.append(p.seconds / tc.seconds)
    return max(fr) if fr else None


def run(args, argv: Sequence[str], console: Console, device) -> int:
    out = check_out_path(args.out, (".h5", ".hdf5"), "the model file (--out)")
    try:
        launch = distributed.launch_from_env()  # under torchrun: DDP (models/distributed.py)
    except ValueError as e:
        fail(str(e))
    if launch is None:
        with lock_output(out):  # a second `dpm train --out` the same file is refused while this one runs
            return _run(args, argv, console, device, out)
    try:
        launch, device = distributed.start(launch, device)
    except (ValueError, RuntimeError) as e:
        fail(f"torchrun rank {launch.rank}: cannot join the process group ({e})")
    ok = False
    try:
        if not launch.is_writer:  # rank 0 alone prints, holds the lock and writes
            rc = _run(args, argv, Console(quiet=True), device, out, launch)
        else:
            with lock_output(out):
                rc = _run(args, argv, console, device, out, launch)
        ok = True
        return rc
    finally:
        distributed.stop(ok)  # every rank leaves together after a good run


def _run(args, argv: Sequence[str], console: Console, device, out, launch=None) -> int:
    st = _setup(args)
    data, tc = st.data, st.config
    try:
        trainer = Trainer(st.model, data, tc, device=device, history=st.history, optimizer_state=st.optimizer,
                          iteration=st.iteration, launch=launch)
    except (ValueError, KeyError, RuntimeError) as e:
        fail(f"{st.resumed_from or data.name}: cannot set up training ({e})")
    c = trainer.model.config
    world = launch.world_size if launch is not None else 1
    base = st.meta.replace(train_command=shlex.join(["dpm", *argv]), train_config=asdict(tc), budget=st.budget,
                           device=str(device), resumed_from=st.resumed_from, world_size=world,
                           effective_batch=world * tc.batch_size)
    heldout_store = data.heldout().numpy() if base.data_source == "file" else None

    def save(model: DiffusionModel, meta: ModelMeta) -> None:
        save_model(out, model, norm=data.norm.to_dict(), history=trainer.history_arrays(), meta=meta.to_dict(),
                   optimizer=trainer.optimizer.state_dict(), heldout=heldout_store)

    budget_txt = f"{st.budget['steps']} iterations" if "steps" in st.budget else f"{st.budget['seconds']:g} s"
    console.note(f"training {data.name} ({data.kind} {tuple(data.example_shape)}, {data.unit}): {c.kernel} T={c.T}, "
                 f"{c.arch} net, {trainer.model.count_parameters():,} parameters, on {device}, for {budget_txt}"
                 + (f", {world} processes ({launch.backend}, effective batch {world * tc.batch_size})" if launch else "")
                 + (f", from iteration {st.iteration} of {st.resumed_from}" if st.resumed_from else ""))
    last_save = time.monotonic()
    n_autosaves = 0
    final: TrainProgress | None = None
    stopping = [False]

    def on_signal(name: str) -> None:
        stopping[0] = True
        trainer.stop()
        console.note(f"{name}: stopping after this iteration, then evaluating and saving ({name} again to abort)")

    with graceful_stop(on_signal):
        try:
            its = 0.0
            for p in trainer.run():
                final = p
                its = p.its_per_s if p.its_per_s > 0 else its  # the final record may cover no iterations
                text = f"it {p.iteration}  {its:7.1f} it/s  K held-out {fmt(p.K_heldout_bits)} {data.unit}  {p.seconds:6.1f} s"
                if console.tty:
                    console.bar(text, _fraction(p, tc), force=True)
                else:
                    console.note(text)
                if not p.done and time.monotonic() - last_save >= args.autosave_seconds:
                    last_save = time.monotonic()
                    try:
                        save(trainer.eval_model, base.replace(complete=False, iterations=p.iteration,
                                                              train_seconds=p.seconds,
                                                              K_heldout_live_bits=p.K_heldout_bits))
                        n_autosaves += 1
                    except (OSError, FileError) as e:  # a full disk: keep training and the previous file
                        console.warn(f"{out}: autosave failed ({e}); training goes on, the file keeps its "
                                     "previous content")
            console.end()
        except KeyboardInterrupt:
            console.end()
            raise CLIError(f"{out}: training aborted" + ("; the last autosave is in the file" if out.exists() else ""))
        if launch is not None and not launch.is_writer:
            return 0  # trained in step with rank 0, which evaluates and writes
        assert final is not None
        if final.message.startswith("training diverged"):
            console.warn(final.message)
        model = trainer.model
        model.eval()
        n_eval = min(args.n_eval or data.n_heldout, data.n_heldout)
        x_held = data.heldout(n_eval).to(device)
        done = base.replace(complete=True, iterations=final.iteration, train_seconds=final.seconds,
                            skipped_updates=final.skipped_updates, message=final.message, autosaves=n_autosaves)
        console.note(f"evaluating K exactly on {n_eval} held-out examples ({c.T - 1} KL terms each)")
        bar = console.progress("evaluating ")
        stopped_before = stopping[0]

        def progress(stage, d, n):
            if stopping[0] and not stopped_before:  # a signal during the evaluation: save without K
                raise KeyboardInterrupt
            bar(stage, d, n)

        try:
            ev = exact_K(model, x_held, data.unit, generator=make_generator(device, 0),
                         batch_size=eval_batch_size(model), progress=progress)
            console.end()
        except KeyboardInterrupt:
            console.end()
            save(model, done.replace(complete=False))
            raise CLIError(f"{out}: evaluation aborted; the trained model was saved without its K")
    save(model, done.replace(recorded=RecordedK.from_evaluation(ev)))
    print_evaluation(console, ev, PRESETS.get(base.preset) if base.data_source == "preset" else None)
    console.print(f"saved {out}  ({final.iteration} iterations, {final.seconds:.1f} s on {device}; {final.message})")
    return 0


def print_evaluation(console: Console, ev: Evaluation, preset: Preset | None) -> None:
    """K, K − L_null (with the β_1 cap) and β_1, with the paper's figures for a preset."""
    paper_K = f"   (paper: {preset.paper_K:g})" if preset is not None and preset.paper_K is not None else ""
    paper_L = (f"   (paper: {preset.paper_K_minus_Lnull:g})"
               if preset is not None and preset.paper_K_minus_Lnull is not None else "")
    console.print(f"K          = {ev.K_bits:.4f} ± {fmt(ev.K_stderr_bits, 4)} {ev.unit}   (exact over all steps, "
                  f"{ev.n} held-out examples){paper_K}")
    cap = f"   (β_1 cap {ev.cap_bits:.3f})" if ev.cap_bits is not None else ""
    console.print(f"K − L_null = {ev.K_minus_Lnull_bits:.4f} {ev.unit}{paper_L}{cap}")
    if preset is not None and preset.ceiling is not None:
        console.print(f"ceiling    = {preset.ceiling:.4f} {ev.unit}   (K ≤ ceiling)")
    console.print(f"β_1        = {ev.beta_1:.6g}")
