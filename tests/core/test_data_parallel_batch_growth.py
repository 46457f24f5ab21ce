"""A batch-size schedule under data parallelism (torchrun, gloo on the CPU): each process's share
follows the epoch's global batch, so two processes reproduce the single-process run."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

STUDY = """\
study: ddp_grow
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: none}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 50           # 50 → 150 → 450: 25, 75, 225 per process with --nproc 2
  epochs: 3
  regime: [{name: increase_batch, milestones: [1, 2], factor: 3}]
variants:
  grow: {}
seeds: [0]
"""


def _run(tmp_path, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "lbgap", "study", "run", "s.yaml", "--out", out, "--no-report", "--device", "cpu", *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return xr.open_dataset(tmp_path / out / "results.nc")


@pytest.mark.slow  # a single-process run and a torchrun run: about 40 s
def test_two_processes_follow_the_growing_batch(tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    single = _run(tmp_path, "single")
    parallel = _run(tmp_path, "parallel", "--nproc", "2")
    n_train = 1347  # digits: 1797 images, a quarter held out for the test set
    batches = [50, 150, 450]
    steps = np.cumsum([math.ceil(n_train / b) for b in batches])
    for ds in (single, parallel):
        np.testing.assert_array_equal(ds["batch_size_epoch"].values.ravel(), batches)
        np.testing.assert_array_equal(ds["step"].values.ravel(), steps)
    # without BatchNorm the summed, share-weighted gradients equal the global batch's
    for name in ("train_loss", "test_loss", "weight_distance"):
        np.testing.assert_allclose(parallel[name].values, single[name].values, rtol=2e-4, atol=1e-6)
    assert list(parallel["status"].values.ravel()) == ["completed"]
