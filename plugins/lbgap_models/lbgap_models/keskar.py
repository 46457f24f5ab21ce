"""Keskar et al. (2017) convolutional networks C1/C3 (shallow) and C2/C4 (deep).

The layers follow Keskar's Keras 1 code (``network_zoo.py``: ``shallownet``,
``deepnet``), not the ambiguous appendix wording (peers.md §1.4):

C1/C3 (``shallownet``), ``variant: keskar_keras``
    2 × [Conv 64@5×5 stride 1 'same' → BN → ReLU → MaxPool 3×3 stride 2 'same']
    (32→16→8), Flatten (4096) → Dense 384 → BN → ReLU → Dropout 0.5 → Dense 192
    → BN → ReLU → Dropout 0.5 → Dense(classes). Biases everywhere.
    1,757,834 parameters for 10 classes, 1,775,204 for 100.
C1/C3, ``variant: hoffer``
    Hoffer's ``cifar_shallow`` port used for his Table 1: convs without bias,
    MaxPool 3/2 unpadded *before* BN (32→15→7), Linear layers of the head
    without bias. 1,388,490 parameters (10 classes), 1,405,860 (100).
C2/C4 (``deepnet``)
    VGG-16-style stacks 2×64, 2×128, 3×256, 3×512, 3×512 of Conv 3×3 'same' →
    BN → ReLU, a MaxPool 2×2 after each stack; Dropout 0.3 after the first conv
    of stack 1, 0.4 after the first conv of the other stacks and after the
    second conv of the 3-conv stacks; Flatten (512) → Dropout 0.5 → Dense 512 →
    BN → ReLU → Dropout 0.5 → Dense(classes). 14,991,946 parameters (10
    classes), 15,038,116 (100).

Keras details made explicit: Keras 1 initialises Dense and Convolution2D
weights Glorot-uniform with zero biases, and its BatchNormalization has
``momentum=0.99`` (PyTorch momentum 0.01) and ``epsilon=1e-3`` (Keras 1.2
defaults; the Keras version is not recorded in the repository). Keskar's BN is
``mode=2``: batch statistics at test time too, which is the evaluation setting
``eval.bn_mode: batch`` of a study, not a model field. 'same' max pooling:
3×3/2 pads one cell on each side, as Keras' Theano backend does (inputs are
non-negative after ReLU, so zero and −∞ padding agree); 2×2/2 on even sizes
needs no padding (this is TensorFlow's 'same'; Theano's shifts the windows
by one cell, which is not reproduced). The softmax of the output layer is left
to the loss: the networks return logits.
"""

from __future__ import annotations

from torch import nn

from lbgap.api import DataInfo

from .configs import C1Config, C2Config, C3Config, C4Config
from .init import apply_init
from .norm import norm_from_settings

__all__ = ["C1Config", "C3Config", "C2Config", "C4Config", "build_shallow", "build_deep"]


def _ceil_half(size: int) -> int:
    return (size + 1) // 2


def build_shallow(cfg: C1Config, *, info: DataInfo) -> nn.Module:
    """C1/C3 for ``info`` (input ``[C, H, W]``)."""
    in_ch, h, w = info.input_shape
    keras = cfg.variant == "keskar_keras"
    layers: list[nn.Module] = []
    ch = in_ch
    for _ in range(2):
        if keras:
            layers += [
                nn.Conv2d(ch, 64, 5, padding=2),
                norm_from_settings(cfg, 64, 2),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
            h, w = _ceil_half(h), _ceil_half(w)
        else:
            layers += [
                nn.Conv2d(ch, 64, 5, padding=2, bias=False),
                nn.MaxPool2d(3, stride=2),
                norm_from_settings(cfg, 64, 2),
                nn.ReLU(),
            ]
            h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
        ch = 64
    layers.append(nn.Flatten())
    width = ch * h * w
    for out in (384, 192):
        layers += [nn.Linear(width, out, bias=keras), norm_from_settings(cfg, out, 1), nn.ReLU()]
        if cfg.dense_dropout > 0:
            layers.append(nn.Dropout(cfg.dense_dropout))
        width = out
    layers.append(nn.Linear(width, info.num_classes))
    return apply_init(nn.Sequential(*layers), cfg.init)


#: Keskar's deepnet: (width, convs) per stack
DEEPNET_STACKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def build_deep(cfg: C2Config, *, info: DataInfo) -> nn.Module:
    """C2/C4 for ``info`` (input ``[C, H, W]``)."""
    in_ch, h, w = info.input_shape
    layers: list[nn.Module] = []
    ch = in_ch
    for s, (width, convs) in enumerate(DEEPNET_STACKS):
        for i in range(convs):
            layers += [nn.Conv2d(ch, width, 3, padding=1), norm_from_settings(cfg, width, 2), nn.ReLU()]
            ch = width
            if i < convs - 1:  # no dropout right before a pool
                p = cfg.first_conv_dropout if (s == 0 and i == 0) else cfg.conv_dropout
                if p > 0:
                    layers.append(nn.Dropout(p))
        layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
        h, w = _ceil_half(h), _ceil_half(w)
    layers.append(nn.Flatten())
    if cfg.dense_dropout > 0:
        layers.append(nn.Dropout(cfg.dense_dropout))
    layers += [nn.Linear(ch * h * w, cfg.dense_width), norm_from_settings(cfg, cfg.dense_width, 1), nn.ReLU()]
    if cfg.dense_dropout > 0:
        layers.append(nn.Dropout(cfg.dense_dropout))
    layers.append(nn.Linear(cfg.dense_width, info.num_classes))
    return apply_init(nn.Sequential(*layers), cfg.init)
