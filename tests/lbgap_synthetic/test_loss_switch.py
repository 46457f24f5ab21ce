"""The loss-driven L-S switch and the train-loss stopping rule."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

import lbgap_synthetic
from lbgap.registry import Registry
from lbgap.schedule import Progress, Schedule, StoppingRule
from lbgap_synthetic.loss_switch import (
    LossSwitchConfig,
    TrainLossBelowConfig,
    build_loss_switch,
    build_train_loss_below,
)


def _progress(epoch: float, loss: float, steps_per_epoch: int = 10) -> Progress:
    return Progress(epoch=epoch, step=int(epoch * steps_per_epoch), steps_per_epoch=steps_per_epoch,
                    last_train_loss=loss)


def test_factor_sequence_on_a_loss_trace_is_sticky():
    sched = build_loss_switch(LossSwitchConfig(threshold=0.25, factor=0.04))
    assert isinstance(sched, Schedule)
    # last_train_loss seen at the start of epochs 1.. (nan before the first epoch ends)
    trace = [math.nan, 0.9, 0.5, 0.3, 0.2, 0.5, 0.1, 0.26]
    factors = []
    for epoch, loss in enumerate(trace):
        # the engine may ask at every step of an epoch; the answer must not change within it
        per_step = {sched.factor(_progress(epoch + s / 10, loss)) for s in range(10)}
        assert len(per_step) == 1
        factors.append(per_step.pop())
    assert factors == [1.0, 1.0, 1.0, 1.0, 0.04, 0.04, 0.04, 0.04]
    assert sched.switched_at_epoch == 4.0 and sched.switched_at_step == 40 and sched.switch_loss == 0.2


def test_threshold_from_eps1_and_q():
    cfg = LossSwitchConfig(eps1=0.01, q=0.2, factor=0.1)
    assert cfg.resolved_threshold == pytest.approx(0.01 + 0.2 * math.log(2))
    sched = build_loss_switch(cfg)
    just_above = 0.01 + 0.2 * math.log(2) + 1e-9
    assert sched.factor(_progress(1, just_above)) == 1.0
    assert sched.factor(_progress(2, just_above - 2e-9)) == 0.1
    assert sched.switched_at_epoch == 2.0


def test_no_switch_on_nan_or_equal_loss():
    sched = build_loss_switch(LossSwitchConfig(threshold=0.3))
    assert sched.factor(_progress(0, math.nan)) == 1.0
    assert sched.factor(_progress(1, 0.3)) == 1.0  # "below" is strict
    assert sched.switched_at_epoch is None
    results = {}
    sched.lbgap_trial_end(None, results)
    assert math.isnan(results["lr_switch_epoch"])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"eps1": 0.1}, {"q": 0.2}, {"threshold": 0.3, "eps1": 0.1}, {"threshold": 0.3, "factor": 0.0},
     {"eps1": 0.1, "q": 1.5}],
)
def test_invalid_configs(kwargs):
    with pytest.raises(ValidationError):
        LossSwitchConfig(**kwargs)


def test_stop_rule():
    rule = build_train_loss_below(TrainLossBelowConfig(eps=0.01))
    assert isinstance(rule, StoppingRule)
    assert rule.should_stop(_progress(3, 0.02), {"train_loss": [0.5, 0.1, 0.02]}) is None
    reason = rule.should_stop(_progress(4, 0.009), {"train_loss": [0.5, 0.1, 0.02, 0.009]})
    assert reason is not None and "0.009" in reason
    assert rule.should_stop(_progress(0, math.nan), {}) is None
    # falls back to the history when the progress has no loss yet
    assert rule.should_stop(_progress(1, math.nan), {"train_loss": [0.001]}) is not None
    late = build_train_loss_below(TrainLossBelowConfig(eps=0.01, min_epochs=5))
    assert late.should_stop(_progress(4, 0.001), {}) is None
    assert late.should_stop(_progress(5, 0.001), {}) is not None
    with pytest.raises(ValidationError):
        TrainLossBelowConfig(eps=0.0)


def test_registered_under_their_names():
    reg = Registry.from_plugins([("synthetic", lbgap_synthetic, "lbgap", "0")])
    assert reg.get("schedule", "loss_switch").config is LossSwitchConfig
    assert reg.get("stopping", "train_loss_below").config is TrainLossBelowConfig
