"""Normalisation layers chosen by name, and the configuration fields that choose them.

Every BatchNorm model of this package builds its normalisation layers with
:func:`make_norm`, so ghost batch norm (:mod:`lbgap_models.ghost_batchnorm`)
can replace BatchNorm in any of them from a study file (``norm: ghost``).
"""

from __future__ import annotations

from torch import nn

from .configs import GhostLayout, MomentumPolicy, NormKind, NormSettings
from .ghost_batchnorm import GhostBatchNorm1d, GhostBatchNorm2d

__all__ = ["NormKind", "NormSettings", "make_norm", "norm_from_settings"]


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
