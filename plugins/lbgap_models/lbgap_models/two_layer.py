"""Li, Wei & Ma's (2019) two-layer ReLU network ``N(u, U; x) = uᵀ(1(Ux) ⊙ Ux) = uᵀ relu(Ux)``.

``U ∈ R^{m×d}`` (no biases) has i.i.d. N(0, τ0²) entries; the second layer
``u`` is fixed by default (the analysis trains ``U`` only). A
:class:`lbgap.nn.NoiseSite` sits on the pre-activation ``Ux``, so that with
noise ``Ξ`` switched on the output is ``uᵀ relu(Ux + Ξ)`` (the paper's
mitigation by pre-activation noise).

Binary problems (``output: binary_logit``)
    The network has one scalar output ``N(x)``; to train it with the engine's
    cross-entropy the model returns the two logits ``[0, N(x)]``. Then
    ``CE([0, N], 1) = log(1 + e^{−N})`` and ``CE([0, N], 0) = log(1 + e^{N})``:
    the logistic loss of the paper with label ``y = +1`` as class 1 and
    ``y = −1`` as class 0, and ``argmax`` predicts ``sign N(x)``.
Multi-class problems (``output: per_class``)
    ``u`` becomes ``m × classes`` and the logits are ``uᵀ relu(Ux)``.

The paper's constants (width m, τ0 and the scale of u) could not be checked
against its text (peers.md §3.6); the defaults below are documented choices.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lbgap.api import DataInfo, NoiseSite

from .configs import TwoLayerReLUConfig

__all__ = ["TwoLayerReLUConfig", "TwoLayerReLU", "build_two_layer_relu"]


class TwoLayerReLU(nn.Module):
    """``x ↦ uᵀ relu(NoiseSite(U x))`` (with ``[0, ·]`` logits in binary mode).

    Attributes
    ----------
    U:
        First layer, ``nn.Linear(d, m, bias=False)``.
    u:
        Second layer, ``[m, k]`` (``k = 1`` in binary mode); a parameter if trained, else a buffer.
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        outputs: int,
        *,
        binary_logit: bool,
        tau0: float,
        u_init: str,
        u_scale: float,
        train_second_layer: bool,
    ) -> None:
        super().__init__()
        self.binary_logit = binary_logit
        self.U = nn.Linear(in_features, width, bias=False)
        self.noise = NoiseSite()
        with torch.no_grad():
            self.U.weight.normal_(0.0, tau0)
        k = 1 if binary_logit else outputs
        if u_init == "random_sign":
            u = (torch.randint(0, 2, (width, k)) * 2 - 1).to(torch.get_default_dtype()) * u_scale
        elif u_init == "gaussian":
            u = torch.randn(width, k) * u_scale
        else:
            raise ValueError(f"unknown u_init {u_init!r}")
        if train_second_layer:
            self.u = nn.Parameter(u)
        else:
            self.register_buffer("u", u)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.noise(self.U(x.flatten(1))))
        out = h @ self.u
        if self.binary_logit:
            return torch.cat([torch.zeros_like(out), out], dim=1)
        return out


def build_two_layer_relu(cfg: TwoLayerReLUConfig, *, info: DataInfo) -> nn.Module:
    """The two-layer network of ``cfg`` for ``info``."""
    d = int(math.prod(info.input_shape))
    binary = cfg.output == "binary_logit" or (cfg.output == "auto" and info.num_classes == 2)
    if binary and info.num_classes != 2:
        raise ValueError(f"output=binary_logit needs a 2-class data set, not {info.num_classes} classes")
    return TwoLayerReLU(
        d,
        cfg.width,
        info.num_classes,
        binary_logit=binary,
        tau0=cfg.tau0 if cfg.tau0 is not None else 1.0 / math.sqrt(d),
        u_init=cfg.u_init,
        u_scale=cfg.u_scale if cfg.u_scale is not None else 1.0 / math.sqrt(cfg.width),
        train_second_layer=cfg.train_second_layer,
    )
