"""Li/Wei/Ma's two-layer ReLU network N(u, U; x) = uᵀ(1(Ux) ⊙ Ux)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lbgap.data import DataInfo
from lbgap.nn import noise_sites
from lbgap_models.two_layer import TwoLayerReLUConfig, build_two_layer_relu

BINARY = DataInfo((12,), 2)


def network_value(U: torch.Tensor, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula, one unit at a time: Σ_i u_i · 1(⟨U_i, x⟩ > 0) · ⟨U_i, x⟩."""
    value = torch.zeros(x.shape[0], u.shape[1], dtype=torch.float64)
    for i in range(U.shape[0]):
        pre = x.double() @ U[i].double()
        value += ((pre > 0).double() * pre)[:, None] * u[i].double()[None, :]
    return value


def test_binary_output_is_zero_and_network_value():
    model = build_two_layer_relu(TwoLayerReLUConfig(width=7), info=BINARY)
    x = torch.randn(5, 12)
    out = model(x)
    assert out.shape == (5, 2)
    assert torch.all(out[:, 0] == 0)
    torch.testing.assert_close(out[:, 1:].double(), network_value(model.U.weight, model.u, x))


def test_cross_entropy_on_binary_logits_is_the_logistic_loss():
    model = build_two_layer_relu(TwoLayerReLUConfig(width=9, u_scale=3.0), info=BINARY)
    x = torch.randn(64, 12)
    labels = torch.randint(0, 2, (64,))
    y = 2.0 * labels - 1.0  # class 1 ↔ y = +1, class 0 ↔ y = −1
    N = model(x)[:, 1]
    logistic = torch.log1p(torch.exp(-y * N)).mean()
    torch.testing.assert_close(F.cross_entropy(model(x), labels), logistic)
    assert torch.equal(model(x).argmax(1), (N > 0).long())


def test_initialisation_scales():
    d, m = 50, 400
    model = build_two_layer_relu(TwoLayerReLUConfig(width=m), info=DataInfo((d,), 2))
    assert model.U.weight.shape == (m, d) and model.U.bias is None
    assert model.U.weight.std().item() == pytest.approx(1 / math.sqrt(d), rel=0.03)  # τ0 default 1/√d
    scale = 1 / math.sqrt(m)  # u entries ±1/√m with random signs
    torch.testing.assert_close(model.u.abs(), torch.full((m, 1), scale))
    assert 0.4 < (model.u > 0).float().mean().item() < 0.6
    model = build_two_layer_relu(TwoLayerReLUConfig(width=m, tau0=0.3, u_init="gaussian", u_scale=2.0),
                                 info=DataInfo((d,), 2))  # fmt: skip
    assert model.U.weight.std().item() == pytest.approx(0.3, rel=0.03)
    assert model.u.std().item() == pytest.approx(2.0, rel=0.2)


def test_second_layer_fixed_or_trained():
    fixed = build_two_layer_relu(TwoLayerReLUConfig(width=10), info=BINARY)
    assert [name for name, _ in fixed.named_parameters()] == ["U.weight"]
    assert "u" in dict(fixed.named_buffers())
    trained = build_two_layer_relu(TwoLayerReLUConfig(width=10, train_second_layer=True), info=BINARY)
    assert sorted(name for name, _ in trained.named_parameters()) == ["U.weight", "u"]
    assert sum(p.numel() for p in trained.parameters()) == 10 * 12 + 10


def test_noise_site_is_on_the_pre_activation():
    model = build_two_layer_relu(TwoLayerReLUConfig(width=6), info=BINARY)
    (site,) = noise_sites(model)
    x = torch.randn(4, 12)
    shift = torch.randn(6)
    site.noise_fn = lambda h: shift.expand_as(h)
    expected = torch.relu(x @ model.U.weight.T + shift) @ model.u  # uᵀ relu(Ux + Ξ)
    torch.testing.assert_close(model(x)[:, 1:], expected)


def test_multiclass_and_flattening():
    info = DataInfo((2, 3, 4), 5)
    model = build_two_layer_relu(TwoLayerReLUConfig(width=8), info=info)
    x = torch.randn(3, 2, 3, 4)
    torch.testing.assert_close(model(x).double(), network_value(model.U.weight, model.u, x.flatten(1)))
    with pytest.raises(ValueError, match="2-class"):
        build_two_layer_relu(TwoLayerReLUConfig(output="binary_logit"), info=info)
    per_class = build_two_layer_relu(TwoLayerReLUConfig(output="per_class", width=4), info=BINARY)
    assert per_class.u.shape == (4, 2)
