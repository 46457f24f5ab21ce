"""Loss-driven learning-rate switch (the L-S algorithm) and a loss stopping rule.

Li, Wei & Ma's Algorithm 1 (L-S), as the 2020 report states it: learning rate
η1 until the training loss drops below ``ε1 + q log 2``, then η2 ≪ η1 until the
loss is ``ε2``. Algorithm 2 (S): η2 throughout, stop at ``ε2' ≤ ε2``. The
``q log 2`` term is the loss of the Q-only examples (a fraction ``q`` of the
training set) while the network still outputs 0 on them.

Schedule ``loss_switch``: factor 1 (the optimizer's ``lr`` is η1) until
:attr:`Progress.last_train_loss` (the mean training loss of the last finished
epoch) is below the threshold, then ``factor`` (= η2/η1) for good.

Stopping ``train_loss_below``: stop once the last epoch's mean training loss
is below ``eps``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from lbgap.api import PluginConfig, Progress, hookimpl

__all__ = [
    "LossSwitchConfig",
    "LossSwitchSchedule",
    "build_loss_switch",
    "TrainLossBelowConfig",
    "TrainLossBelow",
    "build_train_loss_below",
]


class LossSwitchConfig(PluginConfig):
    """LR factor 1 until the epoch-mean train loss falls below a threshold, then `factor` (L-S)."""

    threshold: Optional[PositiveFloat] = None
    """Switch once the last epoch's mean training loss is below this. Give either ``threshold`` or
    both ``eps1`` and ``q``."""

    eps1: Optional[NonNegativeFloat] = None
    """ε1 of the threshold ``ε1 + q log 2``."""

    q: Optional[float] = Field(None, ge=0.0, le=1.0)
    """q of the threshold ``ε1 + q log 2``: the fraction of Q-only training examples (``q0``)."""

    factor: PositiveFloat = 0.04
    """LR multiplier after the switch, η2/η1. [code: Li et al.'s patch experiment 0.1 → 0.004]"""

    @model_validator(mode="after")
    def _one_threshold(self) -> LossSwitchConfig:
        pair = (self.eps1 is not None, self.q is not None)
        if self.threshold is not None:
            if any(pair):
                raise ValueError("give either threshold or eps1 and q, not both")
        elif not all(pair):
            raise ValueError("give threshold, or both eps1 and q (threshold = eps1 + q*log(2))")
        return self

    @property
    def resolved_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return float(self.eps1) + float(self.q) * math.log(2.0)


class LossSwitchSchedule:
    """Sticky loss-triggered LR switch.

    Attributes
    ----------
    threshold:
        The loss below which the switch happens.
    after:
        The LR factor after the switch.
    switched_at_epoch:
        ``Progress.epoch`` (epochs done) when the switch was first seen, so
        epochs ``switched_at_epoch + 1, ...`` run at the small LR; None before.
    switched_at_step:
        ``Progress.step`` at the switch; None before.
    switch_loss:
        The training loss that triggered the switch.
    """

    def __init__(self, threshold: float, after: float) -> None:
        self.threshold = float(threshold)
        self.after = float(after)
        self.switched_at_epoch: Optional[float] = None
        self.switched_at_step: Optional[int] = None
        self.switch_loss: Optional[float] = None

    @property
    def switched(self) -> bool:
        return self.switched_at_epoch is not None

    def factor(self, progress: Progress) -> float:
        if not self.switched:
            loss = progress.last_train_loss
            if loss is not None and not math.isnan(loss) and loss < self.threshold:
                self.switched_at_epoch = float(progress.epoch)
                self.switched_at_step = int(progress.step)
                self.switch_loss = float(loss)
        return self.after if self.switched else 1.0

    # Used only if the engine registers the schedule for lifecycle hooks;
    # otherwise the engine reads ``switched_at_epoch`` itself.
    @hookimpl
    def lbgap_trial_end(self, trial: Any, results: dict[str, Any]) -> None:
        results["lr_switch_epoch"] = self.switched_at_epoch if self.switched else math.nan


def build_loss_switch(cfg: LossSwitchConfig) -> LossSwitchSchedule:
    return LossSwitchSchedule(cfg.resolved_threshold, cfg.factor)


class TrainLossBelowConfig(PluginConfig):
    """Stop once the epoch-mean training loss is below eps (the ε2 stopping rule of L-S and S)."""

    eps: PositiveFloat
    """Stop when the last epoch's mean training loss is below this (ε2)."""

    min_epochs: NonNegativeInt = 0
    """Never stop before this many epochs are done."""


class TrainLossBelow:
    """Stopping rule: ``last_train_loss < eps``."""

    def __init__(self, eps: float, min_epochs: int = 0) -> None:
        self.eps = float(eps)
        self.min_epochs = int(min_epochs)

    def should_stop(self, progress: Progress, history: dict[str, list[float]]) -> str | None:
        loss = progress.last_train_loss
        if loss is None or math.isnan(loss):
            losses = history.get("train_loss") or []
            loss = losses[-1] if losses else math.nan
        if progress.epoch < self.min_epochs or math.isnan(loss):
            return None
        if loss < self.eps:
            return f"train loss {loss:.6g} < {self.eps:g}"
        return None


def build_train_loss_below(cfg: TrainLossBelowConfig) -> TrainLossBelow:
    return TrainLossBelow(cfg.eps, cfg.min_epochs)
