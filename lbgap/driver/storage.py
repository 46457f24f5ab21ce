"""Optuna storages: an embedded journal file by default, an RDB URL for many workers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

__all__ = ["make_storage", "fail_stale_trials", "is_embedded"]

log = logging.getLogger(__name__)


def is_embedded(url: Optional[str]) -> bool:
    return url is None or url.startswith("journal:")


def make_storage(out_dir: Path, url: Optional[str]) -> optuna.storages.BaseStorage:
    """``url`` None: a journal file inside ``out_dir`` (one process at a time).
    Otherwise an RDB URL (``postgresql://...``) with heartbeats, so trials of a
    worker that died are failed and retried by the others."""
    if is_embedded(url):
        path = Path(out_dir) / "optuna.journal"
        return JournalStorage(JournalFileBackend(str(path)))
    return RDBStorage(
        url,
        heartbeat_interval=30,
        grace_period=90,
        failed_trial_callback=RetryFailedTrialCallback(max_retry=2),
        engine_kwargs={"pool_pre_ping": True},
    )


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark RUNNING trials as FAIL (embedded storage: nobody else runs them).

    Called when a run starts on an output folder that an interrupted run
    (Ctrl-C, kill -9) left behind.
    """
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    if n:
        log.info("marked %d interrupted trial(s) as failed", n)
    return n
