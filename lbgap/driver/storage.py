"""Optuna storages: an embedded journal file by default, an RDB URL for many workers.

The embedded journal ``DIR/optuna.journal`` is shared by the worker processes of
``lbgap study run --jobs N`` through Optuna's own file lock
(:class:`~optuna.storages.journal.JournalFileOpenLock`: a lock file created with
``O_EXCL`` around each append). A worker killed while it holds that lock (a few
milliseconds per write) leaves the lock file behind; the other workers take it over
after :data:`JOURNAL_LOCK_GRACE_S` seconds without change (Optuna's grace period), so
they wait but never hang, and the next run removes it at once (:func:`claim_folder`).

A PostgreSQL URL may name its driver (``postgresql+psycopg2://``, ``postgresql+psycopg://``) or
not (``postgresql://``, as documented): then the driver installed is used (psycopg2, else psycopg 3;
``pip install 'lbgap[postgres]'`` installs one). :func:`check_storage` opens the storage before a
run writes anything, so a bad URL or a missing driver leaves no output folder behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "make_storage",
    "fail_stale_trials",
    "is_embedded",
    "claim_folder",
    "FolderBusyError",
    "folder_lock",
    "JOURNAL_LOCK_GRACE_S",
    "StorageError",
    "resolve_url",
    "check_storage",
    "remove_temporary_files",
    "retry_dead_trials",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_GRACE_S",
]

log = logging.getLogger(__name__)

#: seconds after which a journal lock file left unchanged (by a killed worker) is taken over
JOURNAL_LOCK_GRACE_S = 30
#: an RDB storage's trials beat this often while they train (environment: ``LBGAP_HEARTBEAT_S``) ...
HEARTBEAT_INTERVAL_S = 30
#: ... and a RUNNING trial without a beat for this long (3 intervals) belongs to a dead worker
HEARTBEAT_GRACE_S = 90
#: times a dead worker's trial is queued again before it stays failed
MAX_RETRY = 2


def _heartbeat_settings() -> tuple[int, int]:
    import os

    try:
        interval = int(os.environ.get("LBGAP_HEARTBEAT_S", ""))
    except ValueError:
        return HEARTBEAT_INTERVAL_S, HEARTBEAT_GRACE_S
    return (interval, 3 * interval) if interval > 0 else (HEARTBEAT_INTERVAL_S, HEARTBEAT_GRACE_S)


class _BeatingRDBStorage(RDBStorage):
    """An RDB storage whose RUNNING trials beat while their process lives, and which queues again
    the trials of dead workers.

    Optuna records heartbeats only inside ``Study.optimize``; lbgap takes trials with ``ask()``.
    Here every trial this process takes (popped from the queue or created RUNNING) gets a daemon
    thread that records its heartbeat every interval until the trial is finished; the thread dies
    with the process, even by ``kill -9``. Each time the trials are read (at most once an
    interval), RUNNING trials without a beat for the grace period are failed and queued again with
    their parameters and user attributes (the cell), at most :data:`MAX_RETRY` times.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import threading

        super().__init__(*args, **kwargs)
        self._beats: dict[int, Any] = {}
        self._beats_lock = threading.Lock()
        self._last_check: dict[int, float] = {}

    # -- beating
    def create_new_trial(self, study_id: int, template_trial: Optional[FrozenTrial] = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self._start_beat(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        done = super().set_trial_state_values(trial_id, state, values)
        if state == TrialState.RUNNING and done:
            self._start_beat(trial_id)
        elif state.is_finished():
            self._stop_beat(trial_id)
        return done

    def _start_beat(self, trial_id: int) -> None:
        import threading

        interval = self.get_heartbeat_interval()
        if not interval:
            return
        stop = threading.Event()
        with self._beats_lock:
            if trial_id in self._beats:
                return
            self._beats[trial_id] = stop
        self.record_heartbeat(trial_id)

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self.record_heartbeat(trial_id)
                except Exception as exc:  # the server restarting: beat again at the next interval
                    log.warning("heartbeat of trial id %d not recorded: %s", trial_id, exc)

        threading.Thread(target=beat, name=f"lbgap-heartbeat-{trial_id}", daemon=True).start()

    def _stop_beat(self, trial_id: int) -> None:
        with self._beats_lock:
            stop = self._beats.pop(trial_id, None)
        if stop is not None:
            stop.set()

    # -- the trials of dead workers
    def _get_trials(self, study_id: int, *args: Any, **kwargs: Any) -> Any:
        self._retry_dead(study_id)
        return super()._get_trials(study_id, *args, **kwargs)

    def _retry_dead(self, study_id: int, force: bool = False) -> None:
        import time

        interval = self.get_heartbeat_interval() or 0
        now = time.monotonic()
        if not force and now - self._last_check.get(study_id, -math.inf) < interval:
            return
        self._last_check[study_id] = now
        for trial_id in self._get_stale_trial_ids(study_id):
            try:
                RDBStorage.set_trial_user_attr(self, trial_id, "interrupted", True)
                if not RDBStorage.set_trial_state_values(self, trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker failed it first, and queues it
            dead = self.get_trial(trial_id)
            history = [*dead.system_attrs.get("retry_history", []), dead.number]
            log.warning("trial %d (%s) lost its worker", dead.number, dead.user_attrs.get("cell", "?"))
            if len(history) > MAX_RETRY:
                continue
            template = optuna.trial.create_trial(
                state=TrialState.WAITING, params=dead.params, distributions=dead.distributions,
                user_attrs=dead.user_attrs,
                system_attrs={**dead.system_attrs, "failed_trial": dead.number, "retry_history": history},
            )
            RDBStorage.create_new_trial(self, study_id, template)


def is_embedded(url: Optional[str]) -> bool:
    return url is None or url.startswith("journal:")


class FolderBusyError(RuntimeError):
    """Another process is running the study in this folder."""


class StorageError(ValueError):
    """The Optuna storage URL cannot be used (no driver installed, the server cannot be reached...)."""


#: PostgreSQL drivers SQLAlchemy knows, by the module to import, in the order they are preferred
_PG_DRIVERS = (("psycopg2", "psycopg2"), ("psycopg", "psycopg"))
_PG_HINT = "install lbgap's `postgres` extra (psycopg2-binary): pip install 'lbgap[postgres]'"


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_url(url: str) -> str:
    """``url`` with a PostgreSQL driver named: ``postgresql://`` (or ``postgres://``) becomes
    ``postgresql+psycopg2://`` if psycopg2 is installed, else ``postgresql+psycopg://`` if psycopg 3 is;
    other URLs are returned as they are. Raises :class:`StorageError` when the driver is missing."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    dialect, _, driver = scheme.partition("+")
    if dialect not in ("postgresql", "postgres"):
        return url
    if driver:
        module = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000", "asyncpg": "asyncpg"}.get(driver)
        if module is not None and not _importable(module):
            raise StorageError(f"--storage {scheme}://...: the PostgreSQL driver {module} is not installed; {_PG_HINT}")
        return f"postgresql+{driver}://{rest}"
    for name, module in _PG_DRIVERS:
        if _importable(module):
            return f"postgresql+{name}://{rest}"
    raise StorageError(f"--storage postgresql://...: no PostgreSQL driver (psycopg2 or psycopg) is installed; {_PG_HINT}")


def _shown(url: str) -> str:
    """``url`` with its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def check_storage(url: Optional[str]) -> None:
    """Open the storage of ``url`` once (an RDB URL: its driver is installed and the server
    answers) before anything is written; raise :class:`StorageError` with the reason otherwise.
    The embedded journal (``url`` None) needs nothing."""
    if is_embedded(url):
        return
    assert url is not None
    _open_rdb(url)


def _open_rdb(
    url: str, heartbeat_interval: Optional[int] = None, grace_period: Optional[int] = None
) -> optuna.storages.BaseStorage:
    import random
    import time
    import warnings

    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    resolved = resolve_url(url)
    default_interval, default_grace = _heartbeat_settings()
    heartbeat_interval = heartbeat_interval or default_interval
    grace_period = grace_period or default_grace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(8):
            try:
                return _BeatingRDBStorage(
                    resolved,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
                    engine_kwargs={"pool_pre_ping": True},
                )
            except DBAPIError as exc:
                # workers starting together race to create the schema: the
                # loser sees a duplicate type or table; the schema is there now
                if attempt == 7:
                    raise StorageError(f"--storage {_shown(url)}: cannot open the storage: {exc.orig}") from exc
                log.info("storage not ready (%s); retrying", type(exc.orig).__name__)
                time.sleep(0.2 + random.random())
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise StorageError(f"--storage {_shown(url)}: not a usable storage URL: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover


def claim_folder(out_dir: Path):
    """Hold an exclusive lock on ``out_dir`` for this process's lifetime.

    One run (one process, and the workers it starts) uses an embedded study at a
    time. The lock is an ``flock`` on ``out_dir/.lbgap.lock``, which the kernel
    releases when the process dies, even by ``kill -9``; it is not inherited by
    the workers. Once it is held, no worker of an earlier run is alive (a worker
    dies with its parent), so Optuna's own journal lock files are necessarily
    stale (left by a killed run) and are removed, a journal line cut short
    by the kill is dropped, and the temporary files of writers it killed
    (``.<name>.tmp-<pid>``: of ``results.nc``, trial files, weights, measured
    variables) are removed (:func:`remove_temporary_files`). ``lbgap measure``
    holds the same lock while it writes.
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
    remove_temporary_files(out_dir)
    return handle


def _writer_alive(path: Path) -> bool:
    """Whether another live process of this machine has the pid that ``.<name>.tmp-<pid>`` names
    (a writer that shares the folder without its lock, such as a PostgreSQL worker)."""
    import os

    try:
        pid = int(path.name.rsplit(".tmp-", 1)[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():  # a killed writer of an earlier run (pids repeat in containers)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_temporary_files(out_dir: Path) -> int:
    """Remove the partial files (``.<name>.tmp-<pid>``) that writers killed mid-write left in
    ``out_dir``, ``trials/``, ``measured/`` and each trial's folder of ``weights/``; return how
    many. Call it while holding the folder (:func:`claim_folder`); a file whose pid is that of another
    live process of this machine is left alone."""
    from ..results.trialfile import is_temporary

    out_dir = Path(out_dir)
    folders = [out_dir, out_dir / "trials", out_dir / "measured"]
    weights = out_dir / "weights"
    if weights.is_dir():
        folders += [p for p in weights.iterdir() if p.is_dir()]
    n = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if is_temporary(path) and path.is_file() and not _writer_alive(path):
                log.info("removing %s, left by an interrupted writer", path)
                path.unlink(missing_ok=True)
                n += 1
    if n:
        log.warning("removed %d partial file(s) left by an interrupted run", n)
    return n


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
    run through Optuna's journal lock. Otherwise an RDB URL (``postgresql://...``, see :func:`resolve_url`) with
    heartbeats, so trials of a worker that died are failed and retried by the others."""
    if is_embedded(url):
        path = Path(out_dir) / "optuna.journal"
        lock = JournalFileOpenLock(str(path), grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    assert url is not None
    return _open_rdb(url)


def retry_dead_trials(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose heartbeat stopped more than the grace period ago (their worker
    died) and queue each again with the same parameters and user attributes; nothing for the
    embedded journal. lbgap's RDB storage does this by itself whenever it reads the trials."""
    import warnings

    backend = getattr(study._storage, "_backend", study._storage)
    if isinstance(backend, _BeatingRDBStorage):
        backend._retry_dead(study._study_id, force=True)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def fail_stale_trials(study: optuna.Study) -> int:
    """Settle RUNNING trials (embedded storage: nobody else runs them); return how many were failed.

    Called when a run starts on an output folder that an interrupted run
    (Ctrl-C, kill -9) left behind, before it starts any worker, and by a run
    with workers once they have all exited (the trials of a worker that died).
    A grid cell's trial whose result file was written before the kill (killed
    between writing the file and telling Optuna) is marked COMPLETE with the
    file's final test accuracy, as the run would have told it (FAIL if the file
    says the trial diverged or has no accuracy); the others are marked FAIL.
    """
    trials_dir = _trials_dir(study)
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trials_dir is not None and _complete_from_file(study, t, trials_dir):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    if n:
        log.info("marked %d interrupted trial(s) as failed", n)
    return n


def _trials_dir(study: optuna.Study) -> Optional[Path]:
    """The ``trials/`` folder of an embedded study (next to its journal file), or None."""
    backend = getattr(study._storage, "_backend", None)
    path = getattr(backend, "_file_path", None)
    return Path(path).parent / "trials" if path else None


def _complete_from_file(study: optuna.Study, t: optuna.trial.FrozenTrial, trials_dir: Path) -> bool:
    """Tell Optuna how the RUNNING trial ``t`` ended if its cell's result file exists; return whether it did."""
    import math

    from ..results.trialfile import trial_file_value

    key = t.user_attrs.get("cell")
    if not isinstance(key, str) or "/" in key or key.startswith("."):
        return False
    path = trials_dir / f"{key}.nc"
    if not path.is_file():
        return False
    try:
        status, value = trial_file_value(path)
    except Exception as exc:  # an unreadable file: the trial is failed and the run decides about the file
        log.warning("cannot read %s (%s)", path, exc)
        return False
    storage = study._storage
    storage.set_trial_user_attr(t._trial_id, "status", status)
    storage.set_trial_user_attr(t._trial_id, "recovered_from_file", True)
    if status == "diverged" or math.isnan(value):
        storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    else:
        storage.set_trial_state_values(t._trial_id, state=TrialState.COMPLETE, values=[value])
    log.info("trial %d (%s) finished before the interruption: recorded from its file", t.number, key)
    return True
