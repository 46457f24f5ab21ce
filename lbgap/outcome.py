"""What a trial produces, and how a callback ends one early."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .plan import TrainingPlan

__all__ = ["TrialOutcome", "StopTrial"]


class StopTrial(Exception):
    """Raised by an epoch callback to end a trial early (Optuna pruning)."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


@dataclass
class TrialOutcome:
    """What one trial produced."""

    key: str
    seed: int
    status: str  # completed | stopped | diverged | pruned
    reason: str
    plan: TrainingPlan
    history: dict[str, list[float]]
    end: dict[str, Any]
    initial_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    #: per-epoch metric values with dimensions of their own: name → {epoch: DataArray}
    epoch_arrays: dict[str, dict[int, Any]] = field(default_factory=dict)
    wall_time: float = 0.0
    data_description: str = ""
    #: mean training loss of the steps of the epoch that ``max_steps`` cut short (NaN if none was)
    cut_epoch_loss: float = math.nan
    #: results attributes of plugin variables: name → {units, long_name, source}
    variable_attrs: dict[str, dict[str, str]] = field(default_factory=dict)
