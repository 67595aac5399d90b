"""Tests for models/inpainting.py: conditioned sampling (inpainting, denoising, fixed bits, 2-D regions),
image and mask files.

The denoising test pins down what the paper's product chain actually samples. For N(0, 1) data with an
exact reverse process p(x^{t−1}|x^t) = N(√(1−β_t)x^t, β_t) (the forward kernel is reversible with respect
to N(0, 1), so this is the true reverse process), multiplying every step by r = N(y, σ²) gives a
linear-Gaussian chain whose output moments :func:`product_chain_moments` computes exactly. They are NOT
p·r's N(y/(1+σ²), σ²/(1+σ²)): the dropped per-step normalisers Z(x) ≈ r(x) make a long chain drift to
p·r², N(2y/(2+σ²), σ²/(2+σ²)). The ``matched`` start (begin the plain chain at the step whose noise level
equals σ) does give p·r exactly. Monte Carlo with 20,000 samples, tolerance ≈ 5 standard errors.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from models import inpainting as I
from models.checkpoint import load_trajectory
from models.config import ModelConfig
from models.data import DataError
from models.io import LoadedModel, save_model
from models.model import DiffusionModel, StepDistribution

NORM = {"mean": 0.45, "std": 0.25, "levels": 256}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions are ~100× slower with 2 intra-op threads on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def conv_model(T=10, C=1, hw=8, seed=0) -> DiffusionModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(C, hw, hw), arch="conv", hidden=4, conv_layers=1,
                      n_scales=2, dense_layers=1, dense_hidden=8, J=3, time_features=0)
    return DiffusionModel(cfg).eval()


def loaded(model, norm=NORM) -> LoadedModel:
    return LoadedModel(model=model, norm=dict(norm), history={}, meta={})


def image(h=8, w=8, seed=0, c=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w) if c is None else (h, w, c)
    return rng.integers(0, 256, shape).astype(np.uint8)


def hole(h=8, w=8) -> np.ndarray:
    known = np.ones((h, w), bool)
    known[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = False
    return known


def last(steps):
    s = None
    for s in steps:
        pass
    return s


# ------------------------------------------------------------------------------------------------
# inpainting


@pytest.mark.parametrize("method", ["clamp", "annealed", "repaint"])
def test_known_pixels_are_exactly_the_observed_ones(method):
    m = conv_model()
    prep = I.prepare_image(image(), loaded(m))
    known = hole()
    out = last(I.inpaint_steps(m, prep.y, known, method=method, n_samples=3, generator=gen(1), jump_length=3, jump_n=2))
    assert out.t == 0 and out.x.shape == (3, 1, 8, 8)
    kb = torch.from_numpy(known).expand(3, 1, 8, 8)
    assert torch.equal(out.x[kb], prep.y.expand(3, 1, 8, 8)[kb])
    assert torch.isfinite(out.x).all()
    # the unknown pixels were sampled (differ between samples)
    assert not torch.equal(out.x[0][~kb[0]], out.x[1][~kb[1]])


@pytest.mark.parametrize("method", ["clamp", "annealed", "repaint"])
def test_conv_model_inpaints_any_image_size(method):
    m = conv_model()
    prep = I.prepare_image(image(7, 13), loaded(m))
    assert prep.y.shape == (1, 1, 7, 13) and prep.note == ""
    known = hole(7, 13)
    out = last(I.inpaint_steps(m, prep.y, known, method=method, generator=gen(2), jump_length=3, jump_n=2))
    assert out.x.shape == (1, 1, 7, 13)
    k = torch.from_numpy(known)
    assert torch.equal(out.x[0, 0][k], prep.y[0, 0][k])


def test_all_known_mask_returns_the_image():
    m = conv_model()
    prep = I.prepare_image(image(), loaded(m))
    known = np.ones((8, 8), bool)
    for method in I.METHODS:
        steps = list(I.inpaint_steps(m, prep.y, known, method=method, n_samples=2, generator=gen()))
        assert len(steps) == 1 and steps[0].t == 0
        assert torch.equal(steps[0].x, prep.y.expand(2, 1, 8, 8))
    assert "nothing to fill" in I.mask_note(known)
    px = I.to_pixels(steps[0].x[0], NORM)
    np.testing.assert_allclose(px, prep.pixels, atol=1e-5)


def test_no_known_pixel_is_plain_sampling_with_a_warning():
    m = conv_model()
    prep = I.prepare_image(image(), loaded(m))
    known = np.zeros((8, 8), bool)
    assert "plain sampling" in I.mask_note(known)
    with pytest.warns(UserWarning, match="plain sampling"):
        steps = list(I.inpaint_steps(m, prep.y, known, generator=gen()))
    assert [s.t for s in steps] == list(range(10, -1, -1))


def test_step_counts_match_count_inpaint_steps():
    m = conv_model(T=12)
    prep = I.prepare_image(image(), loaded(m))
    for method, kw in [("clamp", {}), ("annealed", {}), ("repaint", dict(jump_length=3, jump_n=3))]:
        steps = list(I.inpaint_steps(m, prep.y, hole(), method=method, generator=gen(), **kw))
        assert len(steps) == I.count_inpaint_steps(12, method, **kw)


def test_bad_arguments_are_clear_errors():
    m = conv_model()
    prep = I.prepare_image(image(), loaded(m))
    with pytest.raises(ValueError, match="method"):
        I.inpaint_steps(m, prep.y, hole(), method="magic")
    with pytest.raises(ValueError, match="mask has shape"):
        I.inpaint_steps(m, prep.y, np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="n_samples"):
        I.inpaint_steps(m, prep.y, hole(), n_samples=0)


# ------------------------------------------------------------------------------------------------
# denoising: the exact product chain vs p·r (see the module docstring)


def exact_model(T=20, seed=0) -> DiffusionModel:
    """A 1-D model whose reverse step is the exact reverse of the forward kernel for N(0, 1) data."""
    cfg = ModelConfig(kernel="gaussian", T=T, example_shape=(1,), arch="mlp", hidden=4, layers=1)
    m = DiffusionModel(cfg).eval()

    def reverse_step(x, k, s=None):
        s = m.schedule_tensors() if s is None else s
        beta = s.beta[k].to(x.dtype)
        return StepDistribution(mean=torch.sqrt(1 - beta) * x, var=beta * torch.ones_like(x))

    m.reverse_step = reverse_step
    return m


N_MC = 20_000


@pytest.mark.parametrize("start", ["prior", "observation"])
def test_product_chain_matches_its_exact_moments_not_p_times_r(start):
    m = exact_model()
    y, sigma = 1.0, 1.0
    x0 = last(I.denoise_steps(m, torch.tensor([[y]]), sigma, n_samples=N_MC, generator=gen(3), start=start)).x
    mean, var = float(x0.mean()), float(x0.var())
    m_exact, v_exact = I.product_chain_moments(m.schedule().detach().numpy(), y, sigma, start=start)
    se = math.sqrt(v_exact / N_MC)
    assert abs(mean - m_exact) < 5 * se + 1e-3
    assert abs(var - v_exact) < 0.03 * v_exact + 5 * v_exact * math.sqrt(2 / N_MC)
    # the chain is close to p·r² (mean 2y/(2+σ²)), clearly not p·r (mean y/(1+σ²))
    assert abs(m_exact - 2 * y / (2 + sigma**2)) < 0.02
    assert abs(mean - y / (1 + sigma**2)) > 0.1


def test_matched_start_samples_p_times_r_exactly():
    m = exact_model()
    abar = m.schedule_tensors().alpha_bar.numpy()
    t_star = 8
    sigma = math.sqrt((1 - abar[t_star - 1]) / abar[t_star - 1])  # a noise level on the schedule
    assert I.matched_start_index(m, sigma) == t_star
    y = 1.5
    steps = list(I.denoise_steps(m, torch.tensor([[y]]), sigma, n_samples=N_MC, generator=gen(4), start="matched"))
    assert steps[0].t == t_star and steps[-1].t == 0 and len(steps) == t_star + 1
    x0 = steps[-1].x
    mean_pr, var_pr = y / (1 + sigma**2), sigma**2 / (1 + sigma**2)
    assert abs(float(x0.mean()) - mean_pr) < 5 * math.sqrt(var_pr / N_MC) + 1e-3
    assert abs(float(x0.var()) - var_pr) < 5 * var_pr * math.sqrt(2 / N_MC) + 1e-3


def test_sigma_units_and_noise():
    assert I.sigma_to_normalised(0.1, NORM) == pytest.approx(0.1 * 255 / 256 / 0.25)
    assert I.sigma_to_normalised(0.1, {}) == pytest.approx(0.1)
    p = np.full((1, 50, 50), 0.5, np.float32)
    a = I.add_noise(p, 0.1, 7)
    np.testing.assert_array_equal(a, I.add_noise(p, 0.1, 7))
    assert a.dtype == np.float32 and abs(float(a.std()) - 0.1) < 0.01


def test_denoise_on_a_conv_model_runs():
    m = conv_model()
    prep = I.prepare_image(image(), loaded(m))
    for start in I.DENOISE_STARTS:
        out = last(I.denoise_steps(m, prep.y, 0.5, n_samples=2, generator=gen(), start=start))
        assert out.t == 0 and out.x.shape == (2, 1, 8, 8) and torch.isfinite(out.x).all()
    with pytest.raises(ValueError, match="sigma"):
        I.denoise_steps(m, prep.y, 0.0)


# ------------------------------------------------------------------------------------------------
# images and units


def test_pixel_units_round_trip():
    p = np.linspace(0, 1, 256, dtype=np.float32).reshape(1, 16, 16)
    z = I.pixels_to_z(p, NORM)
    np.testing.assert_allclose(I.to_pixels(z, NORM), p, atol=1e-6)
    # a pixel maps to the centre of its quantisation bin
    assert z[0, 0, 0] == pytest.approx((0.5 / 256 - 0.45) / 0.25)


def test_prepare_image_converts_and_resizes_for_fixed_size_models():
    cfg = ModelConfig(kernel="gaussian", T=5, example_shape=(64,), arch="mlp", hidden=4, layers=1)
    lm = loaded(DiffusionModel(cfg))
    prep = I.prepare_image(image(24, 32, c=3), lm)
    assert prep.y.shape == (1, 64) and prep.pixels.shape == (1, 8, 8)
    assert "colour→grey" in prep.note and "32×24→8×8" in prep.note
    # a conv model keeps its size, shrinks only with max_side
    m = conv_model()
    assert I.prepare_image(image(24, 32), loaded(m)).y.shape == (1, 1, 24, 32)
    prep = I.prepare_image(image(24, 32), loaded(m), max_side=16)
    assert prep.y.shape == (1, 1, 12, 16) and "longest side 16" in prep.note
    prep = I.prepare_image(image(24, 32), loaded(m), max_side=16, fit="crop")
    assert prep.y.shape == (1, 1, 16, 16) and "cropped the centre 16×16 of 32×24" in prep.note
    np.testing.assert_allclose(prep.pixels[0], image(24, 32)[4:20, 8:24] / 255, atol=1e-6)
    prep = I.prepare_image(image(24, 32, c=3), lm, fit="crop")  # 8×8 model: centre 24×24, then shrink
    assert prep.pixels.shape == (1, 8, 8) and "cropped the centre 24×24" in prep.note
    with pytest.raises(ValueError, match="fit"):
        I.prepare_image(image(), lm, fit="stretch")
    # luminance
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255
    assert I.prepare_image(rgb, loaded(m)).pixels[0, 0, 0] == pytest.approx(0.587, abs=1e-4)
    # grey → colour model
    m3 = conv_model(C=3)
    prep = I.prepare_image(image(), loaded(m3))
    assert prep.y.shape == (1, 3, 8, 8) and "grey→colour" in prep.note


def test_prepare_image_refuses_non_images():
    cfg = ModelConfig(kernel="gaussian", T=5, example_shape=(3,), arch="mlp", hidden=4, layers=1)
    with pytest.raises(ValueError, match="not an image"):
        I.prepare_image(image(), loaded(DiffusionModel(cfg)))
    with pytest.raises(DataError, match="NaN"):
        I.prepare_image(np.full((4, 4), np.nan, np.float32), loaded(conv_model()))


def test_bad_image_files_are_clear_errors(tmp_path):
    m = conv_model()
    good = tmp_path / "good.png"
    Image.fromarray(image(32, 32)).save(good)
    data = good.read_bytes()
    bad = {
        "truncated.png": data[: len(data) // 2],
        "notes.png": b"this is not an image at all\n" * 10,
        "empty.png": b"",
    }
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError) as e:
            I.prepare_image(tmp_path / name, loaded(m))
        assert name in str(e.value)
    with pytest.raises(DataError, match="missing.png"):
        I.prepare_image(tmp_path / "missing.png", loaded(m))
    with pytest.raises(DataError, match="more than the limit"):
        I.prepare_image(good, loaded(m), max_pixels=100)


# ------------------------------------------------------------------------------------------------
# masks


def test_mask_round_trip_and_resize(tmp_path):
    known = hole(10, 14)
    known[0, 0] = False
    p = tmp_path / "mask.png"
    I.write_mask(p, known)
    np.testing.assert_array_equal(I.read_mask(p), known)
    np.testing.assert_array_equal(I.read_mask(p, (10, 14)), known)
    big = I.read_mask(p, (20, 28))
    assert big.shape == (20, 28) and big.dtype == bool
    np.testing.assert_array_equal(big[::2, ::2], known)
    # white = known (RePaint convention)
    with Image.open(p) as im:
        a = np.asarray(im)
    assert a[5, 0] == 255 and a[5, 7] == 0
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write leaves no temporary


def test_bad_mask_files_are_clear_errors(tmp_path):
    p = tmp_path / "mask.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match="mask.png"):
        I.read_mask(p, (8, 8))
    with pytest.raises(ValueError, match="2-D"):
        I.write_mask(tmp_path / "m.png", np.ones((2, 2, 2), bool))


# ------------------------------------------------------------------------------------------------
# files end to end (what `dpm inpaint` / `dpm denoise` call)


def test_inpaint_image_and_denoise_image_write_files(tmp_path):
    m = conv_model()
    save_model(tmp_path / "m.h5", m, norm=NORM)
    img = image(9, 12)
    Image.fromarray(img).save(tmp_path / "img.png")
    known = hole(9, 12)
    I.write_mask(tmp_path / "mask.png", known)
    s = I.inpaint_image(tmp_path / "m.h5", tmp_path / "img.png", tmp_path / "mask.png", tmp_path / "out.png",
                        method="clamp", seed=5, trajectory_path=tmp_path / "traj.h5", n_samples=2)
    assert s["shape"] == [1, 9, 12] and s["n_samples"] == 2 and 0 < s["known_fraction"] < 1
    with Image.open(tmp_path / "out.png") as im:
        out = np.asarray(im)
    assert out.shape == (9, 2 * 12 + 2)
    np.testing.assert_array_equal(out[:, :12][known], img[known])
    np.testing.assert_array_equal(out[:, 14:][known], img[known])
    tr = load_trajectory(tmp_path / "traj.h5")
    assert tr.traj.shape == (11, 2, 1, 9, 12) and list(tr.t) == list(range(10, -1, -1))
    assert tr.meta["kind"] == "inpaint" and tr.meta["method"] == "clamp"
    # same seed, same result
    I.inpaint_image(tmp_path / "m.h5", tmp_path / "img.png", tmp_path / "mask.png", tmp_path / "out2.png",
                    method="clamp", seed=5, n_samples=2)
    assert (tmp_path / "out.png").read_bytes() == (tmp_path / "out2.png").read_bytes()

    d = I.denoise_image(tmp_path / "m.h5", tmp_path / "img.png", 0.1, tmp_path / "den.png", seed=1, sigma_units="pixels",
                        noisy_path=tmp_path / "noisy.png", trajectory_path=tmp_path / "dtraj.h5")
    assert d["sigma_normalised"] == pytest.approx(0.1 * 255 / 256 / 0.25)
    for name in ("den.png", "noisy.png", "dtraj.h5"):
        assert (tmp_path / name).exists()
    with pytest.raises(DataError, match="nothing.png"):
        I.inpaint_image(tmp_path / "m.h5", tmp_path / "nothing.png", tmp_path / "mask.png", tmp_path / "o.png")


def test_save_png_layouts(tmp_path):
    I.save_png(tmp_path / "a.png", np.zeros((3, 4, 5), np.float32))
    I.save_png(tmp_path / "b.png", np.ones((4, 5), np.float32))
    I.save_png(tmp_path / "c.png", np.ones((3, 1, 4, 5), np.float32))
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "c.png") as c:
        assert a.mode == "RGB" and a.size == (5, 4)
        assert c.size == (3 * 5 + 4, 4)


# ------------------------------------------------------------------------------------------------
# binary and 2-D models


def test_fix_bits_keeps_fixed_bits():
    cfg = ModelConfig(kernel="binomial", T=10, example_shape=(12,), arch="mlp", hidden=8, layers=1,
                      activation="sigmoid", readout="per_step", p_bar=0.2, schedule="binomial")
    m = DiffusionModel(cfg).eval()
    bits = np.full(12, -1)
    bits[:3] = 1
    bits[3:6] = 0
    steps = list(I.fix_bits_steps(m, bits, n_samples=50, generator=gen()))
    for st in steps:  # fixed from x^T on (r constant in t)
        assert (st.x[:, :3] == 1).all() and (st.x[:, 3:6] == 0).all()
    x0 = steps[-1].x
    assert set(np.unique(x0.numpy())) <= {0.0, 1.0}
    assert 0 < float(x0[:, 6:].mean()) < 1  # the free bits vary
    with pytest.raises(ValueError, match="0, 1 or -1"):
        I.fix_bits_steps(m, np.full(12, 2))
    with pytest.raises(ValueError, match="binomial"):
        I.fix_bits_steps(conv_model(), np.zeros(64))


def test_regions_on_the_plane():
    cfg = ModelConfig(kernel="gaussian", T=10, example_shape=(2,), arch="mlp", hidden=8, layers=1)
    m = DiffusionModel(cfg).eval()
    w = np.zeros((32, 32), np.float32)
    w[20:28, 20:28] = 1  # upper right of [-3, 3]²
    x = last(region_steps := I.region_steps(m, w, (-3, 3, -3, 3), n=200, generator=gen())).x
    assert x.shape == (200, 2) and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="empty"):
        I.region_steps(m, np.zeros((8, 8)), (-3, 3, -3, 3))
    # the soft region's log r: 0 inside, −d²/(2s²) outside, with a gradient pointing in from afar
    L = I.region_log_r(w, (-3, 3, -3, 3), 0.5)
    assert L[24, 24] == 0 and L[0, 0] < -20
    log_r = I.GridLogR(L, (-3, 3, -3, 3), 0.5)
    p = torch.tensor([[-2.0, -2.0], [-5.0, 1.0]], requires_grad=True)
    (g,) = torch.autograd.grad(log_r(p).sum(), p)
    assert (g[0] > 0).all() and g[1, 0] > 0  # towards the upper right, also from outside the extent
    # on the exact N(0, I) model, the region pulls most samples in; the bare indicator barely does
    m2 = exact_model(T=20)
    m2.config = cfg.replace(T=20)
    inside = []
    for soft in (0.0, 0.25):
        x = last(I.region_steps(m2, w, (-3, 3, -3, 3), n=2000, generator=gen(5), softness=soft)).x
        inside.append(float(((x[:, 0] > 0.75) & (x[:, 0] < 2.25) & (x[:, 1] > 0.75) & (x[:, 1] < 2.25)).float().mean()))
    prior = (0.5 * (math.erf(2.25 / math.sqrt(2)) - math.erf(0.75 / math.sqrt(2)))) ** 2  # ≈ 0.046
    assert inside[0] < 0.25 and inside[1] > 0.6 > 10 * prior
    # the Gaussian r is an exact product: on the exact 2-D N(0, I) model it follows product_chain_moments
    m2 = exact_model(T=20)
    m2.config = cfg.replace(T=20)  # 2-D
    steps = list(I.gaussian_region_steps(m2, (1.0, -1.0), 0.7, n=N_MC // 2, generator=gen(9)))
    x0 = steps[-1].x
    mu, var = I.product_chain_moments(m2.schedule().detach().numpy(), 1.0, 0.7, start="prior")
    assert float(x0[:, 0].mean()) == pytest.approx(mu, abs=0.03)
    assert float(x0[:, 1].mean()) == pytest.approx(-mu, abs=0.03)
    assert float(x0[:, 0].var()) == pytest.approx(var, rel=0.06)
