"""Command-line overrides (``key=value``) and the resolved study (``lbgap study show``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from lbgap.spec import SpecError, load_study_text
from lbgap.spec.load import load_study

LBGAP = [sys.executable, "-m", "lbgap"]

DIGITS = """\
study: digits_ov
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16]}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 3
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0]
"""


def lbgap(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*LBGAP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _messages(exc: pytest.ExceptionInfo) -> list[str]:
    return [str(i) for i in exc.value.issues]


def test_override_base_variant_and_grid(toy_registry, toy_spec_text):
    study = load_study_text(
        toy_spec_text, "toy.yaml", toy_registry,
        ["base.epochs=1", "variants.large.batch_size=64", "grid.optimizer.lr=[0.1, 0.01]", "seeds=[3]"],
    )
    assert study.variants["small"].epochs == 1 and study.variants["large"].epochs == 1
    assert study.variants["large"].batch_size == 64 and study.variants["small"].batch_size == 32
    assert study.grid_paths == {"lr": "optimizer.lr"} and study.grid_values == {"lr": [0.1, 0.01]}
    assert study.seeds == [3]
    assert len(study.cells()) == 2 * 2 * 1
    assert study.overrides == ("base.epochs=1", "variants.large.batch_size=64", "grid.optimizer.lr=[0.1, 0.01]", "seeds=[3]")
    # the resolved text is a standalone study file that loads to the same study
    assert "# with the overrides base.epochs=1" in study.text
    again = load_study_text(study.text, "spec.yaml", toy_registry)
    assert again.spec_hash == study.spec_hash
    assert study.spec_hash != load_study_text(toy_spec_text, "toy.yaml", toy_registry).spec_hash


def test_override_values_are_yaml(toy_registry, toy_spec_text):
    study = load_study_text(
        toy_spec_text, "toy.yaml", toy_registry,
        ["base.optimizer={name: sgd, lr: 1e-3}", "variants.large.regime.0.reference_batch=16"],
    )
    assert study.variants["small"].optimizer.lr == 1e-3  # YAML 1.2: 1e-3 is a float
    assert study.variants["small"].optimizer.momentum == 0.0  # a mapping replaces the setting whole
    assert study.variant_dicts["large"]["regime"][0]["reference_batch"] == 16
    # a new variant, and a grid over a path with a list index
    study = load_study_text(toy_spec_text, "toy.yaml", toy_registry, ["variants.huge.batch_size=256"])
    assert list(study.variants) == ["small", "large", "huge"]


def test_bad_override_names_it_and_keeps_the_file_line(toy_registry, toy_spec_text):
    with pytest.raises(SpecError) as exc:
        load_study_text(toy_spec_text, "toy.yaml", toy_registry, ["seeds=[0]", "base.epochs=0"])
    # base.epochs is on line 9 of the file; the message names the override
    assert _messages(exc) == [
        "toy.yaml:9: override 2 (base.epochs=0): base.epochs: Input should be greater than 0 (got 0)"
    ]
    with pytest.raises(SpecError) as exc:
        load_study_text(
            toy_spec_text, "toy.yaml", toy_registry,
            ["grid.optimizer.lrr=[0.1]", "base.batch_size", "base.epochs.x=1", "variants.large.regime.5.rule=x"],
        )
    text = "\n".join(_messages(exc))
    assert "override 2 (base.batch_size): an override is KEY=VALUE" in text
    assert "toy.yaml:9: override 3 (base.epochs.x=1): base.epochs is a single value" in text
    assert "override 4 (variants.large.regime.5.rule=x): variants.large.regime is a list of 1" in text
    with pytest.raises(SpecError) as exc:
        load_study_text(toy_spec_text, "toy.yaml", toy_registry, ["grid.optimizer.lrr=[0.1]"])
    assert any("override 1 (grid.optimizer.lrr=[0.1]): grid.optimizer.lrr: no such setting" in m for m in _messages(exc))
    # an error the overrides did not cause keeps its own place
    with pytest.raises(SpecError) as exc:
        load_study_text(toy_spec_text.replace("epochs: 3", "epochs: -3"), "toy.yaml", toy_registry, ["seeds=[1]"])
    assert _messages(exc) == ["toy.yaml:9: base.epochs: Input should be greater than 0 (got -3)"]


def test_cli_bad_override_exits_2(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap("study", "run", "s.yaml", "seeds=[0]", "base.epochs=0", "--out", "out", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "s.yaml:7: override 2 (base.epochs=0): base.epochs: Input should be greater than 0" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "out").exists()


def test_show_prints_yaml_that_loads_to_the_same_spec(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap("study", "show", "s.yaml", "base.epochs=1", "grid.optimizer.lr=[0.1,0.05]", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip().splitlines()[-1].startswith("# study digits_ov: 2 variant(s), 4 trial(s); spec hash ")
    (tmp_path / "resolved.yaml").write_text(res.stdout)
    shown = load_study(tmp_path / "resolved.yaml")
    direct = load_study_text(DIGITS, "s.yaml", overrides=["base.epochs=1", "grid.optimizer.lr=[0.1,0.05]"])
    assert shown.spec_hash == direct.spec_hash
    assert res.stdout.rstrip().endswith(direct.spec_hash[:12])
    # without overrides: the file itself
    res = lbgap("study", "show", "s.yaml", cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.startswith(DIGITS)


def test_run_records_the_overrides(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap(
        "study", "run", "s.yaml", "base.epochs=1", "variants.lb.batch_size=256", "--out", "o", "--no-report",
        "--device", "cpu", cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    ds = xr.open_dataset(tmp_path / "o" / "results.nc")
    spec = json.loads(ds.attrs["lbgap_spec_json"])
    assert spec["variants"]["lb"]["batch_size"] == 256 and spec["variants"]["sb"]["epochs"] == 1
    assert ds.sizes["epoch"] == 1
    saved = (tmp_path / "o" / "spec.yaml").read_text()
    assert "# with the overrides base.epochs=1 variants.lb.batch_size=256" in saved
    assert load_study(tmp_path / "o" / "spec.yaml").spec_hash == ds.attrs["lbgap_spec_sha256"]
    ds.close()
    # resume reads the resolved spec.yaml: no overrides needed, nothing to redo
    res = lbgap("study", "resume", "o", "--no-report", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
