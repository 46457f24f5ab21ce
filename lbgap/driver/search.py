"""Searches: Optuna samples a trial's parameters, each trial trains on every seed, the objective
is the mean over seeds, and results.nc holds every trial along ``trial``."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import optuna
from optuna.trial import TrialState

from ..outcome import StopTrial
from ..results import combine_search, study_attrs
from ..spec.load import Study
from ..spec.merge import split_path
from .optuna_study import open_optuna_study
from .parallel import train_data_parallel
from .runner import Runner, RunSummary, final_value

__all__ = ["search_budget", "search_trial_config", "run_search"]

log = logging.getLogger(__name__)


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
            vals.append(final_value(h, "train_accuracy") - final_value(h, "test_accuracy"))
        else:
            vals.append(final_value(h, search.objective))
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def run_search(study: Study, runner: Runner, storage_url: Optional[str], max_trials: Optional[int]) -> RunSummary:
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
    ostudy = open_optuna_study(study, runner.out_dir, storage_url, direction, pruner=pruner)
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
                    outcome = train_data_parallel(runner, key, search_params=dict(trial.params))
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
        results = combine_search_results(study, runner, ostudy)
    return RunSummary(runner.out_dir, results, trained, 0, failed, diverged)


def combine_search_results(study: Study, runner: Runner, ostudy: optuna.Study) -> Path:
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

