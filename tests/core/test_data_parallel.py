"""Data-parallel trials with torchrun (gloo on the CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

STUDY = """\
study: ddp
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: none}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 100          # the global batch: 50 per process with --nproc 2
  epochs: 3
variants:
  plain: {}
seeds: [0]
"""


def _run(tmp_path, out, *extra, log: list[str] | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "lbgap", "study", "run", "s.yaml", "--out", out, "--no-report", "--device", "cpu", *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    if log is not None:
        log.append(res.stdout + res.stderr)
    return xr.open_dataset(tmp_path / out / "results.nc")


def test_two_processes_reproduce_the_single_process_run(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    single = _run(tmp_path, "single")
    parallel = _run(tmp_path, "parallel", "--nproc", "2")
    # without BatchNorm the summed, share-weighted gradients equal the global-batch gradient:
    # only the order of floating-point additions differs
    for name in ("train_loss", "test_loss", "weight_distance"):
        np.testing.assert_allclose(parallel[name].values, single[name].values, rtol=2e-4, atol=1e-6)
    np.testing.assert_array_equal(parallel["step"].values, single["step"].values)
    assert list(parallel["status"].values.ravel()) == ["completed"]


NOISY = """\
study: ddp_noise
base:
  dataset: {name: pq_synthetic, d: 20, n_train: 211, n_test: 60}
  model: {name: two_layer_relu, width: 16}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 50           # 211 = 4 x 50 + 11: the last batch splits 6 / 5 over two processes
  epochs: 3
  noise:
    - {name: preactivation_noise, scale: 0.5, sharing: none, decay_epoch: null}
    - {name: gradient_noise, scale: 0.01}
variants:
  noisy: {}
seeds: [0]
"""


def test_per_example_noise_keeps_the_processes_in_step(tmp_path):
    # pre-activation noise is drawn per example from each process's own stream and the gradient
    # noise from the shared one; were both drawn from one shared stream, the uneven last batch
    # would shift it by a different amount on each process, the gradient noise would differ, and
    # the engine's per-epoch check that every process holds the same parameters would stop the run
    (tmp_path / "s.yaml").write_text(NOISY)
    parallel = _run(tmp_path, "parallel", "--nproc", "2")
    assert list(parallel["status"].values.ravel()) == ["completed"]
    assert np.isfinite(parallel["train_loss"].values).all()
    np.testing.assert_array_equal(parallel["step"].values.ravel(), [5, 10, 15])


SEARCH = """\
study: ddp_search
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: none}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 100
  epochs: 2
seeds: [0]
search:
  params:
    optimizer.lr: {type: float, low: 0.01, high: 0.3, log: true}
    batch_size: {type: pow2, low: 64, high: 256}
  objective: test_accuracy
  sampler: {type: random, seed: 3}
  pruner: {type: none}
  n_trials: 2
"""


@pytest.mark.slow  # torchrun for every trial of a search: about 30 s
def test_a_search_without_pruner_trains_its_trials_data_parallel(tmp_path):
    (tmp_path / "s.yaml").write_text(SEARCH)
    single = _run(tmp_path, "single")
    log: list[str] = []
    parallel = _run(tmp_path, "parallel", "--nproc", "2", log=log)
    assert log[0].count("(2 processes)") == 2, "each trial ran under torchrun"
    # the same sampled parameters, and the same numbers up to the order of floating-point additions
    for name in ("lr", "batch_size"):
        np.testing.assert_array_equal(parallel[name].values, single[name].values)
    np.testing.assert_allclose(parallel["objective"].values, single["objective"].values, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(parallel["test_loss"].values, single["test_loss"].values, rtol=2e-4, atol=1e-6)
    np.testing.assert_array_equal(parallel["step"].values, single["step"].values)


def test_a_search_with_a_pruner_refuses_nproc(tmp_path):
    (tmp_path / "s.yaml").write_text(SEARCH.replace("pruner: {type: none}", "pruner: {type: median}"))
    res = subprocess.run(
        [sys.executable, "-m", "lbgap", "study", "run", "s.yaml", "--out", "o", "--nproc", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 2 and "pruner" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists(), "nothing is written"
