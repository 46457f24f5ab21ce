"""Function-preserving rescalings (Dinh et al. 2017, "Sharp minima can generalize").

:func:`relu_alpha_scale` — the α-scale transformation of a chain of affine
layers (``Linear``/``Conv``) joined by non-negatively homogeneous activations
(ReLU, leaky ReLU, max-pooling): layer ``k``'s weight is multiplied by
``α_k`` and its bias by ``∏_{j≤k} α_j`` (Dinh et al., App. B: a hidden
layer's bias scales with its weights), with ``∏_k α_k = 1`` so the output
layer's bias is unchanged. For two layers this is ``T_α(θ₁, θ₂) = (αθ₁, α⁻¹θ₂)``.

:func:`bn_alpha_scale` — scaling the weight and bias of a layer that feeds a
BatchNorm layer by ``α``: with batch statistics the output is unchanged up to
BatchNorm's ε; scaling ``running_mean`` by α, ``running_var`` and ``eps`` by
α² makes it exact in both evaluation modes.

Both return a transformed deep copy and the per-parameter scale factors
``s`` (``θ' = s ⊙ θ``), so the transformed Hessian is predicted exactly:
``H' = S⁻¹ H S⁻¹`` with ``S = diag(s)`` (Dinh et al., Theorem 3 — the
identity holds at every θ because the map is linear).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .flat import ParamLayout

__all__ = ["relu_alpha_scale", "bn_alpha_scale", "scale_vector"]

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise KeyError(f"no module named {name!r}")
    return modules[name]


def relu_alpha_scale(
    model: nn.Module, layers: Sequence[str], alphas: Sequence[float]
) -> tuple[nn.Module, dict[str, float]]:
    """Dinh et al.'s α-scale transformation of the chain ``layers`` (in forward order).

    Parameters
    ----------
    model:
        A network in which ``layers`` are consecutive affine layers separated
        only by non-negatively homogeneous operations.
    layers:
        Module names, first to last.
    alphas:
        Positive factors ``α_k`` with product 1.

    Returns
    -------
    (transformed copy, {parameter name: scale factor})
    """
    if len(layers) != len(alphas) or len(layers) < 2:
        raise ValueError("give at least two layers and one alpha per layer")
    if any(a <= 0 for a in alphas):
        raise ValueError("alphas must be positive")
    if abs(math.prod(alphas) - 1.0) > 1e-12 * max(1.0, max(alphas)):
        raise ValueError(f"the alphas must multiply to 1, got {math.prod(alphas)}")
    new = copy.deepcopy(model)
    scales: dict[str, float] = {}
    cum = 1.0
    for name, alpha in zip(layers, alphas, strict=True):
        m = _module(new, name)
        if not isinstance(m, _AFFINE):
            raise TypeError(f"{name!r} is {type(m).__name__}, not an affine layer")
        cum *= alpha
        with torch.no_grad():
            m.weight.mul_(alpha)
            scales[f"{name}.weight" if name else "weight"] = alpha
            if m.bias is not None:
                m.bias.mul_(cum)
                scales[f"{name}.bias" if name else "bias"] = cum
    return new, scales


def bn_alpha_scale(
    model: nn.Module, layer: str, batchnorm: str, alpha: float, *, scale_eps: bool = True
) -> tuple[nn.Module, dict[str, float]]:
    """Scale ``layer`` (which feeds the BatchNorm ``batchnorm``) by ``alpha``.

    With ``scale_eps`` the BatchNorm's ``eps`` is multiplied by α² so the
    function is preserved exactly; without it, up to the effect of ε.
    """
    if alpha <= 0:
        raise ValueError("alpha must be positive")
    new = copy.deepcopy(model)
    m = _module(new, layer)
    bn = _module(new, batchnorm)
    if not isinstance(m, _AFFINE):
        raise TypeError(f"{layer!r} is not an affine layer")
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise TypeError(f"{batchnorm!r} is not a BatchNorm layer")
    scales = {f"{layer}.weight": alpha}
    with torch.no_grad():
        m.weight.mul_(alpha)
        if m.bias is not None:
            m.bias.mul_(alpha)
            scales[f"{layer}.bias"] = alpha
        if bn.running_mean is not None:
            bn.running_mean.mul_(alpha)
            bn.running_var.mul_(alpha * alpha)
    if scale_eps:
        bn.eps = bn.eps * alpha * alpha
    return new, scales


def scale_vector(layout: ParamLayout, scales: dict[str, float]) -> torch.Tensor:
    """The flat vector ``s`` (``θ' = s ⊙ θ``) for ``layout``; 1 for unscaled parameters."""
    parts = [
        torch.full((int(torch.Size(shape).numel()),), scales.get(name, 1.0), dtype=layout.dtype)
        for name, shape in zip(layout.names, layout.shapes, strict=True)
    ]
    return torch.cat(parts).to(layout.device)
