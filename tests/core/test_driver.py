"""The Optuna driver: grid cells, resume without redoing work, searches."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import xarray as xr

from lbgap.driver.run import StudyFolderError, run_study
from lbgap.spec import load_study_text

FAST = """\
study: drive
base:
  dataset: {name: blobs, n_train: 128, n_test: 64}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 2
  keep_weights: none
variants:
  a: {}
  b: {optimizer: {lr: 0.02}}
grid:
  batch_size: [16, 64]
seeds: [0, 1]
"""


def _study(reg, text=FAST):
    return load_study_text(text, "drive.yaml", reg)


def _trials(ostudy_dir):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(ostudy_dir / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def test_grid_runs_every_cell_through_optuna(toy_registry, tmp_path):
    summary = run_study(_study(toy_registry), tmp_path, device="cpu")
    assert summary.trained == 8 and not summary.failed
    ds = xr.open_dataset(summary.results)
    assert dict(ds.sizes) == {"variant": 2, "batch_size": 2, "seed": 2, "epoch": 2}
    assert list(ds["batch_size"].values) == [16, 64]
    trials = _trials(tmp_path)
    assert len(trials) == 8
    assert {(t.params["variant"], t.params["batch_size"], t.params["seed"]) for t in trials} == {
        (v, b, s) for v in "ab" for b in (16, 64) for s in (0, 1)
    }
    # the step count differs by batch size: 128/16 = 8 and 128/64 = 2 steps per epoch
    np.testing.assert_array_equal(ds["step"].sel(variant="a", seed=0).values, [[8, 16], [2, 4]])


def test_interrupted_run_resumes_to_identical_results(toy_registry, tmp_path):
    full = run_study(_study(toy_registry), tmp_path / "full", device="cpu")
    part = run_study(_study(toy_registry), tmp_path / "part", device="cpu", max_trials=3)
    assert part.results is None and part.trained == 3
    rest = run_study(_study(toy_registry), tmp_path / "part", device="cpu")
    assert rest.trained == 5 and rest.skipped == 3  # nothing redone
    a = xr.open_dataset(full.results)
    b = xr.open_dataset(rest.results)
    for name in ("train_loss", "test_accuracy", "weight_distance", "step"):
        xr.testing.assert_equal(a[name], b[name])


def test_stale_running_trial_from_a_killed_run_is_retried(toy_registry, tmp_path):
    study = _study(toy_registry)
    run_study(study, tmp_path, device="cpu", max_trials=1)
    # simulate kill -9 in the middle of a trial: the trial stays RUNNING in the journal
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal")))
    name = optuna.get_all_study_summaries(storage)[0].study_name
    ostudy = optuna.load_study(study_name=name, storage=storage)
    crashed = ostudy.ask()
    assert crashed.user_attrs["cell"]
    summary = run_study(study, tmp_path, device="cpu")
    assert summary.results is not None and summary.trained == 7
    states = {t.number: t.state for t in _trials(tmp_path)}
    assert states[crashed.number] == optuna.trial.TrialState.FAIL


def test_folder_of_another_spec_is_refused(toy_registry, tmp_path):
    run_study(_study(toy_registry), tmp_path, device="cpu", max_trials=1)
    with pytest.raises(StudyFolderError, match="another version of the study"):
        run_study(_study(toy_registry, FAST.replace("epochs: 2", "epochs: 3")), tmp_path, device="cpu")


def test_diverged_trial_is_recorded_and_the_study_goes_on(toy_registry, tmp_path):
    text = FAST.replace("b: {optimizer: {lr: 0.02}}", "b: {optimizer: {lr: 1.0e+12}}").replace("grid:\n  batch_size: [16, 64]\n", "")
    summary = run_study(_study(toy_registry, text), tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    assert set(ds["status"].sel(variant="b").values) == {"diverged"}
    assert set(ds["status"].sel(variant="a").values) == {"completed"}
    assert len(summary.diverged) == 2


SEARCH = """\
study: search
base:
  dataset: {name: blobs, n_train: 128, n_test: 64}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 3
  keep_weights: none
seeds: [0, 1]
search:
  params:
    optimizer.lr: {type: float, low: 0.001, high: 1.0, log: true}
    batch_size: {type: pow2, low: 16, high: 64}
  objective: test_accuracy
  sampler: {type: random, seed: 7}
  pruner: {type: none}
  n_trials: 4
"""


def test_search_lands_along_trial_with_parameter_coordinates(toy_registry, tmp_path):
    summary = run_study(_study(toy_registry, SEARCH), tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    assert dict(ds.sizes) == {"trial": 4, "seed": 2, "epoch": 3}
    lr, bs = ds["lr"].values, ds["batch_size"].values
    assert np.all((lr >= 1e-3) & (lr <= 1.0))
    assert set(bs.tolist()) <= {16, 32, 64}
    # the objective is the seed mean of the final test accuracy
    final = ds["test_accuracy"].isel(epoch=-1).mean("seed").values
    np.testing.assert_allclose(ds["objective"].values, final)
    # the stored effective learning rate follows the sampled value
    np.testing.assert_allclose(ds["effective_learning_rate"].isel(seed=0).values, lr)


def test_search_resume_follows_the_uninterrupted_path(toy_registry, tmp_path):
    a = run_study(_study(toy_registry, SEARCH), tmp_path / "a", device="cpu")
    run_study(_study(toy_registry, SEARCH), tmp_path / "b", device="cpu", max_trials=3)  # 1.5 trials
    b = run_study(_study(toy_registry, SEARCH), tmp_path / "b", device="cpu")
    da, db = xr.open_dataset(a.results), xr.open_dataset(b.results)
    np.testing.assert_allclose(np.sort(da["lr"].values), np.sort(db["lr"].values))
    np.testing.assert_allclose(np.sort(da["objective"].values), np.sort(db["objective"].values))


def test_pruning_uses_per_epoch_reports(toy_registry, tmp_path):
    text = SEARCH.replace("pruner: {type: none}", "pruner: {type: median, n_startup_trials: 1, n_warmup_steps: 0}").replace(
        "n_trials: 4", "n_trials: 8"
    ).replace("low: 0.001, high: 1.0", "low: 1.0e-6, high: 1.0")
    from lbgap.driver.progress import NullReporter

    class Counting(NullReporter):
        total = counted = 0

        def study_start(self, total: int, done: int) -> None:
            self.total, self.counted = total, done

        def trial_end(self, key: str, status: str, summary: str) -> None:
            self.counted += 1

        def skipped(self, count: int) -> None:
            self.counted += count

    reporter = Counting()
    summary = run_study(_study(toy_registry, text), tmp_path, device="cpu", reporter=reporter)
    ds = xr.open_dataset(summary.results)
    states = set(ds["trial_state"].values.tolist())
    assert "complete" in states and "pruned" in states
    # the progress total counts every seed of every trial, also those a pruned trial skips
    assert reporter.counted == reporter.total == 8 * len(_study(toy_registry, text).seeds)
    trials = _trials(tmp_path)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:
        assert t.intermediate_values  # pruned on a per-epoch report
    assert json.loads(ds.attrs["lbgap_spec_json"])["header"]["search"]["n_trials"] == 8


def test_a_killed_runs_leftovers_do_not_block_the_next(toy_registry, tmp_path):
    study = _study(toy_registry)
    run_study(study, tmp_path, device="cpu", max_trials=1)
    # what kill -9 can leave: Optuna's journal lock and a half-written line
    (tmp_path / "optuna.journal.lock").symlink_to(tmp_path / "optuna.journal")
    with open(tmp_path / "optuna.journal", "ab") as fh:
        fh.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 0, "sta')
    summary = run_study(study, tmp_path, device="cpu")
    assert summary.results is not None and summary.trained == 7
    assert (tmp_path / "optuna.journal").read_bytes().endswith(b"\n")


def test_two_processes_cannot_share_an_embedded_study(toy_registry, tmp_path):
    from lbgap.driver.storage import FolderBusyError, claim_folder

    held = claim_folder(tmp_path)
    try:
        with pytest.raises(FolderBusyError):
            run_study(_study(toy_registry), tmp_path, device="cpu")
    finally:
        held.close()


def test_warm_start_from_a_source_that_stopped_early_fails_at_once(toy_registry, tmp_path):
    import time

    text = """\
study: piggy
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 6
variants:
  sb:
    stopping: [{name: plateau, monitor: train_loss, patience: 1, min_delta: 100.0}]
  lb:
    warm_start: {variant: sb, epochs: 5}
seeds: [0]
"""
    start = time.monotonic()
    summary = run_study(_study(toy_registry, text), tmp_path, device="cpu")
    assert time.monotonic() - start < 60
    assert summary.failed == ["lb,seed=0"]
    ds = xr.open_dataset(tmp_path / "trials" / "sb,seed=0.nc")
    assert str(ds["status"].values) == "stopped" and int(ds.sizes["epoch"]) == 2


def test_warm_start_starts_from_the_source_checkpoint(toy_registry, tmp_path):
    import torch

    text = FAST.replace("  keep_weights: none\n", "").replace(
        "b: {optimizer: {lr: 0.02}}", "b: {warm_start: {variant: a, epochs: 1}}"
    ).replace("grid:\n  batch_size: [16, 64]\n", "")
    run_study(_study(toy_registry, text), tmp_path, device="cpu")
    for seed in (0, 1):
        ckpt = torch.load(tmp_path / "weights" / f"a,seed={seed}" / "epoch_1.pt", weights_only=True)
        init_b = torch.load(tmp_path / "weights" / f"b,seed={seed}" / "initial.pt", weights_only=True)
        for k in ckpt:
            assert torch.equal(ckpt[k], init_b[k])
