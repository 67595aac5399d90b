"""The inpainting panel's form → library call (explorer/panels/inpaint/request.py), without Qt widgets:
which method each page offers, what each form runs, the checks that reach the user, and the thinning
of a run into frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.panels.inpaint import request as R
from explorer_helpers import IMAGE_NORM, tiny_image_model
from models import conditioning
from models.config import ModelConfig
from models.model import DiffusionModel

NORM = IMAGE_NORM
pytestmark = pytest.mark.usefixtures("one_thread")  # every test here on one torch thread (tests/conftest.py)


def image_model(T=6):
    return tiny_image_model(T, side=8)


def points_model(T=6):
    torch.manual_seed(0)
    return DiffusionModel(ModelConfig(kernel="gaussian", T=T, example_shape=(2,), arch="mlp", hidden=8,
                                      layers=1)).eval()


def bits_model(T=6):
    torch.manual_seed(0)
    return DiffusionModel(ModelConfig(kernel="binomial", T=T, example_shape=(10,), arch="mlp", hidden=8, layers=1,
                                      activation="sigmoid", readout="per_step", p_bar=0.2,
                                      schedule="binomial")).eval()


def drain(req: R.Request):
    return list(R.stream(req))


def test_pages_and_methods_come_from_the_library():
    assert R.page_for("images", (3, 32, 32)) == "image"
    assert R.page_for("points", (2,)) == "plane"
    assert R.page_for("points", (5,)) is None
    assert R.page_for("binary", (20,)) == "bits"
    assert R.methods_for("inpaint") == tuple(conditioning.METHODS)
    assert R.methods_for("denoise") == tuple(conditioning.DENOISE_STARTS)
    assert R.methods_for("region") == tuple(conditioning.REGION_METHODS)
    assert "repaint" not in R.methods_for("bits") and "smc" in R.methods_for("bits")
    for topic, texts in R.METHOD_TEXT.items():  # every offered method is labelled and explained
        assert set(R.methods_for(topic)) <= set(texts), topic
    assert R.DEFAULT_SAMPLES == {"image": 2, "plane": 500, "bits": 16}


def test_tooltips_state_each_methods_bias():
    tips = R.METHOD_TEXT["inpaint"]
    assert "0.49 sd" in tips["clamp"].tip and "41 %" in tips["clamp"].tip
    assert "−0.31 sd" in tips["repaint"].tip and "+17 %" in tips["repaint"].tip
    assert "exactly as the particle count grows" in tips["smc"].tip
    assert "+3.5 %" in R.METHOD_TEXT["denoise"]["matched"].tip
    assert "p·r²" in R.METHOD_TEXT["gaussian"]["shift"].tip


@pytest.mark.parametrize("method", ["clamp", "annealed", "repaint", "smc"])
def test_inpainting_form_runs_and_keeps_the_known_pixels(method):
    m = image_model()
    y = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    known = np.ones((8, 8), bool)
    known[2:6, 2:6] = False
    form = R.ImageForm(y=y, known=known, method=method, sampling=R.Sampling(n=2, seed=3, particles=3),
                       jump_length=2, jump_n=2)
    req = R.build_request(m, NORM, form)
    assert req.meta["method"] == method and req.meta["kind"] == "inpaint" and req.meta["seed"] == 3
    assert ("particles" in req.meta) == (method == "smc")
    frames = drain(req)
    assert len(frames) == req.total and frames[-1].t == 0
    x0 = frames[-1].x
    assert x0.shape == (2, 1, 8, 8) and np.isfinite(x0).all()
    np.testing.assert_array_equal(x0[:, 0][:, known], np.broadcast_to(y.numpy()[0, 0][known], (2, known.sum())))
    ess = [f.ess for f in frames if f.ess is not None]
    assert (len(ess) == len(frames)) if method == "smc" else not ess
    assert all(0 < e <= 1 for e in ess)
    # the same form and seed give the same samples
    np.testing.assert_array_equal(drain(R.build_request(m, NORM, form))[-1].x, x0)


def test_odd_masks_come_with_a_note():
    m = image_model()
    y = torch.zeros(1, 1, 8, 8)
    req = R.build_request(m, NORM, R.ImageForm(y=y, known=np.ones((8, 8), bool)))
    assert req.total == 1 and "nothing to fill" in req.notes[0]
    req = R.build_request(m, NORM, R.ImageForm(y=y, known=np.zeros((8, 8), bool)))
    assert "plain sampling" in req.notes[0]


@pytest.mark.parametrize("start", ["observation", "matched", "smc"])
def test_denoising_form(start):
    m = image_model()
    y = torch.zeros(1, 1, 8, 8)
    form = R.ImageForm(y=y, known=np.ones((8, 8), bool), task="denoise", method=start, sigma_pixels=0.3,
                       sampling=R.Sampling(n=1, seed=0, particles=2))
    req = R.build_request(m, NORM, form)
    assert req.meta["kind"] == "denoise" and req.meta["sigma_pixels"] == pytest.approx(0.3)
    frames = drain(req)
    assert len(frames) == req.total and frames[-1].t == 0 and np.isfinite(frames[-1].x).all()
    # the noise added is drawn from the seed, the same for the preview as for the run
    sz = R.img.sigma_to_normalised(0.3, NORM)
    a, b = R.noisy_observation(y, sz, 5), R.noisy_observation(y, sz, 5)
    assert torch.equal(a, b) and a.std() == pytest.approx(sz, rel=0.3)


def test_plane_forms():
    m = points_model()
    w = np.zeros((R.PLANE_GRID, R.PLANE_GRID), np.float32)
    with pytest.raises(ValueError, match="region is empty"):
        R.build_request(m, {}, R.PlaneForm(weights=w))
    w[40:50, 40:50] = 1
    for method in R.methods_for("region"):
        req = R.build_request(m, {}, R.PlaneForm(weights=w, method=method, sampling=R.Sampling(n=30, particles=4)))
        x0 = drain(req)[-1].x
        assert x0.shape == (30, 2) and np.isfinite(x0).all()
    req = R.build_request(m, {}, R.PlaneForm(r="gaussian", centre=(1.0, -1.0), std=0.3,
                                             sampling=R.Sampling(n=20)))
    assert req.meta["kind"] == "gaussian_region" and drain(req)[-1].x.shape == (20, 2)
    with pytest.raises(ValueError, match="std"):
        R.build_request(m, {}, R.PlaneForm(r="gaussian", std=0.0))


@pytest.mark.parametrize("method", ["clamp", "smc"])
def test_bits_form_fixes_the_bits(method):
    m = bits_model()
    bits = np.full(10, -1)
    bits[0], bits[1] = 1, 0
    req = R.build_request(m, {}, R.BitsForm(bits=bits, method=method, sampling=R.Sampling(n=8, particles=4)))
    frames = drain(req)
    x0 = frames[-1].x
    assert x0.shape == (8, 10) and (x0[:, 0] == 1).all() and (x0[:, 1] == 0).all()


def test_bad_forms_are_refused_with_a_message():
    m = image_model()
    y = torch.zeros(1, 1, 8, 8)
    k = np.ones((8, 8), bool)
    with pytest.raises(ValueError, match="not offered"):
        R.build_request(m, NORM, R.ImageForm(y=y, known=k, method="shift"))
    with pytest.raises(ValueError, match="samples"):
        R.build_request(m, NORM, R.ImageForm(y=y, known=k, sampling=R.Sampling(n=0)))
    with pytest.raises(ValueError, match="particle"):
        R.build_request(m, NORM, R.ImageForm(y=y, known=k, method="smc", sampling=R.Sampling(particles=0)))
    with pytest.raises(ValueError, match="limit"):
        R.build_request(m, NORM, R.ImageForm(y=y, known=k, method="smc", sampling=R.Sampling(n=1000, particles=1000)))
    with pytest.raises(ValueError, match="no model"):
        R.build_request(None, NORM, R.ImageForm(y=y, known=k))
    with pytest.raises(ValueError, match="Gaussian"):
        R.build_request(bits_model(), {}, R.ImageForm(y=torch.zeros(1, 10), known=np.ones(10, bool),
                                                      method="repaint"))


def test_stream_keeps_every_kth_state_and_the_last():
    m = points_model(T=10)
    w = np.ones((R.PLANE_GRID, R.PLANE_GRID), np.float32)
    req = R.build_request(m, {}, R.PlaneForm(weights=w, sampling=R.Sampling(n=5)))
    frames = list(R.stream(req, stride=4))
    assert [f.index for f in frames] == list(range(11))
    kept = [f.index for f in frames if f.x is not None]
    assert kept == [0, 4, 8, 10] and frames[-1].t == 0
    run = R.Run(req)
    for f in frames:
        run.add(f)
    assert run.times == [10, 6, 2, 0] and len(run.frames) == 4
