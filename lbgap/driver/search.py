"""Searches: Optuna samples a trial's parameters, each trial trains on every seed, the objective
is the mean over seeds, and results.nc holds every trial along ``trial``.

A study with a ``grid`` and a ``search`` runs one search per grid point (Shallue et al. 2018 tune
anew for every batch size): each point has its own Optuna study (``<study>-<hash>-<point>``), its
own budget of ``n_trials`` and its own sampler seeds (mixed from ``sampler.seed``, the point's index
and the trial's), and results.nc holds every point's trials along ``(grid..., trial, seed)`` with the best
trial of each point."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import optuna
from optuna.trial import TrialState

from ..outcome import StopTrial
from ..results import combine_grid_search, combine_search, study_attrs
from ..results.trialfile import coord_value
from ..spec.load import Study, cell_key
from ..spec.merge import split_path
from .optuna_study import open_optuna_study
from .parallel import read_trial_outcome, train_data_parallel
from .runner import Runner, RunSummary, final_value

__all__ = ["search_budget", "search_trial_config", "run_search", "search_points", "SearchPoint", "TARGET_OBJECTIVES"]

#: objectives read from the trial's end (``steps_to_target``...) rather than its last epoch
TARGET_OBJECTIVES = ("steps_to_target", "examples_to_target")

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
            space[_optuna_name(path, p)] = [int(v) for v in vals] if p.type == "int" else vals
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


def _suggest(trial: optuna.Trial, path: str, p, grid: bool) -> tuple[Any, Any]:
    """Return (config value, coordinate value)."""
    if p.type == "float":
        u = trial.suggest_float(_optuna_name(path, p), p.low, p.high, log=p.log, step=None if p.log else p.step)
        v = p.value(u)
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


def _optuna_name(path: str, p) -> str:
    """The Optuna parameter of a searched setting: the path, or ``1-<path>`` for ``transform: one_minus``."""
    return f"1-{path}" if p.transform == "one_minus" else path


def _pow2(p) -> list[int]:
    return [2**k for k in range(int(math.log2(p.low)), int(math.log2(p.high)) + 1)]


def _plain(value: Any) -> Any:
    """A configuration value as JSON (Optuna's user attributes): plugin sections as dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value if isinstance(value, (int, float, str, bool, type(None), list, dict)) else str(value)


def _objective_value(search, outcomes: list[Any]) -> float:
    """The objective of a trial: the mean over its seeds of each seed's value. A steps- or
    examples-to-target objective is NaN (the trial missed its target) unless every seed met it."""
    vals = [_seed_value(search.objective, o) for o in outcomes]
    if search.objective in TARGET_OBJECTIVES and any(math.isnan(v) for v in vals):
        return math.nan
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _seed_value(objective: str, outcome: Any) -> float:
    if objective in TARGET_OBJECTIVES:
        return float(outcome.end.get(objective, math.nan))
    h = outcome.history
    if objective == "generalization_gap":
        return final_value(h, "train_accuracy") - final_value(h, "test_accuracy")
    return final_value(h, objective)


@dataclass(frozen=True)
class SearchPoint:
    """One grid point of a search (the whole study when it has no grid): its own Optuna study,
    budget, sampler seed and trials."""

    index: int
    variant: str
    point: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        """``variant,dim=value,...``: the prefix of its trials' keys (empty without a grid)."""
        return cell_key(self.variant, self.point, None) if self.point else ""

    def key(self, number: int, seed: int) -> str:
        return ",".join(filter(None, [self.label, f"trial={number}", f"seed={seed}"]))

    def sampler_seed(self, seed: int, finished: int) -> int:
        """The seed of the sampler that draws its trial after ``finished`` trials (a resumed search
        draws what an uninterrupted one would): without a grid ``seed + finished``; at a grid point
        a seed mixed from (``seed``, point, ``finished``), so that no two points draw alike."""
        if not self.point:
            return seed + finished
        return int(np.random.SeedSequence([seed, self.index, finished]).generate_state(1)[0])


def search_points(study: Study) -> list[SearchPoint]:
    """The points of a search: every grid point (one, the empty point, without a grid)."""
    variant = next(iter(study.variants))
    dims = list(study.grid_paths)
    values = itertools.product(*(study.grid_values[d] for d in dims))
    return [SearchPoint(i, variant, tuple(zip(dims, v, strict=True))) for i, v in enumerate(values)]


def _point_of(study: Study, key: str) -> SearchPoint:
    for sp in search_points(study):
        if not sp.label or key.startswith(sp.label + ",trial="):
            return sp
    raise KeyError(f"no grid point of {study.name} has the trial {key}")


def search_trial_config(study: Study, key: str, params: dict[str, Any]) -> tuple[Any, int, dict[str, Any]]:
    """(configuration, seed, coordinates) of the search trial ``key`` (``[point,]trial=N,seed=S``)
    whose Optuna parameters are ``params``: how a data-parallel worker rebuilds the driver's trial."""
    search = study.search
    assert search is not None
    sp = _point_of(study, key)
    fields = dict(part.split("=", 1) for part in key[len(sp.label) :].strip(",").split(","))
    number, seed = int(fields["trial"]), int(fields["seed"])
    overrides, _ = _search_overrides(search, optuna.trial.FixedTrial(params), search.sampler.type == "grid")
    cfg = study.resolve(sp.variant, {**_point_overrides(study, sp), **overrides})
    return cfg, seed, _trial_coords(sp, number, seed)


def _point_overrides(study: Study, sp: SearchPoint) -> dict[str, Any]:
    return {study.grid_paths[d]: v for d, v in sp.point}


def _trial_coords(sp: SearchPoint, number: int, seed: int) -> dict[str, Any]:
    return {**{d: coord_value(v) for d, v in sp.point}, "trial": number, "seed": seed}


def run_search(study: Study, runner: Runner, storage_url: Optional[str], max_trials: Optional[int]) -> RunSummary:
    """Run every point's search (each with its own Optuna study and budget) and combine them."""
    search = study.search
    assert search is not None
    points = search_points(study)
    searches = [_PointSearch(study, runner, storage_url, sp) for sp in points]
    per_trial = len(study.seeds)
    total = search_budget(search) * per_trial * len(points)
    runner.reporter.study_start(total, sum(s.n_finished for s in searches) * per_trial)
    tally = _Tally()
    for ps in searches:
        left = None if max_trials is None else max_trials - tally.trained
        if left is not None and left <= 0:
            break
        ps.run(left, tally)
    results = None
    if all(ps.n_finished >= ps.budget for ps in searches):
        results = combine_search_results(study, runner, searches)
    return RunSummary(runner.out_dir, results, tally.trained, 0, tally.failed, tally.diverged)


@dataclass
class _Tally:
    trained: int = 0
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)


class _PointSearch:
    """The Optuna search of one point: ask, train every seed, tell, until its budget is spent."""

    def __init__(self, study: Study, runner: Runner, storage_url: Optional[str], sp: SearchPoint) -> None:
        search = study.search
        assert search is not None
        self.study, self.runner, self.sp, self.search = study, runner, sp, search
        pruner = (
            optuna.pruners.MedianPruner(
                n_startup_trials=search.pruner.n_startup_trials, n_warmup_steps=search.pruner.n_warmup_steps
            )
            if search.pruner.type == "median"
            else optuna.pruners.NopPruner()
        )
        self.grid = search.sampler.type == "grid"
        self.grid_space = _grid_space(search) if self.grid else None
        self.budget = search_budget(search)
        self.ostudy = open_optuna_study(
            study, runner.out_dir, storage_url, search.resolved_direction, pruner=pruner, point=sp.label or None
        )
        # interrupted trials are retried with the same parameters, so a resumed
        # search follows the same path as an uninterrupted one
        retried = {t.user_attrs.get("retry_of") for t in self.ostudy.get_trials(deepcopy=False)}
        for t in self.ostudy.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if t.user_attrs.get("interrupted") and t.number not in retried:
                self.ostudy.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        self.n_finished = sum(_counts(t) for t in self.ostudy.get_trials(deepcopy=False))

    def run(self, max_trials: Optional[int], tally: _Tally) -> None:
        trained_before = tally.trained
        while self.n_finished < self.budget and (max_trials is None or tally.trained - trained_before < max_trials):
            seed = self.sp.sampler_seed(self.search.sampler.seed, self.n_finished)
            self.ostudy.sampler = _sampler(self.search.sampler.type, seed, self.grid_space)
            self._one(self.ostudy.ask(), tally)
            self.n_finished += 1

    def _one(self, trial: optuna.Trial, tally: _Tally) -> None:
        study, runner, sp, search = self.study, self.runner, self.sp, self.search
        seeds = study.seeds
        number = trial.user_attrs.get("retry_of", trial.number)
        overrides, coords = _search_overrides(search, trial, self.grid)
        trial.set_user_attr("coords", coords)
        trial.set_user_attr("values", {path: _plain(v) for path, v in overrides.items()})
        trial.set_user_attr("trial_files", [f"trials/{sp.key(number, s)}.nc" for s in seeds])
        if sp.point:
            trial.set_user_attr("grid_point", {d: coord_value(v) for d, v in sp.point})
        try:
            cfg = study.resolve(sp.variant, {**_point_overrides(study, sp), **overrides})
        except Exception as exc:
            _fail(self.ostudy, trial, f"invalid configuration: {exc}", counts=True)
            tally.failed.append(sp.key(number, seeds[0]).rsplit(",seed=", 1)[0])
            runner.reporter.skipped(len(seeds))
            return
        outcomes: list[Any] = []
        try:
            for i, seed in enumerate(seeds):
                key = sp.key(number, seed)
                report = self._reporter(trial) if i == 0 else None
                if "retry_of" in trial.user_attrs and runner.trial_path(key).exists():
                    # an interrupted trial retried with its parameters: the seeds it finished
                    # wrote their files, which are its results (a seed is never trained twice)
                    outcome = read_trial_outcome(runner.trial_path(key))
                    runner.reporter.trial_end(key, outcome.status, "finished before the interruption")
                elif runner.nproc > 1:  # no per-epoch reports: run_study allows this without a pruner
                    outcome = train_data_parallel(runner, key, search_params=dict(trial.params))
                    tally.trained += 1
                else:
                    outcome = runner.train(cfg, seed, key, _trial_coords(sp, number, seed), on_epoch=report)
                    tally.trained += 1
                outcomes.append(outcome)
                if outcome.status == "pruned":
                    runner.reporter.skipped(len(seeds) - len(outcomes))
                    break
                if outcome.status == "diverged":
                    tally.diverged.append(key)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            self.ostudy.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:
            log.exception("search trial %s failed", sp.key(number, 0).rsplit(",seed=", 1)[0])
            _fail(self.ostudy, trial, f"{type(exc).__name__}: {exc}", counts=True)
            tally.failed.append(sp.key(number, seeds[0]).rsplit(",seed=", 1)[0])
            runner.reporter.skipped(len(seeds) - len(outcomes))
            return
        self._tell(trial, outcomes)

    def _tell(self, trial: optuna.Trial, outcomes: list[Any]) -> None:
        value = _objective_value(self.search, outcomes)
        trial.set_user_attr("objective", value)
        if any(o.status == "pruned" for o in outcomes):
            self.ostudy.tell(trial, state=TrialState.PRUNED)
        elif math.isnan(value):
            # a missed target (or a NaN metric) is a failure of the configuration, not a crash:
            # it counts against the budget and the sampler learns nothing from it
            missed = self.search.objective in TARGET_OBJECTIVES
            _fail(self.ostudy, trial, "target not met within the budget" if missed else "objective is NaN", counts=True)
        else:
            self.ostudy.tell(trial, value)

    def _reporter(self, trial: optuna.Trial) -> Any:
        search = self.search
        if search.objective in TARGET_OBJECTIVES:
            return None  # known only at the end (or when met)

        def report(epoch: int, record: dict[str, float], _t: Any) -> None:
            if search.objective == "generalization_gap":
                value = record.get("train_accuracy", math.nan) - record.get("test_accuracy", math.nan)
            else:
                value = record.get(search.objective)
            if value is not None and not math.isnan(value):
                trial.report(value, epoch)
                if trial.should_prune():
                    raise StopTrial("pruned", f"pruned by Optuna at epoch {epoch}")

        return report


def _fail(ostudy: optuna.Study, trial: optuna.Trial, reason: str, *, counts: bool) -> None:
    trial.set_user_attr("error", reason)
    if counts:
        trial.set_user_attr("counts", True)
    ostudy.tell(trial, state=TrialState.FAIL)


def _counts(t: Any) -> bool:
    """Whether a finished Optuna trial used up one trial of the budget: completed, pruned, or failed
    for a reason of its configuration (an invalid value, a missed target), not interrupted."""
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and bool(t.user_attrs.get("counts")) and not t.user_attrs.get("interrupted")


def _point_trials(ps: _PointSearch) -> tuple[list[int], dict, dict, dict, dict]:
    """(trial numbers, files by (trial, seed), searched values, objectives, states) of one point."""
    paths: dict[tuple[int, int], Path] = {}
    params: dict[int, dict[str, Any]] = {}
    objective: dict[int, float] = {}
    states: dict[int, str] = {}
    numbers = []
    for t in ps.ostudy.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) and not t.user_attrs.get("error"):
            continue
        number = t.user_attrs.get("retry_of", t.number)
        if number in states and states[number] in ("complete", "pruned"):
            continue
        numbers.append(number)
        params[number] = dict(t.user_attrs.get("coords", {}))
        objective[number] = float(t.user_attrs.get("objective", math.nan))
        states[number] = t.state.name.lower()
        for seed in ps.study.seeds:
            p = ps.runner.trial_path(ps.sp.key(number, seed))
            if p.exists():
                paths[(number, seed)] = p
    return sorted(set(numbers)), paths, params, objective, states


def combine_search_results(study: Study, runner: Runner, searches: list[_PointSearch]) -> Path:
    search = study.search
    assert search is not None
    attrs = study_attrs(study, study.registry, str(runner.device), {"optuna_direction": search.resolved_direction})
    out = runner.out_dir / "results.nc"
    if not study.grid_paths:
        numbers, paths, params, objective, states = _point_trials(searches[0])
        combine_search(paths, numbers, study.seeds, params, objective, states, attrs, out)
        return out
    parts = []
    for ps in searches:
        numbers, paths, params, objective, states = _point_trials(ps)
        ds = combine_search(paths, numbers, study.seeds, params, objective, states, {}, None)
        parts.append((dict(ps.sp.point), ds))
    dims = list(study.grid_paths)
    shape = [len(study.grid_values[d]) for d in dims]
    combine_grid_search(parts, dims, shape, search.resolved_direction, attrs, out)
    return out
