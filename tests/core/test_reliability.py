"""Nothing derived is lost: measured variables, partial files, durable renames, Optuna's record,
and a storage URL checked before anything is written (docs/reliability.md)."""

from __future__ import annotations

import math
import os
import stat
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import torch
import xarray as xr
from optuna.trial import TrialState

import lbgap.driver.gridloop as grid_mod
import lbgap.driver.storage as storage_mod
from lbgap.driver.run import run_study
from lbgap.driver.storage import StorageError, claim_folder, fail_stale_trials, make_storage, resolve_url
from lbgap.measure import MeasureError, measure_study
from lbgap.registry import load_registry
from lbgap.results import save_weights, write_atomic
from lbgap.spec import load_study_text

SPEC = """\
study: reliable
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16]}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 128
  epochs: 1
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0]
"""


@pytest.fixture(scope="module")
def reg():
    return load_registry()


def _study(reg, tmp_path):
    return load_study_text(SPEC, str(tmp_path / "s.yaml"), reg)


@pytest.fixture(scope="module")
def finished(reg, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliable")
    run_study(load_study_text(SPEC, str(out / "s.yaml"), reg), out, device="cpu")
    return out


# ------------------------------------------------------------------ measured variables


def test_measured_variables_survive_a_resume(finished, reg):
    out = finished
    measure_study(out, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg)
    assert (out / "measured" / "distance_to_reference.nc").exists()
    with xr.open_dataset(out / "results.nc") as ds:
        before = ds["distance_to_reference"].load()
    # a resume with nothing left to train rebuilds results.nc from the trial files
    summary = run_study(load_study_text(SPEC, str(out / "s.yaml"), reg), out, device="cpu")
    assert summary.trained == 0 and summary.results is not None
    with xr.open_dataset(out / "results.nc") as ds:
        assert "distance_to_reference" in ds
        xr.testing.assert_identical(ds["distance_to_reference"].load(), before)
        assert ds["distance_to_reference"].attrs["reference_variant"] == "sb"
        history = ds.attrs["history"].splitlines()
    assert any("lbgap study run" in line for line in history)
    assert sum("lbgap measure" in line and "minimizer_distance" in line for line in history) == 1


def test_a_measurement_killed_before_results_nc_is_rewritten_is_kept(reg, tmp_path, monkeypatch):
    """Killed after its variables are kept in measured/ and before results.nc is rewritten: the
    next rebuild (a resume) has them."""
    import lbgap.measure as measure_mod

    out = tmp_path / "out"
    run_study(_study(reg, tmp_path), out, device="cpu")

    def killed(*_a, **_k):
        raise SystemExit("killed")

    with monkeypatch.context() as m:
        m.setattr(measure_mod, "write_atomic", killed)
        with pytest.raises(SystemExit):
            measure_study(out, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg)
    with xr.open_dataset(out / "results.nc") as ds:
        assert "distance_to_reference" not in ds
    run_study(_study(reg, tmp_path), out, device="cpu")
    with xr.open_dataset(out / "results.nc") as ds:
        assert "distance_to_reference" in ds and "lbgap measure" in ds.attrs["history"]


def test_measure_refuses_a_busy_folder(finished, reg):
    lock = claim_folder(finished)
    try:
        with pytest.raises(MeasureError, match="busy"):
            measure_study(finished, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg)
    finally:
        lock.close()


def test_a_run_waits_for_no_measurement(finished, reg):
    """The lock works both ways: measure holds it, a run on the folder is refused meanwhile."""
    from lbgap.driver.storage import FolderBusyError

    seen = []

    def progress(_msg):
        if not seen:
            with pytest.raises(FolderBusyError):
                run_study(load_study_text(SPEC, str(finished / "s.yaml"), reg), finished, device="cpu")
            seen.append(True)

    measure_study(finished, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg,
                  progress=progress)
    assert seen


# ------------------------------------------------------------------ partial files


def test_partial_files_of_a_killed_writer_are_removed_on_the_next_start(tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a writer that is gone
    pid = dead.pid
    (tmp_path / "trials").mkdir()
    (tmp_path / "weights" / "sb,seed=0").mkdir(parents=True)
    (tmp_path / "measured").mkdir()
    partial = [
        tmp_path / f".results.nc.tmp-{pid}",
        tmp_path / "trials" / f".sb,seed=0.nc.tmp-{pid}",
        tmp_path / "weights" / "sb,seed=0" / f".final.pt.tmp-{pid}",
        tmp_path / "measured" / f".x.nc.tmp-{pid}",
        tmp_path / "trials" / f".lb,seed=0.nc.tmp-{os.getpid()}",  # pids repeat in containers
    ]
    kept = [tmp_path / "results.nc", tmp_path / "trials" / "sb,seed=0.nc", tmp_path / "weights" / "sb,seed=0" / "final.pt",
            tmp_path / "trials" / f".xl,seed=0.nc.tmp-{os.getppid()}"]  # a live writer (a PostgreSQL worker)
    for p in partial + kept:
        p.write_bytes(b"x")
    claim_folder(tmp_path).close()
    assert not [p for p in partial if p.exists()]
    assert all(p.exists() for p in kept)


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    ds = xr.Dataset({"a": ("epoch", np.arange(3.0))})

    def full_disk(self, path, *a, **k):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(ds, tmp_path / "trials" / "k.nc")
    assert list((tmp_path / "trials").iterdir()) == []


# ------------------------------------------------------------------ durability


def _record_fsyncs(monkeypatch):
    synced: list[tuple[str, bool]] = []
    real = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), stat.S_ISDIR(st.st_mode)))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_renames_are_followed_by_an_fsync_of_the_folder(tmp_path, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    write_atomic(xr.Dataset({"a": ("epoch", np.arange(3.0))}), tmp_path / "trials" / "k.nc")
    assert (str(tmp_path / "trials"), True) in synced


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_weights_are_fsynced(tmp_path, monkeypatch):
    synced = _record_fsyncs(monkeypatch)
    state = {"w": torch.ones(3)}
    outcome = SimpleNamespace(key="sb,seed=0", initial_state=state, final_state=state, checkpoints={2: state})
    folder = save_weights(outcome, tmp_path)
    files = {p for p, is_dir in synced if not is_dir}
    for name in ("initial", "final", "epoch_2"):
        assert any(p.endswith(f".{name}.pt.tmp-{os.getpid()}") for p in files), name
        assert (folder / f"{name}.pt").exists()
    assert (str(folder), True) in synced  # the renames
    assert (str(tmp_path / "weights"), True) in synced  # the trial's new folder


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_study_folder_records_are_written_durably(reg, tmp_path, monkeypatch):
    from lbgap.driver.folder import prepare_folder

    synced = _record_fsyncs(monkeypatch)
    prepare_folder(load_study_text(KEEP, "keep.yaml", reg), tmp_path, None)
    files = {p for p, is_dir in synced if not is_dir}
    for name in ("study.json", "spec.yaml"):
        assert any(p.endswith(f".{name}.tmp-{os.getpid()}") for p in files), name
        assert (tmp_path / name).exists()
    assert (str(tmp_path), True) in synced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ which weights are kept, and checked

KEEP = """\
study: keep
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16]}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 256
  epochs: 2
variants:
  every: {keep_weights: all}
  default: {}
  nothing: {keep_weights: none}
  from_nothing: {keep_weights: none, warm_start: {variant: nothing, epochs: 1}}
seeds: [0]
"""


def _kept(out):
    return {p.name: sorted(f.name for f in p.iterdir()) for p in sorted((out / "weights").iterdir())}


@pytest.mark.parametrize("vectorize", ["auto", "off"])
def test_keep_weights_all_final_none(reg, tmp_path, vectorize):
    from lbgap.driver.dryrun import dry_run

    study = load_study_text(KEEP, str(tmp_path / "s.yaml"), reg)
    summary = run_study(study, tmp_path / "out", device="cpu", vectorize=vectorize)
    assert summary.failed == [] and summary.trained == 4
    kept = _kept(tmp_path / "out")

    def files(*names):
        return sorted([f"{n}.pt" for n in names] + [f"{n}.pt.sha256" for n in names])

    assert kept == {
        "default,seed=0": files("final", "initial"),
        "every,seed=0": files("epoch_1", "epoch_2", "final", "initial"),
        "nothing,seed=0": files("epoch_1"),  # only what from_nothing starts from
    }
    # the dry run counts the same files
    report = dry_run(study, device=torch.device("cpu"), steps=2)
    assert report.disk_estimate().weights_files == sum(n.endswith(".pt") for f in kept.values() for n in f)


def test_keep_weights_none_keeps_the_initial_weights_a_warm_start_from_epoch_0_needs(reg, tmp_path):
    text = KEEP.replace("epochs: 1}", "epochs: 0}").replace("  every: {keep_weights: all}\n  default: {}\n", "")
    run_study(load_study_text(text, str(tmp_path / "s.yaml"), reg), tmp_path / "out", device="cpu")
    assert _kept(tmp_path / "out") == {"nothing,seed=0": ["initial.pt", "initial.pt.sha256"]}


def test_save_weights_is_refused_with_its_replacement(reg, tmp_path):
    from lbgap.spec import SpecError

    for old, new in (("false", "none"), ("true", "final")):
        with pytest.raises(SpecError, match=f"save_weights was replaced by keep_weights.*keep_weights: {new}"):
            load_study_text(SPEC.replace("  epochs: 1\n", f"  epochs: 1\n  save_weights: {old}\n"),
                            str(tmp_path / "s.yaml"), reg)


def test_weights_carry_a_checksum_that_sha256sum_reads(tmp_path):
    import hashlib

    from lbgap.results import load_weights

    state = {"w": torch.arange(4.0)}
    outcome = SimpleNamespace(key="k", initial_state=state, final_state=state, checkpoints={})
    folder = save_weights(outcome, tmp_path)
    digest, name = (folder / "final.pt.sha256").read_text().split()
    assert name == "final.pt" and digest == hashlib.sha256((folder / "final.pt").read_bytes()).hexdigest()
    assert torch.equal(load_weights(folder / "final.pt")["w"], state["w"])


def _saved(tmp_path, key="sb,seed=0"):
    state = {"w": torch.arange(1000.0)}
    outcome = SimpleNamespace(key=key, initial_state=state, final_state=state, checkpoints={})
    return save_weights(outcome, tmp_path) / "final.pt"


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[data.find(np.float32(1.0).tobytes()) + 3] ^= 0xFF  # the tensor's second value, 1.0 → -4.0
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_weights_file_is_found(tmp_path):
    from lbgap.results import DamagedWeightsError, load_weights

    path = _saved(tmp_path)
    _flip_a_byte(path)
    assert torch.load(path, weights_only=True)["w"][1] == -4.0  # PyTorch alone does not notice
    with pytest.raises(DamagedWeightsError) as info:
        load_weights(path)
    text = str(info.value)
    assert str(path) in text and "truncated or corrupt" in text and "final.pt.sha256" in text
    assert f"delete {tmp_path / 'trials' / 'sb,seed=0.nc'} and {path.parent}/" in text
    assert f"lbgap study resume {tmp_path}" in text


def test_a_truncated_weights_file_is_found(tmp_path):
    from lbgap.results import DamagedWeightsError, load_weights

    path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DamagedWeightsError, match="truncated or corrupt"):
        load_weights(path)


def test_a_weights_file_without_a_checksum_loads_with_a_warning(tmp_path):
    """Weights written before checksums were recorded are used, with a warning naming the file; a
    truncated one is still refused (PyTorch cannot read it) with the same advice."""
    from lbgap.results import DamagedWeightsError, load_weights
    from lbgap.results.trialfile import UncheckedWeightsWarning

    path = _saved(tmp_path)
    (path.parent / "final.pt.sha256").unlink()
    with pytest.warns(UncheckedWeightsWarning, match="final.pt has no recorded checksum"):
        assert load_weights(path)["w"][1] == 1.0
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.warns(UncheckedWeightsWarning), pytest.raises(DamagedWeightsError, match="PyTorch cannot read it"):
        load_weights(path)


def test_a_damaged_checksum_file_is_said(tmp_path):
    from lbgap.results import DamagedWeightsError, load_weights

    path = _saved(tmp_path)
    (path.parent / "final.pt.sha256").write_text("")
    with pytest.raises(DamagedWeightsError, match="checksum file final.pt.sha256 is damaged"):
        load_weights(path)


def test_measure_names_a_damaged_weights_file(reg, tmp_path):
    out = tmp_path / "out"
    run_study(_study(reg, tmp_path), out, device="cpu")
    path = out / "weights" / "lb,seed=0" / "final.pt"
    _flip_a_byte(path)
    with pytest.raises(MeasureError, match="truncated or corrupt") as info:
        measure_study(out, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg)
    assert str(path) in str(info.value) and f"lbgap study resume {out}" in str(info.value)


def test_a_warm_start_from_a_damaged_checkpoint_fails_with_the_file_named(reg, tmp_path):
    text = KEEP.replace("  every: {keep_weights: all}\n  default: {}\n", "")
    out = tmp_path / "out"
    run_study(load_study_text(text, str(tmp_path / "s.yaml"), reg), out, device="cpu", max_trials=1)
    path = out / "weights" / "nothing,seed=0" / "epoch_1.pt"
    path.write_bytes(path.read_bytes()[:-100])
    summary = run_study(load_study_text(text, str(tmp_path / "s.yaml"), reg), out, device="cpu")
    assert summary.failed == ["from_nothing,seed=0"]
    with xr.open_dataset(out / "results.nc") as ds:
        reason = str(ds["status_reason"].sel(variant="from_nothing", seed=0).values)
    assert str(path) in reason and "truncated or corrupt" in reason


# ------------------------------------------------------------------ Optuna's record


def _trial_file(path, accuracies, status="completed"):
    ds = xr.Dataset(
        {"test_accuracy": ("epoch", np.asarray(accuracies, dtype=float)), "status": ((), status)},
        coords={"epoch": np.arange(1, len(accuracies) + 1)},
    )
    write_atomic(ds, path)


def test_a_trial_killed_after_writing_its_file_is_recorded_complete(tmp_path):
    ostudy = optuna.create_study(storage=make_storage(tmp_path, None), direction="maximize")
    done, lost, diverged = ostudy.ask(), ostudy.ask(), ostudy.ask()
    done.set_user_attr("cell", "sb,seed=0")
    lost.set_user_attr("cell", "lb,seed=0")
    diverged.set_user_attr("cell", "xl,seed=0")
    _trial_file(tmp_path / "trials" / "sb,seed=0.nc", [0.5, 0.75, math.nan])
    _trial_file(tmp_path / "trials" / "xl,seed=0.nc", [0.1], status="diverged")
    assert fail_stale_trials(ostudy) == 1  # only the trial without a file was interrupted
    by_number = {t.number: t for t in ostudy.get_trials()}
    assert by_number[done.number].state == TrialState.COMPLETE
    assert by_number[done.number].value == 0.75
    assert by_number[lost.number].state == TrialState.FAIL
    assert by_number[lost.number].user_attrs["interrupted"]
    assert by_number[diverged.number].state == TrialState.FAIL
    assert by_number[diverged.number].user_attrs["status"] == "diverged"


def test_resume_repairs_the_record_of_a_trial_killed_before_telling_optuna(reg, tmp_path, monkeypatch):
    """A run dies (like a kill) right after a trial's file is written, before Optuna is told: the
    resume counts the trial as complete, with its value, and does not train it again."""
    out = tmp_path / "out"

    def die(*_a, **_k):
        raise SystemExit("killed")

    with monkeypatch.context() as m:
        m.setattr(grid_mod, "_record", die)
        with pytest.raises(SystemExit):
            run_study(_study(reg, tmp_path), out, device="cpu", vectorize="off")
    written = sorted(p.name for p in (out / "trials").glob("*.nc"))
    assert len(written) == 1
    summary = run_study(_study(reg, tmp_path), out, device="cpu", vectorize="off")
    assert summary.trained == 1 and summary.skipped == 1
    ostudy = optuna.load_study(study_name=_name(out), storage=make_storage(out, None))
    states = {t.user_attrs["cell"]: t.state for t in ostudy.get_trials()}
    assert set(states.values()) == {TrialState.COMPLETE}, states
    first = next(t for t in ostudy.get_trials() if f"{t.user_attrs['cell']}.nc" == written[0])
    with xr.open_dataset(out / "trials" / written[0]) as ds:
        assert first.value == pytest.approx(float(ds["test_accuracy"].values[-1]))


def _name(out):
    storage = make_storage(out, None)
    (summary,) = optuna.get_all_study_summaries(storage)
    return summary.study_name


# ------------------------------------------------------------------ storage URL


def test_postgresql_url_names_the_installed_driver(monkeypatch):
    monkeypatch.setattr(storage_mod, "_importable", lambda m: m == "psycopg2")
    assert resolve_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg2://u:p@h:5432/db"
    assert resolve_url("postgres://h/db") == "postgresql+psycopg2://h/db"
    monkeypatch.setattr(storage_mod, "_importable", lambda m: m == "psycopg")
    assert resolve_url("postgresql://h/db") == "postgresql+psycopg://h/db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(StorageError, match="psycopg2 is not installed"):
        resolve_url("postgresql+psycopg2://h/db")


def test_a_missing_postgresql_driver_is_said_before_any_folder_is_written(reg, tmp_path, monkeypatch):
    monkeypatch.setattr(storage_mod, "_importable", lambda m: False)
    out = tmp_path / "out"
    with pytest.raises(StorageError, match=r"no PostgreSQL driver .*pip install 'lbgap\[postgres\]'"):
        run_study(_study(reg, tmp_path), out, device="cpu", storage="postgresql://lbgap@127.0.0.1:1/postgres")
    assert not out.exists()


def test_the_storage_error_is_a_usage_error_of_the_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lbgap.cli.main import app

    monkeypatch.setattr(storage_mod, "_importable", lambda m: False)
    (tmp_path / "s.yaml").write_text(SPEC)
    res = CliRunner().invoke(app, ["study", "run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"),
                                   "--storage", "postgresql://lbgap@127.0.0.1:1/postgres", "--no-report"])
    assert res.exit_code == 2, res.output
    assert "`postgres` extra (psycopg2-binary)" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ disk budget


def test_the_dry_run_estimates_the_disk_a_study_writes(reg, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from lbgap.driver.dryrun import WEIGHTS_FILE_OVERHEAD, dry_run

    report = dry_run(_study(reg, tmp_path), device=torch.device("cpu"), steps=2)
    est = report.disk_estimate()
    n_params = report.results[0].result.n_params
    assert n_params == 64 * 16 + 16 + 16 * 10 + 10
    assert est.weights_files == 2 * 2  # two trials, initial and final weights
    assert est.weights == 4 * (4 * n_params + WEIGHTS_FILE_OVERHEAD)
    assert est.trial_files > 0 and report.disk_bytes == est.total
    # a real run writes no more than the estimate
    out = tmp_path / "out"
    run_study(_study(reg, tmp_path), out, device="cpu")
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix in (".pt", ".nc"))
    assert written <= est.total
    weights = sum(p.stat().st_size for p in (out / "weights").rglob("*.pt"))
    assert est.weights / 2 <= weights <= est.weights
    assert report.disk_warning(tmp_path / "new" / "folder") is None
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 1000, 1000))
    warning = report.disk_warning(tmp_path / "new" / "folder")
    assert "only 1.0 KB is free" in warning and "keep_weights" in warning


# ------------------------------------------------------------------ full disk, signals (end to end)


def _lbgap(cwd, *args, limit=None, wait=True):
    import resource
    import signal
    import subprocess
    import sys

    def limited():
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lbgap", *args], cwd=cwd, env=env, preexec_fn=limited,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        proc.out, proc.err = proc.communicate(timeout=600)
    return proc


@pytest.fixture(scope="module")
def reference(reg, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return run_study(load_study_text(SPEC, str(out / "s.yaml"), reg), out / "run", device="cpu").results


def _same(reference, path):
    with xr.open_dataset(reference) as a, xr.open_dataset(path) as b:
        for name in ("train_loss", "test_accuracy", "weight_distance"):
            xr.testing.assert_equal(a[name], b[name])


def _partial(folder):
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


@pytest.mark.slow  # three lbgap processes: about 45 s
@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
def test_a_full_disk_while_trial_files_are_written_keeps_nothing_partial_and_resumes(reference, tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC)
    run = _lbgap(tmp_path, "study", "run", "s.yaml", "--out", "out", "--no-report", "--device", "cpu",
                 "--jobs", "1", limit=20_000)  # room for weights and the journal, not for a trial file
    assert run.returncode == 1, run.err
    assert "2 trial(s) failed" in run.err and "resume" in run.err
    out = tmp_path / "out"
    assert not list((out / "trials").glob("*.nc")) and not _partial(out)
    res = _lbgap(tmp_path, "study", "resume", "out", "--no-report", "--device", "cpu")
    assert res.returncode == 0, res.err
    _same(reference, out / "results.nc")


@pytest.mark.slow  # three lbgap processes: about 45 s
@pytest.mark.skipif(os.name != "posix", reason="needs RLIMIT_FSIZE")
def test_a_full_disk_while_results_are_combined_keeps_every_trial_and_resumes(reference, tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC)
    run = _lbgap(tmp_path, "study", "run", "s.yaml", "--out", "out", "--no-report", "--device", "cpu",
                 "--jobs", "1", limit=60_000)  # room for each trial file (~40 kB), not for results.nc
    # a clear error that says what is kept and what to do, not a traceback
    assert run.returncode == 1 and "Traceback" not in run.err, run.err
    assert "could not write" in run.err and "results.nc" in run.err and "lbgap study resume" in run.err, run.err
    out = tmp_path / "out"
    done = {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.nc")}
    assert len(done) == 2 and not (out / "results.nc").exists() and not _partial(out)
    res = _lbgap(tmp_path, "study", "resume", "out", "--no-report", "--device", "cpu")
    assert res.returncode == 0, res.err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.nc")} == done  # nothing retrained
    _same(reference, out / "results.nc")


LONG = SPEC.replace("epochs: 1", "epochs: 60")


@pytest.fixture(scope="module")
def long_reference(reg, tmp_path_factory):
    out = tmp_path_factory.mktemp("long_reference")
    return run_study(load_study_text(LONG, str(out / "s.yaml"), reg), out / "run", device="cpu").results


@pytest.mark.slow  # two lbgap processes and a reference run: about a minute
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_during_a_trial_loses_only_that_trial(signame, long_reference, tmp_path):
    import signal
    import time

    (tmp_path / "s.yaml").write_text(LONG)
    proc = _lbgap(tmp_path, "study", "run", "s.yaml", "--out", "out", "--no-report", "--device", "cpu",
                  "--jobs", "1", "--vectorize", "off", wait=False)
    trials = tmp_path / "out" / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and not list(trials.glob("*.nc")):
        time.sleep(0.05)
    time.sleep(0.1)  # into the second trial
    proc.send_signal(getattr(signal, signame))
    _out, err = proc.communicate(timeout=120)
    done = {p.name: p.stat().st_mtime_ns for p in trials.glob("*.nc")}
    assert len(done) == 1, "the run finished before the signal"
    if signame == "SIGINT":
        assert proc.returncode == 130, err
        assert "finished trials are kept" in err and "lbgap study resume" in err
    else:
        assert proc.returncode == -signal.SIGTERM
    assert not (tmp_path / "out" / "results.nc").exists()
    res = _lbgap(tmp_path, "study", "resume", "out", "--no-report", "--device", "cpu")
    assert res.returncode == 0, res.err
    assert {k: v for k, v in ((p.name, p.stat().st_mtime_ns) for p in trials.glob("*.nc")) if k in done} == done
    _same(long_reference, tmp_path / "out" / "results.nc")


# ------------------------------------------------------------------ damaged trial files


def test_a_truncated_trial_file_is_named_moved_aside_and_trained_again(reg, tmp_path):
    from lbgap.results.combine import DamagedTrialFiles

    out = tmp_path / "out"
    first = run_study(_study(reg, tmp_path), out, device="cpu")
    with xr.open_dataset(first.results) as ds:
        before = ds["test_accuracy"].load()
    victim = out / "trials" / "lb,seed=0.nc"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedTrialFiles, match=r"lb,seed=0\.nc.*resume the study"):
        run_study(_study(reg, tmp_path), out, device="cpu")
    assert not victim.exists() and len(list((out / "trials" / "damaged").iterdir())) == 1
    again = run_study(_study(reg, tmp_path), out, device="cpu")
    assert again.trained == 1 and again.skipped == 1
    with xr.open_dataset(again.results) as ds:
        xr.testing.assert_equal(ds["test_accuracy"].load(), before)


def test_trial_files_carry_a_checksum(tmp_path):
    import netCDF4

    write_atomic(xr.Dataset({"a": ("epoch", np.arange(3.0))}), tmp_path / "k.nc")
    with netCDF4.Dataset(tmp_path / "k.nc") as nc:
        assert nc["a"].filters()["fletcher32"]
