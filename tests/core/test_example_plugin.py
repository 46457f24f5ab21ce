"""A third-party plugin package, installed for real, used from a study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]

STUDY = """\
study: thirdparty
base:
  dataset: {name: gaussian_clusters, classes: 3, dim: 8, n_train: 256, n_test: 128}
  model: {name: softmax_regression, temperature: 2.0}
  optimizer: {name: sign_sgd, lr: 0.05}
  schedule: {name: exponential_decay, gamma: 0.8}
  regime: [{name: lr_scaling, rule: linear, reference_batch: 32}, {name: lr_cap, max_lr: 0.06}]
  noise: [{name: gradient_jitter, std: 0.001}]
  metrics: [{name: parameter_norm, every: 1}, {name: parameter_count}]
  stopping: [{name: accuracy_reached, target: 1.0}]
  batch_size: 64
  epochs: 3
seeds: [0]
"""

KINDS = {
    ("dataset", "gaussian_clusters"), ("model", "softmax_regression"), ("optimizer", "sign_sgd"),
    ("schedule", "exponential_decay"), ("regime", "lr_cap"), ("noise", "gradient_jitter"),
    ("metric", "parameter_norm"), ("metric", "parameter_count"), ("stopping", "accuracy_reached"),
}


def test_installed_plugin_is_listed_and_runs_a_study(tmp_path):
    target = tmp_path / "site"
    source = tmp_path / "lbgap-example-plugin"  # a copy: building writes next to the sources
    shutil.copytree(ROOT / "examples" / "lbgap-example-plugin", source)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    listed = subprocess.run([sys.executable, "-m", "lbgap", "plugins", "list", "--json", "--strict"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    plugins = {(p["kind"], p["name"]): (p["origin"], p["version"]) for p in json.loads(listed.stdout)["plugins"]}
    for kind_name in KINDS:  # one plugin of every kind
        assert plugins.get(kind_name) == ("lbgap-example-plugin", "0.3.0"), kind_name
    (tmp_path / "s.yaml").write_text(STUDY)
    run = subprocess.run([sys.executable, "-m", "lbgap", "study", "run", "s.yaml", "--out", "o", "--strict"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr
    with xr.open_dataset(tmp_path / "o" / "results.nc") as ds:
        ds = ds.load()
    assert ds["parameter_norm"].dims == ("variant", "seed", "epoch")
    assert float(ds["parameter_norm"].isel(epoch=-1).squeeze()) > 0
    # the metric's declared units and long names land in results.nc, with the plugin as source
    norm, count = ds["parameter_norm"].attrs, ds["parameter_count"].attrs
    assert (norm["units"], norm["long_name"]) == ("1", "Euclidean norm of all parameters")
    assert (count["units"], count["long_name"]) == ("count", "number of trainable parameters")
    assert float(ds["parameter_count"].squeeze()) == 8 * 3 + 3
    assert "parameter_norm" in norm["source"] and "lbgap-example-plugin" in norm["source"]
    # the noise injector's returned per-epoch value is traced to it
    assert ds["gradient_jitter_norm"].dims == ("variant", "seed", "epoch")
    assert float(ds["gradient_jitter_norm"].isel(epoch=0).squeeze()) > 0
    assert "gradient_jitter" in ds["gradient_jitter_norm"].attrs["source"]
    # lr_scaling (linear, 64/32: 0.1) then lr_cap (0.06)
    assert float(ds["effective_learning_rate"].squeeze()) == pytest.approx(0.06)
    assert "lbgap-example-plugin" in json.loads(ds.attrs["lbgap_plugins_json"])
    # the report draws the package's figure
    report = tmp_path / "o" / "report"
    assert (report / "parameter_norm.png").stat().st_size > 0
    assert "parameter_norm.png" in (report / "summary.md").read_text()
    # without the package on the path, the same study names an unknown plugin
    bare = subprocess.run([sys.executable, "-m", "lbgap", "study", "validate", "s.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert bare.returncode == 2 and "unknown model plugin 'softmax_regression'" in bare.stderr
