"""Hoffer's post-activation ResNet-cifar (ResNet44) and WResNet16-4."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers
from lbgap_models.ghost_batchnorm import GhostBatchNorm2d
from lbgap_models.resnet import BasicBlock, ResNet44Config, WRN16x4Config, build_resnet44, build_wrn16_4

CIFAR10 = DataInfo((3, 32, 32), 10)
CIFAR100 = DataInfo((3, 32, 32), 100)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resnet_cifar_count(depth: int, k: int, classes: int) -> int:
    """Hoffer's ResNet_cifar10 by hand: bias-free convs, BN γ/β, 1×1+BN projections, Linear head."""
    n = (depth - 2) // 6
    widths = [16 * k, 32 * k, 64 * k]
    total = 3 * 9 * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for w in widths:
        for _ in range(n):
            total += 9 * c_in * w + 9 * w * w + 4 * w
            if c_in != w:
                total += c_in * w + 2 * w
            c_in = w
    return total + c_in * classes + classes


def test_resnet44_parameter_count():
    model = build_resnet44(ResNet44Config(), info=CIFAR10)
    count = n_params(model)
    assert count == resnet_cifar_count(44, 1, 10) == 661_338
    assert count == pytest.approx(661e3, rel=0.002)  # peers.md §2.5: ≈ 661k
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 3 * 7


def test_wrn16_4_parameter_count():
    model = build_wrn16_4(WRN16x4Config(), info=CIFAR100)
    count = n_params(model)
    assert count == resnet_cifar_count(16, 4, 100) == 2_800_804
    assert count == pytest.approx(2.80e6, rel=0.002)  # peers.md §2.5: about 2.80M for 100 classes
    assert sum(isinstance(m, BasicBlock) for m in model.modules()) == 3 * 2  # n = int(14/6) = 2
    assert model.fc.in_features == 256


def test_blocks_are_post_activation():
    """A post-activation block ends with a ReLU after the addition: its output is never negative."""
    model = build_resnet44(ResNet44Config(depth=20), info=CIFAR10)
    outputs = []
    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.register_forward_hook(lambda mod, inp, out: outputs.append(out))
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    assert len(outputs) == 9
    assert all(o.min() >= 0 for o in outputs)
    assert [o.shape[1:] for o in outputs[::3]] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_hoffer_init():
    model = build_wrn16_4(WRN16x4Config(), info=CIFAR100)
    conv = model.layer3[1].conv2  # 256 → 256, 3×3
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 256)), rel=0.01)
    assert conv.weight.mean().abs().item() < 1e-3
    bns = batchnorm_layers(model)
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    assert {(m.momentum, m.eps) for m in bns} == {(0.1, 1e-5)}


def test_wrn16_4_forward_and_ghost_norm():
    model = build_wrn16_4(WRN16x4Config(norm="ghost", ghost_size=2), info=CIFAR100)
    assert all(isinstance(m, GhostBatchNorm2d) for m in batchnorm_layers(model))
    assert len(batchnorm_layers(model)) == 1 + 2 * 6 + 2  # stem, two per block, two projections
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 100)
