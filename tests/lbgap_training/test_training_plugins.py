"""Optimizers, schedules, regimes and stopping rules of lbgap_training."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from lbgap.plan import TrainingPlan
from lbgap.schedule import Progress
from lbgap_training.optimizers import (
    AdagradConfig,
    AdamConfig,
    SGDConfig,
    build_adagrad,
    build_adam,
    build_sgd,
)
from lbgap_training.regimes import (
    LRScaling,
    LRScalingConfig,
    RegimeAdaptation,
    RegimeAdaptationConfig,
)
from lbgap_training.schedules import (
    LinearDecayConfig,
    LinearDecaySchedule,
    MultiStepConfig,
    MultiStepSchedule,
    StepConfig,
    StepSchedule,
    WarmupConfig,
    WarmupSchedule,
)
from lbgap_training.stopping import Plateau, PlateauConfig


def _p(epoch: float, time_scale: float = 1.0) -> Progress:
    return Progress(epoch=epoch, step=0, steps_per_epoch=10, time_scale=time_scale)


@pytest.mark.parametrize(
    "rule,expected",
    [("none", 0.1), ("linear", 0.1 * 4096 / 128), ("sqrt", 0.1 * math.sqrt(4096 / 128))],
)
def test_lr_scaling_rules(rule, expected):
    plan = LRScaling(LRScalingConfig(rule=rule, reference_batch=128))(TrainingPlan(batch_size=4096, lr=0.1, epochs=50))
    assert plan.lr == pytest.approx(expected)


def test_regime_adaptation_as_hoffers_code():
    # Hoffer: epochs * ceil(B / B_ref), milestones multiplied by the same factor
    ra = RegimeAdaptation(RegimeAdaptationConfig(reference_batch=256))
    plan = ra(TrainingPlan(batch_size=2048, lr=0.1, epochs=100))
    assert plan.epochs == 800 and plan.time_scale == 8.0
    assert ra(TrainingPlan(batch_size=300, lr=0.1, epochs=10)).epochs == 20  # ceil(300/256) = 2
    exact = RegimeAdaptation(RegimeAdaptationConfig(reference_batch=256, rounding="exact"))
    assert exact(TrainingPlan(batch_size=384, lr=0.1, epochs=10)).epochs == 15
    assert ra(TrainingPlan(batch_size=64, lr=0.1, epochs=10)).epochs == 10  # never shorter


def test_multistep_with_factors_is_hoffers_f1_regime():
    sched = MultiStepSchedule(MultiStepConfig(milestones=[10, 20, 30], factors=[0.1, 0.01, 0.001]))
    lrs = [0.1 * sched.factor(_p(e)) for e in (0, 9.99, 10, 19.5, 20, 30, 45)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-4, 1e-4])


def test_multistep_milestones_scale_with_regime_adaptation():
    sched = MultiStepSchedule(MultiStepConfig(milestones=[5, 8], gamma=0.1))
    assert sched.factor(_p(39.9, time_scale=8)) == 1.0
    assert sched.factor(_p(40.0, time_scale=8)) == pytest.approx(0.1)
    assert sched.factor(_p(64.0, time_scale=8)) == pytest.approx(0.01)


def test_epoch_and_step_updates_differ_inside_an_epoch():
    by_epoch = MultiStepSchedule(MultiStepConfig(milestones=[2.5], gamma=0.1, update="epoch"))
    by_step = MultiStepSchedule(MultiStepConfig(milestones=[2.5], gamma=0.1, update="step"))
    assert by_epoch.factor(_p(2.6)) == 1.0 and by_epoch.factor(_p(3.0)) == pytest.approx(0.1)
    assert by_step.factor(_p(2.6)) == pytest.approx(0.1)


def test_step_and_warmup_schedules():
    s = StepSchedule(StepConfig(step_size=3, gamma=0.5))
    assert [s.factor(_p(e)) for e in (0, 2.9, 3, 6, 9)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])
    w = WarmupSchedule(WarmupConfig(epochs=4, start_factor=0.2))
    assert [w.factor(_p(e)) for e in (0, 2, 4, 10)] == pytest.approx([0.2, 0.6, 1.0, 1.0])


@pytest.mark.parametrize("final_factor,decay_steps", [(0.0, 30), (0.1, 25), (0.5, 7)])
def test_linear_decay_matches_torchs_linear_lr_stepped_per_step(final_factor, decay_steps):
    """Shallue et al.'s linear decay against PyTorch's LinearLR: 10 steps an epoch, T in steps."""
    sched = LinearDecaySchedule(LinearDecayConfig(decay_epochs=decay_steps / 10, final_factor=final_factor))
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.3)
    torch_sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, final_factor, total_iters=decay_steps)
    for step in range(decay_steps + 15):
        mine = 0.3 * sched.factor(Progress(epoch=step / 10, step=step, steps_per_epoch=10))
        assert mine == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15), step
        opt.step()
        torch_sched.step()
    assert sched.factor(_p(1000)) == pytest.approx(final_factor)


def test_linear_decay_stretches_with_regime_adaptation():
    sched = LinearDecaySchedule(LinearDecayConfig(decay_epochs=4, final_factor=0.2))
    assert sched.factor(_p(2.0)) == pytest.approx(0.6)
    assert sched.factor(_p(16.0, time_scale=8)) == pytest.approx(0.6)  # half-way through 32 epochs
    assert sched.factor(_p(32.0, time_scale=8)) == pytest.approx(0.2)
    with pytest.raises(ValidationError):
        LinearDecayConfig(decay_epochs=4, final_factor=1.5)


def test_schedule_configs_reject_impossible_values():
    with pytest.raises(ValidationError):
        MultiStepConfig(milestones=[5, 3], gamma=0.1)
    with pytest.raises(ValidationError):
        MultiStepConfig(milestones=[5], gamma=0.1, factors=[0.1])
    with pytest.raises(ValidationError):
        MultiStepConfig(milestones=[5, 6], factors=[0.1])


def test_optimizers_match_torch():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    cases = [
        (build_sgd(SGDConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4), [w]),
         torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)),
        (build_adam(AdamConfig(lr=1e-3, eps=1e-7), [w]), torch.optim.Adam, dict(lr=1e-3, eps=1e-7)),
        (build_adagrad(AdagradConfig(lr=0.01), [w]), torch.optim.Adagrad, dict(lr=0.01)),
    ]
    for opt, cls, kw in cases:
        assert isinstance(opt, cls)
        for k, v in kw.items():
            assert opt.param_groups[0][k] == v
    with pytest.raises(ValidationError, match="nesterov"):
        SGDConfig(lr=0.1, nesterov=True)


def test_plateau_stops_when_the_loss_stops_improving():
    rule = Plateau(PlateauConfig(monitor="train_loss", patience=2))
    hist = {"train_loss": [1.0, 0.5, 0.4]}
    assert rule.should_stop(_p(3), hist) is None
    hist["train_loss"] += [0.41, 0.45]
    assert "did not improve for 2 epochs" in rule.should_stop(_p(5), hist)
    acc = Plateau(PlateauConfig(monitor="test_accuracy", mode="max", patience=1))
    assert acc.should_stop(_p(3), {"test_accuracy": [0.5, 0.6, 0.7]}) is None
    assert acc.should_stop(_p(4), {"test_accuracy": [0.5, 0.6, 0.7, 0.69]})
