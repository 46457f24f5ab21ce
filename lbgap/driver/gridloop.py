"""The grid loop that every worker of a grid study runs on the shared storage: take queued
cells (one, or a vectorized group), train them, tell Optuna how each ended, until none is left."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from ..engine.group import NotStackable
from ..spec.load import Cell, Study
from .cells import GridPlan, cell_coords, grid_choices
from .parallel import final_from_file, train_data_parallel
from .runner import Runner, final_value
from .storage import folder_lock
from .warmstart import warm_start_state

__all__ = ["grid_loop"]

log = logging.getLogger(__name__)


def grid_loop(
    study: Study,
    plan: GridPlan,
    runner: Runner,
    ostudy: optuna.Study,
    max_trials: Optional[int],
    taken: Any = None,
) -> tuple[int, list[str], list[str]]:
    """Take queued cells and train them until none is left; return (trained, failed, diverged).

    Every worker of a study runs this loop on the shared storage. ``taken`` (a shared
    ``multiprocessing.Value``) counts the cells the workers of one run have taken, so that
    ``max_trials`` holds for them together; without it ``max_trials`` counts this loop's trainings.
    Cells that can train as one vectorized group (:mod:`lbgap.driver.groups`) are taken together.
    """
    choices = grid_choices(study)
    runner.ostudy = ostudy
    for cell in plan.cells:  # decide the groups once, before taking any cell
        runner.groups.key(cell)
    tally = _Tally()
    while taken is not None or max_trials is None or tally.trained < max_trials:
        trials = _take_cells(plan, runner, ostudy, max_trials, taken, tally)
        if not trials:
            break
        todo = []
        for trial in trials:
            key = trial.user_attrs.get("cell")
            if key not in plan.by_key:
                ostudy.tell(trial, state=TrialState.FAIL)  # a worker raced us to the last cell anyway
                continue
            for name, values in choices.items():
                trial.suggest_categorical(name, values)
            if runner.trial_path(key).exists():  # another worker finished it
                ostudy.tell(trial, final_from_file(runner.trial_path(key)))
                continue
            todo.append((trial, plan.by_key[key]))
        if len(todo) > 1:
            _train_together(runner, plan, ostudy, todo, tally)
        for trial, cell in todo if len(todo) == 1 else []:
            _train_cell(runner, plan, ostudy, trial, cell, tally)
    return tally.trained, tally.failed, tally.diverged


@dataclass
class _Tally:
    trained: int = 0
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)


def _take_cells(
    plan: GridPlan, runner: Runner, ostudy: optuna.Study, max_trials: Optional[int], taken: Any, tally: _Tally
) -> list[Any]:
    """Take the next queued cell, and the queued cells after it of the same vectorized group."""
    # check and take in one turn: between the two another worker could take the last cell,
    # and ask() would then create a new trial instead of popping a queued one
    with folder_lock(runner.out_dir):
        waiting = sorted(ostudy.get_trials(deepcopy=False, states=(TrialState.WAITING,)), key=lambda t: t.number)
        trials: list[Any] = []
        for t in waiting:
            if not _may_take(max_trials, taken, tally, len(trials)):
                break
            cell = plan.by_key.get(t.user_attrs.get("cell"))
            if trials:
                first = plan.by_key.get(trials[0].user_attrs.get("cell"))
                group = runner.groups.key(first) if first is not None else None
                if group is None or cell is None or runner.groups.key(cell) != group:
                    break
                if len(trials) >= runner.groups.limit(group, first):
                    break
            if taken is not None:
                taken.value += 1
            trials.append(ostudy.ask())
            if trials[-1].number != t.number:  # not the one looked at: train it alone
                break
        return trials


def _may_take(max_trials: Optional[int], taken: Any, tally: _Tally, in_hand: int) -> bool:
    if max_trials is None:
        return True
    if taken is not None:
        return taken.value < max_trials
    return tally.trained + in_hand < max_trials


def _train_cell(runner: Runner, plan: GridPlan, ostudy: optuna.Study, trial: Any, cell: Cell, tally: _Tally) -> None:
    key = cell.key
    try:
        if runner.nproc > 1:
            outcome = train_data_parallel(runner, key)
        else:
            outcome = runner.train(
                cell.config, cell.seed, key, cell_coords(cell),
                init_state=warm_start_state(runner, cell), checkpoints=plan.needs.get(key),
                on_epoch=_epoch_reporter(trial),
            )
    except KeyboardInterrupt:
        ostudy.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:
        _record_failure(ostudy, trial, key, exc, tally)
        return
    _record(ostudy, trial, key, outcome, tally)


def _epoch_reporter(trial: Any) -> Any:
    """Report each epoch's test accuracy to the cell's Optuna trial (optuna-dashboard draws the curves)."""

    def report(epoch: int, record: dict[str, float], _trial: Any) -> None:
        value = record.get("test_accuracy", math.nan)
        if not math.isnan(value):
            trial.report(value, epoch)

    return report


def _train_together(runner: Runner, plan: GridPlan, ostudy: optuna.Study, todo: list, tally: _Tally) -> None:
    """Train ``todo`` ((trial, cell) pairs) as one vectorized group; one by one if they cannot."""
    trials = {cell.key: trial for trial, cell in todo}
    open_keys = set(trials)

    def done(cell: Cell, outcome: Any) -> None:
        open_keys.discard(cell.key)
        _record(ostudy, trials[cell.key], cell.key, outcome, tally)

    try:
        reporters = {cell.key: _epoch_reporter(trial) for trial, cell in todo}
        runner.train_group([cell for _, cell in todo], plan.needs, done, reporters)
    except NotStackable as exc:
        log.info("cells %s train one at a time: %s", ", ".join(trials), exc)
        for trial, cell in todo:
            _train_cell(runner, plan, ostudy, trial, cell, tally)
    except KeyboardInterrupt:
        for key in open_keys:
            ostudy.tell(trials[key], state=TrialState.FAIL)
        raise
    except Exception as exc:
        for key in sorted(open_keys):
            _record_failure(ostudy, trials[key], key, exc, tally)


def _record(ostudy: optuna.Study, trial: Any, key: str, outcome: Any, tally: _Tally) -> None:
    """Tell Optuna how a trained cell ended."""
    tally.trained += 1
    trial.set_user_attr("status", outcome.status)
    if outcome.status == "diverged":
        tally.diverged.append(key)
        ostudy.tell(trial, state=TrialState.FAIL)
        return
    value = final_value(outcome.history, "test_accuracy")
    if math.isnan(value):
        ostudy.tell(trial, state=TrialState.FAIL)
    else:
        ostudy.tell(trial, value)


def _record_failure(ostudy: optuna.Study, trial: Any, key: str, exc: BaseException, tally: _Tally) -> None:
    log.error("trial %s failed", key, exc_info=exc)
    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
    ostudy.tell(trial, state=TrialState.FAIL)
    tally.failed.append(key)


