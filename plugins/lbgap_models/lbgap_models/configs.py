"""The configuration models of this package's networks, and the settings they share.

They import no torch, so a study file is validated without loading it; the networks are built by
the modules named in :func:`lbgap_models.model_plugins`, which are imported when a model is built.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from lbgap.api import PluginConfig

__all__ = [
    "MomentumPolicy",
    "GhostLayout",
    "InitScheme",
    "NormKind",
    "NormSettings",
    "Activation",
    "MLPConfig",
    "F1Config",
    "F2Config",
    "C1Config",
    "C3Config",
    "C2Config",
    "C4Config",
    "ResNet44Config",
    "WRN16x4Config",
    "VGGConfig",
    "WRN16Config",
    "TwoLayerReLUConfig",
]


MomentumPolicy = Literal["per_ghost", "scaled", "mean"]
GhostLayout = Literal["contiguous", "strided"]


InitScheme = Literal["torch_default", "glorot_uniform", "he_normal_fan_out"]


NormKind = Literal["batchnorm", "ghost", "none"]


class NormSettings(PluginConfig):
    """Normalisation fields shared by the BatchNorm models (not a plugin)."""

    norm: NormKind = "batchnorm"
    """Normalisation after each hidden linear/conv layer: batchnorm, ghost (ghost batch norm) or none."""
    ghost_size: PositiveInt = 128
    """Samples per ghost batch when norm=ghost (Hoffer's --mini-batch-size default, 128)."""
    momentum_policy: MomentumPolicy = "per_ghost"
    """Running-statistics update of ghost batch norm: per_ghost (Hoffer's code: one EMA update per ghost
    batch, momentum unscaled), scaled (composer: momentum/number of ghosts per update) or mean (one update
    with the mean ghost statistics)."""
    ghost_layout: GhostLayout = "contiguous"
    """Which rows of a batch form ghost batch l when norm=ghost: contiguous (Hoffer's chunks: rows
    l·g … (l+1)·g−1) or strided (rows l, l+G, l+2G, …; the same random partition for a shuffled batch,
    and no copies, so as fast as plain BatchNorm)."""
    bn_momentum: float = Field(0.1, gt=0.0, le=1.0)
    """PyTorch BatchNorm momentum: weight of the new statistics in the running average (PyTorch default)."""
    bn_eps: PositiveFloat = 1e-5
    """BatchNorm epsilon added to the variance (PyTorch default)."""


KERAS_BN_MOMENTUM = 0.01
"""Keras ``momentum=0.99`` (weight of the old running value) as a PyTorch momentum."""
KERAS_BN_EPS = 1e-3

_SHALLOW_DEFAULTS: dict[str, dict[str, Any]] = {
    "keskar_keras": {"bn_momentum": KERAS_BN_MOMENTUM, "bn_eps": KERAS_BN_EPS, "init": "glorot_uniform"},
    "hoffer": {"bn_momentum": 0.1, "bn_eps": 1e-5, "init": "torch_default"},
}


class C1Config(NormSettings):
    """Keskar's C1 (CIFAR-10 shallow conv, Keras shallownet): 2×[conv 64@5×5, BN, ReLU, pool] → 384 → 192.

    ``bn_momentum``, ``bn_eps`` and ``init`` default per ``variant`` when omitted.
    Keskar evaluated with batch statistics (Keras BN mode=2): use ``eval.bn_mode: batch``.
    """

    variant: Literal["keskar_keras", "hoffer"] = "keskar_keras"
    """keskar_keras: Keskar's Keras shallownet (1,757,834 parameters on CIFAR-10); hoffer: Hoffer's
    cifar_shallow port (no biases before BN, pool before BN, 1,388,490 parameters)."""
    dense_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout probability after each of the two hidden dense layers (paper: 0.5)."""
    bn_momentum: float = Field(KERAS_BN_MOMENTUM, gt=0.0, le=1.0)
    """PyTorch BatchNorm momentum. If omitted: 0.01 for keskar_keras (Keras momentum 0.99), 0.1 for hoffer."""
    bn_eps: float = Field(KERAS_BN_EPS, gt=0.0)
    """BatchNorm epsilon. If omitted: 1e-3 for keskar_keras (Keras 1.2 default), 1e-5 for hoffer."""
    init: InitScheme = "glorot_uniform"
    """Weight initialisation. If omitted: glorot_uniform for keskar_keras (Keras 1 default), torch_default
    for hoffer."""

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            variant = data.get("variant", "keskar_keras")
            defaults = _SHALLOW_DEFAULTS.get(variant, {})
            data = {**defaults, **data}
        return data


class C3Config(C1Config):
    """Keskar's C3 (CIFAR-100): the C1 network with 100 outputs (the output size follows the data set).

    ``bn_momentum``, ``bn_eps`` and ``init`` default per ``variant`` when omitted.
    """


class C2Config(NormSettings):
    """Keskar's C2 (CIFAR-10 deep conv, Keras deepnet): VGG-16-style BN+dropout stacks → 512 → classes.

    Keskar evaluated with batch statistics (Keras BN mode=2): use ``eval.bn_mode: batch``.
    """

    first_conv_dropout: float = Field(0.3, ge=0.0, lt=1.0)
    """Dropout after the first conv of the first (64-channel) stack (Keras deepnet: 0.3)."""
    conv_dropout: float = Field(0.4, ge=0.0, lt=1.0)
    """Dropout after every other conv not followed by a pool (Keras deepnet: 0.4)."""
    dense_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout before and after the hidden dense layer (Keras deepnet: 0.5)."""
    dense_width: PositiveInt = 512
    """Width of the hidden dense layer."""
    bn_momentum: float = Field(KERAS_BN_MOMENTUM, gt=0.0, le=1.0)
    """PyTorch BatchNorm momentum (0.01 = Keras momentum 0.99)."""
    bn_eps: float = Field(KERAS_BN_EPS, gt=0.0)
    """BatchNorm epsilon (Keras 1.2 default 1e-3)."""
    init: InitScheme = "glorot_uniform"
    """Weight initialisation (Keras 1 default: Glorot-uniform weights, zero biases)."""


class C4Config(C2Config):
    """Keskar's C4 (CIFAR-100): the C2 network with 100 outputs (the output size follows the data set)."""


Activation = Literal["relu", "tanh"]


class MLPConfig(NormSettings):
    """Multilayer perceptron: flatten → [Linear → norm → activation → dropout] × L → Linear.

    Weights use PyTorch's default initialisation unless ``init`` says otherwise.
    """

    hidden: list[PositiveInt] = [512, 512, 512]
    """Widths of the hidden layers (an empty list gives a linear model)."""
    norm: NormKind = "none"
    """Normalisation after each hidden Linear: none, batchnorm or ghost (ghost batch norm)."""
    activation: Activation = "relu"
    """Hidden activation."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability after each hidden activation (0: no dropout layer)."""
    bias: bool = True
    """Linear layers have biases."""
    init: InitScheme = "torch_default"
    """Weight initialisation: torch_default (kaiming_uniform a=√5, i.e. U(±1/√fan_in), biases U(±1/√fan_in)),
    glorot_uniform (Keras 1: Glorot-uniform weights, zero biases) or he_normal_fan_out (convolutions only;
    Linear layers keep the PyTorch default)."""
    noise_sites: bool = False
    """Place a lbgap.nn.NoiseSite before each hidden activation (pre-activation noise injection)."""


class _FixedMLPConfig(NormSettings):
    """Fields of the fixed Keskar MLPs (F1, F2)."""

    init: InitScheme = "torch_default"
    """Weight initialisation (Keskar released no F1/F2 code; Hoffer's mnist_f1 uses the PyTorch default)."""
    noise_sites: bool = False
    """Place a lbgap.nn.NoiseSite before each hidden ReLU."""


class F1Config(_FixedMLPConfig):
    """Keskar's F1 (MNIST): 784 → 5×[Linear 512 → BN → ReLU] → 10; 1,462,794 parameters.

    Hoffer's ``mnist_f1`` is the same network; BatchNorm defaults are PyTorch's (momentum 0.1, eps 1e-5).
    """


class F2Config(_FixedMLPConfig):
    """Keskar's F2 (TIMIT): 360 → 7×[Linear 512 → BN → ReLU] → 1973; 2,780,085 parameters.

    Keskar released no F2 code; layer order and BatchNorm defaults follow F1 (Hoffer's mnist_f1).
    """


class ResNet44Config(NormSettings):
    """Hoffer's ResNet44 for CIFAR (post-activation BasicBlocks, 16/32/64 channels); 661,338 parameters.

    From eladhoffer/bigBatch models/resnet.py (ResNet_cifar10); BatchNorm at the PyTorch defaults.
    """

    depth: PositiveInt = Field(44, ge=8)
    """Depth; blocks per stage n = int((depth − 2)/6) (44 → 7)."""
    init: InitScheme = "he_normal_fan_out"
    """Initialisation (Hoffer's init_model: conv N(0, 2/(k²·out)), BN γ=1 β=0, Linear PyTorch default)."""


class WRN16x4Config(NormSettings):
    """Hoffer's WResNet16-4 (post-activation ResNet-cifar ×4 width: 64/128/256, 2 blocks per stage).

    From eladhoffer/bigBatch models/wide_resnet.py (wide_WResNet); 2,800,804 parameters on CIFAR-100.
    """

    depth: PositiveInt = Field(16, ge=8)
    """Depth as the code names it; blocks per stage n = int((depth − 2)/6) (16 → 2)."""
    multiplier: PositiveInt = 4
    """Width multiplier k: stage widths 16k, 32k, 64k."""
    init: InitScheme = "he_normal_fan_out"
    """Initialisation (Hoffer's init_model: conv N(0, 2/(k²·out)), BN γ=1 β=0, Linear PyTorch default)."""


class TwoLayerReLUConfig(PluginConfig):
    """Li/Wei/Ma two-layer ReLU net uᵀ relu(Ux), no biases, N(0, τ0²) first layer, noise site before the ReLU.

    Binary data sets get the logits [0, N(x)] so that cross-entropy is the logistic loss.
    """

    width: PositiveInt = 100
    """Hidden width m (the paper's value could not be checked; peers.md §3.6)."""
    tau0: Optional[PositiveFloat] = None
    """Standard deviation of the first-layer entries U_ij ~ N(0, τ0²); null: 1/√d (d = input dimension)."""
    u_init: Literal["random_sign", "gaussian"] = "random_sign"
    """Second layer u: random_sign (each entry ±u_scale with probability ½) or gaussian (N(0, u_scale²))."""
    u_scale: Optional[PositiveFloat] = None
    """Scale of the second-layer entries; null: 1/√m."""
    train_second_layer: bool = False
    """Train u as well (false: u is a fixed buffer, as in the paper's analysis, which trains U only)."""
    output: Literal["auto", "binary_logit", "per_class"] = "auto"
    """binary_logit: one output N(x) returned as logits [0, N(x)] (needs 2 classes); per_class: u has one
    column per class; auto: binary_logit for 2 classes, else per_class."""


class VGGConfig(NormSettings):
    """VGG-11/13/16/19 with BatchNorm for CIFAR (Hoffer et al. Table 1 "VGG"; convNet.pytorch layout).

    Default: VGG-16-BN with a 4096-4096 dropout classifier, PyTorch default initialisation.
    """

    depth: Literal[11, 13, 16, 19] = 16
    """VGG configuration: 11 (A), 13 (B), 16 (D) or 19 (E)."""
    classifier_hidden: list[PositiveInt] = [4096, 4096]
    """Widths of the hidden classifier layers (Linear → ReLU → Dropout each); [] for a single Linear."""
    classifier_dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout after each hidden classifier layer (convNet.pytorch: 0.5)."""
    conv_bias: bool = True
    """Convolutions have biases (as torchvision's and convNet.pytorch's VGG)."""
    init: InitScheme = "torch_default"
    """Initialisation (convNet.pytorch's CIFAR VGG keeps the PyTorch default)."""


class WRN16Config(NormSettings):
    """Li/Wei/Ma's pre-activation WideResNet-16 (widen factor 10 by default) with pre-activation noise sites.

    From cwein3/large-lr-code models/wideresnet.py; 17,116,634 parameters for 10 classes (WRN-16-10).
    """

    depth: PositiveInt = 16
    """Depth 6n + 4 (n blocks per stage); 16 → 2 blocks."""
    widen_factor: PositiveInt = 10
    """Width multiplier: stage widths 16w, 32w, 64w (the authors' wideresnet16 default is 10)."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout between the two convs of each block (authors: 0, or 0.4 with reg_type=dropout)."""
    init: Literal["he_normal_fan_out", "torch_default"] = "he_normal_fan_out"
    """he_normal_fan_out (the authors'): conv N(0, 2/(k²·out)), BN γ=1 β=0, Linear bias 0 and weight at
    the PyTorch default; torch_default: PyTorch's initialisation throughout."""

    @field_validator("depth")
    @classmethod
    def _depth_6n_plus_4(cls, v: int) -> int:
        if (v - 4) % 6 != 0 or v < 10:
            raise ValueError("depth must be 6n + 4 with n ≥ 1 (10, 16, 22, 28, ...)")
        return v
