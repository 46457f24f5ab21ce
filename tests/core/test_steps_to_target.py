"""Steps to a target (Shallue et al. 2018) and the validation split."""

from __future__ import annotations

import math

import pytest
import torch

from lbgap.engine.train import build_parts, run_trial
from lbgap.spec import load_study_text

CPU = torch.device("cpu")
SPEC = """\
study: target
base:
  dataset: {name: blobs, n_train: 240, n_test: 120}
  model: {name: tiny_mlp, width: 16}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 20
  epochs: 4
"""


def _cfg(registry, extra: str = ""):
    return load_study_text(SPEC + extra, "target.yaml", registry).resolve("base", {})


def _test_error_after_each_step(registry):
    """The test error after every optimizer step of the trial without a target (a reference)."""
    errors = []
    cfg = _cfg(registry)

    def on_step(step):
        from lbgap.engine.evaluate import evaluate

        out = evaluate(run_model[0], data[0].test_x, data[0].test_y, batch_size=cfg.eval.batch_size)
        errors.append(1 - out["accuracy"])

    parts = build_parts(cfg, 0, registry, CPU)
    run_model, data = [parts.model], [parts.data]
    run_trial(cfg, 0, registry=registry, device=CPU, parts=parts, on_step=on_step)
    return errors


def test_steps_to_target_is_the_first_checked_step_that_meets_it(toy_registry):
    errors = _test_error_after_each_step(toy_registry)
    goal = sorted(errors)[len(errors) // 3]  # met somewhere inside the budget
    every = 3
    expected = next(s for s in range(every, len(errors) + 1, every) if errors[s - 1] <= goal)
    out = run_trial(
        _cfg(toy_registry, f"  target: {{metric: test_error, value: {goal!r}, every_steps: {every}, stop: false}}\n"),
        0, registry=toy_registry, device=CPU,
    )
    assert out.end["steps_to_target"] == expected
    assert out.end["examples_to_target"] == expected * 20  # 240 / 20: every batch is full
    assert out.status == "completed" and len(out.history["step"]) == 4


def test_checking_the_target_leaves_training_unchanged(toy_registry):
    plain = run_trial(_cfg(toy_registry), 0, registry=toy_registry, device=CPU)
    checked = run_trial(
        _cfg(toy_registry, "  target: {metric: test_error, value: 0.0, every_steps: 2, stop: false}\n"),
        0, registry=toy_registry, device=CPU,
    )
    assert checked.history["train_loss"] == plain.history["train_loss"]
    assert checked.history["test_accuracy"] == plain.history["test_accuracy"]


def test_a_trial_stops_at_its_target_and_records_the_partial_epoch(toy_registry):
    out = run_trial(
        _cfg(toy_registry, "  target: {metric: train_loss, value: 0.9, every_steps: 5}\n"),
        0, registry=toy_registry, device=CPU,
    )
    steps = out.end["steps_to_target"]
    assert out.status == "stopped" and "target train_loss" in out.reason
    assert steps % 5 == 0 and out.history["step"][-1] == steps  # stopped right after that step
    assert not math.isnan(out.history["test_accuracy"][-1])  # the final model is evaluated


def test_a_target_never_met_is_nan(toy_registry):
    out = run_trial(
        _cfg(toy_registry, "  target: {metric: test_error, value: -1.0, every_steps: 4}\n"),
        0, registry=toy_registry, device=CPU,
    )
    assert out.status == "completed"
    assert math.isnan(out.end["steps_to_target"]) and math.isnan(out.end["examples_to_target"])


def test_validation_split_is_held_out_and_evaluated(toy_registry):
    cfg = _cfg(toy_registry, "  validation: {fraction: 0.25, seed: 3}\n")
    parts = build_parts(cfg, 0, toy_registry, CPU)
    assert parts.data.n_train == 180 and len(parts.data.val_y) == 60
    again = build_parts(cfg, 1, toy_registry, CPU)  # the split does not depend on the trial seed
    assert torch.equal(parts.data.val_x, again.data.val_x)
    out = run_trial(cfg, 0, registry=toy_registry, device=CPU)
    assert len(out.history["validation_accuracy"]) == 4
    assert all(0 <= a <= 1 for a in out.history["validation_accuracy"])
    with_target = run_trial(
        _cfg(toy_registry, "  validation: {fraction: 0.25, seed: 3}\n"
             "  target: {metric: validation_error, value: 0.5, every_steps: 3}\n"),
        0, registry=toy_registry, device=CPU,
    )
    steps = with_target.end["steps_to_target"]
    assert steps >= 3 and steps % 3 == 0 and with_target.status == "stopped"


def test_bad_target_settings_are_spec_errors(toy_registry):
    from lbgap.spec import SpecError

    with pytest.raises(SpecError, match="every_steps"):
        _cfg(toy_registry, "  target: {metric: test_error, value: 0.1, every_steps: 0}\n")
