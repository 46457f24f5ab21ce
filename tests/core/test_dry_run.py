"""``lbgap study run --dry-run``: which configurations are probed, what a probe measures, the command line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lbgap.driver import dryrun
from lbgap.driver.dryrun import dry_run, plan_checks
from lbgap.engine.train import build_parts, run_trial
from lbgap.spec import load_study_text

CPU = torch.device("cpu")

TOY = """\
study: toy_dry
base:
  dataset: {name: blobs, n_train: 200, n_test: 100}
  model: {name: tiny_mlp, width: 16}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 32
  epochs: 3
  eval: {batch_size: 64, every: 2}
variants:
  small: {}
  large:
    batch_size: 128
    regime:
      - {name: lr_scaling, rule: sqrt, reference_batch: 32}
seeds: [0, 1, 2]
"""


def _study(toy_registry, text=TOY):
    return load_study_text(text, "toy.yaml", toy_registry)


def test_grid_points_differing_only_in_floats_share_a_check(toy_registry):
    text = TOY + "grid:\n  optimizer.lr: [0.05, 0.1, 0.2]\n  model.width: [8, 16]\n"
    checks = plan_checks(_study(toy_registry, text))
    # one check per variant and width; the three learning rates share it
    assert [c.label for c in checks] == [
        "small,lr=0.05,width=8",
        "small,lr=0.05,width=16",
        "large,lr=0.05,width=8",
        "large,lr=0.05,width=16",
    ]
    for c in checks:
        assert c.trials == 3 * 3 and c.seed == 0 and len(c.groups) == 3
        assert all(
            g.startswith(c.variant + ",") and g.endswith(f"width={c.config.model.width}") for g in c.groups
        )
    assert sum(c.trials for c in checks) == len(_study(toy_registry, text).cells())


def test_a_search_probes_the_ends_of_its_ranges_and_every_choice(toy_registry):
    text = TOY.replace(
        "variants:\n  small: {}\n  large:\n    batch_size: 128\n    regime:\n"
        "      - {name: lr_scaling, rule: sqrt, reference_batch: 32}\n",
        "",
    )
    text += """\
search:
  params:
    optimizer.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}
    batch_size: {type: pow2, low: 16, high: 64}
    regime: {type: categorical, labels: [none, sqrt],
             choices: [[], [{name: lr_scaling, rule: sqrt, reference_batch: 16}]]}
  n_trials: 4
"""
    study = _study(toy_registry, text)
    checks = plan_checks(study)
    # the learning rate's ends are floats only: one check for both
    assert [c.label for c in checks] == [
        "base,lr=0.001,batch_size=16,regime=none",
        "base,lr=0.001,batch_size=64,regime=none",
        "base,lr=0.001,batch_size=16,regime=sqrt",
    ]
    report = dry_run(study, device=CPU)
    assert not report.failed and report.search_trials == 4 * 3
    trial = [r.result.trial_seconds for r in report.results]
    assert report.study_seconds() == pytest.approx((12 * min(trial), 12 * max(trial)))


def test_a_probe_takes_the_engines_steps_and_times_them(toy_registry):
    study = _study(toy_registry)
    report = dry_run(study, device=CPU, steps=3)
    assert [r.check.label for r in report.results] == ["small", "large"]
    small, large = (r.result for r in report.results)
    # the same steps as a trial cut after three steps
    cut = run_trial(study.variants["small"], 0, registry=toy_registry, device=CPU, max_steps=3)
    assert small.train_loss == cut.cut_epoch_loss
    assert small.n_params == 8 * 16 + 16 + 16 * 3 + 3
    assert (small.n_train, small.n_test, small.batch_size, small.steps_per_epoch) == (200, 100, 32, 7)
    assert (large.batch_size, large.steps_per_epoch) == (128, 2)
    assert small.steps == 3 and small.timed_steps == 2 and small.step_seconds > 0
    assert small.eval_batch == 64 and math.isfinite(small.eval_loss) and small.eval_seconds > 0
    # evaluated after epochs 2 and 3 (every 2, and the last); an evaluation covers test and train sets
    assert small.evaluations == 2 and small.eval_samples == 100 + 200
    per_eval = small.eval_seconds / 64 * 300
    assert small.trial_seconds == pytest.approx(3 * 7 * small.step_seconds + 2 * per_eval)
    assert small.epoch_seconds == pytest.approx(7 * small.step_seconds + per_eval)
    total = 3 * small.trial_seconds + 3 * large.trial_seconds
    assert report.study_seconds() == pytest.approx((total, total))


def test_an_epoch_shorter_than_the_steps_asked_for_limits_the_probe(toy_registry):
    study = _study(toy_registry, TOY.replace("batch_size: 128", "batch_size: 500"))
    large = dry_run(study, device=CPU, steps=4).results[1]
    assert large.result.steps == 1 and large.result.timed_steps == 1
    assert any("exceeds the 200 training samples" in n for n in large.notes)


def test_failures_name_their_stage_and_the_others_still_run(toy_registry):
    more = """\
  diverging: {optimizer: {lr: 1.0e+30}}
  mismatched: {model: {width: 4}, warm_start: {variant: small, epochs: 1}}
"""
    report = dry_run(_study(toy_registry, TOY.replace("seeds:", more + "seeds:")), device=CPU)
    by_label = {r.check.label: r for r in report.results}
    assert by_label["small"].ok and by_label["large"].ok
    assert by_label["diverging"].stage == "train" and "nan" in by_label["diverging"].error
    # the warm start loads small's 16-wide weights into a 4-wide network, as the real run would
    assert by_label["mismatched"].stage == "train" and "size mismatch" in by_label["mismatched"].error
    assert report.study_seconds() is None


def test_a_warm_started_variant_starts_from_its_sources_initial_weights(toy_registry, monkeypatch):
    text = TOY.replace(
        "    batch_size: 128\n", "    batch_size: 128\n    warm_start: {variant: small, epochs: 2}\n"
    )
    study = _study(toy_registry, text)
    given = {}
    real_probe = dryrun.probe

    def spy(cfg, seed, **kw):
        given[kw["key"]] = kw["init_state"]
        return real_probe(cfg, seed, **kw)

    monkeypatch.setattr(dryrun, "probe", spy)
    report = dry_run(study, device=CPU)
    assert not report.failed and given["small"] is None
    expected = build_parts(study.variants["small"], 0, toy_registry, CPU).model.state_dict()
    assert set(given["large"]) == set(expected)
    for k, v in expected.items():
        assert torch.equal(given["large"][k], v)
    assert any(
        "initial weights stand in for its weights after 2 epochs" in n for n in report.results[1].notes
    )


def test_overrides_apply_to_every_configuration(toy_registry):
    report = dry_run(_study(toy_registry), device=CPU, overrides={"dataset.n_train": 64})
    assert [r.result.n_train for r in report.results] == [64, 64]


# ------------------------------------------------------------------ the command line

ROOT = Path(__file__).resolve().parents[2]
DIGITS = """\
study: digits_dry
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 3
  stopping:
    - {name: plateau, monitor: train_loss, mode: min, patience: 5}
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0, 1, 2]
"""


def lbgap(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lbgap", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_dry_run_prints_the_table_and_writes_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap(
        "study", "run", "s.yaml", "--dry-run", "--steps", "3", "--out", "out", "--device", "cpu", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"], "no output folder, no runs/"
    text = res.stdout
    assert "dry run of digits_dry on cpu" in text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert set(rows) == {"sb", "lb"}
    # 64·32+32 + BatchNorm 2·32 + 32·10+10 parameters; digits' 1,347 / 450 split; batch and steps per epoch
    for cell in ("2,474", "1,347 / 450", "64", "22", "≤ ", "(3 ep)", "ok"):
        assert cell in rows["sb"], cell
    assert "512" in rows["lb"] and "│           3 │" in rows["lb"]
    assert "Estimates from 3 training step(s)" in text and "(cpu, 1 thread)" in text
    assert "Whole study ≈ at most" in text and "for 6 trial(s)" in text
    assert "Traceback" not in res.stderr

    res = lbgap("study", "run", "s.yaml", "--steps", "3", cwd=tmp_path)
    assert res.returncode == 2 and "--steps applies to --dry-run" in res.stderr


def test_cli_dry_run_names_the_variants_that_fail(tmp_path):
    more = "  nan: {optimizer: {lr: 1.0e+30}, model: {norm: none}}\n  conv: {model: {name: c1}}\n"
    text = DIGITS.replace("seeds:", more + "seeds:")
    (tmp_path / "s.yaml").write_text(text)
    res = lbgap("study", "run", "s.yaml", "--dry-run", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 2
    assert "error: nan: training failed: the training loss is nan after 2 step(s)" in res.stderr
    assert "error: conv: building failed: ValueError" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert "failed (train)" in res.stdout and "failed (build)" in res.stdout and "ok" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_cli_dry_run_without_the_data_names_the_missing_files(tmp_path):
    res = lbgap(
        "study",
        "run",
        str(ROOT / "studies" / "keskar_sb_lb_paper_c1.yaml"),
        "--dry-run",
        cwd=tmp_path,
        env={"LBGAP_DATA": str(tmp_path / "data")},
    )
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr  # one line for both variants
    line = errors[0]
    assert line.startswith("error: sb, lb: building failed: DatasetFilesMissing: CIFAR-10 files not found")
    for part in (str(tmp_path / "data" / "cifar-10-batches-py"), "data_batch_1", "test_batch"):
        assert part in line
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
