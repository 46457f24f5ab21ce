"""Learning-rate schedules: constant, step, multistep (Hoffer's regimes), warmup, linear_decay
(Shallue et al.'s linear decay).

Milestones are in epochs and are multiplied by the plan's ``time_scale``, so
regime adaptation moves them with the longer training.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from lbgap.api import PluginConfig, Progress, SchedulePlugin

Update = Literal["epoch", "step"]
_UPDATE_DOC = (
    "When a milestone takes effect: 'epoch' — at the start of the first epoch at or after it "
    "(PyTorch's scheduler.step() per epoch, Hoffer's adjust_optimizer); 'step' — at the exact "
    "fractional epoch."
)


def _epoch_position(progress: Progress, update: str) -> float:
    return math.floor(progress.epoch + 1e-9) if update == "epoch" else progress.epoch


class ConstantConfig(PluginConfig):
    """Constant learning rate."""


@dataclass
class ConstantSchedule:
    def factor(self, progress: Progress) -> float:
        return 1.0


class StepConfig(PluginConfig):
    """Multiply the learning rate by gamma every step_size epochs."""

    step_size: PositiveFloat
    """Epochs between decays (scaled by regime adaptation)."""
    gamma: PositiveFloat = 0.1
    update: Update = "epoch"


@dataclass
class StepSchedule:
    cfg: StepConfig

    def factor(self, progress: Progress) -> float:
        e = _epoch_position(progress, self.cfg.update)
        k = math.floor(e / (self.cfg.step_size * progress.time_scale) + 1e-9)
        return self.cfg.gamma**k


class MultiStepConfig(PluginConfig):
    """Piecewise-constant learning rate changing at epoch milestones (Hoffer's regimes).

    Give either ``gamma`` (each milestone multiplies by it) or ``factors`` (the
    multiplier of the base LR after each milestone, e.g. Hoffer's F1 regime
    0.1 → 0.01 → 1e-3 → 1e-4 is base 0.1 with factors [0.1, 0.01, 0.001]).
    """

    milestones: list[PositiveFloat] = Field(min_length=1)
    """Epochs at which the learning rate changes (scaled by regime adaptation)."""
    gamma: Optional[PositiveFloat] = None
    """Multiplier applied at each milestone."""
    factors: Optional[list[PositiveFloat]] = None
    """Multiplier of the base LR after each milestone (instead of gamma)."""
    update: Update = "epoch"

    @model_validator(mode="after")
    def _check(self) -> MultiStepConfig:
        if sorted(self.milestones) != list(self.milestones) or len(set(self.milestones)) != len(self.milestones):
            raise ValueError("milestones must be strictly increasing")
        if (self.gamma is None) == (self.factors is None):
            raise ValueError("give exactly one of gamma and factors")
        if self.factors is not None and len(self.factors) != len(self.milestones):
            raise ValueError(f"factors needs one value per milestone ({len(self.milestones)})")
        return self


@dataclass
class MultiStepSchedule:
    cfg: MultiStepConfig

    def factor(self, progress: Progress) -> float:
        e = _epoch_position(progress, self.cfg.update)
        scaled = [m * progress.time_scale for m in self.cfg.milestones]
        k = bisect.bisect_right(scaled, e + 1e-9)
        if k == 0:
            return 1.0
        if self.cfg.factors is not None:
            return self.cfg.factors[k - 1]
        assert self.cfg.gamma is not None
        return self.cfg.gamma**k


class WarmupConfig(PluginConfig):
    """Linear warm-up over the first epochs, then constant (Goyal et al.)."""

    epochs: PositiveInt = 5
    """Warm-up length in epochs (not scaled by regime adaptation)."""
    start_factor: float = Field(0.1, gt=0.0, le=1.0)


@dataclass
class WarmupSchedule:
    cfg: WarmupConfig

    def factor(self, progress: Progress) -> float:
        if progress.epoch >= self.cfg.epochs:
            return 1.0
        t = progress.epoch / self.cfg.epochs
        return self.cfg.start_factor + (1 - self.cfg.start_factor) * t


class LinearDecayConfig(PluginConfig):
    """Linear decay (Shallue et al. 2018): the rate falls linearly, at every step, from the plan's LR to
    final_factor times it over decay_epochs, then stays there."""

    decay_epochs: PositiveFloat
    """Length T of the decay in epochs, fractional allowed; scaled by regime adaptation like milestones, so a
    budget in steps that grows with the batch keeps the decay over the same share of it."""
    final_factor: float = Field(0.0, ge=0.0, le=1.0)
    """α: the multiplier of the plan's LR at the end of the decay and after it."""


@dataclass
class LinearDecaySchedule:
    """``factor(t) = 1 − (1 − α)·min(t / (T·time_scale), 1)`` at the fractional epoch t (per step); the
    same rates as ``torch.optim.lr_scheduler.LinearLR(start_factor=1, end_factor=α)`` stepped per step."""

    cfg: LinearDecayConfig

    def factor(self, progress: Progress) -> float:
        t = min(max(progress.epoch, 0.0) / (self.cfg.decay_epochs * progress.time_scale), 1.0)
        return 1.0 - (1.0 - self.cfg.final_factor) * t


SCHEDULES = [
    SchedulePlugin(name="constant", config=ConstantConfig, build=lambda cfg: ConstantSchedule()),
    SchedulePlugin(name="step", config=StepConfig, build=StepSchedule),
    SchedulePlugin(name="multistep", config=MultiStepConfig, build=MultiStepSchedule),
    SchedulePlugin(name="warmup", config=WarmupConfig, build=WarmupSchedule),
    SchedulePlugin(name="linear_decay", config=LinearDecayConfig, build=LinearDecaySchedule),
]
