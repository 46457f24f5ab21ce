"""``lbgap dashboard DIR``: optuna-dashboard on a study's Optuna storage."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

LBGAP = [sys.executable, "-m", "lbgap"]

DIGITS = """\
study: digits_dash
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16]}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 64
  epochs: 2
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0]
"""


def _env(**extra: str) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dash")
    (folder / "s.yaml").write_text(DIGITS)
    res = subprocess.run(
        [*LBGAP, "study", "run", "s.yaml", "--out", "out", "--no-report", "--device", "cpu"],
        cwd=folder, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return folder / "out"


def test_missing_extra_is_named(tmp_path):
    # an optuna_dashboard that cannot be imported stands for a missing one
    (tmp_path / "optuna_dashboard.py").write_text("raise ImportError('No module named optuna_dashboard')\n")
    res = subprocess.run(
        [*LBGAP, "dashboard", str(tmp_path)], cwd=tmp_path, env=_env(PYTHONPATH=str(tmp_path)),
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2
    assert "pip install 'lbgap[dashboard]'" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.skipif(importlib.util.find_spec("optuna_dashboard") is None, reason="optuna-dashboard is not installed")
def test_dashboard_serves_the_study(finished, tmp_path):
    meta = json.loads((finished / "study.json").read_text())
    name = f"{meta['study']}-{meta['spec_sha256'][:12]}"
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w")  # the server logs every request: a file, not a pipe that fills
    proc = subprocess.Popen(
        [*LBGAP, "dashboard", str(finished), "--port", str(port)], env=_env(), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        doc = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    doc = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert doc is not None, (tmp_path / "dashboard.log").read_text() or "no answer in 90 s"
        studies = {s["study_name"]: s for s in doc["study_summaries"]}
        assert name in studies
        study_id = studies[name]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=10) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) == 2
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
