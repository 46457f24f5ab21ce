"""A noise scale that is multiplied by a factor once, when a trigger fires.

Shared by the gradient-noise and pre-activation-noise injectors. The decay is
sticky: once any trigger fires, the decayed scale stays for the rest of the
trial. Triggers:

* ``decay_epoch``: once that many epochs are done (``trial.epoch >=
  decay_epoch × plan.time_scale``), the convention of an LR milestone on
  ``Progress.epoch``. Li, Wei & Ma's code multiplies the noise from its 30th
  epoch on (``epoch + 1 >= 30`` with 0-based ``epoch``), i.e. ``decay_epoch = 29``.
* ``decay_below_loss``: once an epoch's mean training loss is below the value
  (the L-S annealing rule ``ε1 + q log 2`` applied to the noise).
* ``decay_with_lr``: once the learning rate falls below the base learning rate
  (follows a ``loss_switch`` or step schedule's anneal).
"""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import Field, NonNegativeFloat, PositiveFloat

from lbgap.api import PluginConfig

__all__ = ["NoiseDecayConfig", "NoiseLevel"]


class NoiseDecayConfig(PluginConfig):
    """Scale and one-time decay of an injected noise (base class of the noise configs)."""

    scale: NonNegativeFloat = 0.0
    """Standard deviation of the noise before the decay."""

    decay_factor: NonNegativeFloat = 1.0
    """Multiplier of ``scale`` once a decay trigger fires (1 = constant noise)."""

    decay_epoch: Optional[NonNegativeFloat] = None
    """Decay once this many epochs are done (× the plan's ``time_scale``); None = no epoch trigger."""

    decay_below_loss: Optional[PositiveFloat] = None
    """Decay once an epoch's mean training loss is below this; None = no loss trigger."""

    decay_with_lr: bool = False
    """Decay once the learning rate is below the base learning rate (an LR anneal)."""

    lr_tolerance: float = Field(1e-9, ge=0.0, lt=1.0)
    """Relative tolerance of the ``decay_with_lr`` comparison."""


class NoiseLevel:
    """The current noise standard deviation of one trial.

    Call :meth:`current` whenever noise is drawn (it checks the epoch and LR
    triggers) and :meth:`observe_epoch` at every epoch end (loss trigger).
    """

    def __init__(self, cfg: NoiseDecayConfig) -> None:
        self.cfg = cfg
        self.decayed_at_epoch: Optional[int] = None
        self.decayed_at_step: Optional[int] = None
        self.last_used: Optional[float] = None

    def reset(self) -> None:
        self.decayed_at_epoch = None
        self.decayed_at_step = None
        self.last_used = None

    @property
    def decayed(self) -> bool:
        return self.decayed_at_epoch is not None

    def _decay(self, trial: Any) -> None:
        if not self.decayed:
            self.decayed_at_epoch = int(trial.epoch)
            self.decayed_at_step = int(trial.step)

    def _check_running_triggers(self, trial: Any) -> None:
        if self.decayed:
            return
        cfg = self.cfg
        if cfg.decay_epoch is not None:
            time_scale = getattr(trial.plan, "time_scale", 1.0)
            if trial.epoch >= cfg.decay_epoch * time_scale:
                self._decay(trial)
                return
        if cfg.decay_with_lr:
            base = float(trial.plan.lr)
            if base > 0 and float(trial.lr) < base * (1.0 - cfg.lr_tolerance):
                self._decay(trial)

    def current(self, trial: Any) -> float:
        """Standard deviation to use now (also remembered as :attr:`last_used`)."""
        self._check_running_triggers(trial)
        value = self.cfg.scale * (self.cfg.decay_factor if self.decayed else 1.0)
        self.last_used = value
        return value

    def observe_epoch(self, trial: Any, train_loss: float) -> None:
        """Apply the loss trigger with the epoch's mean training loss."""
        thr = self.cfg.decay_below_loss
        if thr is not None and not self.decayed and math.isfinite(train_loss) and train_loss < thr:
            self._decay(trial)
        self._check_running_triggers(trial)
