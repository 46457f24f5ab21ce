"""Weight initialisations used by the papers' code.

``torch_default``
    PyTorch's own initialisation, left as constructed: Linear and Conv weights
    ``kaiming_uniform_(a=√5)`` (i.e. U(±1/√fan_in)), biases U(±1/√fan_in);
    BatchNorm γ = 1, β = 0. Hoffer's ``mnist_f1`` and ``cifar_shallow`` use it.
``glorot_uniform``
    Keras 1 defaults (Keskar's code): Dense and Convolution2D weights
    Glorot-uniform, U(±√(6/(fan_in+fan_out))) with fan = channels·kernel area,
    biases 0; BatchNorm γ = 1, β = 0.
``he_normal_fan_out``
    Hoffer's ``init_model`` (ResNet-cifar, WResNet) and Li/Wei/Ma's WRN: conv
    weights N(0, 2/(k_h·k_w·out_channels)), BatchNorm γ = 1, β = 0, everything
    else left at the PyTorch default.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .configs import InitScheme

__all__ = ["InitScheme", "apply_init"]


_BN = nn.modules.batchnorm._BatchNorm


@torch.no_grad()
def apply_init(model: nn.Module, scheme: InitScheme) -> nn.Module:
    """Re-initialise ``model``'s Linear, Conv and BatchNorm layers in place; returns ``model``."""
    if scheme == "torch_default":
        return model
    if scheme not in ("glorot_uniform", "he_normal_fan_out"):
        raise ValueError(f"unknown init scheme {scheme!r}")
    for m in model.modules():
        if isinstance(m, _BN) and m.affine:
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif scheme == "glorot_uniform" and isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                m.bias.zero_()
        elif scheme == "he_normal_fan_out" and isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.normal_(0.0, math.sqrt(2.0 / n))
    return model
