"""Normalisation layers chosen by name, and the configuration fields that choose them.

Every BatchNorm model of this package builds its normalisation layers with
:func:`make_norm`, so ghost batch norm (:mod:`lbgap_models.ghost_batchnorm`)
can replace BatchNorm in any of them from a study file (``norm: ghost``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt
from torch import nn

from lbgap.api import PluginConfig

from .ghost_batchnorm import GhostBatchNorm1d, GhostBatchNorm2d, GhostLayout, MomentumPolicy

__all__ = ["NormKind", "NormSettings", "make_norm", "norm_from_settings"]

NormKind = Literal["batchnorm", "ghost", "none"]


def make_norm(
    kind: NormKind,
    channels: int,
    dims: int,
    *,
    ghost_size: int = 128,
    momentum_policy: MomentumPolicy = "per_ghost",
    ghost_layout: GhostLayout = "contiguous",
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> nn.Module:
    """A normalisation layer over ``channels`` features.

    Parameters
    ----------
    kind:
        ``"batchnorm"`` (``nn.BatchNorm1d``/``2d``), ``"ghost"``
        (:class:`GhostBatchNorm1d`/``2d``) or ``"none"`` (``nn.Identity``).
    channels:
        Number of features (``C`` of ``[N, C]`` or ``[N, C, H, W]``).
    dims:
        1 for ``[N, C]`` (dense layers), 2 for ``[N, C, H, W]`` (convolutions).
    ghost_size, momentum_policy, ghost_layout:
        Ghost batch norm settings (ignored by the other kinds).
    momentum, eps:
        PyTorch BatchNorm momentum (weight of the new batch in the running
        average) and epsilon.
    """
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2, not {dims}")
    if kind == "none":
        return nn.Identity()
    if kind == "batchnorm":
        cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        return cls(channels, eps=eps, momentum=momentum)
    if kind == "ghost":
        gcls = GhostBatchNorm1d if dims == 1 else GhostBatchNorm2d
        return gcls(
            channels,
            ghost_size=ghost_size,
            momentum_policy=momentum_policy,
            ghost_layout=ghost_layout,
            eps=eps,
            momentum=momentum,
        )
    raise ValueError(f"unknown norm kind {kind!r}; expected batchnorm, ghost or none")


class NormSettings(PluginConfig):
    """Normalisation fields shared by the BatchNorm models (not a plugin)."""

    norm: NormKind = "batchnorm"
    """Normalisation after each hidden linear/conv layer: batchnorm, ghost (ghost batch norm) or none."""
    ghost_size: PositiveInt = 128
    """Samples per ghost batch when norm=ghost (Hoffer's --mini-batch-size default, 128)."""
    momentum_policy: MomentumPolicy = "per_ghost"
    """Running-statistics update of ghost batch norm: per_ghost (Hoffer's code: one EMA update per ghost
    batch, momentum unscaled), scaled (composer: momentum/number of ghosts per update) or mean (one update
    with the mean ghost statistics)."""
    ghost_layout: GhostLayout = "contiguous"
    """Which rows of a batch form ghost batch l when norm=ghost: contiguous (Hoffer's chunks: rows
    l·g … (l+1)·g−1) or strided (rows l, l+G, l+2G, …; the same random partition for a shuffled batch,
    and no copies, so as fast as plain BatchNorm)."""
    bn_momentum: float = Field(0.1, gt=0.0, le=1.0)
    """PyTorch BatchNorm momentum: weight of the new statistics in the running average (PyTorch default)."""
    bn_eps: PositiveFloat = 1e-5
    """BatchNorm epsilon added to the variance (PyTorch default)."""


def norm_from_settings(cfg: NormSettings, channels: int, dims: int) -> nn.Module:
    """:func:`make_norm` with the settings of a model configuration."""
    return make_norm(
        cfg.norm,
        channels,
        dims,
        ghost_size=cfg.ghost_size,
        momentum_policy=cfg.momentum_policy,
        ghost_layout=cfg.ghost_layout,
        momentum=cfg.bn_momentum,
        eps=cfg.bn_eps,
    )
