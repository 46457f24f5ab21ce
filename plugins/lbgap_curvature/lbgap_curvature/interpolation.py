"""Keskar et al.'s 1-D parametric plot between two minimizers.

``θ(α) = (1 − α) θ_a + α θ_b`` for α ∈ [−1, 2] (25 points by default), where
``θ_a`` is the measured model and ``θ_b`` a reference state (Keskar: the
small-batch minimizer at α = 0, the large-batch one at α = 1). Appendix D's
curved path ``cos(απ/2) θ_a + sin(απ/2) θ_b`` is also offered. Each point is
computed from the two end points directly (no accumulated in-place updates),
so α = 0 and α = 1 reproduce the end points bit for bit.

Which tensors move is explicit: ``"parameters"`` (Keskar's Keras code: the
trainable weights, W, b and BatchNorm γ/β) or ``"state"`` (also the floating
buffers — BatchNorm running statistics — as Keskar's PyTorch script and Li et
al.'s ``states`` directions do). Integer buffers (``num_batches_tracked``) are
never interpolated; running variances that extrapolation (α < 0 or α > 1)
would make negative are clamped at 0. With ``bn_mode="batch"`` BatchNorm uses batch statistics
(Keras ``mode=2``) and its running buffers play no part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from lbgap.api import batchnorm_layers

from .flat import ParamLayout
from .loss import EvalBatches, LossFn, ModelObjective

__all__ = [
    "InterpolationCurve",
    "interpolation_alphas",
    "path_coefficients",
    "interpolate",
    "interpolation_curve",
    "interpolated_buffer_names",
]

Path = Literal["linear", "curved"]
Tensors = Literal["parameters", "state"]


def interpolation_alphas(num_points: int = 25, alpha_min: float = -1.0, alpha_max: float = 2.0) -> np.ndarray:
    """``linspace(alpha_min, alpha_max, num_points)`` (Keskar: −1, 2, 25, which holds 0 and 1 exactly)."""
    return np.linspace(alpha_min, alpha_max, num_points)


def path_coefficients(alpha: float, path: Path = "linear") -> tuple[float, float]:
    """``(c_a, c_b)`` with ``θ(α) = c_a θ_a + c_b θ_b``; exact at α = 0 and α = 1."""
    if path == "linear":
        return 1.0 - alpha, alpha
    if path == "curved":
        if alpha == 0:
            return 1.0, 0.0
        if alpha == 1:
            return 0.0, 1.0
        return math.cos(alpha * math.pi / 2), math.sin(alpha * math.pi / 2)
    raise ValueError(f"path must be 'linear' or 'curved', not {path!r}")


def interpolate(a: torch.Tensor, b: torch.Tensor, alpha: float, path: Path = "linear") -> torch.Tensor:
    """``c_a a + c_b b``, computed from scratch."""
    ca, cb = path_coefficients(alpha, path)
    if cb == 0:
        return a.clone()
    if ca == 0:
        return b.clone()
    return ca * a + cb * b


def interpolated_buffer_names(model: nn.Module, tensors: Tensors, bn_mode: str) -> list[str]:
    """Floating buffers that move along the path (none for ``"parameters"``)."""
    if tensors == "parameters":
        return []
    if tensors != "state":
        raise ValueError(f"tensors must be 'parameters' or 'state', not {tensors!r}")
    skip: set[str] = set()
    if bn_mode == "batch":
        bn_ids = {id(m) for m in batchnorm_layers(model)}
        for name, m in model.named_modules():
            if id(m) in bn_ids:
                prefix = f"{name}." if name else ""
                skip |= {prefix + "running_mean", prefix + "running_var"}
    return [n for n, b in model.named_buffers() if b.is_floating_point() and n not in skip]


@dataclass
class InterpolationCurve:
    """Loss and accuracy along the path for each evaluated split."""

    alphas: np.ndarray
    loss: dict[str, np.ndarray]
    accuracy: dict[str, np.ndarray]


def interpolation_curve(
    model: nn.Module,
    reference_state: Mapping[str, torch.Tensor],
    alphas: np.ndarray,
    batches: Mapping[str, EvalBatches],
    loss_fn: LossFn,
    *,
    bn_mode: str = "running",
    tensors: Tensors = "state",
    path: Path = "linear",
) -> InterpolationCurve:
    """Evaluate every split of ``batches`` at every α between ``model`` and ``reference_state``."""
    names = [n for n, _ in model.named_parameters()]
    missing = [n for n in names if n not in reference_state]
    layout = ParamLayout.from_model(model, names)
    buf_names = interpolated_buffer_names(model, tensors, bn_mode)
    missing += [n for n in buf_names if n not in reference_state]
    if missing:
        raise KeyError(f"reference state lacks {missing[:5]}")
    xa = layout.current(model)
    xb = layout.flatten({n: reference_state[n].to(device=xa.device, dtype=xa.dtype) for n in names})
    bufs = dict(model.named_buffers())
    bufs_a = {n: bufs[n].detach() for n in buf_names}
    bufs_b = {n: reference_state[n].to(bufs[n]) for n in buf_names}
    var_names = [n for n in buf_names if n.rsplit(".", 1)[-1] == "running_var"]
    objectives = {
        s: ModelObjective(model, b, loss_fn, bn_mode=bn_mode, layout=layout) for s, b in batches.items()
    }
    loss = {s: np.empty(len(alphas)) for s in batches}
    acc = {s: np.empty(len(alphas)) for s in batches}
    for i, alpha in enumerate(alphas):
        alpha = float(alpha)
        x = interpolate(xa, xb, alpha, path)
        extra = {n: interpolate(bufs_a[n], bufs_b[n], alpha, path) for n in buf_names}
        for n in var_names:  # extrapolated variances can turn negative
            extra[n] = extra[n].clamp_min(0)
        for s, obj in objectives.items():
            loss[s][i], acc[s][i] = obj.loss_and_accuracy(x, extra)
    return InterpolationCurve(np.asarray(alphas, dtype=float), loss, acc)
