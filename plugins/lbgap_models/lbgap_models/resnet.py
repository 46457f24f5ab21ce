"""Hoffer's post-activation ResNet-cifar (ResNet44) and its wide variant (WResNet16-4).

As in ``eladhoffer/bigBatch`` ``models/resnet.py`` (``ResNet_cifar10``) and
``models/wide_resnet.py`` (``WResNet_cifar10``), which share one design:

* stem: Conv 3×3 (16·k channels, no bias) → BN → ReLU;
* three stages of ``n = int((depth − 2) / 6)`` post-activation BasicBlocks
  (conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut, → ReLU) with widths
  16k, 32k, 64k and stride 2 at the start of stages 2 and 3;
* shortcut: identity, or 1×1 conv (no bias) → BN when the shape changes;
* global average pooling (the code's AvgPool2d(8) on the 8×8 map of a 32×32
  input) → Linear(64k, classes);
* init: conv weights N(0, 2/(9·out_channels)) (1×1: 2/out_channels), BN γ=1,
  β=0, Linear at the PyTorch default.

ResNet44 (k = 1, depth 44, n = 7) has 661,338 parameters for 10 classes.
WResNet16-4 (k = 4, depth 16) has ``n = int(14/6) = 2`` blocks per stage
(64/128/256 channels) and 2,800,804 parameters for 100 classes. It is Hoffer's
post-activation code with a width multiplier, not Zagoruyko's pre-activation
WRN (that one is :mod:`lbgap_models.wide_resnet`).
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from lbgap.api import DataInfo

from .configs import InitScheme, NormSettings, ResNet44Config, WRN16x4Config
from .init import apply_init
from .norm import norm_from_settings

__all__ = [
    "ResNet44Config",
    "WRN16x4Config",
    "ResNetCifar",
    "build_resnet44",
    "build_wrn16_4",
    "resnet_cifar",
]


class BasicBlock(nn.Module):
    """Post-activation residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cfg: NormSettings, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_from_settings(cfg, out_ch, 2)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = norm_from_settings(cfg, out_ch, 2)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm_from_settings(cfg, out_ch, 2)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNetCifar(nn.Module):
    """Hoffer's ResNet_cifar10 / WResNet_cifar10 with width multiplier ``k``."""

    def __init__(
        self, cfg: NormSettings, *, depth: int, multiplier: int, in_channels: int, num_classes: int
    ) -> None:
        super().__init__()
        n = int((depth - 2) / 6)
        if n < 1:
            raise ValueError(f"depth {depth} gives no residual blocks; need depth ≥ 8")
        widths = [16 * multiplier, 32 * multiplier, 64 * multiplier]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = norm_from_settings(cfg, widths[0], 2)
        self.relu = nn.ReLU()
        stages = []
        ch = widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cfg, ch, w, stride=2 if (i > 0 and b == 0) else 1))
                ch = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet_cifar(
    cfg: NormSettings, *, info: DataInfo, depth: int, multiplier: int, init: InitScheme
) -> nn.Module:
    """Build :class:`ResNetCifar` for ``info`` and initialise it."""
    model = ResNetCifar(
        cfg, depth=depth, multiplier=multiplier, in_channels=info.input_shape[0], num_classes=info.num_classes
    )
    return apply_init(model, init)


def build_resnet44(cfg: ResNet44Config, *, info: DataInfo) -> nn.Module:
    """ResNet44 (or another depth) for ``info``."""
    return resnet_cifar(cfg, info=info, depth=cfg.depth, multiplier=1, init=cfg.init)


def build_wrn16_4(cfg: WRN16x4Config, *, info: DataInfo) -> nn.Module:
    """WResNet16-4 for ``info``."""
    return resnet_cifar(cfg, info=info, depth=cfg.depth, multiplier=cfg.multiplier, init=cfg.init)
