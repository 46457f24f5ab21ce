"""Several worker processes share one study through a real PostgreSQL server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import xarray as xr

pytestmark = pytest.mark.postgres

STUDY = """\
study: workers
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [32], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 3
  keep_weights: none
variants:
  sb: {}
  lb: {batch_size: 512}
grid:
  optimizer.lr: [0.05, 0.1]
seeds: [0, 1]
"""


def _run(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "lbgap", "study", "run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_share_a_study(postgres_url, tmp_path):
    (tmp_path / "s.yaml").write_text(STUDY)
    args = ["s.yaml", "--out", "shared", "--no-report", "--device", "cpu", "--storage", postgres_url]
    workers = [_run(args, tmp_path) for _ in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    for w, (_o, e) in zip(workers, outs, strict=False):
        assert w.returncode == 0, e
    # each of the 8 cells was trained by one of the workers, and the study is complete
    storage = optuna.storages.RDBStorage(postgres_url)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len({t.user_attrs["cell"] for t in done}) == 8
    assert len(trials) == 8  # each cell queued once, although both workers enqueue
    trained = sum(o.count("completed ") for o, _e in outs) + sum(e.count("completed ") for _o, e in outs)
    assert trained == 8  # no cell trained twice
    assert (tmp_path / "shared" / "results.nc").exists()
    # the same results as one embedded worker
    single = _run(["s.yaml", "--out", "single", "--no-report", "--device", "cpu"], tmp_path)
    _o, e = single.communicate(timeout=600)
    assert single.returncode == 0, e
    a = xr.open_dataset(tmp_path / "shared" / "results.nc")
    b = xr.open_dataset(tmp_path / "single" / "results.nc")
    xr.testing.assert_equal(a["test_accuracy"], b["test_accuracy"])


def test_the_documented_postgresql_url_works(postgres_url, tmp_path):
    """`--storage postgresql://…` (no driver named, as the user guide writes it) uses the driver installed."""
    from lbgap.driver.run import run_study
    from lbgap.registry import load_registry
    from lbgap.spec import load_study_text

    plain = "postgresql://" + postgres_url.split("://", 1)[1]
    text = STUDY.replace("study: workers", "study: plain_url").replace("epochs: 3", "epochs: 1")
    text = text.replace("seeds: [0, 1]", "seeds: [0]").replace("optimizer.lr: [0.05, 0.1]", "optimizer.lr: [0.1]")
    study = load_study_text(text, str(tmp_path / "s.yaml"), load_registry())
    summary = run_study(study, tmp_path / "out", device="cpu", storage=plain)
    assert summary.results is not None and summary.trained == 2
    (s,) = [s for s in optuna.get_all_study_summaries(plain.replace("postgresql://", "postgresql+psycopg2://"))
            if s.study_name.startswith("plain_url-")]
    assert s.n_trials == 2


def test_the_trial_of_a_dead_worker_is_failed_and_queued_again(postgres_url, monkeypatch):
    """A worker killed with -9 stops beating: after the grace period its trial is failed and queued
    again with its cell, for another worker to take; a live worker's trial keeps running."""
    import signal
    import time

    from optuna.trial import TrialState

    from lbgap.driver.storage import make_storage

    monkeypatch.setenv("LBGAP_HEARTBEAT_S", "1")
    ostudy = optuna.create_study(storage=make_storage(None, postgres_url), study_name="heartbeats",
                                 direction="maximize")
    ostudy.enqueue_trial({}, user_attrs={"cell": "sb,seed=0"})
    ostudy.enqueue_trial({}, user_attrs={"cell": "lb,seed=0"})
    alive = ostudy.ask()
    script = (
        "import sys, time, optuna\n"
        "from lbgap.driver.storage import make_storage\n"
        f"s = optuna.load_study(study_name='heartbeats', storage=make_storage(None, {postgres_url!r}))\n"
        "t = s.ask(); print(t.user_attrs['cell'], flush=True); time.sleep(600)\n"
    )
    env = {**os.environ, "LBGAP_HEARTBEAT_S": "1"}
    worker = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert worker.stdout.readline().strip() == "lb,seed=0"
    time.sleep(2)
    assert {t.state for t in ostudy.get_trials()} == {TrialState.RUNNING}  # both beat
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(4.5)  # the grace period (3 intervals) and one more check
    trials = ostudy.get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert [t.number for t in by_state[TrialState.RUNNING]] == [alive.number]
    (dead,) = by_state[TrialState.FAIL]
    assert dead.user_attrs["cell"] == "lb,seed=0" and dead.user_attrs["interrupted"]
    (again,) = by_state[TrialState.WAITING]
    assert again.user_attrs["cell"] == "lb,seed=0"
    ostudy.tell(alive, 1.0)


@pytest.mark.slow  # four workers training on a real server: a minute or more
def test_four_workers_survive_a_killed_worker_and_a_server_restart(postgres_url, tmp_path):
    """Four workers on one study; one is killed -9 mid-trial and the server restarts mid-study.
    The dead worker's trial is retried by another (heartbeats), a worker whose query the restart
    cut ends with the error, and a last run finishes: every cell has exactly one result."""
    import signal
    import time

    from optuna.trial import TrialState

    (tmp_path / "s.yaml").write_text(STUDY.replace("epochs: 3", "epochs: 25").replace("study: workers", "study: faults"))
    # one trial per worker (no vectorized groups): four RUNNING trials are one in each worker's hands
    args = ["s.yaml", "--out", "shared", "--no-report", "--device", "cpu", "--storage", postgres_url, "--vectorize", "off"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LBGAP_HEARTBEAT_S": "2"}  # grace 6 s: longer than a restart

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "lbgap", "study", "run", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def trials() -> list:
        storage = optuna.storages.RDBStorage(postgres_url)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("faults-")]
        return optuna.load_study(study_name=names[0], storage=storage).trials if names else []

    workers = [start() for _ in range(4)]
    deadline = time.time() + 300
    running: list = []
    while time.time() < deadline and len(running) < 4:
        running = [t for t in trials() if t.state == TrialState.RUNNING]
        time.sleep(0.2)
    assert len(running) == 4, "the four workers did not each take a trial"
    os.kill(workers[0].pid, signal.SIGKILL)
    time.sleep(1.0)
    postgres_url.restart()
    outs = [w.communicate(timeout=600) for w in workers[1:]]
    outs.insert(0, workers[0].communicate(timeout=60))  # what the killed worker said before it died
    final = start()  # what a user does once the workers have ended: run (resume) the study again
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err + "\n".join(e for _o, e in outs)
    outs.append((out, err))
    assert (tmp_path / "shared" / "results.nc").exists()
    everything = trials()
    done = [t for t in everything if t.state == TrialState.COMPLETE]
    cells = [t.user_attrs["cell"] for t in done]
    assert sorted(cells) == sorted(set(cells)) and len(cells) == 8, cells  # one result per cell
    assert len(list((tmp_path / "shared" / "trials").glob("*.nc"))) == 8
    ds = xr.open_dataset(tmp_path / "shared" / "results.nc")
    assert (ds["status"].values == "completed").all()

    # nothing was trained twice. A worker takes an Optuna trial (WAITING → RUNNING, one worker only)
    # before it trains its cell, so the trials that left WAITING are the trainings started: per cell,
    # one that ended and told its result, and any number cut short before their last epoch: lost with
    # their worker (the killed one; failed as interrupted by the heartbeat check) or failed with the
    # error of a query the restart cut (user attribute error), each before its retry was queued
    started: dict[str, list] = {}
    for t in everything:
        if t.state != TrialState.WAITING:
            started.setdefault(t.user_attrs["cell"], []).append(t)
    assert sorted(started) == sorted(cells)
    lost = []
    for cell, attempts in started.items():
        finished = [t for t in attempts if "status" in t.user_attrs]  # set when the training ended
        assert len(finished) == 1 and finished[0].state == TrialState.COMPLETE, (cell, attempts)
        others = [t for t in attempts if t is not finished[0]]
        for t in others:
            assert t.state == TrialState.FAIL, (cell, t.number, t.state)
            assert t.user_attrs.get("interrupted") or "error" in t.user_attrs, (cell, t.number, t.user_attrs)
        assert all(t.number < finished[0].number for t in others), "a retry was queued before its trial was lost"
        assert all(len(t.intermediate_values) < 25 for t in others), "a lost trial had trained every epoch"
        lost += others
    # the killed worker's trial was one of the four taken when it was killed, and it was lost
    interrupted = {t.number for t in lost if t.user_attrs.get("interrupted")}
    assert interrupted & {t.number for t in running}, ("the killed worker's trial is not counted lost", lost)
    assert sum(len(a) for a in started.values()) == 8 + len(lost)
    # and every process's report says each cell was trained to the end exactly once
    text = "\n".join(o + "\n" + e for o, e in outs)
    for cell in cells:
        ended = re.findall(rf"^(?:completed|stopped|diverged|failed)\s+{re.escape(cell)}\s", text, re.MULTILINE)
        assert len(ended) == 1, (cell, ended)
