"""Distances between parameter vectors (two minimizers, or a model and its initialization).

``‖θ − θ'‖₂`` over a chosen set of tensors, accumulated in float64:
``"parameters"`` (every parameter, as Hoffer et al. log ‖w_t − w_0‖) or
``"weights"`` (parameters with two or more dimensions: no biases, no
BatchNorm γ/β). The relative distance divides by ``‖θ'‖₂``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

__all__ = ["selected_names", "parameter_distance", "per_tensor_distance", "parameter_norm"]

Selection = Literal["parameters", "weights"]


def selected_names(model: nn.Module, include: Selection = "parameters") -> list[str]:
    """Names of the parameters a distance covers."""
    if include == "parameters":
        return [n for n, _ in model.named_parameters()]
    if include == "weights":
        return [n for n, p in model.named_parameters() if p.dim() >= 2]
    raise ValueError(f"include must be 'parameters' or 'weights', not {include!r}")


def per_tensor_distance(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], names: list[str]
) -> dict[str, float]:
    """``‖a[n] − b[n]‖₂`` for each name, in float64."""
    missing = [n for n in names if n not in b]
    if missing:
        raise KeyError(f"state lacks {missing[:5]}")
    out = {}
    for n in names:
        d = a[n].detach().double() - b[n].detach().to(a[n].device).double()
        out[n] = float(torch.linalg.vector_norm(d))
    return out


def parameter_distance(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], names: list[str]
) -> float:
    """Global ``‖a − b‖₂`` over ``names``."""
    return math.sqrt(sum(d * d for d in per_tensor_distance(a, b, names).values()))


def parameter_norm(a: Mapping[str, torch.Tensor], names: list[str]) -> float:
    """Global ``‖a‖₂`` over ``names``."""
    return math.sqrt(sum(float(torch.linalg.vector_norm(a[n].detach().double())) ** 2 for n in names))
