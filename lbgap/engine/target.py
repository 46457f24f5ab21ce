"""Steps to a target: the first optimizer step at which a trial meets its target.

With ``target:`` set, the trial checks the target every ``every_steps`` optimizer
steps and at every epoch end: the test or validation error (a full pass, in
evaluation mode) or the mean training loss of the steps since the previous
check. The first step at which ``metric ≤ value`` gives ``steps_to_target`` and
``examples_to_target`` (the training examples drawn until then); both are NaN
when the target is never met within the budget. With ``stop: true`` the trial
ends right after that step (status ``stopped``), its last epoch recorded as far
as it went.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..seeds import RANK_STRIDE, TARGET_STREAM, seeded_generator
from .evaluate import evaluate

__all__ = ["TargetTracker"]


@dataclass
class TargetTracker:
    """Where a trial stands against its target."""

    cfg: Any
    loss_sum: float = 0.0
    loss_steps: int = 0
    examples: int = 0
    steps_to_target: float = math.nan
    examples_to_target: float = math.nan

    @property
    def met(self) -> bool:
        return not math.isnan(self.steps_to_target)

    def after_step(self, run: Any, loss: torch.Tensor, batch: int) -> bool:
        """Count the step; check the target when due. Returns True if the trial should stop now."""
        self.examples += batch
        if self.cfg.metric == "train_loss":
            self.loss_sum += float(loss)  # one host sync per step, only for a training-loss target
            self.loss_steps += 1
        if self.met or run.trial.step % self.cfg.every_steps:
            return False
        return self.check(run)

    def check(self, run: Any) -> bool:
        """Check the target now (if not met yet); returns True if it was just met and the trial stops."""
        if self.met:
            return False
        value = self._value(run)
        if math.isfinite(value) and value <= self.cfg.value:
            self.steps_to_target = float(run.trial.step)
            self.examples_to_target = float(self.examples)
            return bool(self.cfg.stop)
        return False

    def results(self) -> dict[str, float]:
        return {"steps_to_target": self.steps_to_target, "examples_to_target": self.examples_to_target}

    def reason(self) -> str:
        return f"target {self.cfg.metric} ≤ {self.cfg.value} met after {int(self.steps_to_target)} optimizer steps"

    def _value(self, run: Any) -> float:
        if self.cfg.metric == "train_loss":
            value = self.loss_sum / self.loss_steps if self.loss_steps else math.nan
            self.loss_sum, self.loss_steps = 0.0, 0
            return value
        data = run.data
        x, y = (data.test_x, data.test_y) if self.cfg.metric == "test_error" else (data.val_x, data.val_y)
        gen = seeded_generator(run.trial.seed, TARGET_STREAM + RANK_STRIDE * run.trial.step, run.trial.device)
        ev = run.cfg.eval
        out = evaluate(
            run.model, x, y, task=data.task, transform=data.eval_transform, generator=gen,
            batch_size=ev.batch_size, bn_mode=ev.bn_mode,
        )
        return 1.0 - out["accuracy"]
