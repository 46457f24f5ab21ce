"""Gradient and pre-activation noise injectors against a hand-built TrialContext."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import lbgap_synthetic
from lbgap.api import TrialContext
from lbgap.data import InMemoryData
from lbgap.nn import NoiseSite, noise_sites
from lbgap.plan import TrainingPlan
from lbgap.registry import Registry
from lbgap_synthetic.gradient_noise import GradientNoise, GradientNoiseConfig
from lbgap_synthetic.preactivation_noise import PreactivationNoise, PreactivationNoiseConfig, noise_shape


def _mlp(width: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, width), NoiseSite(), nn.ReLU(), nn.Linear(width, width), NoiseSite(), nn.ReLU(),
                         nn.Linear(width, 2))


def _trial(model: nn.Module, *, seed: int = 0, lr: float = 0.1) -> TrialContext:
    x = torch.randn(16, *([8] if not isinstance(model[0], nn.Conv2d) else [3, 8, 8]))
    data = InMemoryData(x, torch.zeros(16, dtype=torch.long), x, torch.zeros(16, dtype=torch.long), num_classes=2)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return TrialContext(
        key="t", seed=seed, model=model, optimizer=opt, data=data,
        plan=TrainingPlan(batch_size=16, lr=lr, epochs=10), loss_fn=nn.functional.cross_entropy,
        device=torch.device("cpu"), generator=torch.Generator().manual_seed(seed), lr=lr,
    )


def _zero_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = torch.zeros_like(p)


def _grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


# ----------------------------------------------------------------- gradient noise


def test_gradient_noise_statistics():
    model = _mlp()
    trial = _trial(model)
    inj = GradientNoise(GradientNoiseConfig(scale=0.3))
    inj.lbgap_trial_start(trial)
    _zero_grads(model)
    inj.lbgap_after_backward(trial)
    g = _grads(model)
    n = g.numel()  # 4866 entries
    assert abs(g.mean().item()) < 4 * 0.3 / math.sqrt(n)
    assert g.std().item() == pytest.approx(0.3, rel=4 / math.sqrt(2 * n))
    # added on top of the existing gradient
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    inj.lbgap_after_backward(trial)
    assert (_grads(model) - 1).std().item() == pytest.approx(0.3, rel=4 / math.sqrt(2 * n))


def test_gradient_noise_is_deterministic_given_the_generator_seed():
    def run(seed):
        model = _mlp()
        trial = _trial(model, seed=seed)
        inj = GradientNoise(GradientNoiseConfig(scale=1.0))
        inj.lbgap_trial_start(trial)
        _zero_grads(model)
        inj.lbgap_after_backward(trial)
        return _grads(model)

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_gradient_noise_parameter_filter():
    model = _mlp()
    trial = _trial(model)
    inj = GradientNoise(GradientNoiseConfig(scale=1.0, parameters=["0.weight", "3."]))
    inj.lbgap_trial_start(trial)
    _zero_grads(model)
    inj.lbgap_after_backward(trial)
    touched = {n for n, p in model.named_parameters() if p.grad.abs().sum() > 0}
    assert touched == {"0.weight", "3.weight", "3.bias"}
    with pytest.raises(ValueError, match="no parameter matches"):
        GradientNoise(GradientNoiseConfig(scale=1.0, parameters=["nope"])).lbgap_trial_start(trial)


def test_gradient_noise_epoch_milestone_and_record():
    model = _mlp()
    trial = _trial(model)
    inj = GradientNoise(GradientNoiseConfig(scale=1.0, decay_factor=0.01, decay_epoch=2))
    inj.lbgap_trial_start(trial)
    stds = []
    for epoch in range(4):  # epochs done before the step
        trial.epoch = epoch
        _zero_grads(model)
        inj.lbgap_after_backward(trial)
        stds.append(_grads(model).std().item())
        record = {"train_loss": 1.0}
        trial.epoch = epoch + 1
        inj.lbgap_epoch_end(trial, record)
        assert record["gradient_noise_std"] == (1.0 if epoch < 2 else 0.01)
    assert stds[0] == pytest.approx(1.0, rel=0.1) and stds[1] == pytest.approx(1.0, rel=0.1)
    assert stds[2] == pytest.approx(0.01, rel=0.1) and stds[3] == pytest.approx(0.01, rel=0.1)
    results = {}
    inj.lbgap_trial_end(trial, results)
    assert results["gradient_noise_decay_epoch"] == 2.0


def test_noise_decays_with_the_lr_anneal_and_below_a_loss():
    model = _mlp()
    trial = _trial(model, lr=0.1)
    inj = GradientNoise(GradientNoiseConfig(scale=1.0, decay_factor=0.0, decay_with_lr=True))
    inj.lbgap_trial_start(trial)
    assert inj.level.current(trial) == 1.0
    trial.lr = 0.004
    assert inj.level.current(trial) == 0.0
    trial.lr = 0.1  # sticky
    assert inj.level.current(trial) == 0.0

    inj = GradientNoise(GradientNoiseConfig(scale=1.0, decay_factor=0.5, decay_below_loss=0.2))
    inj.lbgap_trial_start(trial)
    trial.epoch = 1
    inj.lbgap_epoch_end(trial, {"train_loss": 0.3})
    assert inj.level.current(trial) == 1.0
    trial.epoch = 2
    inj.lbgap_epoch_end(trial, {"train_loss": 0.1})
    assert inj.level.current(trial) == 0.5
    inj.lbgap_epoch_end(trial, {"train_loss": 0.9})
    assert inj.level.current(trial) == 0.5
    res = {}
    inj.lbgap_trial_end(trial, res)
    assert res["gradient_noise_decay_epoch"] == 2.0
    # a new trial starts undecayed
    inj.lbgap_trial_start(trial)
    assert inj.level.current(trial) == 1.0


def test_gradient_noise_scale_is_required_and_nonnegative():
    with pytest.raises(ValidationError):
        GradientNoiseConfig()
    with pytest.raises(ValidationError):
        GradientNoiseConfig(scale=-1.0)


# ------------------------------------------------------------ pre-activation noise


def test_noise_shape_matches_the_authors_code():
    # models/wideresnet.py forward_noise: randn(H, W).view(1, 1, H, W)
    assert noise_shape((128, 160, 32, 32), "batch_and_channels") == (1, 1, 32, 32)
    assert noise_shape((128, 160, 32, 32), "batch") == (1, 160, 32, 32)
    assert noise_shape((128, 160, 32, 32), "none") == (128, 160, 32, 32)
    assert noise_shape((128, 64), "batch_and_channels") == (1, 1)


def test_preactivation_noise_statistics_and_training_only():
    model = _mlp(width=256)
    trial = _trial(model)
    inj = PreactivationNoise(PreactivationNoiseConfig(scale=0.7, sharing="none", decay_epoch=None))
    inj.lbgap_trial_start(trial)
    site = noise_sites(model)[0]
    x = torch.zeros(64, 256)
    model.train()
    noise = site(x)
    assert noise.shape == x.shape
    assert noise.std().item() == pytest.approx(0.7, rel=4 / math.sqrt(2 * noise.numel()))
    assert abs(noise.mean().item()) < 4 * 0.7 / math.sqrt(noise.numel())
    assert not torch.equal(site(x), noise)  # fresh draw per forward
    model.eval()
    assert torch.equal(site(x), x)  # no noise in eval mode
    with torch.no_grad():
        inp = torch.randn(5, 8)
        out1, out2 = model(inp), model(inp)
    assert torch.equal(out1, out2)


def test_shared_map_is_shared_over_batch_and_channels():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), NoiseSite(), nn.ReLU())
    trial = _trial(model)
    inj = PreactivationNoise(PreactivationNoiseConfig(scale=1.0, sharing="batch_and_channels", decay_epoch=None))
    inj.lbgap_trial_start(trial)
    site = noise_sites(model)[0]
    x = torch.zeros(6, 5, 16, 16)
    out = site(x)
    assert out.shape == x.shape
    assert torch.equal(out, out[:1, :1].expand_as(out))  # the same map for every example and channel
    assert out[0, 0].std().item() == pytest.approx(1.0, rel=0.25)  # varies over space
    inj2 = PreactivationNoise(PreactivationNoiseConfig(scale=1.0, sharing="batch", decay_epoch=None))
    inj2.lbgap_trial_start(trial)
    out = site(x)
    assert torch.equal(out, out[:1].expand_as(out))
    assert not torch.equal(out[0, 0], out[0, 1])  # channels differ
    # the model's forward adds the map before the ReLU
    model.train()
    y = model(torch.zeros(2, 3, 16, 16))
    assert y.shape == (2, 4, 16, 16)


def test_preactivation_noise_schedule_change_at_milestone():
    model = _mlp(width=256)
    trial = _trial(model)
    inj = PreactivationNoise(PreactivationNoiseConfig(scale=0.4, sharing="none"))  # authors' recipe
    assert inj.cfg.decay_epoch == 29 and inj.cfg.decay_factor == 1e-5
    inj.lbgap_trial_start(trial)
    site = noise_sites(model)[0]
    x = torch.zeros(64, 256)
    trial.epoch = 28  # running the 29th epoch
    assert site(x).std().item() == pytest.approx(0.4, rel=0.05)
    record = {"train_loss": 1.0}
    trial.epoch = 29
    inj.lbgap_epoch_end(trial, record)
    assert record["preactivation_noise_std"] == 0.4
    assert site(x).std().item() == pytest.approx(4e-6, rel=0.05)  # the 30th epoch on
    record = {"train_loss": 1.0}
    trial.epoch = 30
    inj.lbgap_epoch_end(trial, record)
    assert record["preactivation_noise_std"] == pytest.approx(4e-6)


def test_preactivation_noise_time_scale_stretches_the_milestone():
    model = _mlp()
    trial = _trial(model)
    trial.plan = TrainingPlan(batch_size=16, lr=0.1, epochs=10, time_scale=2.0)
    inj = PreactivationNoise(PreactivationNoiseConfig(scale=1.0, decay_epoch=3, decay_factor=0.0))
    inj.lbgap_trial_start(trial)
    trial.epoch = 5
    assert inj.level.current(trial) == 1.0
    trial.epoch = 6
    assert inj.level.current(trial) == 0.0


def test_preactivation_noise_deterministic_and_cleared_at_trial_end():
    def draws(seed):
        model = _mlp()
        trial = _trial(model, seed=seed)
        inj = PreactivationNoise(PreactivationNoiseConfig(scale=1.0, sharing="none", decay_epoch=None))
        inj.lbgap_trial_start(trial)
        model.train()
        out = model(torch.ones(4, 8))
        results = {}
        inj.lbgap_trial_end(trial, results)
        assert all(s.noise_fn is None for s in noise_sites(model))
        assert math.isnan(results["preactivation_noise_decay_epoch"])
        clean = model(torch.ones(4, 8))
        return out, clean

    a, clean_a = draws(1)
    b, _ = draws(1)
    c, _ = draws(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, clean_a)


def test_preactivation_noise_needs_sites():
    trial = _trial(nn.Sequential(nn.Linear(8, 2)))
    with pytest.raises(ValueError, match="NoiseSite"):
        PreactivationNoise(PreactivationNoiseConfig()).lbgap_trial_start(trial)


def test_injectors_work_through_the_plugin_manager():
    reg = Registry.from_plugins([("synthetic", lbgap_synthetic, "lbgap", "0")])
    assert not reg.failures
    model = _mlp()
    trial = _trial(model)
    grad = reg.get("noise", "gradient_noise").build(GradientNoiseConfig(scale=0.5))
    pre = reg.get("noise", "preactivation_noise").build(PreactivationNoiseConfig(scale=0.5, decay_epoch=None))
    reg.pm.register(grad, name="g")
    reg.pm.register(pre, name="p")
    try:
        reg.pm.hook.lbgap_trial_start(trial=trial)
        assert all(s.noise_fn is not None for s in noise_sites(model))
        _zero_grads(model)
        reg.pm.hook.lbgap_after_backward(trial=trial)
        assert _grads(model).std().item() == pytest.approx(0.5, rel=0.1)
        record = {"train_loss": 0.5}
        reg.pm.hook.lbgap_epoch_end(trial=trial, record=record)
        assert record["gradient_noise_std"] == 0.5 and record["preactivation_noise_std"] == 0.5
        results = {}
        reg.pm.hook.lbgap_trial_end(trial=trial, results=results)
        assert all(s.noise_fn is None for s in noise_sites(model))
        assert {"gradient_noise_decay_epoch", "preactivation_noise_decay_epoch"} <= set(results)
    finally:
        reg.pm.unregister(name="g")
        reg.pm.unregister(name="p")
