"""``lbgap study run --jobs N``: worker processes sharing one embedded study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import xarray as xr

from lbgap.driver.dryrun import _makespan
from lbgap.driver.run import default_jobs, run_study
from lbgap.spec import load_study_text

LBGAP = [sys.executable, "-m", "lbgap"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
#: wall-clock variables: the only ones that may differ between runs
TIMING = {"epoch_time", "wall_time"}

TOY = """\
study: toy_jobs
base:
  dataset: {name: blobs, n_train: 128, n_test: 64}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 3
variants:
  a: {}
  b: {optimizer: {lr: 0.02}}
  w: {warm_start: {variant: a, epochs: 1}}
grid:
  batch_size: [16, 64]
seeds: [0, 1]
"""

DIGITS = """\
study: digits_jobs
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 60
  keep_weights: none
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0, 1, 2, 3]
vectorize: off  # each worker trains one trial at a time: the kill tests count trials
"""


def assert_same_results(a_path: Path, b_path: Path) -> None:
    """Every variable and coordinate equal, bit for bit, except wall-clock times."""
    with xr.open_dataset(a_path) as a, xr.open_dataset(b_path) as b:
        assert set(a.data_vars) == set(b.data_vars)
        for name in sorted(set(a.data_vars) - TIMING):
            xr.testing.assert_identical(a[name], b[name])
        for name in a.coords:
            xr.testing.assert_identical(a[name], b[name])


def test_two_workers_give_the_results_of_one(toy_registry, tmp_path):
    study = load_study_text(TOY, "toy_jobs.yaml", toy_registry)
    one = run_study(study, tmp_path / "one", device="cpu", jobs=1)
    two = run_study(study, tmp_path / "two", device="cpu", jobs=2)
    assert one.results is not None and two.results is not None
    assert two.trained == one.trained == 12 and not two.failed
    assert_same_results(one.results, two.results)


def test_max_trials_holds_for_the_workers_together(toy_registry, tmp_path):
    study = load_study_text(TOY, "toy_jobs.yaml", toy_registry)
    part = run_study(study, tmp_path, device="cpu", jobs=2, max_trials=5)
    assert part.results is None and part.trained == 5
    assert len(list((tmp_path / "trials").glob("*.nc"))) == 5


def test_a_trial_warm_started_from_a_failed_source_does_not_wait_for_it(toy_registry, tmp_path, monkeypatch):
    import lbgap.driver.runner as run_module

    real = run_module.run_trial

    def failing(cfg, seed, **kw):
        if kw.get("key") == "a,batch_size=16,seed=0":
            raise RuntimeError("the source failed")
        return real(cfg, seed, **kw)

    monkeypatch.setattr(run_module, "run_trial", failing)
    study = load_study_text(TOY, "toy_jobs.yaml", toy_registry)
    start = time.monotonic()
    summary = run_study(study, tmp_path, device="cpu", jobs=1)
    assert time.monotonic() - start < 120
    assert sorted(summary.failed) == ["a,batch_size=16,seed=0", "w,batch_size=16,seed=0"]
    # the finished trials are combined all the same; the failed cells say why
    with xr.open_dataset(summary.results) as ds:
        assert json.loads(ds.attrs["lbgap_failed_trials"]) == sorted(summary.failed)
        cell = dict(variant="a", batch_size=16, seed=0)
        assert ds["status"].sel(cell).item() == "failed"
        assert "the source failed" in ds["status_reason"].sel(cell).item()
        assert ds["test_accuracy"].sel(cell).isnull().all()
        done = dict(variant="b", batch_size=16, seed=0)
        assert ds["status"].sel(done).item() == "completed" and ds["test_accuracy"].sel(done).notnull().any()


def test_default_jobs():
    assert default_jobs("cpu") == len(os.sched_getaffinity(0))
    assert default_jobs("cpu", threads=2) == max(1, len(os.sched_getaffinity(0)) // 2)
    assert default_jobs("cpu", nproc=2) == 1
    assert default_jobs("cpu", storage="postgresql://u@h/db") == 1


def test_makespan_takes_the_next_trial_when_free():
    assert _makespan([3.0, 3.0, 2.0, 2.0, 2.0], 2) == 7.0
    assert _makespan([3.0, 3.0, 2.0, 2.0, 2.0], 1) == 12.0
    assert _makespan([5.0], 4) == 5.0


# ------------------------------------------------------------- the command line, killed


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*LBGAP, *args, "--no-report", "--device", "cpu"],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    journal = out / "optuna.journal"
    if not journal.exists() or not journal.stat().st_size:
        return []
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return []
    return optuna.load_study(study_name=summaries[0].study_name, storage=storage).get_trials(deepcopy=False)


def _wait_for_two_running(out: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until both workers train a trial (the parent and its worker process)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            running = [t for t in _trials(out) if t.state == optuna.trial.TrialState.RUNNING]
        except Exception:  # a line being written
            running = []
        if len(running) >= 2:
            return
        time.sleep(0.1)
    raise AssertionError("the two workers did not start training")


def _workers_of(pid: int) -> list[int]:
    """The worker processes that ``pid`` started (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "trials").glob("*.nc")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The study run by one process (``--jobs 1``)."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "s.yaml").write_text(DIGITS)
    res = subprocess.run(
        [*LBGAP, "study", "run", "s.yaml", "--out", "one", "--no-report", "--device", "cpu", "--jobs", "1"],
        cwd=folder, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    return folder / "one" / "results.nc"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_loses_only_its_trial_and_resume_finishes(reference, tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    out = tmp_path / "two"
    proc = _start(tmp_path, "study", "run", "s.yaml", "--out", "two", "--jobs", "2")
    _wait_for_two_running(out, proc)
    (worker,) = _workers_of(proc.pid)
    os.kill(worker, signal.SIGKILL)
    _stdout, stderr = proc.communicate(timeout=600)
    # the parent trained the rest of the queue and names the trial the worker lost
    assert proc.returncode == 1, stderr
    assert "lost" in stderr and "resume" in stderr
    assert not (out / "results.nc").exists()
    before = _files(out)
    assert len(before) == 7
    res = subprocess.run(
        [*LBGAP, "study", "resume", "two", "--no-report", "--device", "cpu", "--jobs", "2"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    after = _files(out)
    assert {k: after[k] for k in before} == before  # no finished trial trained again
    assert len(after) == 8
    assert_same_results(reference, out / "results.nc")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_parent_kills_its_workers_and_resume_finishes(reference, tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    out = tmp_path / "two"
    proc = _start(tmp_path, "study", "run", "s.yaml", "--out", "two", "--jobs", "2")
    _wait_for_two_running(out, proc)
    workers = _workers_of(proc.pid)
    assert len(workers) == 1
    proc.kill()
    proc.communicate()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its parent"
    before = _files(out)
    assert len(before) < 8
    res = subprocess.run(
        [*LBGAP, "study", "resume", "two", "--no-report", "--device", "cpu"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    after = _files(out)
    assert {k: after[k] for k in before} == before
    assert_same_results(reference, out / "results.nc")


def test_dry_run_estimates_the_study_with_the_jobs(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = subprocess.run(
        [*LBGAP, "study", "run", "s.yaml", "--dry-run", "--device", "cpu", "--jobs", "2"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "for 8 trial(s)" in text
    assert "With --jobs 2: ≈" in text and "2 workers at 1 thread each" in text
    assert not (tmp_path / "runs").exists()
