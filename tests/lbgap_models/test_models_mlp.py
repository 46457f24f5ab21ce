"""MLP, F1 and F2: parameter counts from the papers, layer order, flattening, options."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers, noise_sites
from lbgap_models.ghost_batchnorm import GhostBatchNorm1d
from lbgap_models.mlp import F1Config, F2Config, MLPConfig, build_f1, build_f2, build_mlp


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


MNIST = DataInfo((1, 28, 28), 10)
TIMIT = DataInfo((360,), 1973)


def mlp_count(widths: list[int], bn: bool, bias: bool = True) -> int:
    """Closed form: Linear weights (+ biases) plus BN γ/β on every hidden layer."""
    total = 0
    for a, b in zip(widths[:-1], widths[1:], strict=False):
        total += a * b + (b if bias else 0)
    if bn:
        total += sum(2 * w for w in widths[1:-1])
    return total


def test_f1_has_keskar_parameter_count():
    model = build_f1(F1Config(), info=MNIST)
    assert n_params(model) == 1_462_794  # Keskar App. B.1 / Hoffer mnist_f1, with biases
    assert n_params(model) == mlp_count([784] + [512] * 5 + [10], bn=True)
    assert len(batchnorm_layers(model)) == 5


def test_f2_has_keskar_parameter_count():
    model = build_f2(F2Config(), info=TIMIT)
    assert n_params(model) == 2_780_085  # Keskar App. B.2: 360 → 7×512 BN → 1973
    assert n_params(model) == mlp_count([360] + [512] * 7 + [1973], bn=True)
    assert model(torch.randn(4, 360)).shape == (4, 1973)


def test_f1_layer_order_is_linear_norm_relu():
    model = build_f1(F1Config(), info=MNIST)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:4] == ["Flatten", "Linear", "BatchNorm1d", "ReLU"]
    assert kinds[-1] == "Linear" and kinds.count("ReLU") == 5


def test_f1_ghost_norm():
    model = build_f1(F1Config(norm="ghost", ghost_size=32, momentum_policy="scaled"), info=MNIST)
    layers = batchnorm_layers(model)
    assert len(layers) == 5 and all(isinstance(m, GhostBatchNorm1d) for m in layers)
    assert {(m.ghost_size, m.momentum_policy) for m in layers} == {(32, "scaled")}
    assert model(torch.randn(128, 1, 28, 28)).shape == (128, 10)


@pytest.mark.parametrize("shape", [(1, 28, 28), (40,), (3, 4, 5)])
def test_mlp_flattens_any_input_shape(shape):
    info = DataInfo(shape, 7)
    model = build_mlp(MLPConfig(hidden=[16, 8]), info=info)
    assert model(torch.randn(3, *shape)).shape == (3, 7)
    assert n_params(model) == mlp_count([math.prod(shape), 16, 8, 7], bn=False)


def test_mlp_options():
    cfg = MLPConfig(hidden=[32, 32], norm="batchnorm", bn_momentum=0.3, bn_eps=1e-3, dropout=0.25,
                    activation="tanh", bias=False, noise_sites=True)  # fmt: skip
    model = build_mlp(cfg, info=DataInfo((10,), 3))
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Flatten"] + ["Linear", "BatchNorm1d", "NoiseSite", "Tanh", "Dropout"] * 2 + ["Linear"]
    assert all(m.bias is None for m in model if isinstance(m, nn.Linear))
    assert {(m.momentum, m.eps) for m in batchnorm_layers(model)} == {(0.3, 1e-3)}
    assert {m.p for m in model if isinstance(m, nn.Dropout)} == {0.25}
    assert len(noise_sites(model)) == 2
    assert n_params(model) == mlp_count([10, 32, 32, 3], bn=True, bias=False)


def test_mlp_linear_model_and_glorot_init():
    model = build_mlp(MLPConfig(hidden=[], init="glorot_uniform"), info=DataInfo((200,), 300))
    (linear,) = [m for m in model if isinstance(m, nn.Linear)]
    bound = math.sqrt(6 / (200 + 300))
    assert linear.weight.abs().max() <= bound
    # a uniform on ±bound has std bound/√3
    assert linear.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert torch.count_nonzero(linear.bias) == 0


def test_mlp_default_init_is_pytorch_default():
    model = build_mlp(MLPConfig(hidden=[400]), info=DataInfo((300,), 2))
    first = model[1]
    bound = 1 / math.sqrt(300)  # kaiming_uniform(a=√5) → U(±1/√fan_in)
    assert first.weight.abs().max() <= bound
    assert first.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert first.bias.abs().max() <= bound and torch.count_nonzero(first.bias) > 0
