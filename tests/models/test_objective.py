"""The training objectives (models/README.md, **Training objective**): the paper's −K and the hybrid
noise regression + −K/T of ε-style Gaussian models."""
from __future__ import annotations

import math

import pytest
import torch

from models.bound import check_objective, hybrid_terms, sampled_K_nats, stochastic_K_nats
from models.config import ModelConfig
from models.distributed import LossModule
from models.model import DiffusionModel
from models.presets import load_data
from models.training import TrainConfig, Trainer


def _image_model(param="posterior", kernel="gaussian"):
    torch.manual_seed(0)
    return DiffusionModel(ModelConfig(kernel=kernel, T=50, example_shape=(1, 6, 6), arch="unet", hidden=8,
                                      conv_layers=1, n_scales=2, time_features=8, schedule="reference",
                                      param=param))


@pytest.mark.parametrize("n_steps", [1, 4])
def test_hybrid_mse_is_the_noise_error_of_the_network_and_K_is_unchanged(n_steps):
    m = _image_model()
    x0 = torch.randn(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    mse, K = hybrid_terms(m, x0, n_steps, torch.Generator().manual_seed(3))
    # the same draws, directly: the network's ε̂ against the noise that made x^{k+1}
    g = torch.Generator().manual_seed(3)
    s = m.schedule_tensors()
    if n_steps == 1:
        k = torch.randint(1, m.T, (5,), generator=g)
        x_rep = x0
        K_ref = stochastic_K_nats(m, x0, torch.Generator().manual_seed(3))
    else:
        u = torch.rand(5, 1, generator=g)
        k = (1 + torch.floor((torch.arange(n_steps)[None] + u) * (m.T - 1) / n_steps)).long().reshape(-1)
        x_rep = x0.repeat_interleave(n_steps, dim=0)
        K_ref = sampled_K_nats(m, x0, n_steps, torch.Generator().manual_seed(3))
    noise = m.kernel.noise_like(x_rep, g)
    eps_hat = m.net(m.kernel.q_sample(x_rep, k, s, noise), k)[:, 0]
    direct = ((eps_hat - noise) ** 2).mean(dim=(1, 2, 3)).reshape(5, n_steps).mean(1)
    torch.testing.assert_close(mse, direct, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(K, K_ref)


def test_loss_module_returns_the_hybrid_objective_and_the_same_minus_K():
    m = _image_model()
    x0 = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    mse, K = hybrid_terms(m, x0, 1, torch.Generator().manual_seed(2))
    objective, neg_K = LossModule(m, 1, "hybrid")(x0, torch.Generator().manual_seed(2))
    neg_K_bits = -K.mean() / math.log(2) / 36
    assert objective.requires_grad and not neg_K.requires_grad
    torch.testing.assert_close(neg_K, neg_K_bits.detach())
    torch.testing.assert_close(objective.double(), (mse.mean() + neg_K_bits / m.T).detach().double())
    plain, plain_neg_K = LossModule(m, 1, "K")(x0, torch.Generator().manual_seed(2))
    torch.testing.assert_close(plain.detach(), plain_neg_K)
    torch.testing.assert_close(plain_neg_K, neg_K)  # the same draws: the same −K either way


def test_hybrid_mean_gradient_comes_from_the_regression_alone():
    """With the regression removed, the mean output gets no gradient: perturb only the mean channel's
    output and check the bound term's value moves but its gradient wrt that channel is zero."""
    m = _image_model()
    x0 = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    captured = {}

    def hook(_mod, _inp, out):
        out.retain_grad()
        captured["z"] = out
        return out

    h = m.net.register_forward_hook(hook)
    _, K = hybrid_terms(m, x0, 1, torch.Generator().manual_seed(2))
    (-K.sum()).backward()
    h.remove()
    g = captured["z"].grad
    assert torch.count_nonzero(g[:, 0]) == 0  # the mean channel: held fixed in the bound
    assert torch.count_nonzero(g[:, 1]) > 0  # the variance channel: trained by the bound


@pytest.mark.parametrize("param,kernel", [("paper", "gaussian"), ("code", "gaussian"), ("posterior", "binomial")])
def test_hybrid_is_refused_where_it_has_no_meaning(param, kernel):
    cfg = _image_model().config.replace(param=param, kernel=kernel)
    with pytest.raises(ValueError, match="hybrid objective needs"):
        check_objective("hybrid", cfg)
    with pytest.raises(ValueError, match="objective must be one of"):
        check_objective("simple", cfg)
    with pytest.raises(ValueError, match="objective must be one of"):
        TrainConfig(objective="nope")


def test_trainer_with_the_hybrid_objective_records_minus_K_and_learns():
    data = load_data(preset="digits")
    cfg = ModelConfig(kernel="gaussian", T=20, example_shape=(1, 8, 8), arch="unet", hidden=8, conv_layers=1,
                      n_scales=2, time_features=8, schedule="reference", param="posterior")

    def trainer(objective):
        torch.manual_seed(0)
        return Trainer(DiffusionModel(cfg), data, TrainConfig(steps=None, batch_size=16, lr=3e-3, n_eval=16,
                                                              objective=objective, ema=None))

    hybrid, plain = trainer("hybrid"), trainer("K")
    # the first update sees the same model and draws: the recorded loss is the same −K estimate
    assert hybrid.step() == pytest.approx(plain.step(), rel=1e-6)
    losses = [hybrid.step() for _ in range(40)]
    assert all(math.isfinite(v) for v in losses)
    # and it learns: the last steps' −K is below the first steps'
    assert sum(losses[-10:]) < sum(losses[:10])
