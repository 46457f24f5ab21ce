"""The training engine: determinism, history, divergence, accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from lbgap.engine.train import run_trial
from lbgap.spec import load_study_text

SPEC = """\
study: engine
base:
  dataset: {name: blobs, n_train: 200, n_test: 100}
  model: {name: tiny_mlp, width: 16, batchnorm: true}
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  batch_size: 32
  epochs: 3
"""


def _cfg(toy_registry, text=SPEC, **overrides):
    study = load_study_text(text, "engine.yaml", toy_registry)
    return study.resolve("base", overrides)


def test_same_seed_same_numbers(toy_registry):
    cfg = _cfg(toy_registry)
    a = run_trial(cfg, 3, registry=toy_registry, device=torch.device("cpu"))
    b = run_trial(cfg, 3, registry=toy_registry, device=torch.device("cpu"))
    c = run_trial(cfg, 4, registry=toy_registry, device=torch.device("cpu"))
    assert a.history["train_loss"] == b.history["train_loss"]
    assert a.history["test_accuracy"] == b.history["test_accuracy"]
    for k in a.final_state:
        assert torch.equal(a.final_state[k], b.final_state[k])
    assert a.history["train_loss"] != c.history["train_loss"]


def test_history_counts_steps_and_distance(toy_registry):
    cfg = _cfg(toy_registry)
    out = run_trial(cfg, 0, registry=toy_registry, device=torch.device("cpu"))
    steps_per_epoch = math.ceil(200 / 32)
    assert out.history["step"] == [steps_per_epoch * e for e in (1, 2, 3)]
    assert out.status == "completed" and len(out.history["test_accuracy"]) == 3
    # ||w_T - w_0|| over parameters only (not BN buffers), from the saved states
    params = [k for k in out.final_state if "running" not in k and "num_batches" not in k]
    expected = math.sqrt(sum(float((out.final_state[k] - out.initial_state[k]).pow(2).sum()) for k in params))
    assert out.history["weight_distance"][-1] == pytest.approx(expected, rel=1e-6)
    assert 0 <= out.history["test_accuracy"][-1] <= 1


def test_divergence_is_recorded_and_stops(toy_registry):
    cfg = _cfg(toy_registry, SPEC.replace("lr: 0.05, momentum: 0.9", "lr: 1.0e+12").replace("batchnorm: true", "batchnorm: false"))
    out = run_trial(cfg, 0, registry=toy_registry, device=torch.device("cpu"))
    assert out.status == "diverged"
    assert "training loss became" in out.reason
    assert len(out.history["train_loss"]) < 3 or not math.isfinite(out.history["train_loss"][-1])


def test_accumulation_gives_the_same_update_without_batchnorm(toy_registry):
    text = SPEC.replace("batchnorm: true", "batchnorm: false")
    a = run_trial(_cfg(toy_registry, text), 0, registry=toy_registry, device=torch.device("cpu"))
    b = run_trial(_cfg(toy_registry, text, accumulation_steps=4), 0, registry=toy_registry, device=torch.device("cpu"))
    for k in a.final_state:
        torch.testing.assert_close(a.final_state[k], b.final_state[k], rtol=1e-4, atol=1e-5)


def test_schedule_and_regimes_shape_the_plan(toy_registry):
    text = SPEC + """\
  schedule: {name: multistep, milestones: [1], gamma: 0.1}
  regime:
    - {name: lr_scaling, rule: sqrt, reference_batch: 8}
    - {name: regime_adaptation, reference_batch: 16}
"""
    out = run_trial(_cfg(toy_registry, text, epochs=2), 0, registry=toy_registry, device=torch.device("cpu"))
    assert out.plan.lr == pytest.approx(0.05 * 2.0)  # sqrt(32/8)
    assert out.plan.epochs == 4 and out.plan.time_scale == 2.0  # 32/16
    # the milestone at epoch 1 moves to epoch 2
    assert out.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def test_gradient_clipping_bounds_the_first_step(toy_registry):
    text = SPEC.replace("momentum: 0.9", "momentum: 0.0").replace("batchnorm: true", "batchnorm: false")
    cfg = _cfg(toy_registry, text, grad_clip=1e-3, epochs=1, batch_size=200, shuffle=False)
    out = run_trial(cfg, 0, registry=toy_registry, device=torch.device("cpu"))
    # one full-batch step of plain SGD moves the weights by lr * ||clipped g|| <= 0.05 * 1e-3
    assert out.history["weight_distance"][0] == pytest.approx(0.05 * 1e-3, rel=1e-3)


def test_regression_task_uses_mse(toy_registry):
    from lbgap.engine.evaluate import evaluate

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0.0, 0.0])
    res = evaluate(model, x, y, task="regression")
    assert res["loss"] == pytest.approx(0.5)  # mean of (1-0)^2 and (0-0)^2
    assert math.isnan(res["accuracy"])


def test_bn_eval_mode_batch_uses_batch_statistics_and_keeps_buffers():
    from lbgap.nn import bn_eval_mode

    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    m.train()
    m(torch.randn(8, 3))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(64, 3) * 5 + 2
    with bn_eval_mode(m, "batch"):
        out = m(x)
        assert not m.training
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    assert m.training
    with bn_eval_mode(m, "running"):
        out_running = m(x)
    assert not torch.allclose(out_running.mean(0), torch.zeros(4), atol=1e-2)


@pytest.mark.parametrize(
    "n,batch,drop_last,expected",
    [(200, 32, False, 7), (200, 32, True, 6), (200, 500, True, 1), (200, 500, False, 1)],
)
def test_steps_per_epoch(n, batch, drop_last, expected):
    from lbgap.engine.train import steps_per_epoch

    assert steps_per_epoch(n, batch, drop_last) == expected


def test_max_steps_ends_training_right_after_that_step(toy_registry):
    cpu = torch.device("cpu")
    cfg = _cfg(toy_registry)
    full = run_trial(cfg, 0, registry=toy_registry, device=cpu, checkpoint_epochs={1})
    n_steps = math.ceil(200 / 32)
    seen = []
    cut = run_trial(cfg, 0, registry=toy_registry, device=cpu, max_steps=n_steps, on_step=seen.append)
    # cut at the last step of epoch 1: the weights are epoch 1's, the epoch itself is not recorded
    assert seen == list(range(1, n_steps + 1))
    assert cut.status == "stopped" and "max_steps" in cut.reason
    assert cut.history == {} and cut.end == {}
    for k, v in full.checkpoints[1].items():
        assert torch.equal(cut.final_state[k], v)
    assert cut.cut_epoch_loss == full.history["train_loss_running"][0]
    assert math.isnan(full.cut_epoch_loss)
    # three steps into epoch 2: epoch 1 is recorded as in the full run, epoch 2 is not
    later = run_trial(cfg, 0, registry=toy_registry, device=cpu, max_steps=n_steps + 3)
    assert later.history["step"] == [n_steps] and later.history["test_loss"] == full.history["test_loss"][:1]
    assert any(not torch.equal(later.final_state[k], v) for k, v in full.checkpoints[1].items())
    # more steps than the trial has: it ends as usual
    long = run_trial(cfg, 0, registry=toy_registry, device=cpu, max_steps=10**6)
    assert long.status == "completed" and long.history["test_loss"] == full.history["test_loss"]
    with pytest.raises(ValueError, match="max_steps"):
        run_trial(cfg, 0, registry=toy_registry, device=cpu, max_steps=0)


def test_max_steps_reports_a_loss_that_is_not_finite(toy_registry):
    text = SPEC.replace("lr: 0.05, momentum: 0.9", "lr: 1.0e+30")
    cfg = _cfg(toy_registry, text.replace("batchnorm: true", "batchnorm: false"))
    out = run_trial(cfg, 0, registry=toy_registry, device=torch.device("cpu"), max_steps=3)
    assert out.status == "diverged" and "training loss became" in out.reason
    assert not math.isfinite(out.cut_epoch_loss) and out.history == {}


def test_given_parts_are_trained_in_place(toy_registry):
    from lbgap.engine.train import build_parts

    cpu = torch.device("cpu")
    cfg = _cfg(toy_registry)
    parts = build_parts(cfg, 5, toy_registry, cpu)
    before = {k: v.clone() for k, v in parts.model.state_dict().items()}
    out = run_trial(cfg, 5, registry=toy_registry, device=cpu, parts=parts, max_steps=4)
    reference = run_trial(cfg, 5, registry=toy_registry, device=cpu, max_steps=4)
    for k, v in parts.model.state_dict().items():
        assert torch.equal(out.initial_state[k], before[k])
        assert torch.equal(out.final_state[k], v) and torch.equal(v, reference.final_state[k])


def test_a_trial_stopped_between_evaluations_reports_its_final_model(toy_registry):
    """A stopping rule that ends a trial on an epoch ``eval.every`` skips still gets that epoch
    evaluated, so the last recorded values describe the final model."""
    text = SPEC.replace("epochs: 3", "epochs: 10") + "  stopping:\n    - {name: stop_after, epochs: 3}\n"
    sparse = run_trial(_cfg(toy_registry, text, eval={"every": 4}), 0, registry=toy_registry,
                       device=torch.device("cpu"))
    dense = run_trial(_cfg(toy_registry, SPEC), 0, registry=toy_registry, device=torch.device("cpu"))
    assert sparse.status == "stopped" and "stop_after" in sparse.reason
    assert len(sparse.history["test_accuracy"]) == 3
    assert math.isnan(sparse.history["test_loss"][1])  # epoch 2: skipped by every: 4
    for key in ("test_loss", "test_accuracy", "train_loss", "train_accuracy"):
        assert sparse.history[key][-1] == dense.history[key][-1], key
    for k in dense.final_state:
        assert torch.equal(sparse.final_state[k], dense.final_state[k])
