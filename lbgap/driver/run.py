"""Drive a study through Optuna: enqueue grid cells or sample a search,
train each trial with the engine, write per-trial files, combine.

Per-trial result files are the source of truth for what is done: a run on
an existing output folder (``lbgap study resume DIR`` or the same ``study
run`` again) trains only the cells without a file, so an interrupted study
finishes with the same results as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import optuna
import torch
from optuna.trial import TrialState

from ..engine.group import Member, NotStackable, run_group
from ..engine.train import run_trial
from ..outcome import StopTrial, TrialOutcome
from ..results import (
    combine_grid,
    combine_search,
    load_weights,
    save_weights,
    study_attrs,
    trial_dataset,
    weight_epochs,
    weights_dir,
    write_atomic,
)
from ..spec.load import Cell, Study, cell_key
from ..spec.merge import split_path
from .groups import GroupPlanner
from .progress import NullReporter, Reporter
from .storage import (
    FolderBusyError,
    StorageError,
    check_storage,
    claim_folder,
    fail_stale_trials,
    folder_lock,
    is_embedded,
    make_storage,
)

__all__ = [
    "run_study", "resolve_device", "default_jobs", "StudyFolderError", "FolderBusyError", "StorageError", "RunSummary",
]

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyFolderError(Exception):
    """The output folder belongs to another study or spec."""


@dataclass
class RunSummary:
    out_dir: Path
    results: Optional[Path]
    trained: int
    skipped: int
    failed: list[str]
    diverged: list[str]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _prepare_folder(study: Study, out_dir: Path, storage_url: Optional[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "study.json"
    meta = {"study": study.name, "spec_sha256": study.spec_hash, "storage": storage_url}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("spec_sha256") != study.spec_hash:
            raise StudyFolderError(
                f"{out_dir} holds results of another version of the study (spec hash {old.get('spec_sha256', '?')[:12]} "
                f"≠ {study.spec_hash[:12]}); choose another --out or delete the folder"
            )
    else:
        tmp = meta_path.with_name(f".study.json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(meta_path)
    spec_copy = out_dir / "spec.yaml"
    if not spec_copy.exists():
        tmp = spec_copy.with_name(f".spec.yaml.tmp-{os.getpid()}")
        tmp.write_text(study.text or Path(study.file).read_text())
        tmp.replace(spec_copy)


def _optuna_study(
    study: Study, out_dir: Path, storage_url: Optional[str], direction: str, *, fail_stale: bool = True, **kw
) -> optuna.Study:
    """Create or load the study's Optuna study. With the embedded storage, the run that holds
    the folder (``fail_stale``) first fails the trials that a killed run left RUNNING; its
    workers, which share the storage with it, do not."""
    storage = make_storage(out_dir, storage_url)
    ostudy = optuna.create_study(
        study_name=f"{study.name}-{study.spec_hash[:12]}",
        storage=storage,
        direction=direction,
        load_if_exists=True,
        **kw,
    )
    if fail_stale and is_embedded(storage_url):
        fail_stale_trials(ostudy)
    if fail_stale:
        _describe_optuna_study(study, ostudy)
    return ostudy


def _describe_optuna_study(study: Study, ostudy: optuna.Study) -> None:
    """What optuna-dashboard and Optuna's own tools show of the study: the objective's name, the
    spec hash and lbgap's version (written once, by the run that holds the folder)."""
    from .. import __version__

    search = study.search
    objective = "test_accuracy" if search is None else search.objective
    attrs = {"lbgap_study": study.name, "spec_sha256": study.spec_hash, "lbgap_version": __version__}
    if ostudy.metric_names != [objective]:
        with warnings.catch_warnings():  # experimental in Optuna 4, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ostudy.set_metric_names([objective])
    for name, value in attrs.items():
        if ostudy.user_attrs.get(name) != value:
            ostudy.set_user_attr(name, value)


def _final(history: dict[str, list[float]], name: str) -> float:
    values = [v for v in history.get(name, []) if not math.isnan(v)]
    return values[-1] if values else math.nan


class _Runner:
    """Shared machinery: train a config with a seed, save, report."""

    def __init__(
        self, study: Study, out_dir: Path, device: torch.device, reporter: Reporter, nproc: int = 1,
        vectorize: Optional[str] = None,
    ) -> None:
        self.study = study
        #: "auto" or "off" (the study's setting unless overridden); data-parallel trials never group
        self.vectorize = "off" if nproc > 1 else (vectorize or getattr(study.header, "vectorize", "auto"))
        self.groups = GroupPlanner(study, device, self.vectorize)
        self.out_dir = out_dir
        self.device = device
        self.reporter = reporter
        self.nproc = nproc
        self.write = True  # False on data-parallel ranks other than 0
        self.ostudy: Optional[optuna.Study] = None  # the Optuna study its grid loop takes cells from

    def trial_path(self, key: str) -> Path:
        return self.out_dir / "trials" / f"{key}.nc"

    def train(
        self,
        cfg: Any,
        seed: int,
        key: str,
        coords: dict[str, Any],
        *,
        init_state: Optional[dict[str, torch.Tensor]] = None,
        checkpoints: Optional[set[int]] = None,
        on_epoch: Any = None,
    ) -> TrialOutcome:
        rep = self.reporter

        def epoch_cb(epoch: int, record: dict[str, float], trial: Any) -> None:
            rep.epoch_end(key, epoch, record)
            if on_epoch is not None:
                on_epoch(epoch, record, trial)

        rep.trial_start(key, cfg.epochs, 0)
        outcome = run_trial(
            cfg,
            seed,
            registry=self.study.registry,
            device=self.device,
            key=key,
            init_state=init_state,
            checkpoint_epochs=weight_epochs(cfg, checkpoints, registry=self.study.registry),
            on_epoch=epoch_cb,
            on_step=lambda s: rep.step(key, s),
        )
        self.save(outcome, cfg, coords, checkpoints)
        return outcome

    def save(self, outcome: TrialOutcome, cfg: Any, coords: dict[str, Any], checkpoints: Optional[set[int]]) -> None:
        """Write the trial's file (and weights) and report its end."""
        key = outcome.key
        if self.write:
            ds = trial_dataset(outcome, coords)
            save_weights(outcome, self.out_dir, keep=cfg.keep_weights)
            write_atomic(ds, self.trial_path(key))
        acc = _final(outcome.history, "test_accuracy")
        self.reporter.trial_end(key, outcome.status, f"test accuracy {acc:.4f}" if not math.isnan(acc) else outcome.reason)

    def train_group(
        self, cells: list[Cell], checkpoints: dict[str, set[int]], on_done: Any, on_epoch: Optional[dict] = None
    ) -> None:
        """Train ``cells`` as one vectorized group; ``on_done(cell, outcome)`` after each member's file
        is written. Raises :class:`NotStackable` before any training if they cannot train together."""
        rep = self.reporter

        def member(cell: Cell) -> Member:
            key = cell.key
            rep.trial_start(key, cell.config.epochs, 0)
            extra = (on_epoch or {}).get(key)

            def epoch_end(e: int, r: dict, t: Any, key: str = key, extra: Any = extra) -> None:
                rep.epoch_end(key, e, r)
                if extra is not None:
                    extra(e, r, t)

            return Member(
                cell.config, cell.seed, key, on_epoch=epoch_end,
                on_step=lambda s, key=key: rep.step(key, s), checkpoint_epochs=weight_epochs(cell.config, checkpoints.get(cell.key), registry=self.study.registry),
            )

        def done(i: int, outcome: TrialOutcome) -> None:
            cell = cells[i]
            self.save(outcome, cell.config, _cell_coords(cell), checkpoints.get(cell.key))
            on_done(cell, outcome)

        run_group([member(c) for c in cells], registry=self.study.registry, device=self.device, on_done=done)


# ---------------------------------------------------------------- grid studies


def _grid_choices(study: Study, cells: list[Cell]) -> dict[str, list[Any]]:
    from ..results.trialfile import coord_value

    choices: dict[str, list[Any]] = {"variant": list(study.variants)}
    for dim, values in study.grid_values.items():
        choices[dim] = [coord_value(v) for v in values]
    choices["seed"] = list(study.seeds)
    return choices


def _cell_params(cell: Cell) -> dict[str, Any]:
    from ..results.trialfile import coord_value

    return {"variant": cell.variant, **{d: coord_value(v) for d, v in cell.point}, "seed": cell.seed}


def _cell_attrs(cell: Cell) -> dict[str, Any]:
    """The user attributes of a cell's Optuna trial: which cell it is and where its results are."""
    from ..results.trialfile import coord_value

    return {
        "cell": cell.key, "variant": cell.variant, "seed": cell.seed,
        "grid_point": {d: coord_value(v) for d, v in cell.point}, "trial_file": f"trials/{cell.key}.nc",
    }


def _source_key(cell: Cell) -> Optional[str]:
    ws = cell.config.warm_start
    return cell_key(ws.variant, cell.point, cell.seed) if ws is not None else None


@dataclass
class _GridPlan:
    """A grid study's cells, and the checkpoints warm-started cells need from their sources."""

    cells: list[Cell]
    by_key: dict[str, Cell]
    needs: dict[str, set[int]]

    @classmethod
    def of(cls, study: Study) -> _GridPlan:
        cells = study.cells()
        needs: dict[str, set[int]] = {}
        for cell in cells:
            src = _source_key(cell)
            if src is not None:
                needs.setdefault(src, set()).add(cell.config.warm_start.epochs)
        return cls(cells, {c.key: c for c in cells}, needs)


def planned_epochs(study: Study, cell: Cell) -> int:
    """The epochs ``cell`` trains after its regime plugins (regime adaptation lengthens training)."""
    from ..engine.parts import build_plan

    try:
        return build_plan(cell.config, study.registry).epochs
    except Exception:  # the trial itself will report a bad regime
        return cell.config.epochs


def queue_order(
    study: Study, cells: list[Cell], longest_first: bool = False, group_of: Optional[Any] = None
) -> list[Cell]:
    """The order in which a run queues ``cells``: warm-start sources before the cells that start
    from them; with ``longest_first`` (several workers), the longest trials (by planned epochs)
    first within each, so that no worker is left with a long trial at the end while the others
    idle; with ``group_of`` (a cell's vectorized group key, or None), the cells of one group next
    to each other, so that a worker takes them together. The order changes no result: a trial
    depends only on its configuration and seed."""
    if not longest_first:
        order = sorted(cells, key=lambda c: (_source_key(c) is not None,))  # sources first, stable
    else:
        epochs = {c.key: planned_epochs(study, c) for c in cells}
        order = sorted(cells, key=lambda c: (_source_key(c) is not None, -epochs[c.key]))
    if group_of is None:
        return order
    first: dict[Any, int] = {}
    for i, c in enumerate(order):
        first.setdefault(group_of(c) or c.key, i)
    return sorted(order, key=lambda c: first[group_of(c) or c.key])


def _enqueue_grid(plan: _GridPlan, runner: _Runner, ostudy: optuna.Study, longest_first: bool = False) -> set[str]:
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
                ostudy.enqueue_trial(_cell_params(cell), user_attrs=_cell_attrs(cell))
    return done


def _grid_loop(
    study: Study,
    plan: _GridPlan,
    runner: _Runner,
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
    choices = _grid_choices(study, plan.cells)
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
                ostudy.tell(trial, _final_from_file(runner.trial_path(key)))
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
    plan: _GridPlan, runner: _Runner, ostudy: optuna.Study, max_trials: Optional[int], taken: Any, tally: _Tally
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


def _train_cell(runner: _Runner, plan: _GridPlan, ostudy: optuna.Study, trial: Any, cell: Cell, tally: _Tally) -> None:
    key = cell.key
    try:
        if runner.nproc > 1:
            outcome = _train_data_parallel(runner, key)
        else:
            outcome = runner.train(
                cell.config, cell.seed, key, _cell_coords(cell),
                init_state=_warm_start_state(runner, cell), checkpoints=plan.needs.get(key),
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


def _train_together(runner: _Runner, plan: _GridPlan, ostudy: optuna.Study, todo: list, tally: _Tally) -> None:
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
    value = _final(outcome.history, "test_accuracy")
    if math.isnan(value):
        ostudy.tell(trial, state=TrialState.FAIL)
    else:
        ostudy.tell(trial, value)


def _record_failure(ostudy: optuna.Study, trial: Any, key: str, exc: BaseException, tally: _Tally) -> None:
    log.error("trial %s failed", key, exc_info=exc)
    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
    ostudy.tell(trial, state=TrialState.FAIL)
    tally.failed.append(key)


def _cell_coords(cell: Cell) -> dict[str, Any]:
    return {"variant": cell.variant, **dict(cell.point), "seed": cell.seed}


def _run_grid(
    study: Study,
    runner: _Runner,
    storage_url: Optional[str],
    max_trials: Optional[int],
    jobs: int = 1,
    threads: int = 1,
) -> RunSummary:
    plan = _GridPlan.of(study)
    cells = plan.cells
    ostudy = _optuna_study(study, runner.out_dir, storage_url, "maximize")
    pending = len(cells) - sum(runner.trial_path(c.key).exists() for c in cells)
    workers = min(jobs, pending, max_trials if max_trials is not None else jobs)
    done = _enqueue_grid(plan, runner, ostudy, longest_first=workers > 1)
    runner.reporter.study_start(len(cells), len(done))
    if workers > 1:
        from .workers import run_workers

        trained, failed, diverged = run_workers(
            study, runner, storage_url, workers, max_trials, threads,
            local=lambda taken: _grid_loop(study, plan, runner, ostudy, max_trials, taken),
            on_lost=lambda key: fail_lost_trial(ostudy, key),
        )
        if is_embedded(storage_url):
            fail_stale_trials(ostudy)  # the trials of a worker that died; every worker has exited
    else:
        trained, failed, diverged = _grid_loop(study, plan, runner, ostudy, max_trials)
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


@dataclass
class _FileOutcome:
    status: str
    history: dict[str, list[float]]


def _train_data_parallel(runner: _Runner, key: str, search_params: Optional[dict[str, Any]] = None) -> _FileOutcome:
    """Train one cell (or, with ``search_params``, one seed of a search trial) on ``runner.nproc``
    processes with torchrun; read back its file."""
    import subprocess

    from ..distributed import launch_command

    runner.reporter.trial_start(key, 0, 0)
    cmd = launch_command(runner.out_dir, key, runner.nproc, str(runner.device), search_params=search_params)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed for {key} (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    status, history = _read_trial(runner.trial_path(key))
    acc = _final(history, "test_accuracy")
    runner.reporter.trial_end(key, status, f"test accuracy {acc:.4f} ({runner.nproc} processes)")
    return _FileOutcome(status, history)


def _read_trial(path: Path) -> tuple[str, dict[str, list[float]]]:
    """Status and per-epoch history of a finished trial's file."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        history = {name: ds[name].values.tolist() for name in ds.data_vars if ds[name].dims == ("epoch",)}
        return str(ds["status"].values), history


def _final_from_file(path: Path) -> float:
    value = _final(_read_trial(path)[1], "test_accuracy")
    return 0.0 if math.isnan(value) else value


def _warm_start_state(runner: _Runner, cell: Cell, timeout: float = 3600.0) -> Optional[dict[str, torch.Tensor]]:
    ws = cell.config.warm_start
    if ws is None:
        return None
    src = _source_key(cell)
    assert src is not None
    name = "initial.pt" if ws.epochs == 0 else f"epoch_{ws.epochs}.pt"
    path = weights_dir(runner.out_dir, src) / name
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while not path.exists():  # another worker may still be training the source
        if runner.trial_path(src).exists():  # the source is done, without that checkpoint
            raise FileNotFoundError(
                f"warm start from {src} after {ws.epochs} epochs: the source trial ended before epoch "
                f"{ws.epochs} (stopped early or diverged), so {path.name} does not exist"
            )
        if runner.ostudy is not None and time.monotonic() - checked > 2.0:
            checked = time.monotonic()
            # a source trains while its trial is queued or running (the checkpoint is written before
            # the trial ends): if it is neither, and the checkpoint is still missing, it failed or
            # its worker was killed, and this trial cannot start before a later run trains it
            if not _queued_or_running(runner.ostudy, src) and not path.exists():
                raise FileNotFoundError(
                    f"warm start from {src}: the source trial failed or was interrupted; "
                    "run the study again to train both"
                )
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"warm start: {path} did not appear")
        time.sleep(0.5)
    return load_weights(path, map_location=runner.device)


def _queued_or_running(ostudy: optuna.Study, key: str) -> bool:
    states = (TrialState.WAITING, TrialState.RUNNING)
    return any(t.user_attrs.get("cell") == key for t in ostudy.get_trials(deepcopy=False, states=states))


def fail_lost_trial(ostudy: optuna.Study, key: str) -> None:
    """Fail the RUNNING trial of cell ``key``, whose worker died: the cells warm-started from it stop
    waiting for it, and the next run trains it again."""
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("cell") == key:
            ostudy._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            ostudy._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


# ------------------------------------------------------------------- searches


def _sampler(kind: str, seed: int, grid_space: Optional[dict[str, list[Any]]] = None) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        assert grid_space is not None
        return optuna.samplers.GridSampler(grid_space, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _search_dim(path: str) -> str:
    return str(split_path(path)[-1])


def _grid_space(search) -> dict[str, list[Any]]:
    space: dict[str, list[Any]] = {}
    for path, p in search.params.items():
        if p.type == "categorical":
            space[path] = list(range(len(p.choices)))
        elif p.type == "pow2":
            space[path] = _pow2(p)
        elif p.step is not None:
            n = int(round((p.high - p.low) / p.step))
            vals = [p.low + i * p.step for i in range(n + 1)]
            space[path] = [int(v) for v in vals] if p.type == "int" else vals
        else:
            raise ValueError(f"grid sampler: parameter {path} needs choices, pow2 or a step")
    return space


def search_budget(search) -> int:
    """Trials a search trains: ``n_trials``, capped at the grid's size for the grid sampler."""
    if search.sampler.type != "grid":
        return search.n_trials
    return min(search.n_trials, math.prod(len(v) for v in _grid_space(search).values()))


def _search_overrides(search, trial: Any, grid: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config overrides, result coordinates) of a search trial's parameters."""
    overrides, coords = {}, {}
    for path, p in search.params.items():
        value, label = _suggest(trial, path, p, grid)
        overrides[path] = value
        coords[_search_dim(path)] = label
    return overrides, coords


def search_trial_config(study: Study, key: str, params: dict[str, Any]) -> tuple[Any, int, dict[str, Any]]:
    """(configuration, seed, coordinates) of the search trial ``key`` (``trial=N,seed=S``) whose
    Optuna parameters are ``params``: how a data-parallel worker rebuilds the driver's trial."""
    search = study.search
    assert search is not None
    fields = dict(part.split("=", 1) for part in key.split(","))
    number, seed = int(fields["trial"]), int(fields["seed"])
    overrides, _ = _search_overrides(search, optuna.trial.FixedTrial(params), search.sampler.type == "grid")
    cfg = study.resolve(next(iter(study.variants)), overrides)
    return cfg, seed, {"trial": number, "seed": seed}


def _suggest(trial: optuna.Trial, path: str, p, grid: bool) -> tuple[Any, Any]:
    """Return (config value, coordinate value)."""
    if p.type == "float":
        v = trial.suggest_float(path, p.low, p.high, log=p.log, step=None if p.log else p.step)
        return v, v
    if p.type == "int":
        step = int(p.step) if p.step else 1
        v = trial.suggest_int(path, int(p.low), int(p.high), log=p.log, step=step)
        return v, v
    if p.type == "pow2":
        if grid:
            v = trial.suggest_categorical(path, _pow2(p))
            return v, v
        k = trial.suggest_int(f"log2({path})", int(math.log2(p.low)), int(math.log2(p.high)))
        return 2**k, 2**k
    # categorical: encode by index, label for the coordinate
    idx = trial.suggest_categorical(path, list(range(len(p.choices))))
    value = p.choices[idx]
    label = p.labels[idx] if p.labels else value
    return value, label


def _pow2(p) -> list[int]:
    return [2**k for k in range(int(math.log2(p.low)), int(math.log2(p.high)) + 1)]


def _plain(value: Any) -> Any:
    """A configuration value as JSON (Optuna's user attributes): plugin sections as dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value if isinstance(value, (int, float, str, bool, type(None), list, dict)) else str(value)


def _objective_value(search, histories: list[dict[str, list[float]]]) -> float:
    vals = []
    for h in histories:
        if search.objective == "generalization_gap":
            vals.append(_final(h, "train_accuracy") - _final(h, "test_accuracy"))
        else:
            vals.append(_final(h, search.objective))
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _run_search(study: Study, runner: _Runner, storage_url: Optional[str], max_trials: Optional[int]) -> RunSummary:
    search = study.search
    assert search is not None
    variant = next(iter(study.variants))
    direction = search.resolved_direction
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=search.pruner.n_startup_trials, n_warmup_steps=search.pruner.n_warmup_steps)
        if search.pruner.type == "median"
        else optuna.pruners.NopPruner()
    )
    grid = search.sampler.type == "grid"
    grid_space = _grid_space(search) if grid else None
    budget = search_budget(search)
    ostudy = _optuna_study(study, runner.out_dir, storage_url, direction, pruner=pruner)
    # interrupted trials are retried with the same parameters, so a resumed
    # search follows the same path as an uninterrupted one
    retried = {t.user_attrs.get("retry_of") for t in ostudy.get_trials(deepcopy=False)}
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("interrupted") and t.number not in retried:
            ostudy.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    n_finished = len(ostudy.get_trials(deepcopy=False, states=finished_states))
    runner.reporter.study_start(budget * len(study.seeds), n_finished * len(study.seeds))
    trained, failed, diverged = 0, [], []
    while n_finished < budget and (max_trials is None or trained < max_trials):
        ostudy.sampler = _sampler(search.sampler.type, search.sampler.seed + n_finished, grid_space)
        trial = ostudy.ask()
        number = trial.user_attrs.get("retry_of", trial.number)
        overrides, coords = _search_overrides(search, trial, grid)
        trial.set_user_attr("coords", coords)
        trial.set_user_attr("values", {path: _plain(v) for path, v in overrides.items()})
        trial.set_user_attr("trial_files", [f"trials/trial={number},seed={s}.nc" for s in study.seeds])
        try:
            cfg = study.resolve(variant, overrides)
        except Exception as exc:
            trial.set_user_attr("error", f"invalid configuration: {exc}")
            ostudy.tell(trial, state=TrialState.FAIL)
            failed.append(f"trial={number}")
            n_finished += 1  # counts against the budget, or the sampler could loop forever
            runner.reporter.skipped(len(study.seeds))
            continue
        histories = []
        state = TrialState.COMPLETE
        try:
            for i, seed in enumerate(study.seeds):
                key = f"trial={number},seed={seed}"

                def report(
                    epoch: int, record: dict[str, float], _t: Any, first: bool = i == 0, trial: optuna.Trial = trial
                ) -> None:
                    if not first:
                        return
                    value = record.get(search.objective if search.objective != "generalization_gap" else "test_accuracy")
                    if search.objective == "generalization_gap":
                        value = record.get("train_accuracy", math.nan) - record.get("test_accuracy", math.nan)
                    if value is not None and not math.isnan(value):
                        trial.report(value, epoch)
                        if trial.should_prune():
                            raise StopTrial("pruned", f"pruned by Optuna at epoch {epoch}")

                if runner.nproc > 1:  # no per-epoch reports: run_study allows this without a pruner
                    outcome = _train_data_parallel(runner, key, search_params=dict(trial.params))
                else:
                    outcome = runner.train(cfg, seed, key, {"trial": number, "seed": seed}, on_epoch=report)
                trained += 1
                histories.append(outcome.history)
                if outcome.status == "pruned":
                    state = TrialState.PRUNED
                    runner.reporter.skipped(len(study.seeds) - len(histories))
                    break
                if outcome.status == "diverged":
                    diverged.append(key)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            ostudy.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:
            log.exception("search trial %d failed", number)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            ostudy.tell(trial, state=TrialState.FAIL)
            failed.append(f"trial={number}")
            runner.reporter.skipped(len(study.seeds) - len(histories))
            continue
        value = _objective_value(search, histories)
        trial.set_user_attr("objective", value)
        if state == TrialState.PRUNED:
            ostudy.tell(trial, state=TrialState.PRUNED)
        elif math.isnan(value):
            ostudy.tell(trial, state=TrialState.FAIL)
        else:
            ostudy.tell(trial, value)
        n_finished += 1
    results = None
    if n_finished >= budget:
        results = _combine_search(study, runner, ostudy)
    return RunSummary(runner.out_dir, results, trained, 0, failed, diverged)


def _combine_search(study: Study, runner: _Runner, ostudy: optuna.Study) -> Path:
    paths: dict[tuple[int, int], Path] = {}
    params: dict[int, dict[str, Any]] = {}
    objective: dict[int, float] = {}
    states: dict[int, str] = {}
    numbers = []
    for t in ostudy.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) and not t.user_attrs.get("error"):
            continue
        number = t.user_attrs.get("retry_of", t.number)
        if number in states and states[number] in ("complete", "pruned"):
            continue
        numbers.append(number)
        params[number] = dict(t.user_attrs.get("coords", {}))
        objective[number] = float(t.user_attrs.get("objective", math.nan))
        states[number] = t.state.name.lower()
        for seed in study.seeds:
            p = runner.trial_path(f"trial={number},seed={seed}")
            if p.exists():
                paths[(number, seed)] = p
    numbers = sorted(set(numbers))
    attrs = study_attrs(study, study.registry, str(runner.device), {"optuna_direction": study.search.resolved_direction})
    out = runner.out_dir / "results.nc"
    combine_search(paths, numbers, study.seeds, params, objective, states, attrs, out)
    return out


# ------------------------------------------------------------------- entry


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
    _prepare_folder(study, out_dir, storage)
    lock = claim_folder(out_dir) if is_embedded(storage) else None
    try:
        runner = _Runner(
            study, out_dir, resolve_device(device), reporter or NullReporter(), nproc=nproc, vectorize=vectorize
        )
        if study.search is not None:
            if jobs > 1:
                log.info("a search trains its trials one after another; --jobs %d does not apply", jobs)
            return _run_search(study, runner, storage, max_trials)
        return _run_grid(study, runner, storage, max_trials, jobs=jobs, threads=threads)
    finally:
        if lock is not None:
            lock.close()
