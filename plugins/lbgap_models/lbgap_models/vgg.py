"""VGG (Simonyan & Zisserman 2014) for CIFAR, the "VGG" row of Hoffer et al.'s Table 1.

``bigBatch`` has no VGG model although the paper (and the 2020 replication
report) lists VGG on CIFAR-10 (SB 92.30%, LB 84.1%). The configuration here is
the CIFAR VGG of the authors' follow-up code base, ``eladhoffer/convNet.pytorch``
``models/vgg.py`` (``dataset=cifar10``): the VGG-11/13/16/19 conv stacks
(3×3 convs with bias, padding 1, → BN → ReLU; 2×2 max pool after each stack),
then Linear(512, 4096) → ReLU → Dropout 0.5 → Linear(4096, 4096) → ReLU →
Dropout 0.5 → Linear(4096, classes), PyTorch default initialisation. VGG-16
with BN has 33,646,666 parameters for 10 classes.

``classifier_hidden: []`` gives the common single-Linear CIFAR head
(512 → classes; 14,728,266 parameters for VGG-16-BN).
"""

from __future__ import annotations

from typing import Union

from torch import nn

from lbgap.api import DataInfo

from .configs import VGGConfig
from .init import apply_init
from .norm import norm_from_settings

__all__ = ["VGGConfig", "VGG_STACKS", "build_vgg"]

#: conv widths per VGG depth; "M" is a 2×2 max pool (configurations A, B, D, E of the paper)
# fmt: off
VGG_STACKS: dict[int, list[Union[int, str]]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on


def build_vgg(cfg: VGGConfig, *, info: DataInfo) -> nn.Module:
    """The VGG of ``cfg`` for ``info`` (input ``[C, H, W]``)."""
    ch, h, w = info.input_shape
    layers: list[nn.Module] = []
    for v in VGG_STACKS[cfg.depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2))
            h, w = h // 2, w // 2
        else:
            layers += [
                nn.Conv2d(ch, int(v), 3, padding=1, bias=cfg.conv_bias),
                norm_from_settings(cfg, int(v), 2),
            ]
            layers.append(nn.ReLU())
            ch = int(v)
    if h < 1 or w < 1:
        raise ValueError(f"input {info.input_shape} is too small for VGG's five 2×2 pools (need ≥ 32×32)")
    layers.append(nn.Flatten())
    width = ch * h * w
    for hidden in cfg.classifier_hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if cfg.classifier_dropout > 0:
            layers.append(nn.Dropout(cfg.classifier_dropout))
        width = hidden
    layers.append(nn.Linear(width, info.num_classes))
    return apply_init(nn.Sequential(*layers), cfg.init)
