"""A study whose trials partly failed still combines the finished ones, and the report draws them."""

from __future__ import annotations

import json

import xarray as xr

from lbgap.driver.run import run_study
from lbgap.report import make_report
from lbgap.spec import load_study_text

SPEC = """\
study: partial
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
  plain: {}
seeds: [0, 1]
"""


def test_failed_cells_are_nan_with_their_reason_and_the_rest_is_combined(toy_registry, tmp_path):
    summary = run_study(load_study_text(SPEC, "partial.yaml", toy_registry), tmp_path, device="cpu")
    assert sorted(summary.failed) == ["lb,seed=0", "lb,seed=1"]  # their source stopped before epoch 5
    assert summary.results == tmp_path / "results.nc"
    with xr.load_dataset(summary.results) as ds:
        assert json.loads(ds.attrs["lbgap_failed_trials"]) == ["lb,seed=0", "lb,seed=1"]
        assert set(ds["status"].sel(variant="lb").values) == {"failed"}
        assert all("ended before epoch 5" in r for r in ds["status_reason"].sel(variant="lb").values)
        assert ds["test_accuracy"].sel(variant="lb").isnull().all()
        assert ds["test_accuracy"].sel(variant="plain").notnull().any()
        assert set(ds["status"].sel(variant="plain").values) == {"completed"}
    report = make_report(tmp_path)
    assert report.exists() and "plain" in report.read_text()


def test_an_unfinished_study_is_not_combined(toy_registry, tmp_path):
    summary = run_study(load_study_text(SPEC, "partial.yaml", toy_registry), tmp_path, device="cpu", max_trials=2)
    assert summary.results is None and not (tmp_path / "results.nc").exists()
