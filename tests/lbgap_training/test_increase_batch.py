"""Regime ``increase_batch`` (Smith, Kindermans, Ying & Le 2018): the batch grows at the milestones in
place of a learning-rate decay. The stages against their closed form, the engine's per-epoch batch
(steps, batch order, counters, ``trial.plan``), a factor of 1 against a plain trial bitwise, the cap,
vectorized groups and data-parallel shares."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from lbgap import hookimpl
from lbgap.engine.train import next_batch, run_trial, steps_per_epoch
from lbgap.plan import BatchStage, TrainingPlan
from lbgap.spec import load_study_text
from lbgap_training.batch_schedule import IncreaseBatch, IncreaseBatchConfig, batch_stages

CPU = torch.device("cpu")
N = 200  # training examples of the blobs below

SPEC = """\
study: increase_batch
base:
  dataset: {name: blobs, n_train: 200, n_test: 100}
  model: {name: tiny_mlp, width: 16}
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  batch_size: 16
  epochs: 4
"""


def _cfg(registry, extra: str = "", text: str = SPEC, **overrides):
    return load_study_text(text + extra, "increase_batch.yaml", registry).resolve("base", overrides)


def _regime(**cfg) -> IncreaseBatch:
    return IncreaseBatch(IncreaseBatchConfig(**cfg))


# ------------------------------------------------------------------ the stages


def test_stages_are_the_papers_closed_form():
    """B_k = B₀·f^k, the rate unchanged (Smith et al.'s CIFAR-10 schedule: 128 × 5 at 60, 120, 160)."""
    plan = _regime(milestones=[60, 120, 160], factor=5)(TrainingPlan(batch_size=128, lr=0.1, epochs=200))
    assert plan.batch_size == 128 and plan.lr == 0.1 and plan.epochs == 200  # the plan's numbers stay
    assert [(s.start, s.batch_size, s.lr_factor) for s in plan.batch_stages] == [
        (0, 128, 1.0), (60, 640, 1.0), (120, 3200, 1.0), (160, 16000, 1.0),
    ]
    sizes = plan.batch_sizes()
    assert len(sizes) == 200
    assert sizes[:60] == (128,) * 60 and sizes[60:120] == (640,) * 60
    assert sizes[120:160] == (3200,) * 40 and sizes[160:] == (16000,) * 40
    assert plan.batch_size_at(60) == 128 and plan.batch_size_at(61) == 640  # after 60 epochs done
    assert all(plan.lr_factor_at(e) == 1.0 for e in range(1, 201))
    # the steps of a 50 000-image epoch at each stage, and in all
    steps = [steps_per_epoch(50_000, b, False) for b in sizes]
    assert steps[0] == 391 and steps[60] == 79 and steps[120] == 16 and steps[160] == 4
    assert sum(steps) == 60 * 391 + 60 * 79 + 40 * 16 + 40 * 4


def test_the_cap_decays_the_rate_by_what_is_left_of_the_factor():
    # B_max 3200: the third milestone would give 16 000, so the batch stays and the rate falls ×5
    stages = batch_stages(128, [60, 120, 160], 5.0, max_batch_size=3200)
    assert stages == [(0.0, 128, 1.0), (60.0, 640, 1.0), (120.0, 3200, 1.0), (160.0, 3200, pytest.approx(0.2))]
    # a cap between two stages: as far as the cap, then the rest of the factor on the rate
    stages = batch_stages(100, [1, 2], 4.0, max_batch_size=1000)
    assert stages[1] == (1.0, 400, 1.0)
    assert stages[2][1] == 1000 and stages[2][2] == pytest.approx(1000 / 1600)
    # ε/B falls by f at every milestone, capped or not
    for start, batch, lr_factor in stages:
        assert lr_factor / batch == pytest.approx(1 / (100 * 4 ** [0.0, 1.0, 2.0].index(start)))
    # a batch above the cap never shrinks: every milestone decays the rate
    assert batch_stages(4096, [10, 20], 2.0, max_batch_size=1024) == [
        (0.0, 4096, 1.0), (10.0, 4096, 0.5), (20.0, 4096, 0.25),
    ]
    # a fractional factor rounds the batch to the nearest integer
    assert [b for _, b, _ in batch_stages(100, [1, 2, 3], 1.5)] == [100, 150, 225, 338]


def test_milestones_follow_the_time_scale_and_wait_for_an_epoch_boundary():
    plan = _regime(milestones=[2], factor=2)(TrainingPlan(batch_size=8, lr=0.1, epochs=8, time_scale=1.5))
    # 2 × 1.5 = 3 epochs done: from epoch 4 on
    assert [plan.batch_size_at(e) for e in range(1, 7)] == [8, 8, 8, 16, 16, 16]
    plan = _regime(milestones=[1.25], factor=2)(TrainingPlan(batch_size=8, lr=0.1, epochs=4))
    assert [plan.batch_size_at(e) for e in range(1, 5)] == [8, 8, 16, 16]  # 1.25: at the boundary after epoch 2
    # regime adaptation listed after the batch schedule still moves its milestones (time_scale is read later)
    from dataclasses import replace

    later = replace(_regime(milestones=[2], factor=2)(TrainingPlan(8, 0.1, 4)), epochs=8, time_scale=2.0)
    assert later.batch_sizes() == (8, 8, 8, 8, 16, 16, 16, 16)


def test_the_epochs_plan_and_a_plan_without_stages():
    plan = TrainingPlan(batch_size=32, lr=0.1, epochs=3)
    assert plan.at_epoch(2) is plan and plan.batch_sizes() == (32, 32, 32) and plan.lr_factor_at(3) == 1.0
    grown = plan.with_batch_stages([(0, 32, 1.0), BatchStage(1, 64, 0.5)])
    second = grown.at_epoch(2)
    assert second.batch_size == 64 and second.batch_stages == grown.batch_stages
    assert second.at_epoch(1).batch_size == 32  # the epoch's plan still knows the whole schedule
    assert grown.lr_factor_at(1) == 1.0 and grown.lr_factor_at(2) == 0.5


def test_config_and_stage_errors():
    with pytest.raises(ValidationError, match="strictly increasing"):
        IncreaseBatchConfig(milestones=[2, 1])
    with pytest.raises(ValidationError):
        IncreaseBatchConfig(milestones=[1], factor=0.5)  # a shrinking batch is not this regime
    with pytest.raises(ValidationError):
        IncreaseBatchConfig(milestones=[])
    base = TrainingPlan(batch_size=8, lr=0.1, epochs=2)
    with pytest.raises(ValueError, match="epoch 0"):
        base.with_batch_stages([(1, 8, 1.0)])
    with pytest.raises(ValueError, match="increasing"):
        base.with_batch_stages([(0, 8, 1.0), (2, 16, 1.0), (2, 32, 1.0)])
    with pytest.raises(ValueError, match="positive"):
        base.with_batch_stages([(0, 8, 1.0), (1, 16, 0.0)])


# ------------------------------------------------------------------ the engine


class _StepLog:
    """Records, before every optimizer step, the epoch, the batch's size and what ``trial.plan`` says."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, int, float]] = []

    @hookimpl
    def lbgap_before_step(self, trial, x, y):
        self.steps.append((trial.epoch + 1, len(x), trial.plan.batch_size, trial.lr))


def _logged_trial(registry, cfg, seed=0):
    log = _StepLog()
    registry.pm.register(log, name="test:step-log")
    try:
        out = run_trial(cfg, seed, registry=registry, device=CPU)
    finally:
        registry.pm.unregister(name="test:step-log")
    return out, log.steps


def test_a_trial_trains_each_epoch_with_its_batch(toy_registry):
    """16 → 32 → 64 after epochs 1 and 2: steps ⌈200/B⌉ per epoch, every batch of the epoch's size
    but the last, ``trial.plan.batch_size`` the epoch's batch, the rate unchanged, the noise scale
    g = εN/(B(1 − m)) divided by 2 at each milestone, ``batch_size_epoch`` recorded."""
    extra = """\
  regime: [{name: increase_batch, milestones: [1, 2], factor: 2}]
  metrics: [{name: sgd_noise_scale}]
"""
    out, steps = _logged_trial(toy_registry, _cfg(toy_registry, extra))
    batches = [16, 32, 64, 64]
    n_steps = [math.ceil(N / b) for b in batches]  # 13, 7, 4, 4
    assert out.history["batch_size_epoch"] == batches
    assert out.history["step"] == [sum(n_steps[:e]) for e in range(1, 5)]
    for epoch, b in enumerate(batches, start=1):
        mine = [s for s in steps if s[0] == epoch]
        assert len(mine) == n_steps[epoch - 1]
        sizes = [s[1] for s in mine]
        assert sizes[:-1] == [b] * (len(sizes) - 1) and sum(sizes) == N  # one pass over the set
        assert {s[2] for s in mine} == {b}  # trial.plan is the epoch's plan
        assert {s[3] for s in mine} == {0.05}  # no decay
    assert out.history["learning_rate"] == [0.05] * 4
    assert out.history["sgd_noise_scale"] == pytest.approx([0.05 * N / (b * 0.1) for b in batches], rel=1e-12)
    assert out.plan.batch_size == 16 and len(out.plan.batch_stages) == 3  # the outcome keeps the whole plan


def test_the_cap_turns_later_milestones_into_decays(toy_registry):
    extra = """\
  regime: [{name: increase_batch, milestones: [1, 2, 3], factor: 2, max_batch_size: 32}]
  schedule: {name: multistep, milestones: [3], gamma: 0.1}
"""
    out, steps = _logged_trial(toy_registry, _cfg(toy_registry, extra))
    assert out.history["batch_size_epoch"] == [16, 32, 32, 32]
    # 32 → 64 and 32 → 64 → 128 are capped: the rate falls by 2, then by 4 in all; the schedule's
    # own factor (÷10 from epoch 4) multiplies the batch schedule's
    assert out.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025, 0.05 / 4 / 10], rel=1e-15)
    assert [s[3] for s in steps if s[0] == 3] == pytest.approx([0.025] * math.ceil(N / 32), rel=1e-15)


def test_a_factor_of_one_is_a_plain_trial_bitwise(toy_registry):
    """Stages that keep the batch change nothing: the same batch order, the same numbers, bitwise."""
    text = SPEC.replace("tiny_mlp, width: 16", "tiny_mlp, width: 16, batchnorm: true")
    plain = run_trial(_cfg(toy_registry, text=text), 3, registry=toy_registry, device=CPU)
    extra = "  regime: [{name: increase_batch, milestones: [1, 2, 3], factor: 1}]\n"
    same = run_trial(_cfg(toy_registry, extra, text=text), 3, registry=toy_registry, device=CPU)
    assert same.plan.batch_stages and not plain.plan.batch_stages
    for name, values in plain.history.items():
        if name != "epoch_time":
            assert same.history[name] == values, name
    for k, v in plain.final_state.items():
        assert torch.equal(same.final_state[k], v), k


def test_the_batch_order_is_the_plain_trials_cut_anew(toy_registry):
    """Each epoch's order is the permutation a plain trial draws from the same batch-order generator,
    cut into the epoch's larger batches: every epoch visits the examples in the plain trial's order."""
    plain_cfg = _cfg(toy_registry, epochs=3)
    grown_cfg = _cfg(toy_registry, "  regime: [{name: increase_batch, milestones: [1, 2], factor: 4}]\n", epochs=3)
    orders = []
    for cfg in (plain_cfg, grown_cfg):
        log = _OrderLog()
        toy_registry.pm.register(log, name="test:order-log")
        try:
            run_trial(cfg, 0, registry=toy_registry, device=CPU)
        finally:
            toy_registry.pm.unregister(name="test:order-log")
        orders.append(log)
    plain, grown = orders
    assert [len(b) for b in grown.batches[2]] == [64] * 3 + [8] and [len(b) for b in grown.batches[3]] == [200]
    for epoch in (1, 2, 3):
        assert torch.equal(torch.cat(grown.batches[epoch]), torch.cat(plain.batches[epoch]))


class _OrderLog:
    def __init__(self) -> None:
        self.batches: dict[int, list[torch.Tensor]] = {}

    @hookimpl
    def lbgap_before_step(self, trial, x, y):
        self.batches.setdefault(trial.epoch + 1, []).append(x.sum(1))  # one number per example, in order


def test_steps_and_examples_to_target_count_the_growing_batches(toy_registry):
    """examples_to_target is the sum of the batches drawn until the step that met the target."""
    extra = """\
  regime: [{name: increase_batch, milestones: [1, 2], factor: 2}]
  target: {metric: train_loss, value: 0.1, every_steps: 1}
"""
    out = run_trial(_cfg(toy_registry, extra, epochs=6), 0, registry=toy_registry, device=CPU)
    steps = out.end["steps_to_target"]
    assert math.isfinite(steps) and steps > 13  # met after the first milestone (set up so)
    drawn, step = 0, 0
    for b in [16, 32, 64, 64, 64, 64]:
        for i in range(math.ceil(N / b)):
            if step == steps:
                break
            drawn += min(b, N - i * b)
            step += 1
    assert out.end["examples_to_target"] == drawn


def test_data_parallel_shares_follow_the_epochs_batch():
    """Each rank takes its ``tensor_split`` share of the epoch's global batch: as the batch grows
    the shares grow, and together they are the global batch in order."""
    n = 23
    data = SimpleNamespace(train_x=torch.arange(n).float()[:, None], train_y=torch.arange(n), train_transform=None)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    for B in (4, 8, 10):
        for i in range(math.ceil(n / B)):
            shares = []
            for rank in range(3):
                run = SimpleNamespace(batch_size=B, world=3, rank=rank, data=data)
                x, y, b = next_batch(run, perm, i)
                assert b == len(perm[i * B : (i + 1) * B])  # the global batch of the step
                shares.append(y)
            assert torch.equal(torch.cat(shares), perm[i * B : (i + 1) * B])
            assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


# ------------------------------------------------------------------ vectorized trials


def test_a_vectorized_group_shares_its_batch_schedule(toy_registry):
    """Members with the same batch schedule train as one stacked model, each equal to its trial
    alone (bitwise on the CPU); a member with another schedule makes the group not stackable."""
    from lbgap.engine.group import Member, NotStackable, run_group

    extra = """\
  regime: [{name: increase_batch, milestones: [1, 2], factor: 2, max_batch_size: 32}]
  metrics: [{name: sgd_noise_scale}]
"""
    cfg = _cfg(toy_registry, extra)
    group = run_group([Member(cfg, 0, "a"), Member(cfg, 1, "b")], registry=toy_registry, device=CPU)
    for seed, out in enumerate(group):
        alone = run_trial(cfg, seed, registry=toy_registry, device=CPU)
        for name in ("train_loss", "test_loss", "step", "batch_size_epoch", "learning_rate", "sgd_noise_scale"):
            assert out.history[name] == alone.history[name], name
        for k, v in alone.final_state.items():
            assert torch.equal(out.final_state[k], v), k
    plain = _cfg(toy_registry)
    with pytest.raises(NotStackable, match="batch-size schedules"):
        run_group([Member(cfg, 0, "a"), Member(plain, 1, "b")], registry=toy_registry, device=CPU)
    other = _cfg(toy_registry, "  regime: [{name: increase_batch, milestones: [2], factor: 2}]\n")
    with pytest.raises(NotStackable, match="batch-size schedules"):
        run_group([Member(cfg, 0, "a"), Member(other, 1, "b")], registry=toy_registry, device=CPU)
    # members with the same batches but different learning-rate schedules still group
    same = _cfg(toy_registry, "  regime: [{name: increase_batch, milestones: [1, 2], factor: 2, max_batch_size: 32}]\n"
                "  schedule: {name: multistep, milestones: [3], gamma: 0.1}\n")
    assert len(run_group([Member(cfg, 0, "a"), Member(same, 1, "b")], registry=toy_registry, device=CPU)) == 2
