"""Optuna storages: an embedded journal file by default, an RDB URL for many workers.

The embedded journal ``DIR/optuna.journal`` is shared by the worker processes of
``lbgap study run --jobs N`` through Optuna's own file lock
(:class:`~optuna.storages.journal.JournalFileOpenLock`: a lock file created with
``O_EXCL`` around each append). A worker killed while it holds that lock (a few
milliseconds per write) leaves the lock file behind; the other workers take it over
after :data:`JOURNAL_LOCK_GRACE_S` seconds without change (Optuna's grace period), so
they wait but never hang, and the next run removes it at once (:func:`claim_folder`).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Optional

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState

__all__ = [
    "make_storage",
    "fail_stale_trials",
    "is_embedded",
    "claim_folder",
    "FolderBusyError",
    "folder_lock",
    "JOURNAL_LOCK_GRACE_S",
]

log = logging.getLogger(__name__)

#: seconds after which a journal lock file left unchanged (by a killed worker) is taken over
JOURNAL_LOCK_GRACE_S = 30


def is_embedded(url: Optional[str]) -> bool:
    return url is None or url.startswith("journal:")


class FolderBusyError(RuntimeError):
    """Another process is running the study in this folder."""


def claim_folder(out_dir: Path):
    """Hold an exclusive lock on ``out_dir`` for this process's lifetime.

    One run (one process, and the workers it starts) uses an embedded study at a
    time. The lock is an ``flock`` on ``out_dir/.lbgap.lock``, which the kernel
    releases when the process dies, even by ``kill -9``; it is not inherited by
    the workers. Once it is held, no worker of an earlier run is alive (a worker
    dies with its parent), so Optuna's own journal lock files are necessarily
    stale (left by a killed run) and are removed, and a journal line cut short
    by the kill is dropped.
    """
    import fcntl

    out_dir = Path(out_dir)
    handle = open(out_dir / ".lbgap.lock", "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise FolderBusyError(f"another lbgap process is running the study in {out_dir}") from None
    journal = out_dir / "optuna.journal"
    for stale in out_dir.glob("optuna.journal.lock*"):
        log.info("removing the stale journal lock %s", stale)
        stale.unlink(missing_ok=True)
    if journal.exists() and journal.stat().st_size:
        data = journal.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("dropping a journal line cut short by an interrupted run")
            with open(journal, "r+b") as fh:
                fh.truncate(cut)
    return handle


@contextlib.contextmanager
def folder_lock(out_dir: Path, name: str = ".lbgap.enqueue.lock"):
    """A blocking exclusive ``flock`` on a file in ``out_dir``: workers sharing
    a study take turns to enqueue its cells, so each cell is queued once."""
    import fcntl

    with open(Path(out_dir) / name, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def make_storage(out_dir: Path, url: Optional[str]) -> optuna.storages.BaseStorage:
    """``url`` None: a journal file inside ``out_dir``, shared by the workers of one
    run through Optuna's journal lock. Otherwise an RDB URL (``postgresql://...``) with heartbeats, so trials of a
    worker that died are failed and retried by the others."""
    if is_embedded(url):
        path = Path(out_dir) / "optuna.journal"
        lock = JournalFileOpenLock(str(path), grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    import random
    import time
    import warnings

    from sqlalchemy.exc import DBAPIError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(8):
            try:
                return RDBStorage(
                    url,
                    heartbeat_interval=30,
                    grace_period=90,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
                    engine_kwargs={"pool_pre_ping": True},
                )
            except DBAPIError as exc:
                # workers starting together race to create the schema: the
                # loser sees a duplicate type or table; the schema is there now
                if attempt == 7:
                    raise
                log.info("storage not ready (%s); retrying", type(exc.orig).__name__)
                time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")  # pragma: no cover


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark RUNNING trials as FAIL (embedded storage: nobody else runs them).

    Called when a run starts on an output folder that an interrupted run
    (Ctrl-C, kill -9) left behind, before it starts any worker, and by a run
    with workers once they have all exited (the trials of a worker that died).
    """
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    if n:
        log.info("marked %d interrupted trial(s) as failed", n)
    return n
