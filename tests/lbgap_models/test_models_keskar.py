"""Keskar's C1–C4: parameter counts of the Keras code, layer layout, Keras defaults."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers
from lbgap_models.ghost_batchnorm import GhostBatchNorm1d, GhostBatchNorm2d
from lbgap_models.keskar import C1Config, C2Config, C3Config, C4Config, build_deep, build_shallow

CIFAR10 = DataInfo((3, 32, 32), 10)
CIFAR100 = DataInfo((3, 32, 32), 100)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shallownet_count(classes: int) -> int:
    """Keras shallownet by hand: convs/dense with bias, BN γ/β (Keras running stats are not weights)."""
    conv = (3 * 25 * 64 + 64) + (64 * 25 * 64 + 64) + 2 * 2 * 64
    dense = (64 * 8 * 8 * 384 + 384) + 2 * 384 + (384 * 192 + 192) + 2 * 192 + (192 * classes + classes)
    return conv + dense


def deepnet_count(classes: int) -> int:
    """Keras deepnet by hand: 13 conv3×3 + BN, Dense 512 + BN, Dense(classes)."""
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, c_in = 0, 3
    for w in widths:
        total += 9 * c_in * w + w + 2 * w
        c_in = w
    return total + (512 * 512 + 512 + 2 * 512) + (512 * classes + classes)


@pytest.mark.parametrize(("cfg", "info", "reference"), [
    (C1Config(), CIFAR10, 1_757_834),   # peers.md §1.4 (Keras shallownet, the 1.758M)
    (C3Config(), CIFAR100, 1_775_204),
    (C1Config(variant="hoffer"), CIFAR10, 1_388_490),  # Hoffer's cifar_shallow
    (C3Config(variant="hoffer"), CIFAR100, 1_405_860),
])  # fmt: skip
def test_shallow_parameter_counts(cfg, info, reference):
    model = build_shallow(cfg, info=info)
    assert n_params(model) == reference
    if cfg.variant == "keskar_keras":
        assert reference == shallownet_count(info.num_classes)


@pytest.mark.parametrize(("cfg", "info", "reference"), [
    (C2Config(), CIFAR10, 14_991_946),  # the 14.99M
    (C4Config(), CIFAR100, 15_038_116),
])  # fmt: skip
def test_deep_parameter_counts(cfg, info, reference):
    model = build_deep(cfg, info=info)
    assert n_params(model) == reference == deepnet_count(info.num_classes)


def test_shallow_layouts():
    keras = [type(m).__name__ for m in build_shallow(C1Config(), info=CIFAR10)]
    assert keras[:8] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    assert keras[8:] == ["Flatten"] + ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    hoffer = build_shallow(C1Config(variant="hoffer"), info=CIFAR10)
    assert [type(m).__name__ for m in hoffer][:8] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"] * 2
    convs = [m for m in hoffer if isinstance(m, nn.Conv2d)]
    linears = [m for m in hoffer if isinstance(m, nn.Linear)]
    assert all(m.bias is None for m in convs + linears[:-1])  # no bias in front of a BN
    assert linears[-1].bias is not None


@pytest.mark.parametrize("variant", ["keskar_keras", "hoffer"])
def test_shallow_forward_and_feature_map_size(variant):
    model = build_shallow(C1Config(variant=variant), info=CIFAR10)
    flat = {"keskar_keras": 64 * 8 * 8, "hoffer": 64 * 7 * 7}[variant]  # 32→16→8 vs 32→15→7
    first_linear = next(m for m in model if isinstance(m, nn.Linear))
    assert first_linear.in_features == flat
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_deep_dropout_layout_matches_keras_deepnet():
    model = build_deep(C2Config(), info=CIFAR10)
    rates = [m.p for m in model if isinstance(m, nn.Dropout)]
    assert rates == [0.3] + [0.4] * 7 + [0.5, 0.5]
    # no dropout directly before a pool
    seq = list(model)
    for a, b in zip(seq[:-1], seq[1:], strict=True):
        assert not (isinstance(a, nn.Dropout) and isinstance(b, nn.MaxPool2d))
    assert sum(isinstance(m, nn.MaxPool2d) for m in seq) == 5
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_keras_defaults_and_overrides():
    bns = batchnorm_layers(build_shallow(C1Config(), info=CIFAR10))
    assert {(m.momentum, m.eps) for m in bns} == {(0.01, 1e-3)}  # Keras momentum 0.99, epsilon 1e-3
    hoffer = C1Config(variant="hoffer")
    assert (hoffer.bn_momentum, hoffer.bn_eps, hoffer.init) == (0.1, 1e-5, "torch_default")
    explicit = C1Config(variant="hoffer", bn_momentum=0.2)
    assert explicit.bn_momentum == 0.2 and explicit.bn_eps == 1e-5
    bns = batchnorm_layers(build_deep(C2Config(bn_eps=1e-4), info=CIFAR10))
    assert {(m.momentum, m.eps) for m in bns} == {(0.01, 1e-4)}


def test_glorot_uniform_init():
    model = build_deep(C2Config(), info=CIFAR10)
    conv = [m for m in model if isinstance(m, nn.Conv2d)][-1]  # 512 → 512, 3×3
    bound = math.sqrt(6 / (512 * 9 + 512 * 9))
    assert conv.weight.abs().max() <= bound
    assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert all(torch.count_nonzero(m.bias) == 0 for m in model if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_ghost_norm_in_keskar_nets():
    model = build_shallow(C1Config(norm="ghost", ghost_size=2), info=CIFAR10)
    kinds = {type(m) for m in batchnorm_layers(model)}
    assert kinds == {GhostBatchNorm1d, GhostBatchNorm2d}
    assert n_params(model) == 1_757_834
    assert model(torch.randn(8, 3, 32, 32)).shape == (8, 10)
