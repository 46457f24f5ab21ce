"""A third-party plugin package, installed for real, used from a study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import xarray as xr

ROOT = Path(__file__).resolve().parents[2]

STUDY = """\
study: thirdparty
base:
  dataset: {name: digits}
  model: {name: softmax_regression, temperature: 2.0}
  optimizer: {name: sgd, lr: 0.5}
  metrics: [{name: parameter_norm, every: 1}]
  batch_size: 128
  epochs: 2
seeds: [0]
"""


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
    listed = subprocess.run([sys.executable, "-m", "lbgap", "plugins", "list", "--json"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    plugins = {(p["name"], p["origin"], p["version"]) for p in json.loads(listed.stdout)["plugins"]}
    assert ("softmax_regression", "lbgap-example-plugin", "0.2.0") in plugins
    assert ("parameter_norm", "lbgap-example-plugin", "0.2.0") in plugins
    (tmp_path / "s.yaml").write_text(STUDY)
    run = subprocess.run([sys.executable, "-m", "lbgap", "study", "run", "s.yaml", "--out", "o", "--no-report"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr
    ds = xr.open_dataset(tmp_path / "o" / "results.nc")
    assert ds["parameter_norm"].dims == ("variant", "seed", "epoch")
    assert float(ds["parameter_norm"].isel(epoch=-1).squeeze()) > 0
    assert "lbgap-example-plugin" in json.loads(ds.attrs["lbgap_plugins_json"])
    # without the package on the path, the same study names an unknown plugin
    bare = subprocess.run([sys.executable, "-m", "lbgap", "study", "validate", "s.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert bare.returncode == 2 and "unknown model plugin 'softmax_regression'" in bare.stderr
