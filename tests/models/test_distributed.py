"""Training under PyTorch's launcher (models/distributed.py): two CPU processes with gloo.

* two ranks started by hand (the environment torchrun would give them) train the Trainer in step: their
  parameters, the learned β coefficients included, are equal afterwards, though each drew its own data;
* ``python -m torch.distributed.run --nproc_per_node=2 -m models.cli train …`` writes a model file that
  records world size 2 and the effective batch, and a plain ``dpm train --resume`` continues it (N = 1).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from models.distributed import Launch, launch_from_env, rank_seed
from models.files import load_model
from models.metadata import ModelMeta

pytest.importorskip("torch.distributed")

WORKER = textwrap.dedent("""
    import sys, numpy as np, torch
    torch.set_num_threads(1)
    from models import distributed
    from models.model import DiffusionModel
    from models.presets import PRESETS, load_data
    from models.training import TrainConfig, Trainer
    launch, device = distributed.start(distributed.launch_from_env(), torch.device("cpu"))
    p = PRESETS["swissroll"]
    torch.manual_seed(100 + launch.rank)  # different initial weights: DDP must broadcast rank 0's
    model = DiffusionModel(p.model.replace(T=10))
    tc = TrainConfig(steps=6, batch_size=32, steps_per_example=2, report_every=3, n_eval=32, eval_steps=4, ema=0.9)
    trainer = Trainer(model, load_data(preset="swissroll"), tc, launch=launch)
    records = [r for r in trainer.run()]
    x0 = load_data(preset="swissroll").sample_train(4, trainer.data_generator)
    params = torch.cat([q.detach().double().reshape(-1) for q in trainer.model.parameters()]).numpy()
    np.savez(sys.argv[1], params=params, coeffs=trainer.model.schedule.coeffs.detach().numpy(), x0=x0.numpy(),
             n_records=len(records), iteration=trainer.iteration)
    distributed.stop()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", DPM_THREADS="1", **extra)
    return env


def test_launch_from_env_and_rank_seeds():
    assert launch_from_env({}) is None
    la = launch_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert la == Launch(world_size=4, rank=2, local_rank=0) and not la.is_writer
    with pytest.raises(ValueError, match="RANK"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "x"})
    with pytest.raises(ValueError, match="fit"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert rank_seed(5, None) == 5 and rank_seed(5, Launch(2, 0, 0)) == 5 and rank_seed(5, Launch(2, 1, 1)) != 5


def test_two_ranks_train_in_step(tmp_path):
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = _env(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / f"r{rank}.npz")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    r0, r1 = (np.load(tmp_path / f"r{r}.npz") for r in range(2))
    assert int(r0["iteration"]) == int(r1["iteration"]) == 6
    np.testing.assert_array_equal(r0["params"], r1["params"])  # the same parameters on both ranks …
    np.testing.assert_array_equal(r0["coeffs"], r1["coeffs"])
    assert np.abs(r0["coeffs"]).max() > 0  # … the learned β among them, and it moved
    assert not np.array_equal(r0["x0"], r1["x0"])  # each rank drew its own data
    assert int(r0["n_records"]) == 3 and int(r1["n_records"]) == 0  # rank 0 alone evaluates and reports


def test_torchrun_cli_writes_world_size_and_plain_resume_continues(tmp_path):
    out = tmp_path / "ddp.h5"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "models.cli",
           "train", "swissroll", "--steps", "8", "--T", "10", "--batch-size", "32", "--report-every", "4",
           "--n-eval", "64", "--threads", "1", "--device", "cpu", "--autosave-seconds", "0", "--out", str(out)]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.count("it 8 ") == 2 and "2 processes (gloo, effective batch 64)" in r.stderr  # rank 0 only
    meta = ModelMeta.from_dict(load_model(out).meta)
    assert meta.world_size == 2 and meta.effective_batch == 64 and meta.iterations == 8 and meta.complete
    assert np.isfinite(meta.recorded.K_bits)

    from models.cli import main

    out2 = tmp_path / "plain.h5"
    assert main(["train", "--resume", str(out), "--steps", "3", "--n-eval", "64", "--threads", "1", "--quiet",
                 "--out", str(out2)]) == 0
    meta2 = ModelMeta.from_dict(load_model(out2).meta)
    assert meta2.iterations == 11 and meta2.world_size == 1 and meta2.effective_batch == 32


def test_update_skips_a_non_finite_step_with_one_check_and_keeps_the_loss_on_device():
    """The step every rank takes: a NaN anywhere makes the clipping norm non-finite, and the update is
    skipped (parameters, optimiser state and iteration untouched); finite losses are summed on the device."""
    import torch

    from models.model import DiffusionModel
    from models.presets import PRESETS, load_data
    from models.training import TrainConfig, Trainer

    torch.manual_seed(0)
    data = load_data(preset="swissroll")
    tr = Trainer(DiffusionModel(PRESETS["swissroll"].model.replace(T=8)), data,
                 TrainConfig(steps=None, batch_size=16, n_eval=16, eval_steps=2))
    assert tr.update() and tr.iteration == 1 and tr._loss_n == 1 and tr._loss_sum.dtype == torch.float64
    before = [p.detach().clone() for p in tr.model.parameters()]
    ema_before = [p.detach().clone() for p in tr.ema_model.parameters()]
    state_before = {k: {n: v.clone() for n, v in s.items()} for k, s in tr.optimizer.state.items()}

    class NaNData:
        def __getattr__(self, name):
            return getattr(data, name)

        def sample_train(self, n, generator):
            x = data.sample_train(n, generator)
            x[0, 0] = float("nan")
            return x

    tr.data = NaNData()
    assert tr.update() is False and tr.iteration == 1 and tr._loss_n == 1
    for a, b in zip(before, tr.model.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(ema_before, tr.ema_model.parameters()):
        assert torch.equal(a, b)
    for k, s in tr.optimizer.state.items():
        assert all(torch.equal(v, state_before[k][n]) for n, v in s.items())
    tr.data = data
    assert tr.update() and tr.iteration == 2
    assert np.isfinite(tr._interval_loss()) and tr._loss_n == 0
