"""The paper's experiments as presets (models/README.md, **Presets and data sets**): model and training
defaults per data set, with the paper's Table 1 numbers and the known ceilings for side-by-side reports;
and :func:`default_config`, the model for data that has no preset (the same in ``dpm`` and the app)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .config import ModelConfig
from .training import TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    model: ModelConfig
    train: TrainConfig
    unit: str
    paper_K: float | None = None  # Table 1 (v8)
    paper_K_minus_Lnull: float | None = None
    ceiling: float | None = None  # a known upper limit on K (models/README.md, **Ceilings**), in ``unit``
    note: str = ""


def _conv(shape, T, **kw) -> ModelConfig:
    base = dict(kernel="gaussian", T=T, example_shape=shape, arch="conv", hidden=16, conv_layers=3, n_scales=3,
                dense_layers=1, dense_hidden=32, activation="tanh", conv_activation="softplus", J=10,
                schedule="reference", learn_beta=False, param="paper", time_features=10)
    base.update(kw)
    return ModelConfig(**base)


def _unet(shape, T, **kw) -> ModelConfig:
    """The image recipe (resources/models/README.md): the U-Net, ε-style "posterior" parameterisation
    (trained with the hybrid objective, :data:`IMAGE_OBJECTIVE`); conv_layers = residual blocks per
    resolution, time_features = sinusoidal step features."""
    base = dict(kernel="gaussian", T=T, example_shape=shape, arch="unet", hidden=32, conv_layers=1, n_scales=2,
                time_features=32, schedule="reference", learn_beta=False, param="posterior")
    base.update(kw)
    return ModelConfig(**base)


#: The image presets' training objective (models/README.md, **Training objective**): on digits, 1500
#: iterations each, 90 % of samples classified with confidence ≥ 0.9 against 57 % for the K objective, and
#: a higher K (0.388 vs 0.310 bits/pixel; resources/models/README.md).
IMAGE_OBJECTIVE = "hybrid"

PRESETS: dict[str, Preset] = {
    "swissroll": Preset(
        "swissroll",
        ModelConfig(kernel="gaussian", T=40, example_shape=(2,), arch="mlp", hidden=64, layers=3, activation="silu",
                    readout="bump", J=10, time_features=10, schedule="logit_linear", beta_1=1e-7, learn_beta=True,
                    param="code"),
        TrainConfig(steps=None, seconds=60, batch_size=128, steps_per_example=8, lr=6e-3, report_every=250,
                    n_eval=2000, eval_steps=64, n_samples=1000),
        "bits/point", paper_K=2.35, paper_K_minus_Lnull=6.45,
        note="paper: normalised RBF net (16 units); here an MLP with bump time features, the code's ε-like mean, β_1 = 1e-7 and a learned β (the roll is noise-free, so K grows as β_1 shrinks: report β_1 with K)"),
    "heartbeat": Preset(
        "heartbeat",
        ModelConfig(kernel="binomial", T=2000, example_shape=(20,), arch="mlp", hidden=50, layers=3,
                    activation="sigmoid", readout="bump", J=20, p_bar=0.2, schedule="binomial", param="posterior",
                    time_features=10, skip=4.0),
        TrainConfig(steps=None, seconds=120, batch_size=64, steps_per_example=16, lr=3e-3, report_every=500,
                    n_eval=500, eval_steps=200, n_samples=25),
        "bits/seq", paper_K=-2.414, paper_K_minus_Lnull=12.024, ceiling=-2.321928,
        note="paper net: sigmoid MLP 3×50 with one readout per step; here the same trunk reads each bit's evidence about x^0, with a 20-bump readout, 10 bump time features at the input and a linear skip path, and f_b is the forward posterior averaged over the net's P(x^0 | x^t)"),
    "digits": Preset("digits", _unet((1, 8, 8), 1000),
                     TrainConfig(steps=None, seconds=300, batch_size=64, lr=2e-3, report_every=500, n_eval=32,
                                 eval_steps=20, n_samples=36, objective=IMAGE_OBJECTIVE), "bits/pixel"),
    "mnist5k": Preset("mnist5k", _unet((1, 28, 28), 1000, hidden=16, n_scales=3),
                      TrainConfig(steps=None, seconds=600, batch_size=32, lr=2e-3, report_every=500, n_eval=32,
                                  eval_steps=20, n_samples=36, objective=IMAGE_OBJECTIVE), "bits/pixel",
                      note="paper MNIST: Parzen 220 ± 1.9 nats on full MNIST (not comparable one to one)"),
    "deadleaves": Preset("deadleaves", _unet((1, 32, 32), 1000, hidden=16, n_scales=3),
                         TrainConfig(steps=None, seconds=600, batch_size=32, lr=2e-3, report_every=500, n_eval=32,
                                     eval_steps=20, n_samples=36,
                                     objective=IMAGE_OBJECTIVE), "bits/pixel", paper_K=1.489,
                         paper_K_minus_Lnull=3.536, note="paper data: Theis et al. 2012 (same family, not the same data)"),
    "bark": Preset("bark", _unet((1, 32, 32), 500, hidden=16, n_scales=3),
                   TrainConfig(steps=None, seconds=600, batch_size=32, lr=2e-3, report_every=500, n_eval=32,
                               eval_steps=20, n_samples=36,
                               objective=IMAGE_OBJECTIVE), "bits/pixel", paper_K=-0.55, paper_K_minus_Lnull=1.5,
                   note="paper data: UIUC bark (not bundled); here scikit-image brick/grass/gravel"),
    "colortex": Preset("colortex", _unet((3, 32, 32), 500, hidden=16, n_scales=3),
                       TrainConfig(steps=None, seconds=600, batch_size=32, lr=2e-3, report_every=500, n_eval=32,
                                   eval_steps=20, n_samples=36, objective=IMAGE_OBJECTIVE), "bits/pixel",
                       note="patches of two CC0 colour photographs (scikit-image coffee, chelsea); bits per RGB "
                            "pixel (3 channels summed); not in the paper"),
    "cifar10": Preset("cifar10", _conv((3, 32, 32), 1000, n_scales=4, hidden=64, dense_hidden=128),
                      TrainConfig(steps=None, seconds=3600, batch_size=64, lr=1e-3, report_every=200, n_eval=200,
                                  eval_steps=50, n_samples=36), "bits/pixel", paper_K=5.4, paper_K_minus_Lnull=11.5,
                      note="bits per RGB pixel (3 channels summed)"),
}

BUNDLED = ("swissroll", "heartbeat", "digits", "mnist5k", "deadleaves", "bark", "colortex")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------------
# own data: the model and training options each kind of data starts from

#: the preset whose network and training options each kind of own data starts from
KIND_TEMPLATE = {"points": "swissroll", "binary": "heartbeat", "images": "bark"}
#: own binary data: diffusion steps (the heartbeat's 2000 is more than own data needs)
BINARY_T = 1000
#: own images: diffusion steps (the paper's image experiments use 1000)
IMAGE_T = 1000


def mean_activity(data) -> float:
    """Mean fraction of ones of binary data (a fixed-seed training draw and the held-out set), kept
    in [0.01, 0.99]: the binomial kernel's p̄."""
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.cat([data.sample_train(4096, g).reshape(-1), data.heldout().reshape(-1)])
    return float(min(0.99, max(0.01, float(x.float().mean()))))


def default_config(data) -> ModelConfig:
    """The model for a data set without a preset (own files, points drawn in the app), by kind:

    points → the Swiss-roll preset's MLP; binary → the heartbeat preset's binomial MLP (posterior
    parameterisation, bump readout, skip path) with T = :data:`BINARY_T`, a width that grows with the
    sequence length and p̄ = the data's mean activity; images → the bark preset's image net with
    T = :data:`IMAGE_T` and no more scales than the patch allows. ``data``: anything with ``kind``
    and ``example_shape`` (binary data also ``sample_train``/``heldout``)."""
    shape = tuple(int(v) for v in data.example_shape)
    base = PRESETS[KIND_TEMPLATE[data.kind]].model
    if data.kind == "points":
        return base.replace(example_shape=shape)
    if data.kind == "binary":
        hidden = max(base.hidden, min(256, 2 * shape[0]))
        return base.replace(example_shape=shape, T=BINARY_T, hidden=hidden, p_bar=mean_activity(data))
    H, W = shape[1], shape[2]
    n_scales = max(1, min(base.n_scales, int(math.log2(max(2, min(H, W)))) - 1))
    return base.replace(example_shape=shape, T=IMAGE_T, n_scales=n_scales)


def default_train_config(kind: str) -> TrainConfig:
    """Training options for own data of ``kind``: its template preset's."""
    return PRESETS[KIND_TEMPLATE[kind]].train


def fit_objective(train: TrainConfig, model: ModelConfig) -> TrainConfig:
    """``train`` with its objective kept if ``model`` can train with it, else the paper's K (the hybrid
    objective needs an ε-style Gaussian model; models/README.md, **Training objective**)."""
    from dataclasses import replace

    from .bound import check_objective

    try:
        check_objective(train.objective, model)
        return train
    except ValueError:
        return replace(train, objective="K")


def load_data(*, preset: str | None = None, path=None, cifar_dir=None, image_size: int = 32, patch_size: int = 32):
    """The data set of ``preset`` (cifar10 reads ``cifar_dir``; bark and deadleaves are cut to
    ``image_size``) or of the file or folder ``path`` (one image is cut into ``patch_size`` patches).
    Unknown preset names and unreadable files raise DataError naming them."""
    from .data import DataError, load_file, load_preset

    if preset is not None:
        if preset not in PRESETS:
            raise DataError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} (or give a data file)")
        kw: dict = {}
        if preset == "cifar10":
            kw["cifar_dir"] = cifar_dir
        if preset in ("bark", "deadleaves", "colortex"):
            kw["image_size"] = image_size
        return load_preset(preset, **kw)
    if path is None:
        raise DataError("give a preset or a data file")
    return load_file(Path(path).expanduser(), patch_size=patch_size)
