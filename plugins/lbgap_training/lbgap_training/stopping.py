"""Stopping rules: stop when a monitored quantity stops improving."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, PositiveInt

from lbgap.api import PluginConfig, Progress, StoppingPlugin


class PlateauConfig(PluginConfig):
    """Stop when a per-epoch quantity has not improved for `patience` epochs
    (Keskar et al. train "until the loss stops improving")."""

    monitor: str = "train_loss"
    """Per-epoch variable to watch (train_loss, test_loss, train_accuracy...)."""
    mode: Literal["min", "max"] = "min"
    patience: PositiveInt = 5
    """Epochs without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0.0)
    """Smallest change that counts as an improvement (absolute)."""
    min_epochs: int = Field(0, ge=0)
    """Never stop before this many epochs."""


@dataclass
class Plateau:
    cfg: PlateauConfig

    def should_stop(self, progress: Progress, history: dict[str, list[float]]) -> str | None:
        values = [v for v in history.get(self.cfg.monitor, []) if not math.isnan(v)]
        if len(values) <= self.cfg.patience or progress.epoch < self.cfg.min_epochs:
            return None
        sign = 1.0 if self.cfg.mode == "min" else -1.0
        best_before = min(sign * v for v in values[: -self.cfg.patience])
        recent = min(sign * v for v in values[-self.cfg.patience:])
        if recent > best_before - self.cfg.min_delta:
            return f"{self.cfg.monitor} did not improve for {self.cfg.patience} epochs"
        return None


STOPPING = [StoppingPlugin(name="plateau", config=PlateauConfig, build=Plateau)]
