"""Fully connected networks: a configurable MLP and Keskar's F1 (MNIST) and F2 (TIMIT).

Layer order is Linear → norm → activation (→ dropout), as in Hoffer's
``mnist_f1``; inputs of any shape are flattened. The output layer is a plain
Linear giving logits (the softmax of the papers lives in the loss).

Parameter counts (biases and BN γ/β included): F1 784 → 5×512 → 10 has
1,462,794 (Keskar App. B.1; Hoffer's ``mnist_f1``); F2 360 → 7×512 → 1973 has
2,780,085 (Keskar App. B.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from lbgap.api import DataInfo, NoiseSite

from .configs import Activation, F1Config, F2Config, MLPConfig, NormSettings, _FixedMLPConfig
from .init import apply_init
from .norm import norm_from_settings

__all__ = ["MLPConfig", "F1Config", "F2Config", "build_mlp", "build_f1", "build_f2", "make_mlp"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def make_mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    norm: NormSettings,
    activation: Activation = "relu",
    dropout: float = 0.0,
    bias: bool = True,
    noise_sites: bool = False,
) -> nn.Sequential:
    """``Flatten → [Linear → norm → (NoiseSite) → activation → (Dropout)] × len(hidden) → Linear``."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, h, bias=bias))
        if norm.norm != "none":
            layers.append(norm_from_settings(norm, h, dims=1))
        if noise_sites:
            layers.append(NoiseSite())
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features, bias=bias))
    return nn.Sequential(*layers)


def _in_features(info: DataInfo) -> int:
    return int(math.prod(info.input_shape))


def build_mlp(cfg: MLPConfig, *, info: DataInfo) -> nn.Module:
    """Build :class:`MLPConfig`'s network for ``info``."""
    model = make_mlp(
        _in_features(info),
        cfg.hidden,
        info.num_classes,
        norm=cfg,
        activation=cfg.activation,
        dropout=cfg.dropout,
        bias=cfg.bias,
        noise_sites=cfg.noise_sites,
    )
    return apply_init(model, cfg.init)


def _build_fixed(cfg: _FixedMLPConfig, info: DataInfo, depth: int) -> nn.Module:
    model = make_mlp(
        _in_features(info), [512] * depth, info.num_classes, norm=cfg, noise_sites=cfg.noise_sites
    )
    return apply_init(model, cfg.init)


def build_f1(cfg: F1Config, *, info: DataInfo) -> nn.Module:
    """Keskar's F1 for ``info`` (784 inputs and 10 classes for MNIST)."""
    return _build_fixed(cfg, info, depth=5)


def build_f2(cfg: F2Config, *, info: DataInfo) -> nn.Module:
    """Keskar's F2 for ``info`` (360 inputs and 1973 classes for TIMIT)."""
    return _build_fixed(cfg, info, depth=7)
