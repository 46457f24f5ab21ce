"""The training plan: the numbers a regime plugin may transform.

Regime plugins (LR scaling rules, regime adaptation, a batch-size schedule)
are functions ``TrainingPlan -> TrainingPlan`` applied in the order the study
lists them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = ["TrainingPlan", "BatchStage"]

#: tolerance of the epoch comparisons of stage starts (a start of 3·(1/3) epochs is epoch 1)
_EPS = 1e-9


@dataclass(frozen=True)
class BatchStage:
    """One stage of a batch-size schedule.

    Attributes
    ----------
    start:
        Epochs done when the stage begins, multiplied by the plan's ``time_scale``
        like a schedule's milestones. The batch changes only between epochs: a start
        that falls inside an epoch takes effect at the next epoch boundary.
    batch_size:
        The global batch size of the stage's epochs.
    lr_factor:
        Multiplier of the learning rate during the stage (on top of the schedule's
        factor): below 1 where a batch-size schedule decays the rate instead of growing
        the batch past its cap.
    """

    start: float
    batch_size: int
    lr_factor: float = 1.0


@dataclass(frozen=True)
class TrainingPlan:
    """Resolved numbers of one trial before training starts.

    Attributes
    ----------
    batch_size:
        Global effective batch size: the initial one when the plan has a batch-size
        schedule. During training, ``trial.plan`` is the plan of the current epoch,
        whose ``batch_size`` is the batch in use (:meth:`at_epoch`).
    lr:
        Base learning rate (the optimizer's ``lr`` after scaling rules).
    epochs:
        Number of passes over the training set.
    time_scale:
        Factor applied to every epoch-valued milestone of the schedule
        (regime adaptation multiplies it by B/B_ref), and to the starts of the
        batch stages.
    batch_stages:
        A batch-size schedule (empty: the batch is ``batch_size`` throughout). The
        first stage starts at epoch 0; the engine reads :meth:`batch_size_at` and
        :meth:`lr_factor_at` at the start of every epoch.
    """

    batch_size: int
    lr: float
    epochs: int
    time_scale: float = 1.0
    batch_stages: tuple[BatchStage, ...] = ()

    def __post_init__(self) -> None:
        stages = self.batch_stages
        if not stages:
            return
        if stages[0].start != 0:
            raise ValueError(f"the first batch stage must start at epoch 0, not {stages[0].start}")
        if any(b.start <= a.start for a, b in zip(stages, stages[1:], strict=False)):
            raise ValueError("batch stages must start at increasing epochs")
        if any(s.batch_size < 1 or not (s.lr_factor > 0 and math.isfinite(s.lr_factor)) for s in stages):
            raise ValueError("every batch stage needs a positive batch size and learning-rate factor")

    def with_batch_stages(self, stages: Iterable[BatchStage | tuple[float, int, float]]) -> TrainingPlan:
        """This plan with the batch-size schedule ``stages``: :class:`BatchStage` objects or
        ``(start, batch_size, lr_factor)`` tuples, the first starting at epoch 0."""
        made = tuple(s if isinstance(s, BatchStage) else BatchStage(float(s[0]), int(s[1]), float(s[2])) for s in stages)
        return replace(self, batch_stages=made)

    def stage_at(self, epoch: int) -> BatchStage:
        """The batch stage in effect during ``epoch`` (1-based): the last one that starts at or
        before ``epoch − 1`` epochs done (starts times ``time_scale``)."""
        if not self.batch_stages:
            return BatchStage(0.0, self.batch_size)
        done = epoch - 1
        current = self.batch_stages[0]
        for stage in self.batch_stages[1:]:
            if stage.start * self.time_scale <= done + _EPS:
                current = stage
        return current

    def batch_size_at(self, epoch: int) -> int:
        """The global batch size of ``epoch`` (1-based)."""
        return self.stage_at(epoch).batch_size

    def lr_factor_at(self, epoch: int) -> float:
        """The batch schedule's learning-rate multiplier during ``epoch`` (1-based)."""
        return self.stage_at(epoch).lr_factor

    def batch_sizes(self) -> tuple[int, ...]:
        """The batch size of every epoch, ``1..epochs``."""
        return tuple(self.batch_size_at(e) for e in range(1, self.epochs + 1))

    def at_epoch(self, epoch: int) -> TrainingPlan:
        """The plan as ``epoch`` sees it: ``batch_size`` is that epoch's (the stages are kept);
        the plan itself when it has no batch-size schedule."""
        if not self.batch_stages:
            return self
        return replace(self, batch_size=self.batch_size_at(epoch))
