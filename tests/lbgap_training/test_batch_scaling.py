"""Goyal et al.'s linear scaling with gradual warm-up (schedule ``linear_warmup``) and Smith & Le's
SGD noise scale (metric ``sgd_noise_scale``), against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from lbgap.engine.train import run_trial
from lbgap.plan import TrainingPlan
from lbgap.schedule import Progress
from lbgap.spec import load_study_text
from lbgap_training.linear_warmup import (
    LinearWarmupConfig,
    LinearWarmupSchedule,
    build_linear_warmup,
    goyal_warmup_lr,
)
from lbgap_training.noise_scale import SGDNoiseScale, SGDNoiseScaleConfig, sgd_noise_scale
from lbgap_training.regimes import LRScaling, LRScalingConfig
from lbgap_training.schedules import MultiStepConfig, MultiStepSchedule, WarmupConfig, WarmupSchedule

ETA, B_REF, N_STEPS = 0.1, 256, 7  # η tuned for B_ref; steps per epoch


def _progress(step: int, n: int = N_STEPS) -> Progress:
    """Where the engine is before optimizer step ``step`` (0-based): epoch = step / steps per epoch."""
    return Progress(epoch=step / n, step=step, steps_per_epoch=n)


def _scaled(batch: int) -> TrainingPlan:
    """The plan after ``lr_scaling`` (rule: linear): η̂ = η·B/B_ref."""
    rule = LRScaling(LRScalingConfig(rule="linear", reference_batch=B_REF))
    return rule(TrainingPlan(batch_size=batch, lr=ETA, epochs=90))


def _warmup(batch: int | None = None, **cfg) -> LinearWarmupSchedule:
    cfg.setdefault("reference_batch", B_REF)
    then = cfg.pop("then_objects", None)
    sched = build_linear_warmup(LinearWarmupConfig(**cfg), then=then)
    if batch is not None:
        sched.bind(batch)
    return sched


# ------------------------------------------------------------------ Goyal's formula


def test_goyal_formula_itself():
    # k = 8: from η to 8η over 5 epochs, a constant amount per step
    assert goyal_warmup_lr(0, 10, ETA, 2048) == pytest.approx(ETA)
    assert goyal_warmup_lr(25, 10, ETA, 2048) == pytest.approx(ETA + (8 * ETA - ETA) * 0.5)
    assert goyal_warmup_lr(50, 10, ETA, 2048) == pytest.approx(8 * ETA)
    assert goyal_warmup_lr(500, 10, ETA, 2048) == pytest.approx(8 * ETA)
    steps = [goyal_warmup_lr(i, 10, ETA, 2048) for i in range(51)]
    increments = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    assert max(increments) == pytest.approx(min(increments)) == pytest.approx(7 * ETA / 50)


def test_existing_warmup_and_lr_scaling_compose_to_goyal_for_one_batch_size():
    """``warmup`` (start_factor B_ref/B, 5 epochs) after ``lr_scaling`` (linear) is Goyal's warm-up
    for the one batch size its start_factor was written for, and constant after it."""
    batch = 2048
    plan = _scaled(batch)
    sched = WarmupSchedule(WarmupConfig(epochs=5, start_factor=B_REF / batch))
    for i in range(0, 8 * N_STEPS):
        assert plan.lr * sched.factor(_progress(i)) == pytest.approx(goyal_warmup_lr(i, N_STEPS, ETA, batch))
    # ... but for another batch size of the same grid the fixed start_factor no longer starts at η
    other = _scaled(1024)
    assert other.lr * sched.factor(_progress(0)) != pytest.approx(ETA)


@pytest.mark.parametrize("batch", [512, 1024, 2048, 8192])
def test_linear_warmup_is_goyal_for_every_batch_size(batch):
    plan, sched = _scaled(batch), _warmup(batch, warmup_epochs=5)
    for i in range(0, 8 * N_STEPS):
        assert plan.lr * sched.factor(_progress(i)) == pytest.approx(
            goyal_warmup_lr(i, N_STEPS, ETA, batch), rel=1e-12
        )
    assert plan.lr * sched.factor(_progress(0)) == pytest.approx(ETA)  # starts at the reference rate
    assert plan.lr * sched.factor(_progress(5 * N_STEPS)) == pytest.approx(ETA * batch / B_REF)


@pytest.mark.parametrize("batch", [64, 256])
def test_no_warmup_at_or_below_the_reference_batch(batch):
    sched = _warmup(batch)
    assert sched.start == 1.0
    assert all(sched.factor(_progress(i)) == 1.0 for i in range(0, 6 * N_STEPS))


def test_fractional_warmup_epochs_and_a_fixed_start():
    sched = _warmup(reference_batch=None, start_factor=0.25, warmup_epochs=2.5)
    assert sched.factor(_progress(0)) == pytest.approx(0.25)
    assert sched.factor(Progress(epoch=1.25, step=0, steps_per_epoch=4)) == pytest.approx(0.25 + 0.75 * 0.5)
    assert sched.factor(Progress(epoch=2.5, step=0, steps_per_epoch=4)) == pytest.approx(1.0)
    # integer epochs: the same as the existing warmup schedule
    old = WarmupSchedule(WarmupConfig(epochs=3, start_factor=0.25))
    new = _warmup(reference_batch=None, start_factor=0.25, warmup_epochs=3)
    for i in range(0, 5 * N_STEPS):
        assert new.factor(_progress(i)) == pytest.approx(old.factor(_progress(i)))


def test_the_base_schedule_follows_the_warmup():
    """Goyal's ResNet-50 recipe: 5 warm-up epochs, then ÷10 at epochs 30, 60 and 80."""
    batch = 8192
    base = MultiStepSchedule(MultiStepConfig(milestones=[30, 60, 80], gamma=0.1))
    plan, sched = _scaled(batch), _warmup(batch, then_objects=[base])
    target = ETA * batch / B_REF
    for epoch, expected in [(0.0, ETA), (2.5, (ETA + target) / 2), (5.0, target), (29.9, target),
                            (30.0, target * 0.1), (65.0, target * 0.01), (85.0, target * 1e-3)]:
        p = Progress(epoch=epoch, step=0, steps_per_epoch=N_STEPS)
        assert plan.lr * sched.factor(p) == pytest.approx(expected), epoch
    # the base's milestones move with regime adaptation (time_scale); the warm-up does not
    p = Progress(epoch=45.0, step=0, steps_per_epoch=N_STEPS, time_scale=2.0)
    assert plan.lr * sched.factor(p) == pytest.approx(target)


def test_config_errors_and_an_unbound_batch():
    with pytest.raises(ValidationError, match="exactly one of reference_batch and start_factor"):
        LinearWarmupConfig(reference_batch=256, start_factor=0.5)
    with pytest.raises(ValidationError, match="exactly one of reference_batch and start_factor"):
        LinearWarmupConfig()
    with pytest.raises(ValidationError):
        LinearWarmupConfig(reference_batch=256, then=[{"name": "constant"}, {"name": "constant"}])
    with pytest.raises(RuntimeError, match="batch size"):
        _warmup().factor(_progress(0))


def test_the_base_schedules_hooks_are_called_through_the_warmup():
    class Base:
        def factor(self, progress):
            return 1.0

        def lbgap_trial_start(self, trial):
            self.started = trial

        def lbgap_trial_end(self, trial, results):
            results["base_value"] = 1.0

    base = Base()
    sched = _warmup(then_objects=[base])

    class Trial:
        plan = TrainingPlan(batch_size=1024, lr=0.4, epochs=1)

    trial = Trial()
    sched.lbgap_trial_start(trial)
    assert sched.batch_size == 1024 and base.started is trial
    results: dict[str, float] = {}
    sched.lbgap_trial_end(trial, results)
    assert results == {"base_value": 1.0}
    assert sched.lbgap_epoch_end(trial, {}) is None


SPEC = """\
study: batch_scaling
base:
  dataset: {name: blobs, n_train: 200, n_test: 100}
  model: {name: tiny_mlp, width: 16}
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  batch_size: 32
  epochs: 4
"""


def _cfg(registry, text: str):
    return load_study_text(text, "batch_scaling.yaml", registry).resolve("base", {})


def test_linear_warmup_in_a_trial(toy_registry):
    """lr_scaling (linear, B_ref 8) and linear_warmup (2 epochs, then ÷10 at epoch 3): the recorded
    learning rate of each epoch (its last step's) is Goyal's, then the base schedule's."""
    text = SPEC + """\
  regime: [{name: lr_scaling, rule: linear, reference_batch: 8}]
  schedule:
    name: linear_warmup
    reference_batch: 8
    warmup_epochs: 2
    then: [{name: multistep, milestones: [3], gamma: 0.1}]
"""
    out = run_trial(_cfg(toy_registry, text), 0, registry=toy_registry, device=torch.device("cpu"))
    n = math.ceil(200 / 32)
    assert out.plan.lr == pytest.approx(0.05 * 4)
    expected = []
    for epoch in range(1, 5):
        last = epoch * n - 1  # the epoch's last optimizer step
        lr = goyal_warmup_lr(last, n, 0.05, 32, reference_batch=8, warmup_epochs=2)
        expected.append(lr * (0.1 if epoch >= 4 else 1.0))  # milestone 3: from the fourth epoch
    assert out.history["learning_rate"] == pytest.approx(expected, rel=1e-12)


def test_warmup_and_noise_scale_in_a_vectorized_group(toy_registry):
    """Each member of a stacked group learns its own batch size and records its own noise scale."""
    from lbgap.engine.group import Member, run_group

    text = SPEC + """\
  regime: [{name: lr_scaling, rule: linear, reference_batch: 8}]
  schedule: {name: linear_warmup, reference_batch: 8, warmup_epochs: 2}
  metrics: [{name: sgd_noise_scale}]
"""
    cfg = _cfg(toy_registry, text)
    cpu = torch.device("cpu")
    group = run_group([Member(cfg, 0, "a"), Member(cfg, 1, "b")], registry=toy_registry, device=cpu)
    for seed, out in enumerate(group):
        alone = run_trial(cfg, seed, registry=toy_registry, device=cpu)
        assert out.history["learning_rate"] == pytest.approx(alone.history["learning_rate"], rel=1e-12)
        assert out.history["sgd_noise_scale"] == pytest.approx(alone.history["sgd_noise_scale"], rel=1e-12)
        g = [lr * 200 / (32 * 0.1) for lr in out.history["learning_rate"]]
        assert out.history["sgd_noise_scale"] == pytest.approx(g, rel=1e-12)


# ------------------------------------------------------------------ SGD noise scale


def test_sgd_noise_scale_formula():
    assert sgd_noise_scale(0.1, 50_000, 128) == pytest.approx(0.1 * 50_000 / 128)
    assert sgd_noise_scale(0.1, 50_000, 128, momentum=0.9) == pytest.approx(0.1 * 50_000 / (128 * 0.1))
    assert sgd_noise_scale(0.1, 1000, 100, momentum=0.9, dampening=0.9) == pytest.approx(0.1 * 10 * 0.1 / 0.1)
    assert sgd_noise_scale(0.1, 100, 4096) == pytest.approx(0.1)  # one batch of N
    # the linear scaling rule keeps g: doubling B and ε together
    assert sgd_noise_scale(0.2, 1000, 64, 0.9) == pytest.approx(sgd_noise_scale(0.1, 1000, 32, 0.9))
    with pytest.raises(ValueError, match="momentum"):
        sgd_noise_scale(0.1, 100, 10, momentum=1.0)


def test_sgd_noise_scale_is_recorded_every_epoch_across_an_lr_drop(toy_registry):
    text = SPEC + """\
  schedule: {name: multistep, milestones: [2], gamma: 0.1}
  metrics: [{name: sgd_noise_scale}]
"""
    out = run_trial(_cfg(toy_registry, text), 0, registry=toy_registry, device=torch.device("cpu"))
    lrs = [0.05, 0.05, 0.005, 0.005]  # ÷10 from the third epoch
    assert out.history["learning_rate"] == pytest.approx(lrs)
    assert out.history["sgd_noise_scale"] == pytest.approx([lr * 200 / (32 * (1 - 0.9)) for lr in lrs], rel=1e-12)
    attrs = out.variable_attrs["sgd_noise_scale"]
    assert attrs["units"] == "1" and "Smith & Le" in attrs["long_name"]
    assert "sgd_noise_scale" in attrs["source"]


def test_sgd_noise_scale_follows_warmup_dampening_and_large_batches(toy_registry):
    text = SPEC.replace("momentum: 0.9", "momentum: 0.5, dampening: 0.5").replace("batch_size: 32", "batch_size: 500")
    text += """\
  schedule: {name: linear_warmup, start_factor: 0.5, warmup_epochs: 2}
  metrics: [{name: sgd_noise_scale}]
"""
    out = run_trial(_cfg(toy_registry, text), 0, registry=toy_registry, device=torch.device("cpu"))
    # one batch of all 200 examples per epoch: the epoch's only step is at epoch e − 1
    lrs = [0.05 * (0.5 + 0.5 * min((e - 1) / 2, 1.0)) for e in range(1, 5)]
    assert out.history["learning_rate"] == pytest.approx(lrs)
    assert out.history["sgd_noise_scale"] == pytest.approx([lr * 0.5 * 200 / (200 * 0.5) for lr in lrs])


def test_sgd_noise_scale_without_momentum_is_nan_and_not_measured_after_the_fact(toy_registry):
    text = SPEC.replace("{name: sgd, lr: 0.05, momentum: 0.9}", "{name: adam, lr: 0.01}").replace(
        "epochs: 4", "epochs: 2"
    )
    text += """\
  metrics: [{name: sgd_noise_scale}]
"""
    out = run_trial(_cfg(toy_registry, text), 0, registry=toy_registry, device=torch.device("cpu"))
    assert all(math.isnan(v) for v in out.history["sgd_noise_scale"])
    metric = SGDNoiseScale(SGDNoiseScaleConfig())
    assert metric.every is None and not metric.at_end and metric.outputs == ("sgd_noise_scale",)
    with pytest.raises(RuntimeError, match="while training"):
        metric.compute(None)
