"""Training-plan transforms: LR scaling rules and regime adaptation
(Hoffer, Hubara & Soudry 2017, §4 and §5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import PositiveInt

from lbgap.api import PluginConfig, RegimePlugin, TrainingPlan


class LRScalingConfig(PluginConfig):
    """Scale the learning rate with the batch size relative to a reference batch.

    ``none``: η; ``linear``: η·B/B_ref (Goyal et al.); ``sqrt``: η·√(B/B_ref)
    (Hoffer et al., matching the gradient-noise covariance).
    """

    rule: Literal["none", "linear", "sqrt"] = "sqrt"
    reference_batch: PositiveInt
    """B_ref: the batch size at which the optimizer's lr was tuned (Hoffer's
    main_normal.py uses 256, main_gbn.py the ghost size)."""


@dataclass
class LRScaling:
    cfg: LRScalingConfig

    def __call__(self, plan: TrainingPlan) -> TrainingPlan:
        ratio = plan.batch_size / self.cfg.reference_batch
        if self.cfg.rule == "linear":
            factor = ratio
        elif self.cfg.rule == "sqrt":
            factor = math.sqrt(ratio)
        else:
            factor = 1.0
        return replace(plan, lr=plan.lr * factor)


class RegimeAdaptationConfig(PluginConfig):
    """Train longer: multiply the epochs and every schedule milestone by B/B_ref,
    so a large batch makes as many updates as the reference batch."""

    reference_batch: PositiveInt
    """B_ref (Hoffer's code: 256 for main_normal.py, the ghost size for main_gbn.py)."""
    rounding: Literal["ceil", "exact"] = "ceil"
    """``ceil``: factor ⌈B/B_ref⌉ as Hoffer's code; ``exact``: B/B_ref (epochs rounded up)."""


@dataclass
class RegimeAdaptation:
    cfg: RegimeAdaptationConfig

    def factor(self, batch_size: int) -> float:
        ratio = batch_size / self.cfg.reference_batch
        f = math.ceil(ratio - 1e-12) if self.cfg.rounding == "ceil" else ratio
        return max(1.0, float(f))

    def __call__(self, plan: TrainingPlan) -> TrainingPlan:
        f = self.factor(plan.batch_size)
        return replace(plan, epochs=int(math.ceil(plan.epochs * f - 1e-9)), time_scale=plan.time_scale * f)


REGIMES = [
    RegimePlugin(name="lr_scaling", config=LRScalingConfig, build=LRScaling),
    RegimePlugin(name="regime_adaptation", config=RegimeAdaptationConfig, build=RegimeAdaptation),
]
