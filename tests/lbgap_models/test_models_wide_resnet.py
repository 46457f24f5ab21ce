"""Li/Wei/Ma's pre-activation WRN-16-10 with noise sites."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers, noise_sites
from lbgap_models.wide_resnet import PreActBlock, WRN16Config, build_wrn16

CIFAR10 = DataInfo((3, 32, 32), 10)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def wrn_count(depth: int, w: int, classes: int) -> int:
    """WideResNet by hand: stem conv, pre-act blocks (BN γ/β on the block input), final BN, Linear."""
    n = (depth - 4) // 6
    total, c_in = 3 * 9 * 16, 16
    for width in (16 * w, 32 * w, 64 * w):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * width + 2 * width + 9 * width * width
            if c_in != width:
                total += c_in * width
            c_in = width
    return total + 2 * c_in + c_in * classes + classes


def authors_block(block: PreActBlock, x: torch.Tensor) -> torch.Tensor:
    """BasicBlock.forward of cwein3/large-lr-code, written against this block's layers."""
    equal = block.shortcut is None
    if not equal:
        x = F.relu(block.bn1(x))
    else:
        out = F.relu(block.bn1(x))
    out = F.relu(block.bn2(block.conv1(out if equal else x)))
    out = block.conv2(out)
    return (x if equal else block.shortcut(x)) + out


def test_wrn16_10_parameter_count():
    model = build_wrn16(WRN16Config(), info=CIFAR10)
    count = n_params(model)
    assert count == wrn_count(16, 10, 10) == 17_116_634
    assert count == pytest.approx(17.1e6, rel=0.005)  # peers.md §3.5: about 17.1M
    assert model.fc.in_features == 640


def test_blocks_match_authors_forward():
    model = build_wrn16(WRN16Config(widen_factor=2), info=CIFAR10).eval()
    x = torch.randn(2, 3, 16, 16)
    h = model.conv1(x)
    blocks = [b for b in model.modules() if isinstance(b, PreActBlock)]
    assert [b.shortcut is None for b in blocks] == [False, True] * 3
    for b in blocks:
        torch.testing.assert_close(b(h), authors_block(b, h))
        h = b(h)


def test_noise_sites_sit_between_bn_and_relu():
    model = build_wrn16(WRN16Config(widen_factor=1), info=CIFAR10)
    sites = noise_sites(model)
    assert len(sites) == 2 * 6 + 1
    seen: dict[int, tuple] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.BatchNorm2d, nn.ReLU)) or m in sites:
            m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, (inp[0], out)))
    model(torch.randn(2, 3, 8, 8))
    pairs = [(f"{p}bn1", f"{p}noise1", f"{p}relu1") for p in _block_prefixes(model)]
    pairs += [(f"{p}bn2", f"{p}noise2", f"{p}relu2") for p in _block_prefixes(model)]
    pairs.append(("bn1", "noise", "relu"))
    for bn, site, relu in pairs:
        assert seen[site][0] is seen[bn][1]  # the site takes the BN output
        assert seen[relu][0] is seen[site][1]  # the ReLU takes the site output


def _block_prefixes(model: nn.Module) -> list[str]:
    return [f"{name}." for name, m in model.named_modules() if isinstance(m, PreActBlock)]


def test_switched_on_site_adds_pre_activation_noise():
    model = build_wrn16(WRN16Config(widen_factor=1), info=CIFAR10)
    x = torch.randn(2, 3, 8, 8)
    final = noise_sites(model)[-1]
    final.noise_fn = lambda h: torch.full_like(h, -1e6)  # kills every unit of the last ReLU
    out = model(x)
    torch.testing.assert_close(out, model.fc.bias.expand(2, 10))
    model.eval()  # sites are off in evaluation
    assert not torch.allclose(model(x), model.fc.bias.expand(2, 10))


def test_authors_init_and_options():
    model = build_wrn16(WRN16Config(widen_factor=1, dropout=0.4, norm="ghost", ghost_size=4), info=CIFAR10)
    assert torch.count_nonzero(model.fc.bias) == 0
    assert all(torch.all(m.weight == 1) for m in batchnorm_layers(model))
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 6
    assert {type(m).__name__ for m in batchnorm_layers(model)} == {"GhostBatchNorm2d"}
    assert model(torch.randn(8, 3, 8, 8)).shape == (8, 10)
    with pytest.raises(ValidationError):
        WRN16Config(depth=15)
