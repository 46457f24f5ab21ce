"""Regime ``increase_batch``: grow the batch at the milestones instead of decaying the learning rate.

Smith, Kindermans, Ying & Le (2018), "Don't decay the learning rate, increase the
batch size" (ICLR 2018, arXiv:1711.00489): the SGD noise scale
``g ≈ εN/(B(1 − m))`` (Smith & Le 2018) falls by the same factor whether the
learning rate ``ε`` is divided by ``f`` or the batch ``B`` is multiplied by ``f``,
and the paper finds the same test accuracy after the same number of epochs either
way, with fewer optimizer steps when the batch grows. Where a step schedule would
divide the rate by ``f`` at a milestone, this regime multiplies the batch by ``f``
instead; past ``max_batch_size`` the batch stops growing and the rate takes the
rest of the factor (the paper's "hybrid" schedules, for when the batch would
outgrow the hardware), so that ``ε/B`` falls by ``f`` at every milestone:

    stage k (after k milestones):  B_k = min(round(B₀ f^k), B_max)
                                   ε factor = 1 if B₀ f^k ≤ B_max else B_max / (B₀ f^k)

with ``B₀`` the plan's batch size when the regime applies and ``B_max =
max(max_batch_size, B₀)`` (a batch already above the cap never shrinks; its
milestones all decay the rate). The epochs stay the same, so the steps fall.
Milestones are epochs, multiplied by the plan's ``time_scale`` like a schedule's
(regime adaptation moves them), and take effect at the first epoch boundary at or
after them (the batch changes only between epochs). The study gives the trial a
schedule without those decays (``constant``, or warm-up only); keeping a
``multistep`` with the same milestones would decay twice.

The paper's settings, as recalled and not checked against its text (the project's
records hold nothing on this paper, so treat every number here as unverified):
CIFAR-10 on a "16-4" wide ResNet with ghost batch norm (ghost batch 128), SGD with
momentum 0.9, initial learning rate 0.1 and batch 128, the rate divided by 5 at
epochs 60, 120 and 160 of 200 in the baseline; the batch-growing run is then
``{name: increase_batch, milestones: [60, 120, 160], factor: 5}`` with
``schedule: constant`` (batches 128, 640, 3200, 16000), and the paper's "hybrid"
runs grow the batch at the first milestone(s) and decay the rate at the later ones
(``max_batch_size``). The abstract reports ImageNet training of Inception-ResNet-V2
in under 2500 parameter updates with batches of 65536 images.

Engine behaviour: the trial's batch changes at each stage's first epoch — steps per
epoch, the batch order (one permutation per epoch from the trial's batch-order
generator, cut into batches of the epoch's size), data-parallel shares (the
epoch's global batch split over the ranks), the example counters of
``steps_to_target`` — and ``trial.plan`` is the epoch's plan, so ``sgd_noise_scale``
and noise plugins read the batch in use. Ghost batch norm keeps its ghost size (a
larger batch holds more ghost batches). Vectorized trials group only members with
the same batch size at every epoch. ``batch_size_epoch`` records the batch of every
epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from lbgap.api import PluginConfig, RegimePlugin, TrainingPlan

__all__ = ["IncreaseBatchConfig", "IncreaseBatch", "batch_stages", "INCREASE_BATCH"]


class IncreaseBatchConfig(PluginConfig):
    """Multiply the batch by `factor` at every milestone instead of dividing the learning rate
    (Smith, Kindermans, Ying & Le 2018); past `max_batch_size` the learning rate takes the rest of the factor."""

    milestones: list[PositiveFloat] = Field(min_length=1)
    """Epochs at which the batch grows (multiplied by the plan's time scale; taking effect at
    the next epoch boundary)."""
    factor: float = Field(5.0, ge=1.0)
    """f: the batch's multiplier at each milestone (the decay factor of the learning-rate
    schedule it replaces; 5 in the paper's CIFAR-10 runs)."""
    max_batch_size: Optional[PositiveInt] = None
    """B_max: the batch grows no further; the learning rate is divided by what is left of the
    factor (the paper's hybrid schedules). None: no cap."""

    @model_validator(mode="after")
    def _check(self) -> IncreaseBatchConfig:
        if sorted(self.milestones) != list(self.milestones) or len(set(self.milestones)) != len(self.milestones):
            raise ValueError("milestones must be strictly increasing")
        return self


def batch_stages(
    batch_size: int, milestones: list[float], factor: float, max_batch_size: Optional[int] = None
) -> list[tuple[float, int, float]]:
    """The stages ``(start epoch, batch size, learning-rate factor)`` from an initial batch, the
    first starting at epoch 0 (see the module documentation for the formula)."""
    cap = max(max_batch_size, batch_size) if max_batch_size is not None else None
    stages = [(0.0, int(batch_size), 1.0)]
    for k, milestone in enumerate(milestones, start=1):
        wanted = batch_size * factor**k
        if cap is not None and wanted > cap:
            stages.append((float(milestone), int(cap), cap / wanted))
        else:
            stages.append((float(milestone), int(round(wanted)), 1.0))
    return stages


@dataclass
class IncreaseBatch:
    cfg: IncreaseBatchConfig

    def __call__(self, plan: TrainingPlan) -> TrainingPlan:
        cfg = self.cfg
        return plan.with_batch_stages(batch_stages(plan.batch_size, cfg.milestones, cfg.factor, cfg.max_batch_size))


INCREASE_BATCH = RegimePlugin(name="increase_batch", config=IncreaseBatchConfig, build=IncreaseBatch)
