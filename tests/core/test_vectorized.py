"""Vectorized trials: each member of a stacked group gets exactly the numbers of its own trial."""

from __future__ import annotations

import math

import pytest
import torch

from lbgap.engine.group import Member, NotStackable, run_group
from lbgap.engine.train import begin_training, run_trial, start_trial
from lbgap.registry import get_registry
from lbgap.spec import load_study_text

CPU = torch.device("cpu")

SPEC = """\
study: vec
base:
  dataset: {name: mnist1d, num_samples: 500}
  model: {name: mlp, hidden: [32, 32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9, weight_decay: 1.0e-4}
  schedule: {name: multistep, milestones: [1, 2], gamma: 0.1}
  batch_size: 40
  epochs: 3
  grad_clip: 1.0
  eval: {batch_size: 100, bn_mode: running, train_metrics: running}
variants:
  bn: {}
  gbn:
    model: {norm: ghost, ghost_size: 10, ghost_layout: strided}
  gbn_contiguous:
    model: {norm: ghost, ghost_size: 8, ghost_layout: contiguous}
  gbn_remainder:
    model: {norm: ghost, ghost_size: 12, momentum_policy: scaled}
  plain:
    model: {norm: none}
    grad_clip: null
  grad_noise:
    noise: [{name: gradient_noise, scale: 0.01}]
  preact_noise:
    model: {noise_sites: true}
    noise: [{name: preactivation_noise, scale: 0.1}]
  lr_big:
    optimizer: {lr: 0.2, momentum: 0.5}
  diverge:
    model: {norm: none}
    optimizer: {lr: 1.0e+6, momentum: 0.0, weight_decay: 0.0}
    grad_clip: null
  longer:
    epochs: 5
  regime_adapted:
    batch_size: 80
    regime:
      - {name: lr_scaling, rule: sqrt, reference_batch: 40}
      - {name: regime_adaptation, reference_batch: 40}
  stop:
    stopping: [{name: train_loss_below, eps: 2.2}]
seeds: [0, 1, 2]
"""


@pytest.fixture(scope="module")
def study():
    return load_study_text(SPEC, "vec.yaml", get_registry())


def _sequential(study, variant: str, seed: int):
    return run_trial(study.resolve(variant, {}), seed, registry=study.registry, device=CPU, key=f"{variant}/{seed}")


def _group(study, pairs: list[tuple[str, int]]):
    members = [Member(study.resolve(v, {}), s, f"{v}/{s}") for v, s in pairs]
    return run_group(members, registry=study.registry, device=CPU)


def _assert_same(a, b) -> None:
    assert a.status == b.status and a.reason == b.reason
    for name, values in a.history.items():
        if name == "epoch_time":
            continue
        assert len(values) == len(b.history[name]), name
        for x, y in zip(values, b.history[name], strict=True):
            assert (math.isnan(x) and math.isnan(y)) or x == y, (name, values, b.history[name])
    assert a.final_state.keys() == b.final_state.keys()
    for k in a.final_state:
        torch.testing.assert_close(a.final_state[k], b.final_state[k], rtol=0, atol=0, equal_nan=True, msg=k)


@pytest.mark.parametrize("variant", ["bn", "gbn", "gbn_contiguous", "gbn_remainder", "plain", "grad_noise", "preact_noise"])
def test_seeds_of_a_variant_equal_their_sequential_trials_bitwise(study, variant):
    group = _group(study, [(variant, s) for s in (0, 1, 2)])
    for seed, outcome in zip((0, 1, 2), group, strict=True):
        _assert_same(outcome, _sequential(study, variant, seed))


def test_grid_points_differing_in_float_settings_train_together(study):
    group = _group(study, [("bn", 0), ("lr_big", 0), ("bn", 1)])
    _assert_same(group[0], _sequential(study, "bn", 0))
    _assert_same(group[1], _sequential(study, "lr_big", 0))
    _assert_same(group[2], _sequential(study, "bn", 1))


def test_a_diverging_member_leaves_without_disturbing_the_others(study):
    plain = [("plain", 0), ("diverge", 0), ("plain", 1)]
    group = _group(study, plain)
    assert group[1].status == "diverged"
    _assert_same(group[1], _sequential(study, "diverge", 0))
    _assert_same(group[0], _sequential(study, "plain", 0))
    _assert_same(group[2], _sequential(study, "plain", 1))


def test_members_that_stop_early_or_train_longer(study):
    pairs = [("stop", 0), ("longer", 0), ("bn", 0)]
    group = _group(study, pairs)
    assert group[0].status == "stopped" and len(group[0].history["train_loss"]) < 3
    assert len(group[1].history["train_loss"]) == 5 and len(group[2].history["train_loss"]) == 3
    for (variant, seed), outcome in zip(pairs, group, strict=True):
        _assert_same(outcome, _sequential(study, variant, seed))


def test_a_regime_adapted_member_trains_longer_beside_others(study):
    pairs = [("regime_adapted", 0), ("regime_adapted", 1)]
    group = _group(study, pairs)
    assert len(group[0].history["train_loss"]) == 6  # 3 epochs × 80/40
    for (variant, seed), outcome in zip(pairs, group, strict=True):
        _assert_same(outcome, _sequential(study, variant, seed))


def test_members_report_as_they_finish(study):
    done = []
    _group_members = [Member(study.resolve(v, {}), 0, v) for v in ("stop", "bn")]
    run_group(_group_members, registry=study.registry, device=CPU, on_done=lambda i, o: done.append((i, o.status)))
    assert done == [(0, "stopped"), (1, "completed")]


def test_unstackable_layers_are_refused_before_training(study):
    text = SPEC.replace("norm: batchnorm}", "norm: batchnorm, dropout: 0.5}")
    dropout = load_study_text(text, "vec.yaml", get_registry())
    with pytest.raises(NotStackable, match="Dropout"):
        _group(dropout, [("bn", 0), ("bn", 1)])


def test_bf16_autocast_members_equal_their_sequential_trials(study):
    text = SPEC.replace("  epochs: 3\n", "  epochs: 2\n  precision: bf16\n", 1)
    bf16 = load_study_text(text, "vec.yaml", get_registry())
    group = _group(bf16, [("bn", 0), ("bn", 1)])
    for seed, outcome in zip((0, 1), group, strict=True):
        _assert_same(outcome, _sequential(bf16, "bn", seed))
    fp32 = _sequential(study, "bn", 0)
    assert group[0].history["train_loss"][0] != fp32.history["train_loss"][0]  # bf16 really ran
    assert abs(group[0].history["train_loss"][0] - fp32.history["train_loss"][0]) < 0.05


def test_channels_last_trains_the_same_network():
    text = """\
study: cl
base:
  dataset: {name: digits, shape: image}
  model: {name: c1, variant: hoffer, dense_dropout: 0.0}
  optimizer: {name: sgd, lr: 0.01}
  batch_size: 128
  epochs: 1
"""
    reg = get_registry()
    plain = load_study_text(text, "cl.yaml", reg)
    cl = load_study_text(text.replace("epochs: 1\n", "epochs: 1\n  channels_last: true\n"), "cl.yaml", reg)
    a = run_trial(plain.resolve("base", {}), 0, registry=reg, device=CPU)
    b = run_trial(cl.resolve("base", {}), 0, registry=reg, device=CPU)
    assert b.status == "completed"
    run = start_trial(cl.resolve("base", {}), 0, registry=reg, device=CPU, key="cl")
    try:
        begin_training(run)
        assert run.data.train_x.is_contiguous(memory_format=torch.channels_last)
        conv = [p for p in run.model.parameters() if p.dim() == 4][-1]  # 64 input channels
        assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    finally:
        run.close()
    assert b.history["train_loss"][0] == pytest.approx(a.history["train_loss"][0], rel=1e-4)
    assert b.history["test_accuracy"][0] == pytest.approx(a.history["test_accuracy"][0], abs=0.01)
