"""Metrics: the protocol of measurement plugins.

A metric is built once per trial from its configuration. The engine calls
:meth:`Metric.compute` every ``every`` epochs (per-epoch variables) and/or at
the end of training (variables without an ``epoch`` dimension). The same
object can be run after the fact on saved weights (``lbgap measure``).

Values are floats, or :class:`xarray.DataArray` objects whose dimensions
name what they index (``eigen_index``, ``alpha``...). Give ``units`` and
``long_name`` in the DataArray's ``attrs``; floats get them from the metric's
optional ``attrs`` mapping, ``{variable: {"units": ..., "long_name": ...}}``,
which may be filled when the metric is built or as it computes. They land in
``results.nc`` as CF attributes, with ``source`` naming the plugin.

Variable names are the metric's own: a name that lbgap itself writes
(``train_loss``, ``test_accuracy``, ``weight_distance``... see
:data:`lbgap.results.attrs.CORE_VARIABLES`) or that another plugin writes is
an error naming both plugins. Declare the names in advance (the optional
``outputs`` attribute, or the keys of ``attrs`` set when built) and the clash is
found before training starts (:func:`lbgap.provenance.check_output_names`).

Contract: a metric leaves parameters, buffers, RNG state and train/eval mode
exactly as it found them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable

import torch

from .data import InMemoryData

__all__ = ["Metric", "MeasureContext", "MetricValue"]

MetricValue = Any  # float | xarray.DataArray


@dataclass
class MeasureContext:
    """Everything a metric may look at.

    Attributes
    ----------
    model:
        The trained network (its current weights).
    data:
        The trial's data, on ``device``.
    loss_fn:
        ``loss_fn(logits, targets) -> mean loss`` used for training.
    device:
        Where the data and model live.
    eval_batch_size:
        Batch size for full-data passes.
    initial_state:
        The model's state dict at initialization.
    reference_state:
        Another trial's final state dict, for pairwise metrics (interpolation,
        distance between minimizers), or None.
    epoch:
        The epoch this measurement belongs to (None at the end of training).
    seed:
        The trial's seed; metrics derive their random streams from it.
    trial_key:
        Identifier of the trial being measured.
    """

    model: torch.nn.Module
    data: InMemoryData
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    eval_batch_size: int = 1024
    initial_state: Optional[Mapping[str, torch.Tensor]] = None
    reference_state: Optional[Mapping[str, torch.Tensor]] = None
    epoch: Optional[int] = None
    seed: int = 0
    trial_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """What a metric plugin's ``build`` returns.

    Besides the members below, a metric may have two optional attributes
    (not part of the ``isinstance`` check):

    ``attrs: dict[str, dict[str, str]]``
        Per variable, its CF ``units`` and ``long_name`` (``{"units": "1",
        "long_name": "largest Hessian eigenvalue"}``); written to results.nc.
    ``outputs: tuple[str, ...]``
        The variable names ``compute`` returns, when known at build time; the
        names are checked against lbgap's own and the other metrics' before
        training.
    """

    #: Measure every this many epochs (per-epoch variables), or None.
    every: Optional[int]
    #: Measure at the end of training (variables without ``epoch``).
    at_end: bool

    def compute(self, ctx: MeasureContext) -> dict[str, MetricValue]:
        """Return ``{variable name: value}``."""
        ...
