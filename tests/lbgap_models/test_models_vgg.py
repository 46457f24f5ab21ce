"""VGG for CIFAR, checked against torchvision's VGG feature extractor."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers
from lbgap_models.vgg import VGGConfig, build_vgg

CIFAR10 = DataInfo((3, 32, 32), 10)
TORCHVISION_CFG = {11: "A", 13: "B", 16: "D", 19: "E"}


def torchvision_features(depth: int) -> nn.Sequential:
    """torchvision's VGG-BN feature extractor (without its 25088-wide ImageNet classifier)."""
    return make_layers(cfgs[TORCHVISION_CFG[depth]], batch_norm=True)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_feature_extractor_matches_torchvision(depth):
    reference = torchvision_features(depth)
    model = build_vgg(VGGConfig(depth=depth, classifier_hidden=[]), info=CIFAR10)
    features = n_params(model) - (512 * 10 + 10)
    assert features == n_params(reference)
    assert [type(m) for m in model if not isinstance(m, (nn.Flatten, nn.Linear))] == [
        type(m) for m in reference
    ]


def test_default_is_vgg16_bn_with_4096_classifier():
    model = build_vgg(VGGConfig(), info=CIFAR10)
    features = n_params(torchvision_features(16))
    classifier = (512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)
    assert n_params(model) == features + classifier == 33_646_666
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert len(batchnorm_layers(model)) == 13


def test_forward_and_input_check():
    model = build_vgg(VGGConfig(depth=11, classifier_hidden=[64], norm="ghost", ghost_size=2), info=CIFAR10)
    assert {type(m).__name__ for m in batchnorm_layers(model)} == {"GhostBatchNorm2d"}
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    with pytest.raises(ValueError, match="too small"):
        build_vgg(VGGConfig(), info=DataInfo((3, 16, 16), 10))
