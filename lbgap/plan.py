"""The training plan: the numbers a regime plugin may transform.

Regime plugins (LR scaling rules, regime adaptation) are functions
``TrainingPlan -> TrainingPlan`` applied in the order the study lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrainingPlan"]


@dataclass(frozen=True)
class TrainingPlan:
    """Resolved numbers of one trial before training starts.

    Attributes
    ----------
    batch_size:
        Global effective batch size.
    lr:
        Base learning rate (the optimizer's ``lr`` after scaling rules).
    epochs:
        Number of passes over the training set.
    time_scale:
        Factor applied to every epoch-valued milestone of the schedule
        (regime adaptation multiplies it by B/B_ref).
    """

    batch_size: int
    lr: float
    epochs: int
    time_scale: float = 1.0
