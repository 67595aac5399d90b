"""Training under PyTorch's launcher: ``torchrun --nproc_per_node=N $(command -v dpm) train …`` runs
DistributedDataParallel, gloo on CPUs and NCCL on GPUs (one device per local rank).

The launcher tells each process who it is through its environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); :func:`launch_from_env` reads that and :func:`start`
joins the process group. Each rank draws its own data and noise (its seeds offset by the rank, see
:func:`rank_seed`) and computes the loss through :class:`LossModule`, a module whose forward is the
training estimate of −K, wrapped in DDP: DDP broadcasts every parameter from rank 0 when it wraps the
module and averages every gradient on backward, the learned β schedule's coefficients included, so all
ranks hold the same parameters after every update. The effective batch is ``world_size × batch_size``.

Every rank must take the same collective steps: once per update the ranks agree (:func:`agree`) on the
training time (rank 0's clock decides a ``--seconds`` budget and the learning-rate decay) and on
whether any rank was asked to stop, so they stop at the same iteration. Rank 0 alone evaluates,
prints, holds the output lock and writes the model file.

Nothing here is imported by a plain single-process run except :class:`LossModule`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .bound import LN2, check_objective, hybrid_terms, sampled_K_nats, stochastic_K_nats

__all__ = ["Launch", "launch_from_env", "start", "stop", "LossModule", "wrap", "agree", "rank_seed",
           "broadcast_flag", "RANK_SEED_STRIDE"]

#: seeds of rank r are offset by r × this (rank 0 keeps a single-process run's seeds)
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a launcher's job: ``world_size`` processes, this one ``rank``
    (0 = the one that writes), ``local_rank`` on its node (its GPU index), and the backend joined."""

    world_size: int
    rank: int
    local_rank: int
    backend: str = ""

    @property
    def is_writer(self) -> bool:
        return self.rank == 0


def launch_from_env(env=None) -> Launch | None:
    """The launcher's description of this process (``torchrun`` sets ``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``), or None for a plain process. A malformed value is a ValueError naming it."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    vals = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        raw = env.get(key, "0" if key == "LOCAL_RANK" else "")
        try:
            vals[key] = int(raw)
        except ValueError:
            raise ValueError(f"the launcher's {key}={raw!r} is not an integer") from None
    ws, rank, local = vals["WORLD_SIZE"], vals["RANK"], vals["LOCAL_RANK"]
    if ws < 1 or not 0 <= rank < ws or local < 0:
        raise ValueError(f"the launcher's WORLD_SIZE={ws}, RANK={rank}, LOCAL_RANK={local} do not fit together")
    return Launch(world_size=ws, rank=rank, local_rank=local)


def start(launch: Launch, device: torch.device) -> tuple[Launch, torch.device]:
    """Join the launcher's process group: NCCL when ``device`` is CUDA (this rank then trains on
    ``cuda:LOCAL_RANK``), gloo on the CPU. Returns the launch with its backend and this rank's device."""
    import torch.distributed as dist

    if device.type == "cuda":
        if launch.local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {launch.local_rank} has no GPU of its own "
                             f"({torch.cuda.device_count()} visible); start at most that many processes per node")
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        kw = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, **kw)
    return Launch(launch.world_size, launch.rank, launch.local_rank, backend), device


def stop(ok: bool = True) -> None:
    """Leave the process group (no-op when none was joined). After a run that ended well (``ok``) every
    rank first waits for the others — rank 0 evaluates and saves after the last update, the others are
    done by then — so that all leave together: leaving is a collective step, and a rank that destroyed
    the group while rank 0 was still in it was seen to abort at exit (gloo, "terminate called without an
    active exception"), failing the launch. After an error the group is left without waiting (a peer
    may never arrive) and without destroying it (that could block on a peer stuck in a collective)."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if not ok:
        return
    if dist.get_backend() == "gloo":  # rank 0's evaluation may outlast the group's default timeout
        dist.monitored_barrier(timeout=datetime.timedelta(days=7), wait_all_ranks=True)
    else:
        dist.barrier()
    dist.destroy_process_group()


def rank_seed(seed: int, launch: Launch | None) -> int:
    """This rank's seed for ``seed``: unchanged on rank 0 and in a plain run."""
    return int(seed) + (launch.rank * RANK_SEED_STRIDE if launch is not None else 0)


class LossModule(nn.Module):
    """The training objective as a module, so that DDP's reducer sees every parameter it uses:
    forward(x0 [B, *S], generator) → (objective, −K per dimension in bits), both 0-d tensors.

    −K is estimated with one random step per example (:func:`models.bound.stochastic_K_nats`) or
    ``steps_per_example`` stratified steps (:func:`models.bound.sampled_K_nats`); §2.4.1, the β gradient
    by reparameterisation. With ``objective="K"`` (the paper's) the objective is that −K. With
    ``objective="hybrid"`` (Gaussian kernel, ε-style ``posterior`` parameterisation only; Nichol &
    Dhariwal 2021's L_hybrid) it is the mean squared error of the predicted noise, ‖ε̂ − ε‖² per
    dimension, plus 1/T of −K computed with the reverse mean held fixed, so the mean learns from the
    noise regression and the variance from the bound (models/README.md, **Training objective**).
    The reported −K is the same number either way."""

    def __init__(self, model: nn.Module, steps_per_example: int = 1, objective: str = "K"):
        super().__init__()
        self.model = model
        self.steps_per_example = int(steps_per_example)
        self.objective = check_objective(objective, model.config)
        self.D = int(torch.Size(model.config.example_shape).numel())
        self._to_neg_bits = -1.0 / (LN2 * self.D)  # nats per example → −(bits per dimension)

    def forward(self, x0: torch.Tensor, generator: torch.Generator | None = None):
        if self.objective == "hybrid":
            mse, K = hybrid_terms(self.model, x0, self.steps_per_example, generator)
            neg_K = K.mean() * self._to_neg_bits
            return mse.mean() + neg_K / self.model.T, neg_K.detach()
        if self.steps_per_example > 1:
            K = sampled_K_nats(self.model, x0, self.steps_per_example, generator)
        else:
            K = stochastic_K_nats(self.model, x0, generator)
        neg_K = K.mean() * self._to_neg_bits  # −K in bits per dimension, the scale-free objective
        return neg_K, neg_K.detach()


def wrap(module: LossModule, launch: Launch | None, device: torch.device) -> nn.Module:
    """``module`` itself in a plain run; under a launcher, DDP around it (parameters broadcast from
    rank 0 now, gradients averaged on every backward)."""
    if launch is None:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    import inspect

    ids = [device.index] if device.type == "cuda" else None
    # the buffers (base β, bump bases) are constants: no need to re-send them before every forward
    kw = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
          else {"broadcast_buffers": False})
    return DDP(module, device_ids=ids, output_device=device.index if ids else None, **kw)


def agree(launch: Launch | None, elapsed: float, stop_here: bool, device: torch.device) -> tuple[float, bool]:
    """One collective per update: every rank gets rank 0's ``elapsed`` seconds and whether any rank
    wants to stop. In a plain run, the arguments unchanged."""
    if launch is None:
        return elapsed, stop_here
    import torch.distributed as dist

    v = torch.tensor([elapsed if launch.rank == 0 else 0.0, 1.0 if stop_here else 0.0], dtype=torch.float64,
                     device=device)
    dist.all_reduce(v)
    out = v.tolist()
    return out[0], out[1] > 0


def broadcast_flag(launch: Launch | None, flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (in a plain run, ``flag``)."""
    if launch is None:
        return flag
    import torch.distributed as dist

    v = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=device)
    dist.broadcast(v, 0)
    return bool(v.item() > 0)
