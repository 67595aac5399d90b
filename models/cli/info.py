"""``dpm info``: a model file's config, schedule, recorded K and history; ``--list``: the bundled models.

    dpm info swissroll.h5
    dpm info --list
"""
from __future__ import annotations

import torch

from ..files import CheckpointError
from ..files import load_model
from ..metadata import ModelMeta
from ..paths import bundled_model
from ..presets import PRESETS
from .console import Console, fail, fmt, model_path


def add_parser(sub, device_args) -> None:
    i = sub.add_parser("info", help="show a model file's config, schedule, recorded K and history",
                       description="MODEL is a model file or a bundled model's preset name; --list shows the "
                                   "bundled models.")
    i.add_argument("model", nargs="?", metavar="MODEL")
    i.add_argument("--list", action="store_true", help="list the bundled models with their recorded K")
    i.add_argument("--json", action="store_true")
    device_args(i, device=False)


@torch.no_grad()
def model_info(path) -> dict:
    """What ``dpm info`` shows, as a dict."""
    lm = load_model(path)
    m, c, meta = lm.model, lm.config, lm.meta
    s = m.schedule_tensors()
    beta = s.beta.detach().cpu().numpy()
    hist = lm.history
    n_hist = int(len(next(iter(hist.values())))) if hist else 0
    return dict(
        file=str(path), config=c.to_dict(), parameters=m.count_parameters(),
        T=c.T, beta_1=float(beta[0]), beta_T=float(beta[-1]), alpha_bar_T=float(s.alpha_bar[-1]),
        beta_learned=bool(c.learn_beta), history_records=n_hist,
        last_iteration=int(hist["iteration"][-1]) if n_hist and "iteration" in hist else None,
        has_optimizer=lm.optimizer is not None, heldout_stored=None if lm.heldout is None else list(lm.heldout.shape),
        meta={k: v for k, v in meta.items() if k not in ("train_config", "drawn_points")},
        train_config=meta.get("train_config"), norm=lm.norm,
    )


def bundled_models() -> list[dict]:
    """The bundled models: preset name, file, recorded K ± s.e. and unit (None where unreadable)."""
    rows = []
    for name in PRESETS:
        p = bundled_model(name)
        if p is None:
            continue
        row = dict(name=name, file=str(p), K_bits=None, K_stderr_bits=None, unit=PRESETS[name].unit, problem=None)
        try:
            r = ModelMeta.from_dict(load_model(p).meta).recorded
            if r is not None:
                row.update(K_bits=r.K_bits, K_stderr_bits=r.K_stderr_bits, unit=r.unit or row["unit"])
        except CheckpointError as e:
            row["problem"] = str(e)
        rows.append(row)
    return rows


def run(args, console: Console) -> int:
    if args.list:
        rows = bundled_models()
        if args.json:
            console.json(rows)
            return 0
        if not rows:
            console.print("no bundled models found")
        for r in rows:
            k = (f"K = {r['K_bits']:.4f} ± {fmt(r['K_stderr_bits'], 4)} {r['unit']}" if r["K_bits"] is not None
                 else (r["problem"] or "K not recorded"))
            console.print(f"{r['name']:<11} {k}   {r['file']}")
        return 0
    if args.model is None:
        fail("info: give a MODEL file (or a bundled model's name), or --list")
    path = model_path(args.model)
    info = model_info(path)
    if args.json:
        console.json(info)
        return 0
    c, meta = info["config"], info["meta"]
    mm = ModelMeta.from_dict(meta)
    p = console.print
    p(f"file         {info['file']}")
    p(f"created      {mm.created or '?'}  ({mm.software or '?'})")
    p(f"data         {mm.data or '?'}" + (f"  [{mm.data_kind}]" if mm.data_kind else "")
      + (f"  {mm.data_path}" if mm.data_path else ""))
    p(f"model        {c['kernel']} kernel, T = {c['T']}, {c['arch']} net, example shape {tuple(c['example_shape'])}, "
      f"{info['parameters']:,} parameters, param {c['param']!r}" + (f", p̄ = {c['p_bar']:g}" if c["kernel"] == "binomial" else ""))
    keys = ("hidden", "layers", "activation", "readout", "J", "time_features", "rbf_units", "conv_layers",
            "n_scales", "dense_layers", "dense_hidden", "conv_activation")
    p("network      " + ", ".join(f"{k}={c[k]}" for k in keys if k in c))
    p(f"schedule     {c['schedule']}{' (β learned)' if info['beta_learned'] else ''}: β_1 = {info['beta_1']:.6g}, "
      f"β_T = {info['beta_T']:.6g}, ᾱ_T = {info['alpha_bar_T']:.4g}")
    r = mm.recorded
    if r is not None:
        p(f"K            = {r.K_bits:.4f} ± {fmt(r.K_stderr_bits, 4)} {r.unit}   (n = {r.n_eval})")
        cap = f"   (β_1 cap {r.cap_bits:.3f})" if r.cap_bits is not None else ""
        p(f"K − L_null   = {r.K_minus_Lnull_bits:.4f} {r.unit}{cap}")
    else:
        p("K            not recorded" + ("  (saved before an exact evaluation: a training autosave, a run stopped "
                                         "early, or the app; `dpm eval` computes it)" if mm.complete is False else ""))
        if mm.K_heldout_live_bits is not None:
            p(f"K held out   ≈ {mm.K_heldout_live_bits:.4f} (the live estimate while training)")
    it = mm.iterations if mm.iterations is not None else info["last_iteration"]
    p(f"training     {it if it is not None else '?'} iterations"
      + (f", {mm.train_seconds:.1f} s" if mm.train_seconds is not None else "")
      + (f" on {mm.device}" if mm.device else "")
      + (f", {mm.world_size} processes (torchrun)" if mm.world_size > 1 else "")
      + (f", effective batch {mm.effective_batch}" if mm.effective_batch else "")
      + f"; history: {info['history_records']} records"
      + ("; optimiser state stored (resumable)" if info["has_optimizer"] else ""))
    if info["heldout_stored"]:
        p(f"held-out     {info['heldout_stored'][0]} examples stored in the file")
    if mm.train_command:
        p(f"command      {mm.train_command}")
    return 0
