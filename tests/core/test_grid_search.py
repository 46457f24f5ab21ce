"""A search inside every grid point (Shallue et al. 2018 tune the learning rate anew for every
batch size): one Optuna study, budget and sampler seed per point; missed targets are failed trials
of the budget, not crashes; results.nc holds every point's trials and the best per point."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import xarray as xr

from lbgap.driver.run import run_study
from lbgap.driver.storage import make_storage
from lbgap.spec import SpecError, load_study_text

SPEC = """\
study: grid_search
base:
  dataset: {name: blobs, n_train: 128, n_test: 64}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 3
  keep_weights: none
  target: {metric: train_loss, value: 0.5, every_steps: 1, stop: true}
grid:
  batch_size: [16, 64]
seeds: [0]
search:
  params:
    optimizer.lr: {type: float, low: 0.001, high: 3.0, log: true}
  objective: steps_to_target
  sampler: {type: random, seed: 3}
  pruner: {type: none}
  n_trials: 4
"""


def _study(reg, text=SPEC):
    return load_study_text(text, "gs.yaml", reg)


@pytest.fixture(scope="module")
def finished(toy_registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("gs")
    summary = run_study(_study(toy_registry), out, device="cpu")
    return out, summary, xr.load_dataset(summary.results)


def test_every_point_holds_its_own_trials_and_its_best(finished):
    out, summary, ds = finished
    assert dict(ds.sizes) == {"batch_size": 2, "trial": 4, "seed": 1, "epoch": 3}
    assert ds["batch_size"].values.tolist() == [16, 64]
    assert summary.trained == 8
    for b in (16, 64):
        at = ds.sel(batch_size=b)
        objective = at["objective"].values
        steps = at["steps_to_target"].isel(seed=0).values
        np.testing.assert_array_equal(np.isnan(objective), np.isnan(steps))
        np.testing.assert_allclose(objective[~np.isnan(objective)], steps[~np.isnan(steps)])
        # a missed target is a failed trial of the budget, never an error of lbgap
        states = at["trial_state"].values.tolist()
        assert all(s == ("fail" if math.isnan(o) else "complete") for s, o in zip(states, objective, strict=True))
        best = int(at["best_trial"])
        if np.all(np.isnan(objective)):
            assert best == -1
        else:
            assert best == int(np.nanargmin(objective)) and float(at["best_objective"]) == np.nanmin(objective)
    # the searched learning rates are each point's own (own sampler seed per point)
    lr = ds["lr"].values
    assert lr.shape == (2, 4) and not np.allclose(lr[0], lr[1])
    # the smaller batch needs more steps per epoch: the target's steps are counted per point
    assert np.nanmin(ds["steps_to_target"].values) >= 1


def test_each_point_is_an_optuna_study_of_its_own(finished):
    out, _summary, _ds = finished
    storage = make_storage(out, None)
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
    assert len(names) == 2 and all(n.startswith("grid_search-") for n in names)
    assert [n.rsplit("-", 1)[1] for n in names] == ["base,batch_size=16", "base,batch_size=64"]
    for name in names:
        ostudy = optuna.load_study(study_name=name, storage=storage)
        assert len(ostudy.trials) == 4 and ostudy.user_attrs["grid_point"] == name.rsplit("-", 1)[1]
        failed = [t for t in ostudy.trials if t.state == optuna.trial.TrialState.FAIL]
        assert all(t.user_attrs["error"] == "target not met within the budget" for t in failed)


def test_resumed_grid_search_follows_the_uninterrupted_path(toy_registry, tmp_path, finished):
    _out, _summary, whole = finished
    partial = run_study(_study(toy_registry), tmp_path, device="cpu", max_trials=5)
    assert partial.results is None and partial.trained == 5
    resumed = run_study(_study(toy_registry), tmp_path, device="cpu")
    assert resumed.trained == 3
    ds = xr.load_dataset(resumed.results)
    for name in ("lr", "objective", "best_trial", "steps_to_target", "test_accuracy"):
        np.testing.assert_array_equal(ds[name].values, whole[name].values)


def test_a_grid_and_a_search_may_not_share_a_setting(toy_registry):
    text = SPEC.replace("grid:\n  batch_size: [16, 64]", "grid:\n  optimizer.lr: [0.1, 0.2]")
    with pytest.raises(SpecError, match="either crossed by the grid or searched"):
        _study(toy_registry, text)


def test_a_steps_objective_needs_a_target(toy_registry):
    text = SPEC.replace("  target: {metric: train_loss, value: 0.5, every_steps: 1, stop: true}\n", "")
    with pytest.raises(SpecError, match="objective steps_to_target needs a target"):
        _study(toy_registry, text)


def test_an_interrupted_search_trial_keeps_the_seeds_it_finished(toy_registry, tmp_path):
    """Killed after the first seed of a trial: on resume the trial is retried with its parameters,
    the finished seed is read from its file, and only the other seed trains."""
    text = SPEC.replace("grid:\n  batch_size: [16, 64]\n", "").replace("seeds: [0]", "seeds: [0, 1]")
    text = text.replace("n_trials: 4", "n_trials: 2")
    whole = run_study(_study(toy_registry, text), tmp_path / "whole", device="cpu")
    from lbgap.driver import runner as runner_module

    real = runner_module.Runner.train
    calls = []

    def train_then_die(self, cfg, seed, key, *args, **kwargs):
        calls.append(key)
        if key == "trial=1,seed=1":
            raise KeyboardInterrupt
        return real(self, cfg, seed, key, *args, **kwargs)

    runner_module.Runner.train = train_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(_study(toy_registry, text), tmp_path / "cut", device="cpu")
    finally:
        runner_module.Runner.train = real
    assert (tmp_path / "cut" / "trials" / "trial=1,seed=0.nc").exists()
    resumed = run_study(_study(toy_registry, text), tmp_path / "cut", device="cpu")
    assert resumed.trained == 1  # seed 1 of trial 1; seed 0 came from its file
    a, b = xr.load_dataset(whole.results), xr.load_dataset(resumed.results)
    for name in ("lr", "objective", "steps_to_target", "train_loss"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_the_report_shows_the_best_trial_of_every_point(finished, toy_registry, tmp_path):
    import shutil

    from lbgap.report import build_report

    out, _summary, ds = finished
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    text = build_report(folder, toy_registry).path.read_text()
    assert "## Search at every grid point" in text
    for b in (16, 64):
        at = ds.sel(batch_size=b)
        met = int(np.sum(~np.isnan(at["objective"].values)))
        row = next(line for line in text.splitlines() if line.startswith(f"| {b} | "))
        assert row.endswith(f"| {met}/4 |")
        if met:
            best = int(at["best_trial"])
            assert row.startswith(f"| {b} | {best} | ") and f"{float(at['best_objective']):.4f}" in row
        assert f"### Trials at batch_size={b} (best first)" in text


ONE_MINUS = """\
study: one_minus
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
  batch_size: 32
  epochs: 1
  keep_weights: none
seeds: [0]
search:
  params:
    optimizer.momentum: {type: float, low: 0.001, high: 0.5, log: true, transform: one_minus}
  sampler: {type: random, seed: 0}
  pruner: {type: none}
  n_trials: 4
"""


def test_one_minus_searches_one_minus_the_setting_on_a_log_scale(toy_registry, tmp_path):
    """Shallue et al. search 1 − momentum log-uniformly: Optuna holds u = 1 − m (named ``1-<path>``),
    the trial trains with m, and results.nc holds m."""
    study = _study(toy_registry, ONE_MINUS)
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.load_dataset(summary.results)
    momentum = ds["momentum"].values
    assert momentum.shape == (4,) and np.all((momentum >= 0.5) & (momentum <= 0.999))
    storage = make_storage(tmp_path, None)
    ostudy = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    trials = sorted(ostudy.trials, key=lambda t: t.number)
    assert [set(t.params) for t in trials] == [{"1-optimizer.momentum"}] * 4
    u = np.array([t.params["1-optimizer.momentum"] for t in trials])
    np.testing.assert_allclose(momentum, 1.0 - u, rtol=0, atol=1e-15)
    assert [t.user_attrs["values"]["optimizer.momentum"] for t in trials] == momentum.tolist()
    # the distribution Optuna samples is u's, log-uniform over [low, high]
    dist = trials[0].distributions["1-optimizer.momentum"]
    assert (dist.low, dist.high, dist.log) == (0.001, 0.5, True)


def test_one_minus_applies_to_float_parameters_only(toy_registry):
    text = ONE_MINUS.replace("type: float, low: 0.001, high: 0.5", "type: int, low: 1, high: 5")
    with pytest.raises(SpecError, match="transform one_minus applies to float parameters"):
        _study(toy_registry, text)


WARMUP = """\
study: warmup_length
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.2}
  schedule: {name: linear_warmup, start_factor: 0.1, then: [{name: constant}]}
  batch_size: 16
  epochs: 4
  keep_weights: none
grid:
  batch_size: [16, 32]
seeds: [0]
search:
  params:
    schedule.warmup_epochs: {type: float, low: 1.5, high: 3.0}
  sampler: {type: random, seed: 0}
  pruner: {type: none}
  n_trials: 2
"""


def test_the_warm_up_length_is_searched_at_every_grid_point(toy_registry, tmp_path):
    """A nested plugin setting (the warm-up length of Goyal's schedule) is a search parameter like any
    other: each trial trains with its own length, and results.nc holds it per grid point and trial."""
    summary = run_study(_study(toy_registry, WARMUP), tmp_path, device="cpu")
    ds = xr.load_dataset(summary.results)
    lengths = ds["warmup_epochs"].values
    assert lengths.shape == (2, 2) and np.all((lengths >= 1.5) & (lengths <= 3.0))
    assert len(np.unique(lengths)) == 4
    lr = ds["learning_rate"].isel(seed=0)
    # warming up at the end of the first epoch (T ≥ 1.5), done by the last (T ≤ 3): at the default
    # length (5 epochs) the last epoch would still be below the base rate
    assert np.all(lr.isel(epoch=0).values < 0.2 * 0.9)
    np.testing.assert_allclose(lr.isel(epoch=-1).values, 0.2)
