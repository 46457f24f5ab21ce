"""lbgap's built-in networks: the models of Keskar et al., Hoffer et al. and Li, Wei & Ma.

Model plugins (``model: {name: ...}`` in a study):

==================  ==============================================================
``mlp``             configurable MLP (any input shape, flattened)
``f1``, ``f2``      Keskar's fully connected F1 (MNIST) and F2 (TIMIT)
``c1``, ``c3``      Keskar's shallow conv (CIFAR-10 / -100), Keras or Hoffer variant
``c2``, ``c4``      Keskar's deep VGG-style conv with BN and dropout
``resnet44``        Hoffer's post-activation ResNet-cifar
``wrn16_4``         Hoffer's wide post-activation ResNet (WResNet16-4)
``vgg``             VGG-11/13/16/19-BN for CIFAR (Hoffer's Table 1 "VGG")
``wrn16``           Li/Wei/Ma's pre-activation WRN-16-10 with noise sites
``two_layer_relu``  Li/Wei/Ma's two-layer ReLU network uᵀ relu(Ux)
==================  ==============================================================

Every BatchNorm model takes ``norm: batchnorm | ghost | none`` with
``ghost_size`` and ``momentum_policy`` (:class:`GhostBatchNorm`).
"""

from __future__ import annotations

import importlib
from typing import Any

from lbgap.api import Deferred, ModelPlugin, hookimpl

from .configs import (
    C1Config,
    C2Config,
    C3Config,
    C4Config,
    F1Config,
    F2Config,
    MLPConfig,
    NormSettings,
    ResNet44Config,
    TwoLayerReLUConfig,
    VGGConfig,
    WRN16Config,
    WRN16x4Config,
)

__all__ = [
    "GhostBatchNorm",
    "GhostBatchNorm1d",
    "GhostBatchNorm2d",
    "NormSettings",
    "make_norm",
    "model_plugins",
    "lbgap_register_models",
]


def model_plugins() -> list[ModelPlugin]:
    """The model plugins of this package."""
    shallow, deep = Deferred(".keskar", "build_shallow", __name__), Deferred(".keskar", "build_deep", __name__)
    return [
        ModelPlugin(name="mlp", config=MLPConfig, build=Deferred(".mlp", "build_mlp", __name__), vectorizable=True),
        ModelPlugin(name="f1", config=F1Config, build=Deferred(".mlp", "build_f1", __name__), vectorizable=True),
        ModelPlugin(name="f2", config=F2Config, build=Deferred(".mlp", "build_f2", __name__), vectorizable=True),
        ModelPlugin(name="c1", config=C1Config, build=shallow),
        ModelPlugin(name="c3", config=C3Config, build=shallow),
        ModelPlugin(name="c2", config=C2Config, build=deep),
        ModelPlugin(name="c4", config=C4Config, build=deep),
        ModelPlugin(name="resnet44", config=ResNet44Config, build=Deferred(".resnet", "build_resnet44", __name__)),
        ModelPlugin(name="wrn16_4", config=WRN16x4Config, build=Deferred(".resnet", "build_wrn16_4", __name__)),
        ModelPlugin(name="vgg", config=VGGConfig, build=Deferred(".vgg", "build_vgg", __name__)),
        ModelPlugin(name="wrn16", config=WRN16Config, build=Deferred(".wide_resnet", "build_wrn16", __name__)),
        ModelPlugin(
            name="two_layer_relu", config=TwoLayerReLUConfig, build=Deferred(".two_layer", "build_two_layer_relu", __name__)
        ),
    ]


@hookimpl
def lbgap_register_models() -> list[ModelPlugin]:
    """Register the networks of this package."""
    return model_plugins()


#: the torch-based names this package exports, imported on first use (PEP 562)
_LAZY = {
    "GhostBatchNorm": "ghost_batchnorm",
    "GhostBatchNorm1d": "ghost_batchnorm",
    "GhostBatchNorm2d": "ghost_batchnorm",
    "make_norm": "norm",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
