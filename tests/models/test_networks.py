"""Reverse networks (models/networks.py): the U-Net (arch "unet") and the paper's multi-scale conv net."""
from __future__ import annotations

import pytest
import torch

from models.config import ModelConfig
from models.model import DiffusionModel
from models.networks import ConvNet, UNet, sinusoidal_features


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _unet(**kw) -> UNet:
    torch.manual_seed(0)
    return UNet(**{"C": 1, "n_out": 2, "T": 100, "hidden": 8, "n_scales": 2, "blocks": 1, "time_features": 8, **kw})


def _randomise(net: torch.nn.Module) -> None:
    """Give every parameter random values (a fresh U-Net's zero-initialised output conv outputs 0)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


@pytest.mark.parametrize("C,n_out,n_scales,blocks", [(1, 2, 2, 1), (3, 2, 3, 2), (1, 1, 1, 1)])
def test_unet_output_shape(C, n_out, n_scales, blocks):
    net = _unet(C=C, n_out=n_out, n_scales=n_scales, blocks=blocks)
    y = net(torch.randn(4, C, 16, 16), torch.tensor([1, 2, 50, 99]))
    assert y.shape == (4, n_out, C, 16, 16)


def test_fresh_unet_outputs_zero():
    """The zero-initialised output conv: a fresh net's ε̂ is 0 (the posterior step starts at the prior mean)."""
    y = _unet()(torch.randn(2, 1, 8, 8), torch.tensor([3, 70]))
    assert torch.count_nonzero(y) == 0


@pytest.mark.parametrize("H,W", [(1, 1), (7, 9), (8, 8), (28, 28), (33, 17)])
def test_unet_runs_on_any_size(H, W):
    """Fully convolutional: any H, W (odd ones and 1×1 too), shape kept, finite."""
    net = _unet(n_scales=3)
    _randomise(net)
    y = net(torch.randn(1, 1, H, W, generator=torch.Generator().manual_seed(2)), torch.tensor([5]))
    assert y.shape == (1, 2, 1, H, W) and torch.isfinite(y).all()


def test_unet_is_local_apart_from_group_norm():
    """With the group norms' statistics frozen (eval-style, per-channel affine only), a pixel's output
    depends only on its neighbourhood: changing the far corner of a 48×48 image leaves the opposite
    corner's outputs unchanged. (Group norm itself normalises over the whole image, so a model trained
    on patches sees image-wide statistics at run time.)"""
    net = _unet(n_scales=2)
    _randomise(net)
    for mod in net.modules():
        if isinstance(mod, torch.nn.GroupNorm):
            mod.forward = lambda x, m=mod: x * m.weight[None, :, None, None] + m.bias[None, :, None, None]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, 48, 48, generator=g)
    x2 = x.clone()
    x2[..., 40:, 40:] += torch.randn(1, 1, 8, 8, generator=g)
    k = torch.tensor([5])
    a, b = net(x, k), net(x2, k)
    torch.testing.assert_close(a[..., :16, :16], b[..., :16, :16])
    assert (a[..., 40:, 40:] - b[..., 40:, 40:]).abs().max() > 1e-4


def test_sinusoidal_features():
    T = 1000
    k = torch.arange(T)
    f = sinusoidal_features(k, T, 16)
    assert f.shape == (T, 16) and torch.isfinite(f).all()
    # sin² + cos² = 1 per frequency
    torch.testing.assert_close(f[:, :8] ** 2 + f[:, 8:] ** 2, torch.ones(T, 8))
    # every step gets its own feature vector, neighbours differ visibly
    d = (f[1:] - f[:-1]).norm(dim=1)
    assert d.min() > 0.1
    # the slowest frequency is monotone over the chain (sin(πk/T) rises to k = T/2), so no two far-apart
    # steps alias
    assert (f[: T // 2, 0].diff() > 0).all()
    with pytest.raises(ValueError, match="even"):
        sinusoidal_features(k, T, 7)


def test_unet_uses_the_step_index():
    net = _unet()
    _randomise(net)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    a = net(x, torch.tensor([1, 1, 1]))
    b = net(x, torch.tensor([1, 50, 99]))
    torch.testing.assert_close(a[0], b[0])
    assert (a[1:] - b[1:]).abs().max() > 1e-3


def test_gradient_reaches_every_unet_parameter():
    """One loss through a DiffusionModel with the U-Net: every network parameter gets a finite, non-zero
    gradient (after two steps have moved the zero-initialised convs, so gradients pass through them)."""
    torch.manual_seed(0)
    cfg = ModelConfig(kernel="gaussian", T=20, example_shape=(1, 8, 8), arch="unet", hidden=8, n_scales=2,
                      conv_layers=1, time_features=8, param="posterior")
    m = DiffusionModel(cfg)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    k = torch.tensor([1, 3, 5, 8, 13, 19])
    opt = torch.optim.SGD(m.network_parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        d = m.reverse_step(x, k)
        loss = (d.mean ** 2).sum() + d.var.log().sum()
        loss.backward()
        opt.step()
    for name, p in m.net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_unet_config_and_model():
    cfg = ModelConfig(kernel="gaussian", T=10, example_shape=(3, 8, 8), arch="unet", hidden=8, n_scales=2,
                      conv_layers=1, time_features=8, param="posterior")
    assert cfg.fully_convolutional and ModelConfig.from_dict(cfg.to_dict()) == cfg
    m = DiffusionModel(cfg)
    assert isinstance(m.net, UNet)
    d = m.reverse_step(torch.randn(2, 3, 12, 20), 4)
    assert d.mean.shape == (2, 3, 12, 20) and (d.var > 0).all()
    with pytest.raises(ValueError, match="needs example_shape"):
        ModelConfig(arch="unet", example_shape=(64,))


def test_conv_net_kept():
    """The paper's multi-scale conv net (§4.3) is still built for arch "conv", on any size."""
    cfg = ModelConfig(kernel="gaussian", T=10, example_shape=(1, 8, 8), arch="conv", hidden=4, n_scales=2,
                      conv_layers=2, dense_layers=1, dense_hidden=8)
    m = DiffusionModel(cfg)
    assert isinstance(m.net, ConvNet) and cfg.fully_convolutional
    assert m.net(torch.randn(2, 1, 11, 6), torch.tensor([1, 9])).shape == (2, 2, 1, 11, 6)
