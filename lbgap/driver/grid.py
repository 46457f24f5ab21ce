"""Grid studies: queue every cell without a result file in Optuna, train them (in this process
or in worker processes, each running :func:`~lbgap.driver.gridloop.grid_loop`), then combine the
trial files into results.nc. The per-trial result files are the source of truth for what is done.
"""

from __future__ import annotations

import json
from typing import Optional

import optuna
from optuna.trial import TrialState

from ..results import combine_grid, study_attrs
from ..spec.load import Study
from .cells import GridPlan, cell_attrs, cell_coords, queue_order
from .gridloop import grid_loop
from .optuna_study import open_optuna_study
from .runner import Runner, RunSummary
from .storage import fail_stale_trials, folder_lock, is_embedded

__all__ = ["run_grid", "fail_lost_trial"]


def _enqueue_grid(plan: GridPlan, runner: Runner, ostudy: optuna.Study, longest_first: bool = False) -> set[str]:
    """Queue every cell that has no result file and is not queued yet; return the done cells."""
    with folder_lock(runner.out_dir):
        # queued before done: another worker writes a trial's file before it tells Optuna the trial
        # is complete, so a trial that leaves RUNNING between the two reads is seen by the second
        queued = {
            t.user_attrs.get("cell")
            for t in ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        }
        done = {k for k in plan.by_key if runner.trial_path(k).exists()}
        for cell in queue_order(runner.study, plan.cells, longest_first, group_of=runner.groups.key):
            if cell.key not in done and cell.key not in queued:
                ostudy.enqueue_trial(cell_coords(cell), user_attrs=cell_attrs(cell))
    return done


def run_grid(
    study: Study,
    runner: Runner,
    storage_url: Optional[str],
    max_trials: Optional[int],
    jobs: int = 1,
    threads: int = 1,
) -> RunSummary:
    plan = GridPlan.of(study)
    cells = plan.cells
    ostudy = open_optuna_study(study, runner.out_dir, storage_url, "maximize")
    pending = len(cells) - sum(runner.trial_path(c.key).exists() for c in cells)
    workers = min(jobs, pending, max_trials if max_trials is not None else jobs)
    done = _enqueue_grid(plan, runner, ostudy, longest_first=workers > 1)
    runner.reporter.study_start(len(cells), len(done))
    if workers > 1:
        from .workers import run_workers

        trained, failed, diverged = run_workers(
            study, runner, storage_url, workers, max_trials, threads,
            local=lambda taken: grid_loop(study, plan, runner, ostudy, max_trials, taken),
            on_lost=lambda key: fail_lost_trial(ostudy, key),
        )
        if is_embedded(storage_url):
            fail_stale_trials(ostudy)  # the trials of a worker that died; every worker has exited
    else:
        trained, failed, diverged = grid_loop(study, plan, runner, ostudy, max_trials)
    results = None
    missing = {c.key for c in cells if not runner.trial_path(c.key).exists()}
    reasons = _failure_reasons(ostudy, missing & set(failed))
    # every cell finished, or the only ones left raised an error in this run: combine what there is,
    # so the finished trials can be looked at while the failures are fixed (the exit status says so);
    # a trial lost with its worker, or not trained yet, is not a failure: the study is unfinished
    if not missing or missing <= set(reasons):
        dims = ["variant", *study.grid_paths, "seed"]
        shape = [len(study.variants), *(len(v) for v in study.grid_values.values()), len(study.seeds)]
        attrs = study_attrs(study, study.registry, str(runner.device))
        if missing:
            attrs["lbgap_failed_trials"] = json.dumps(sorted(missing))
        results = runner.out_dir / "results.nc"
        # rebuilt from the trial files, with the variables `lbgap measure` added (kept in measured/)
        combine_grid(
            {c.key: runner.trial_path(c.key) for c in cells}, cells, dims, shape, attrs, results,
            measured_from=runner.out_dir, failed=reasons,
        )
    return RunSummary(runner.out_dir, results, trained, len(done), failed, diverged)


def _failure_reasons(ostudy: optuna.Study, keys: set[str]) -> dict[str, str]:
    """The error that each of the cells ``keys`` raised, from its latest failed Optuna trial;
    cells whose latest trial was interrupted (a lost worker, a kill) are left out."""
    reasons: dict[str, str] = {}
    for t in sorted(ostudy.get_trials(deepcopy=False, states=(TrialState.FAIL,)), key=lambda t: t.number):
        key = t.user_attrs.get("cell")
        if key in keys:
            error = t.user_attrs.get("error")
            if error is not None and not t.user_attrs.get("interrupted"):
                reasons[key] = str(error)
            else:
                reasons.pop(key, None)
    return reasons


def fail_lost_trial(ostudy: optuna.Study, key: str) -> None:
    """Fail the RUNNING trial of cell ``key``, whose worker died: the cells warm-started from it stop
    waiting for it, and the next run trains it again."""
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("cell") == key:
            ostudy._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            ostudy._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)

