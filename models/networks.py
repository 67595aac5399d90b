"""Reverse networks (§4 of the paper, plus a U-Net). A network maps ``(x_t, k)`` to raw outputs and knows nothing of β.

Shapes: ``x`` is ``[B, *S]``; ``k`` is a LongTensor ``[B]`` of step indices (``k = t − 1``); the output
is ``[B, n_out, *S]``: ``n_out = 2`` (z^μ, z^Σ) for Gaussian models, ``1`` for binomial ones.

Time enters through a **temporal readout** (the paper's only time dependence): either the normalised
bump basis, z = Σ_j y_j·g_j(t) with J coefficients per output (§4.3), or one separate readout layer per
step (the paper's Swiss-roll and heartbeat nets, §4.1–4.2). Optionally (``time_features > 0``) the bump
basis is also fed to the input of the trunk, a departure from the paper that helps small networks.

:class:`UNet` (arch "unet") is not the paper's: a small fully convolutional U-Net (residual blocks with
group norm, one resolution per ``n_scales``, skip connections), the step index entering as sinusoidal
features of k (a project choice for images; models/README.md, Parameterisations). Like every net here it
sees only (x, k), never β.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .schedules import bump_basis

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": lambda: nn.LeakyReLU(0.05),
    "silu": nn.SiLU,
    "relu": nn.ReLU,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()



def _randn(*shape: int, scale: float = 1.0, fan_in: int = 1) -> torch.Tensor:
    """Normal initial weights, ``randn(shape) · scale / √fan_in`` (in that order: the same numbers as
    ``torch.randn(shape).mul_(scale).div_(math.sqrt(fan_in))``). Under torch's "meta" device, where model
    files check a config's tensor shapes before allocating, nothing is computed: random or arithmetic
    ops on "meta" import torch's compiler stack and sympy (0.8–1.3 s of start-up, seen in the app)."""
    t = torch.empty(shape)
    if t.is_meta:
        return t
    t.normal_()
    return t if scale == 1.0 and fan_in == 1 else t.mul_(scale).div_(math.sqrt(fan_in))

class TimeBasis(nn.Module):
    """Holds g_j(t) as a buffer [T, J] and looks rows up by step index."""

    def __init__(self, T: int, J: int):
        super().__init__()
        self.register_buffer("g", torch.from_numpy(bump_basis(T, J)).to(torch.float32), persistent=False)

    def forward(self, k: torch.Tensor) -> torch.Tensor:  # [B] → [B, J]
        return self.g[k]


class BumpReadout(nn.Module):
    """Features [B, F, *P] → outputs [B, n_out, *P] through J bump-basis coefficients per output."""

    def __init__(self, n_features: int, n_out: int, T: int, J: int = 10, init_scale: float = 1e-2):
        super().__init__()
        self.n_out, self.J = n_out, J
        self.basis = TimeBasis(T, J)
        self.weight = nn.Parameter(_randn(n_out * J, n_features, scale=init_scale, fan_in=n_features))
        self.bias = nn.Parameter(torch.zeros(n_out * J))

    def forward(self, h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        B = h.shape[0]
        rest = h.shape[2:]
        y = torch.einsum("of,bf...->bo...", self.weight, h) + self.bias.view(1, -1, *([1] * len(rest)))
        y = y.reshape(B, self.n_out, self.J, *rest)  # [B, n_out, J, *P]
        g = self.basis(k).reshape(B, 1, self.J, *([1] * len(rest)))
        return (y * g).sum(dim=2)


class PerStepReadout(nn.Module):
    """One linear readout per step (T of them): features [B, F] → [B, n_out, D]."""

    def __init__(self, n_features: int, n_out: int, D: int, T: int, init_scale: float = 1e-2):
        super().__init__()
        self.n_out, self.D = n_out, D
        self.weight = nn.Parameter(_randn(T, n_features, n_out * D, scale=init_scale, fan_in=n_features))
        self.bias = nn.Parameter(torch.zeros(T, n_out * D))

    def forward(self, h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        y = torch.bmm(h.unsqueeze(1), self.weight[k]).squeeze(1) + self.bias[k]
        return y.reshape(h.shape[0], self.n_out, self.D)


class MLPNet(nn.Module):
    """An MLP for vectors [B, D] (points or bit sequences). The paper's heartbeat net is
    ``MLPNet(20, hidden=50, layers=3, activation="sigmoid", readout="per_step")``."""

    def __init__(self, D: int, n_out: int, T: int, hidden: int = 64, layers: int = 3,
                 activation: str = "tanh", readout: str = "bump", J: int = 10, time_features: int = 0,
                 skip: float = 0.0):
        super().__init__()
        self.D, self.n_out = D, n_out
        # optional linear path from the input to the output, zero at the start, scaled by ``skip`` (the
        # binomial "posterior" model feeds evidence / 4, so skip = 4 acts on the evidence itself)
        self.skip_scale = float(skip)
        if skip:
            self.skip = nn.Linear(D, n_out * D)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        self.time_features = time_features
        if time_features:
            self.time_in = TimeBasis(T, time_features)
        widths = [D + time_features] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            mods += [nn.Linear(a, b), make_activation(activation)]
        self.trunk = nn.Sequential(*mods)
        self.readout = _make_readout(readout, widths[-1], n_out, D, T, J)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        h = x
        if self.time_features:
            h = torch.cat([h, self.time_in(k).to(h.dtype)], dim=1)
        h = self.trunk(h)
        out = self.readout(h, k).reshape(x.shape[0], self.n_out, self.D)
        if self.skip_scale:
            out = out + self.skip_scale * self.skip(x).reshape(x.shape[0], self.n_out, self.D)
        return out

    def at_step(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``forward(x, k)`` with every example at the same step ``k`` (an int; the sampler's case), equal up
        to float rounding: the step's rows of the bump bases fold into the weights — the time features
        into the first layer's bias, the readout's J coefficients per output into one weight row — so the
        network is its trunk and one small linear readout (no [B, n_out·J] intermediate)."""
        first = self.trunk[0]
        if self.time_features:
            w = first.weight
            bias = torch.addmv(first.bias, w[:, self.D:], self.time_in.g[k].to(w.dtype))
            h = torch.addmm(bias, x, w[:, :self.D].t())
            h = self.trunk[1:](h)
        else:
            h = self.trunk(x)
        ro = self.readout
        if isinstance(ro, _FlatBump):
            inner = ro.inner
            g = inner.basis.g[k].to(inner.weight.dtype)  # [J]
            O = inner.n_out
            w_eff = torch.matmul(inner.weight.view(O, inner.J, -1).transpose(1, 2), g)  # [O, F]
            out = torch.addmm(torch.mv(inner.bias.view(O, inner.J), g), h, w_eff.t())
        else:
            out = ro(h, torch.full((x.shape[0],), int(k), dtype=torch.long, device=x.device))
        out = out.reshape(x.shape[0], self.n_out, self.D)
        if self.skip_scale:
            out = out + self.skip_scale * self.skip(x).reshape(x.shape[0], self.n_out, self.D)
        return out


class RBFNet(nn.Module):
    """The paper's Swiss-roll net (§4.1): a normalised radial-basis-function layer of ``units`` units,
    with learned centres and widths, shared across steps, and a per-step readout."""

    def __init__(self, D: int, n_out: int, T: int, units: int = 16, readout: str = "per_step", J: int = 10,
                 time_features: int = 0):
        super().__init__()
        self.D, self.n_out = D, n_out
        self.centres = nn.Parameter(_randn(units, D))
        self.log_width = nn.Parameter(torch.zeros(units))
        self.readout = _make_readout(readout, units, n_out, D, T, J)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        d2 = ((x[:, None, :] - self.centres[None]) ** 2).sum(-1)  # [B, U]
        logits = -0.5 * d2 * torch.exp(-2 * self.log_width)[None]
        h = torch.softmax(logits, dim=1)  # normalised RBF activations
        return self.readout(h, k).reshape(x.shape[0], self.n_out, self.D)


def _make_readout(kind: str, n_features: int, n_out: int, D: int, T: int, J: int) -> nn.Module:
    if kind == "per_step":
        return PerStepReadout(n_features, n_out, D, T)
    if kind == "bump":
        return _FlatBump(n_features, n_out, D, T, J)
    raise ValueError(f"unknown readout {kind!r}; choose 'bump' or 'per_step'")


class _FlatBump(nn.Module):
    """Bump readout for vector nets: features [B, F] → [B, n_out, D]."""

    def __init__(self, n_features: int, n_out: int, D: int, T: int, J: int):
        super().__init__()
        self.n_out, self.D = n_out, D
        self.inner = BumpReadout(n_features, n_out * D, T, J)

    def forward(self, h: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.inner(h, k).reshape(h.shape[0], self.n_out, self.D)


class MultiScaleConv(nn.Module):
    """The paper's multi-scale convolution (§4.3): mean-pool to scale 2^s, 3×3 conv at each scale,
    upsample every scale to full resolution and sum, then one pointwise nonlinearity (after adding an
    optional per-channel ``bias`` [B, C_out], used for time conditioning). Zero-padded, so it runs on
    images of any size."""

    def __init__(self, c_in: int, c_out: int, n_scales: int, activation: str):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for _ in range(n_scales))
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        H, W = x.shape[-2:]
        acc = None
        for s, conv in enumerate(self.convs):
            if s == 0:
                y = conv(x)
            else:
                f = 2**s
                if H < f and W < f:
                    break
                y = conv(F.avg_pool2d(x, f, ceil_mode=True, count_include_pad=False))
                y = F.interpolate(y, size=(H, W), mode="nearest")
            acc = y if acc is None else acc + y
        if bias is not None:
            acc = acc + bias[:, :, None, None]
        return self.act(acc)


class ConvNet(nn.Module):
    """Fully convolutional image net (§4.3): multi-scale conv layers, then per-pixel dense (1×1) layers,
    then a per-pixel bump readout. Input [B, C, H, W] → output [B, n_out, C, H, W]; any H, W.

    With ``time_features > 0`` the bump basis g(t) also enters every multi-scale layer as a learned
    per-channel bias (a cheap departure from the paper, where time enters only at the readout)."""

    def __init__(self, C: int, n_out: int, T: int, hidden: int = 32, conv_layers: int = 3, n_scales: int = 3,
                 dense_layers: int = 2, dense_hidden: int = 64, conv_activation: str = "softplus",
                 dense_activation: str = "tanh", J: int = 10, time_features: int = 0):
        super().__init__()
        self.C, self.n_out = C, n_out
        self.time_features = time_features
        if time_features:
            self.time_in = TimeBasis(T, time_features)
            self.time_bias = nn.ModuleList(nn.Linear(time_features, hidden) for _ in range(conv_layers))
        self.convs = nn.ModuleList()
        c = C
        for _ in range(conv_layers):
            self.convs.append(MultiScaleConv(c, hidden, n_scales, conv_activation))
            c = hidden
        dense: list[nn.Module] = []
        for _ in range(dense_layers):
            dense += [nn.Conv2d(c, dense_hidden, 1), make_activation(dense_activation)]
            c = dense_hidden
        self.dense = nn.Sequential(*dense)
        self.readout = BumpReadout(c, n_out * C, T, J)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        g = self.time_in(k).to(x.dtype) if self.time_features else None
        h = x
        for i, layer in enumerate(self.convs):
            h = layer(h, self.time_bias[i](g) if g is not None else None)
        h = self.dense(h)
        return self.readout(h, k).reshape(B, self.n_out, C, H, W)


def sinusoidal_features(k: torch.Tensor, T: int, n: int) -> torch.Tensor:
    """Sinusoidal features of the step index: k [B] → [B, n] (n even), sin and cos of k·ω_i with
    frequencies ω_i from 1/T·π … π geometrically spaced, so the slowest one sweeps half a period over
    the chain and the fastest tells neighbouring steps apart. Depends on k and T only (not on β)."""
    if n < 2 or n % 2:
        raise ValueError(f"the number of sinusoidal features must be even and >= 2, got {n}")
    half = n // 2
    freqs = math.pi * torch.logspace(math.log10(1.0 / T), 0.0, half, device=k.device, dtype=torch.float32)
    a = k.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


def _groups(c: int) -> int:
    """Group-norm groups for c channels: up to 8, at least 2 channels each (so a 1×1 image still has more
    than one value per group)."""
    for g in (8, 4, 2):
        if c % g == 0 and c // g >= 2:
            return g
    return 1


class ResBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, + a per-channel shift from the step embedding, GroupNorm → SiLU →
    3×3 conv (zero-initialised, so a fresh block is the identity path), plus the (1×1-projected) input.
    [B, c_in, H, W], emb [B, E] → [B, c_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.proj = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.proj(x) + h


class UNet(nn.Module):
    """A small fully convolutional U-Net for images (arch "unet"): [B, C, H, W] → [B, n_out, C, H, W],
    any H, W (odd sizes are pooled with ceil and upsampled back to the skip's exact size).

    ``n_scales`` resolutions, channel widths hidden·(1, 2, 4, 4, …) (each halving of the resolution
    doubles the width up to 4×, so every level costs about the same); ``blocks`` residual blocks per
    resolution on the way down, the same number (reading the concatenated skip) on the way up, one in
    the middle at the coarsest resolution. Downsampling is 2×2 mean pooling, upsampling nearest-neighbour
    followed by a 3×3 conv. The step index k enters every block through an embedding of ``time_features``
    sinusoidal features (:func:`sinusoidal_features`). The output conv is zero-initialised: a fresh
    net outputs 0 (for the "posterior" parameterisation: ε̂ = 0 and the variance midway in log space
    between β̃ and β)."""

    def __init__(self, C: int, n_out: int, T: int, hidden: int = 32, n_scales: int = 2, blocks: int = 1,
                 time_features: int = 32):
        super().__init__()
        if n_scales < 1 or blocks < 1 or hidden < 1:
            raise ValueError(f"UNet needs n_scales, blocks and hidden >= 1, got {n_scales}, {blocks}, {hidden}")
        self.C, self.n_out, self.T = C, n_out, T
        self.n_time = max(2, time_features + (time_features % 2))
        E = 2 * hidden
        self.embed = nn.Sequential(nn.Linear(self.n_time, E), nn.SiLU(), nn.Linear(E, E))
        widths = [hidden * 2 ** min(i, 2) for i in range(n_scales)]
        self.inp = nn.Conv2d(C, hidden, 3, padding=1)
        self.down = nn.ModuleList()
        c = hidden
        skips = []
        for w in widths:
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c, w, E))
                c = w
                skips.append(c)
            self.down.append(level)
        self.mid = ResBlock(c, c, E)
        self.up = nn.ModuleList()
        self.upconv = nn.ModuleList()
        for i, w in reversed(list(enumerate(widths))):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(ResBlock(c + skips.pop(), w, E))
                c = w
            self.up.append(level)
            self.upconv.append(nn.Conv2d(c, c, 3, padding=1) if i > 0 else nn.Identity())
        self.out_norm = nn.GroupNorm(_groups(c), c)
        self.out = nn.Conv2d(c, n_out * C, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        e = self.embed(sinusoidal_features(k, self.T, self.n_time).to(x.dtype))
        h = self.inp(x)
        skips, sizes = [], []
        for i, level in enumerate(self.down):
            if i > 0:
                sizes.append(h.shape[-2:])
                h = F.avg_pool2d(h, 2, ceil_mode=True, count_include_pad=False)
            for block in level:
                h = block(h, e)
                skips.append(h)
        h = self.mid(h, e)
        for level, upconv in zip(self.up, self.upconv):
            for block in level:
                h = block(torch.cat([h, skips.pop()], dim=1), e)
            if sizes:
                h = upconv(F.interpolate(h, size=tuple(sizes.pop()), mode="nearest"))
        return self.out(F.silu(self.out_norm(h))).reshape(B, self.n_out, C, H, W)
