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

from lbgap.api import ModelPlugin, hookimpl

from .ghost_batchnorm import GhostBatchNorm, GhostBatchNorm1d, GhostBatchNorm2d
from .keskar import C1Config, C2Config, C3Config, C4Config, build_deep, build_shallow
from .mlp import F1Config, F2Config, MLPConfig, build_f1, build_f2, build_mlp
from .norm import NormSettings, make_norm
from .resnet import ResNet44Config, WRN16x4Config, build_resnet44, build_wrn16_4
from .two_layer import TwoLayerReLUConfig, build_two_layer_relu
from .vgg import VGGConfig, build_vgg
from .wide_resnet import WRN16Config, build_wrn16

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
    return [
        ModelPlugin(name="mlp", config=MLPConfig, build=build_mlp, vectorizable=True),
        ModelPlugin(name="f1", config=F1Config, build=build_f1, vectorizable=True),
        ModelPlugin(name="f2", config=F2Config, build=build_f2, vectorizable=True),
        ModelPlugin(name="c1", config=C1Config, build=build_shallow),
        ModelPlugin(name="c3", config=C3Config, build=build_shallow),
        ModelPlugin(name="c2", config=C2Config, build=build_deep),
        ModelPlugin(name="c4", config=C4Config, build=build_deep),
        ModelPlugin(name="resnet44", config=ResNet44Config, build=build_resnet44),
        ModelPlugin(name="wrn16_4", config=WRN16x4Config, build=build_wrn16_4),
        ModelPlugin(name="vgg", config=VGGConfig, build=build_vgg),
        ModelPlugin(name="wrn16", config=WRN16Config, build=build_wrn16),
        ModelPlugin(name="two_layer_relu", config=TwoLayerReLUConfig, build=build_two_layer_relu),
    ]


@hookimpl
def lbgap_register_models() -> list[ModelPlugin]:
    """Register the networks of this package."""
    return model_plugins()
