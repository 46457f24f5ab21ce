"""Small, paper-agnostic building blocks the engine and plugins share.

* :class:`NoiseSite` — an identity layer that a noise injector can switch on.
  Models place it where noise may be injected (for example before a ReLU);
  injectors find the sites with :func:`noise_sites`.
* :func:`batchnorm_layers` and :func:`bn_eval_mode` — how BatchNorm behaves
  during evaluation and measurement: ``"running"`` (the usual eval mode, running
  statistics) or ``"batch"`` (statistics of the batch being evaluated, as Keras'
  BatchNormalization ``mode=2`` did at test time), never touching the running
  buffers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Optional

import torch
from torch import nn

__all__ = ["NoiseSite", "noise_sites", "batchnorm_layers", "bn_eval_mode", "BN_MODES"]

BN_MODES = ("running", "batch")


class NoiseSite(nn.Module):
    """Identity unless ``noise_fn`` is set; then ``x + noise_fn(x)``.

    The function is applied only in training mode unless ``in_eval`` is True.
    """

    def __init__(self) -> None:
        super().__init__()
        self.noise_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
        self.in_eval = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise_fn is None or not (self.training or self.in_eval):
            return x
        return x + self.noise_fn(x)


def noise_sites(model: nn.Module) -> list[NoiseSite]:
    """Every :class:`NoiseSite` in ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, NoiseSite)]


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """Every BatchNorm-like layer (``torch.nn`` BatchNorm and subclasses)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def bn_eval_mode(model: nn.Module, mode: str = "running") -> Iterator[nn.Module]:
    """Put ``model`` in evaluation mode with BatchNorm in ``mode``.

    ``"running"``: ``model.eval()``. ``"batch"``: ``model.eval()`` but every
    BatchNorm layer normalises with the statistics of the batch it sees and
    leaves its running buffers untouched. Dropout is off in both. The previous
    train/eval flags of every module are restored on exit.
    """
    if mode not in BN_MODES:
        raise ValueError(f"bn mode must be one of {BN_MODES}, not {mode!r}")
    flags = [(m, m.training) for m in model.modules()]
    saved = []
    try:
        model.eval()
        if mode == "batch":
            for bn in batchnorm_layers(model):
                saved.append((bn, bn.track_running_stats, bn.running_mean, bn.running_var))
                # with track_running_stats False and no buffers, F.batch_norm uses
                # batch statistics and updates nothing
                bn.track_running_stats = False
                bn.running_mean = None
                bn.running_var = None
        yield model
    finally:
        for bn, track, rm, rv in saved:
            bn.track_running_stats = track
            bn.running_mean = rm
            bn.running_var = rv
        for m, flag in flags:
            m.training = flag
