"""Schedules and stopping rules: the protocols the engine calls.

A schedule maps training progress to a multiplier of the base learning rate.
Schedules may be loss-driven: :attr:`Progress.last_train_loss` carries the
mean training loss of the last finished epoch (``nan`` before the first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Progress", "Schedule", "StoppingRule"]


@dataclass(frozen=True)
class Progress:
    """Where training is.

    Attributes
    ----------
    epoch:
        Fractional epochs done (``3.5`` = half-way through the fourth epoch).
    step:
        Optimizer steps done.
    steps_per_epoch:
        Optimizer steps in one epoch.
    time_scale:
        The plan's milestone multiplier (regime adaptation).
    last_train_loss:
        Mean training loss over the last finished epoch, ``nan`` before one.
    """

    epoch: float
    step: int
    steps_per_epoch: int
    time_scale: float = 1.0
    last_train_loss: float = math.nan


@runtime_checkable
class Schedule(Protocol):
    """Learning-rate multiplier as a function of progress."""

    def factor(self, progress: Progress) -> float:
        """Return the multiplier of the base learning rate at ``progress``."""
        ...


@runtime_checkable
class StoppingRule(Protocol):
    """Decides at the end of each epoch whether training stops."""

    def should_stop(self, progress: Progress, history: dict[str, list[float]]) -> str | None:
        """Return a reason (short string) to stop, or None to go on.

        ``history`` maps per-epoch variable names (``train_loss``,
        ``test_accuracy``, ...) to their values so far.
        """
        ...
