"""The command line, run as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]
LBGAP = [sys.executable, "-m", "lbgap"]

DIGITS = """\
study: digits_cli
description: a small study on scikit-learn's digits
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 3
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0, 1, 2]
"""


def lbgap(*args: str, cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([*LBGAP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


@pytest.mark.parametrize(
    "text,fragment",
    [
        (DIGITS.replace("epochs: 3", "epochs: -3"), "bad.yaml:8: base.epochs: Input should be greater than 0 (got -3)"),
        (DIGITS.replace("name: mlp", "name: mlpp"), "bad.yaml:5: base.model.name: unknown model plugin 'mlpp' (did you mean 'mlp'?)"),
        (DIGITS.replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2"), "bad.yaml:13: YAML syntax error"),
    ],
)
def test_bad_spec_exits_2_without_traceback_and_writes_nothing(tmp_path, text, fragment):
    (tmp_path / "bad.yaml").write_text(text)
    res = lbgap("study", "run", "bad.yaml", "--out", "out", cwd=tmp_path)
    assert res.returncode == 2
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    res = lbgap("study", "validate", "bad.yaml", cwd=tmp_path)
    assert res.returncode == 2 and fragment in res.stderr


def test_missing_file_exits_2(tmp_path):
    res = lbgap("study", "run", "nope.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "nope.yaml:1: no such file" in res.stderr


def test_plugins_list_json_and_table(tmp_path):
    res = lbgap("plugins", "list", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    kinds = {(p["kind"], p["name"]) for p in data["plugins"]}
    assert {("optimizer", "sgd"), ("dataset", "mnist1d"), ("model", "mlp"), ("regime", "regime_adaptation")} <= kinds
    assert all(p["origin"] and p["version"] for p in data["plugins"])
    table = lbgap("plugins", "list", cwd=tmp_path)
    assert "regime_adaptation" in table.stdout and "kind" in table.stdout


def test_schema_is_json_with_plugins(tmp_path):
    res = lbgap("schema", cwd=tmp_path)
    schema = json.loads(res.stdout)
    assert "Model_mlp" in schema["$defs"] and schema["properties"]["base"]


def test_run_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS.replace("epochs: 3", "epochs: 6"))
    full = lbgap("study", "run", "s.yaml", "--out", "full", "--no-report", "--device", "cpu", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*LBGAP, "study", "run", "s.yaml", "--out", "part", "--no-report", "--device", "cpu"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    trials = tmp_path / "part" / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials.glob("*.nc"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(trials.glob("*.nc")))
    assert 2 <= done_before < 6, "the run finished before it could be killed"
    assert not (tmp_path / "part" / "results.nc").exists()
    res = lbgap("study", "resume", "part", "--no-report", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    a = xr.open_dataset(tmp_path / "full" / "results.nc")
    b = xr.open_dataset(tmp_path / "part" / "results.nc")
    for name in ("train_loss", "test_loss", "test_accuracy", "weight_distance", "step"):
        xr.testing.assert_equal(a[name], b[name])


def test_report_writes_figures_and_table(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap("study", "run", "s.yaml", "--out", "o", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "o" / "report" / "summary.md").read_text()
    ds = xr.open_dataset(tmp_path / "o" / "results.nc")
    sb = float(ds["test_accuracy"].sel(variant="sb").isel(epoch=-1).mean()) * 100
    assert f"{sb:.2f}" in md  # the table shows the measured mean
    for png in ("learning_curves.png", "weight_distance.png"):
        assert (tmp_path / "o" / "report" / png).stat().st_size > 10_000
    assert "trials" in res.stderr  # rich progress


@pytest.mark.parametrize("dev", ["gpu"])
def test_bad_device_exits_2(tmp_path, dev):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap("study", "run", "s.yaml", "--device", dev, cwd=tmp_path)
    assert res.returncode == 2 and "--device" in res.stderr
