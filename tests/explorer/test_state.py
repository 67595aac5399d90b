"""AppState without a window: signals, schedule curves (entropy bounds of Eq. 24 in bits, the β_1 cap,
models/README.md, Ceilings), β edits, frames, trajectory export round trip, the drawn data set."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from explorer_helpers import spiral_points, tiny_session


@pytest.fixture
def state(qapp):
    from explorer.state import AppState

    s = AppState()
    sess = tiny_session(T=10)
    s.set_session(sess.model, sess.data)
    return s


def test_schedule_curves_are_the_kernel_bounds_in_bits(state):
    from models.kernels import ScheduleTensors

    c = state.curves
    beta = state.model.schedule().detach().numpy()
    s = ScheduleTensors.from_beta(torch.from_numpy(beta.copy()))
    lo, up = state.model.kernel.entropy_bounds(s)
    np.testing.assert_allclose(c.entropy_upper_bits, up.numpy() / math.log(2))
    np.testing.assert_allclose(c.entropy_lower_bits, lo.numpy() / math.log(2))
    np.testing.assert_allclose(c.alpha_bar, np.cumprod(1 - beta))
    assert np.all(c.entropy_lower_bits <= c.entropy_upper_bits + 1e-12)
    assert math.isclose(c.cap_bits_per_dim, 0.5 * math.log2((1 - np.prod(1 - beta)) / beta[0]))
    assert math.isclose(c.cap_bits, 2 * c.cap_bits_per_dim)  # 2-D points: bits per point
    assert np.isnan(c.kl_bits_per_step).all() and np.isnan(c.reverse_entropy_bits).all()


def test_set_betas_emits_and_keeps_the_network(qtbot, state):
    net = {k: v.clone() for k, v in state.model.state_dict().items() if not k.startswith("schedule.")}
    beta = np.linspace(1e-3, 0.3, 10)
    with qtbot.waitSignals([state.schedule_changed, state.curves_changed], timeout=60_000):
        state.set_betas(beta)
    np.testing.assert_allclose(state.model.schedule().detach().numpy()[0], 1e-3)
    np.testing.assert_allclose(state.curves.beta, beta)
    for k, v in net.items():
        torch.testing.assert_close(state.model.state_dict()[k], v)
    with pytest.raises(ValueError):
        state.set_betas(np.full(5, 0.1))


def test_frames_are_clamped_and_directions_checked(state):
    from explorer.state import Trajectory

    traj = Trajectory("reverse", np.zeros((11, 4, 2), np.float32), np.arange(11), "points")
    state.set_trajectory(traj)
    state.set_frame(99)
    assert state.frame == 10
    state.set_frame(-3)
    assert state.frame == 0
    with pytest.raises(ValueError):
        state.set_direction("sideways")
    with pytest.raises(ValueError):
        state.set_training("sprinting")


def test_drawn_data_set_behaves_like_a_data_set():
    from explorer.drawn import DrawnDataSet

    d = DrawnDataSet(spiral_points(500))
    assert d.n_train + d.n_heldout == 500 and d.n_heldout == 50
    z = d.heldout()
    assert z.dtype == torch.float32 and z.shape == (50, 2)
    assert torch.equal(z, d.heldout())  # fixed
    x = d.sample_train(4000, torch.Generator().manual_seed(0)).numpy()
    assert abs(x.mean(0)).max() < 0.1 and abs(x.var(0).mean() - 1) < 0.15  # normalised
    np.testing.assert_allclose(d.display(d.norm.forward(spiral_points(5))), spiral_points(5), atol=1e-5)
    with pytest.raises(ValueError):
        DrawnDataSet(np.zeros((5, 2)))


def test_trajectory_file_round_trip(tmp_path, state):
    from explorer.export import load_trajectory_file, save_trajectory_file
    from explorer.state import History, Trajectory

    frames = np.random.default_rng(0).standard_normal((5, 7, 2)).astype(np.float32)
    traj = Trajectory("forward", frames, np.array([0, 2, 4, 6, 8]), "points")
    hist = History()
    hist.append(10, -1.0, -1.1, 3.0)
    save_trajectory_file(tmp_path / "t.h5", traj, curves=state.curves, history=hist, unit="bits/point",
                         source={"seed": 0})
    t2, curves, h2, meta = load_trajectory_file(tmp_path / "t.h5")
    np.testing.assert_array_equal(t2.frames, frames)
    assert t2.direction == "forward" and meta["unit"] == "bits/point"
    np.testing.assert_allclose(curves.entropy_upper_bits, state.curves.entropy_upper_bits)
    assert np.isnan(curves.kl_bits_per_step).all()  # NaN survives as null
    assert h2.K_heldout_bits == [-1.1]


def test_render_helpers():
    from explorer.render import arrow_segments, path_polylines, tile_images

    x = np.random.default_rng(0).random((10, 1, 4, 5)).astype(np.float32)
    m = tile_images(x)
    assert m.shape == (3 * 5 - 1, 4 * 6 - 1)
    np.testing.assert_array_equal(m[5:9, 6:11], x[5, 0])
    seg = arrow_segments(np.zeros((2, 2)), np.array([[2.0, 0.0], [0.0, 1.0]]), 0.5)
    assert seg.shape == (12, 2) and np.allclose(seg[1], [0.5, 0.0]) and np.allclose(seg[7], [0.0, 0.25])
    pl = path_polylines(np.zeros((6, 10, 2), np.float32), 5, 2, 3)
    assert pl.shape == (3 * 5, 2) and np.isnan(pl[4]).all()
