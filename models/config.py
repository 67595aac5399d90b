"""Model configuration (one frozen dataclass, JSON round-trippable, validated with clear errors) and the
package's vocabularies, each spelled once here: data kinds and their units, kernels, architectures,
readouts, reverse parameterisations and conditioning methods. Other modules import them from here.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

#: What a data set holds (models/README.md, Presets and data sets): 2-D/N-D points, {0, 1} sequences, images.
Kind = Literal["points", "binary", "images"]
KINDS: tuple[str, ...] = ("points", "binary", "images")
#: The unit K is reported in, per kind (models/README.md, Units and the null model). "bits/pixel" is per
#: (RGB) pixel: colour channels summed, divided by H·W.
UNITS: dict[str, str] = {"points": "bits/point", "binary": "bits/seq", "images": "bits/pixel"}

KERNELS = ("gaussian", "binomial")
ARCHS = ("mlp", "rbf", "conv", "unet")
#: Fully convolutional image nets: a model trained on patches runs on images of any size.
CONV_ARCHS = ("conv", "unet")
READOUTS = ("bump", "per_step")
#: Reverse parameterisations (models/README.md, Parameterisations) and the ones each kernel accepts.
PARAMS = ("paper", "code", "residual", "posterior")
KERNEL_PARAMS: dict[str, tuple[str, ...]] = {"gaussian": ("paper", "code", "posterior"),
                                             "binomial": ("paper", "residual", "posterior")}
#: Ways to condition the reverse chain on known coordinates, and on a painted region of a 2-D model
#: (models/README.md, Conditioning (p·r)).
Method = Literal["clamp", "annealed", "repaint", "smc"]
METHODS: tuple[str, ...] = ("clamp", "annealed", "repaint", "smc")
REGION_METHODS: tuple[str, ...] = ("shift", "smc")
#: Training objectives (models/README.md, Training objective): the paper's −K, or the noise regression
#: plus 1/T of −K for the variance (ε-style Gaussian models).
OBJECTIVES: tuple[str, ...] = ("K", "hybrid")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model (not its weights).

    kernel: "gaussian" | "binomial"; T: number of diffusion steps; example_shape: (D,) or (C, H, W)
    (for a fully convolutional net H, W are the training patch size; any size works at run time).
    schedule: a name from :data:`models.schedules.SCHEDULE_NAMES`; beta_1: fixed first step (None → the
    schedule's own); learn_beta: learn β_{2..T} by gradient ascent on K (Gaussian only).
    param: reverse parameterisation: "paper" (Σ = σ(z^Σ + logit β), μ = (x − z^μ)(1 − Σ) + z^μ),
    "code" (the reference code's), or for binomial "paper" (f_b = σ(z)) or "residual"
    (f_b = σ(z + logit of the forward kernel's flip probability)); for either kernel "posterior" (the
    forward posterior q(x^{t−1} | x^t, x̂^0) at the network's estimate of x^0, see
    :data:`models.model.PARAMETERISATIONS`).
    """

    kernel: str = "gaussian"
    T: int = 40
    example_shape: tuple[int, ...] = (2,)
    arch: str = "mlp"
    hidden: int = 64
    layers: int = 3
    activation: str = "tanh"
    readout: str = "bump"
    J: int = 10
    time_features: int = 0
    skip: float = 0.0  # MLP only: scale of a linear input → output path (0 = none)
    rbf_units: int = 16
    conv_layers: int = 3
    n_scales: int = 3
    dense_layers: int = 2
    dense_hidden: int = 64
    conv_activation: str = "softplus"
    schedule: str = "reference"
    beta_1: float | None = None
    learn_beta: bool = False
    param: str = "paper"
    p_bar: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "example_shape", tuple(int(v) for v in self.example_shape))
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if self.param not in PARAMS:
            raise ValueError(f"param must be one of {PARAMS}, got {self.param!r}")
        if not isinstance(self.T, int) or self.T < 2:
            raise ValueError(f"T must be an integer >= 2, got {self.T!r}")
        if self.arch in CONV_ARCHS and len(self.example_shape) != 3:
            raise ValueError(f"arch {self.arch!r} needs example_shape (C, H, W)")
        if self.arch in ("mlp", "rbf") and len(self.example_shape) != 1:
            raise ValueError(f"arch {self.arch!r} needs example_shape (D,)")
        if self.kernel == "binomial" and self.learn_beta:
            raise ValueError("the binomial schedule is fixed (β_t = 1/(T − t + 1)); learn_beta must be False")
        if self.beta_1 is not None and not 0 < self.beta_1 < 1:
            raise ValueError(f"beta_1 must lie in (0, 1), got {self.beta_1}")
        if self.param not in KERNEL_PARAMS[self.kernel]:
            raise ValueError(f"param {self.param!r} is not for the {self.kernel} kernel; use one of "
                             f"{KERNEL_PARAMS[self.kernel]}")
        if self.skip and self.arch != "mlp":
            raise ValueError(f"skip is for arch 'mlp' only, got arch {self.arch!r}")
        if not (self.skip >= 0 and self.skip == self.skip):
            raise ValueError(f"skip must be >= 0, got {self.skip}")
        if not 0 < self.p_bar < 1:
            raise ValueError(f"p_bar must lie in (0, 1), got {self.p_bar}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["example_shape"] = list(self.example_shape)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in fields(ModelConfig)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return ModelConfig(**d)

    def replace(self, **changes) -> "ModelConfig":
        return replace(self, **changes)

    @property
    def fully_convolutional(self) -> bool:
        """True for the image nets (:data:`CONV_ARCHS`), which run on any image size."""
        return self.arch in CONV_ARCHS

    @property
    def D(self) -> int:
        n = 1
        for v in self.example_shape:
            n *= v
        return n
