"""Drive a study through Optuna: enqueue grid cells or sample a search,
train each trial with the engine, write per-trial files, combine.

Per-trial result files are the source of truth for what is done: a run on
an existing output folder (``lbgap study resume DIR`` or the same ``study
run`` again) trains only the cells without a file, so an interrupted study
finishes with the same results as an uninterrupted one.

The work is split by job: :mod:`.cells` (a grid's cells, their coordinates and order),
:mod:`.runner` (train and save one cell or a group), :mod:`.grid` (the grid loop),
:mod:`.search` (Optuna searches), :mod:`.warmstart`, :mod:`.parallel` (data-parallel trials),
:mod:`.workers` (several processes), :mod:`.folder`, :mod:`.optuna_study` and :mod:`.storage`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import optuna
import torch

from ..spec.load import Study
from .folder import StudyFolderError, prepare_folder
from .grid import run_grid
from .progress import NullReporter, Reporter
from .runner import Runner, RunSummary, resolve_device
from .search import run_search
from .storage import FolderBusyError, StorageError, check_storage, claim_folder, is_embedded

__all__ = [
    "run_study", "resolve_device", "default_jobs", "StudyFolderError", "FolderBusyError", "StorageError", "RunSummary",
]

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_jobs(device: str = "auto", *, threads: int = 1, storage: Optional[str] = None, nproc: int = 1) -> int:
    """Worker processes ``lbgap study run`` starts without ``--jobs``.

    On the CPU, every core this process may use at ``threads`` threads each; one worker per
    GPU for ``--device cuda`` (or ``auto``) on a machine with several. One where a trial
    already spans processes (``nproc > 1``) or the storage is a server's (``--storage``:
    there, workers are started as separate commands).
    """
    if nproc > 1 or not is_embedded(storage):
        return 1
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.device_count() if dev.index is None else 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))


def run_study(
    study: Study,
    out_dir: Path,
    *,
    device: str = "auto",
    storage: Optional[str] = None,
    reporter: Optional[Reporter] = None,
    max_trials: Optional[int] = None,
    nproc: int = 1,
    jobs: int = 1,
    threads: int = 1,
    vectorize: Optional[str] = None,
) -> RunSummary:
    """Run (or continue) ``study`` in ``out_dir`` and return a summary.

    ``max_trials`` stops after that many trials are trained in this call (the
    rest remain queued for a later run). ``nproc > 1`` trains every trial
    data-parallel on that many processes launched with ``torchrun`` (grid
    studies, and searches without a pruner).

    ``jobs > 1`` trains up to that many cells of a grid study at once, in worker
    processes (:mod:`lbgap.driver.workers`) that share the study's storage, each
    with ``threads`` torch threads; the results are those of ``jobs=1``. A search
    runs its trials one after another whatever ``jobs`` is: each trial's
    parameters depend on the results of the trials before it.

    ``vectorize`` (``"auto"`` or ``"off"``; default: the study's setting) lets cells that can
    share a stacked model train as one group (:mod:`lbgap.driver.groups`); the numbers of
    each cell are the same either way.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    if jobs > 1 and nproc > 1:
        raise ValueError("--jobs and --nproc cannot be combined: choose parallel trials or data-parallel trials")
    if nproc > 1 and study.search is not None and study.search.pruner.type != "none":
        raise ValueError(
            "--nproc trains each trial in separate processes, so a search cannot report every epoch to its "
            f"{study.search.pruner.type!r} pruner: set search.pruner.type: none, or drop --nproc"
        )
    out_dir = Path(out_dir)
    check_storage(storage)  # a bad URL or a missing driver: said before any folder is written
    prepare_folder(study, out_dir, storage)
    lock = claim_folder(out_dir) if is_embedded(storage) else None
    try:
        runner = Runner(
            study, out_dir, resolve_device(device), reporter or NullReporter(), nproc=nproc, vectorize=vectorize
        )
        if study.search is not None:
            if jobs > 1:
                log.info("a search trains its trials one after another; --jobs %d does not apply", jobs)
            return run_search(study, runner, storage, max_trials)
        return run_grid(study, runner, storage, max_trials, jobs=jobs, threads=threads)
    finally:
        if lock is not None:
            lock.close()

