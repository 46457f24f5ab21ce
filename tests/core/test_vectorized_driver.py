"""Vectorized groups in a study: the driver groups cells, and results.nc is what one-at-a-time gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lbgap.driver.groups import GroupPlanner
from lbgap.driver.run import run_study
from lbgap.registry import get_registry
from lbgap.spec import load_study_text

from .test_workers import assert_same_results

SPEC = """\
study: vec_driver
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32, 32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 3
variants:
  sb: {}
  gbn: {model: {norm: ghost, ghost_size: 16}}
  lr: {optimizer: {lr: 0.02}}
  warm: {warm_start: {variant: sb, epochs: 1}}
seeds: [0, 1, 2]
"""


class _Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def study_start(self, total, done):
        pass

    def trial_start(self, key, epochs, steps):
        self.log.append(("start", key))

    def step(self, key, step):
        pass

    def epoch_end(self, key, epoch, record):
        pass

    def trial_end(self, key, status, summary):
        self.log.append(("end", key))

    def skipped(self, count):
        pass


def _study(text: str = SPEC):
    return load_study_text(text, "vec_driver.yaml", get_registry())


def test_planner_groups_what_may_train_together():
    study = _study()
    planner = GroupPlanner(study, study_device := __import__("torch").device("cpu"))
    keys = {c.key: planner.key(c) for c in study.cells()}
    assert study_device.type == "cpu"
    sb = [k for k in keys if k.startswith("sb,")]
    assert len({keys[k] for k in sb}) == 1 and keys[sb[0]] is not None
    lr = [k for k in keys if k.startswith("lr,")]
    assert keys[lr[0]] == keys[sb[0]]  # a float setting of the optimizer does not split a group
    gbn = [k for k in keys if k.startswith("gbn,")]
    assert keys[gbn[0]] not in (None, keys[sb[0]])  # another architecture
    assert all(keys[k] is None for k in keys if k.startswith("warm,"))  # warm starts train alone
    assert all(v is None for v in map(GroupPlanner(study, study_device, "off").key, study.cells()))


def test_a_batch_schedule_groups_only_with_the_same_schedule():
    import torch

    text = SPEC.replace(
        "  warm: {warm_start: {variant: sb, epochs: 1}}",
        "  grow: {regime: [{name: increase_batch, milestones: [1], factor: 2}]}\n"
        "  grow_lr: {optimizer: {lr: 0.02}, regime: [{name: increase_batch, milestones: [1], factor: 2}]}",
    )
    study = _study(text)
    keys = {c.key: GroupPlanner(study, torch.device("cpu")).key(c) for c in study.cells()}
    by_variant = {v: {keys[k] for k in keys if k.startswith(v + ",")} for v in ("sb", "lr", "grow", "grow_lr")}
    assert all(len(s) == 1 and None not in s for s in by_variant.values())
    assert by_variant["grow"] == by_variant["grow_lr"]  # one schedule of batch sizes: one group
    assert by_variant["grow"] != by_variant["sb"] == by_variant["lr"]  # the batch differs from epoch 2 on


def test_grouped_study_equals_one_at_a_time(tmp_path):
    study = _study()
    events = _Events()
    grouped = run_study(study, tmp_path / "grouped", device="cpu", jobs=1, vectorize="auto", reporter=events)
    alone = run_study(study, tmp_path / "alone", device="cpu", jobs=1, vectorize="off")
    assert grouped.results is not None and alone.results is not None and not grouped.failed
    assert_same_results(alone.results, grouped.results)
    # grouped members start together: three starts before the first end
    first_end = next(i for i, (what, _) in enumerate(events.log) if what == "end")
    assert first_end >= 3


def test_grouped_workers_equal_one_at_a_time(tmp_path):
    study = _study()
    alone = run_study(study, tmp_path / "alone", device="cpu", jobs=1, vectorize="off")
    workers = run_study(study, tmp_path / "workers", device="cpu", jobs=2, vectorize="auto")
    assert_same_results(alone.results, workers.results)


@pytest.mark.slow  # two lbgap processes and a reference run: about 30 s
def test_kill_during_a_group_then_resume(tmp_path):
    spec = tmp_path / "vec_driver.yaml"
    spec.write_text(SPEC.replace("epochs: 3", "epochs: 40").replace("seeds: [0, 1, 2]", "seeds: [0, 1]"))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lbgap", "study", "run", str(spec), "--out", str(out), "--jobs", "1", "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "trials").glob("*.nc")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.nc")}
    assert done_before, "no trial finished before the kill"
    subprocess.run([sys.executable, "-m", "lbgap", "study", "resume", str(out), "--jobs", "1", "--no-report"],
                   env=env, check=True, capture_output=True)
    for name, mtime in done_before.items():  # finished trials are not retrained
        assert (out / "trials" / name).stat().st_mtime_ns == mtime
    reference = run_study(_study(spec.read_text()), tmp_path / "ref", device="cpu", jobs=1, vectorize="off")
    assert_same_results(reference.results, out / "results.nc")


def test_dry_run_times_the_groups_a_run_would_form():
    import torch

    from lbgap.driver.dryrun import dry_run

    study = _study(SPEC.replace("  warm: {warm_start: {variant: sb, epochs: 1}}\n", ""))
    report = dry_run(study, device=torch.device("cpu"), steps=2, vectorize="auto")
    sizes = sorted(size for size, _ in report.groups.values())
    assert sizes == [3, 6]  # gbn's three seeds; sb and lr (an optimizer setting apart) together
    assert all(factor > 0 for _, factor in report.groups.values())
    alone = dry_run(study, device=torch.device("cpu"), steps=2, vectorize="off")
    assert not alone.groups and len(alone._queued_trial_seconds()) == 9
    assert len(report._queued_trial_seconds()) == 2  # two units: the two groups


def test_plugins_that_do_not_declare_support_train_alone(toy_registry, tmp_path):
    import torch

    text = """\
study: undeclared
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 2
seeds: [0, 1, 2]
"""
    study = load_study_text(text, "undeclared.yaml", toy_registry)
    planner = GroupPlanner(study, torch.device("cpu"))
    assert all(planner.key(c) is None for c in study.cells())  # tiny_mlp says nothing: one at a time
    events = _Events()
    summary = run_study(study, tmp_path, device="cpu", jobs=1, reporter=events)
    assert summary.results is not None
    assert [what for what, _ in events.log] == ["start", "end"] * 3
