"""Dry run of a study: probe every variant before the study is queued for a long run.

Each variant is probed with the first seed (:func:`lbgap.engine.probe.probe`): its parts are
built, it trains a few steps and evaluates one batch. Grid points (or, for a search, the ends of
every searched range and every categorical choice) are probed too, except where they differ from
a point already probed for the same variant only in floating-point settings (learning rates,
momenta, scales), which change neither what is built nor the time a step takes. Nothing is
written anywhere.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..engine.probe import ProbeError, ProbeResult, probe
from ..results.trialfile import weights_files_kept
from ..spec.load import Study, cell_key
from ..spec.merge import split_path
from .cells import queue_order
from .search import search_budget, search_points

__all__ = ["Check", "CheckResult", "DiskEstimate", "DryRunReport", "plan_checks", "dry_run", "metric_names"]

_FLOAT = "<float>"


@dataclass
class Check:
    """One configuration to probe, standing for ``trials`` trials of the study."""

    label: str
    variant: str
    point: tuple[tuple[str, Any], ...]
    config: Any
    seed: int
    trials: int = 0
    #: group keys (variant and grid point) of the cells this check stands for
    groups: list[str] = field(default_factory=list)
    #: a configuration that could not be resolved (a search's combination of values)
    config_error: Optional[str] = None


@dataclass
class CheckResult:
    check: Check
    result: Optional[ProbeResult] = None
    stage: Optional[str] = None  # build | train | evaluate | config, when it failed
    error: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


#: bytes of a saved state dict besides its float32 values (the zip container, names, shapes)
WEIGHTS_FILE_OVERHEAD = 4096
#: bytes of a per-trial netCDF file besides its per-epoch values (HDF5 headers of its ~20 variables)
TRIAL_FILE_OVERHEAD = 48 * 1024
#: per-epoch variables of a trial file (losses, accuracies, distances, steps...), 8 bytes each
PER_EPOCH_VARIABLES = 16
#: how much more free space than the estimate a study should find before it starts
DISK_MARGIN = 1.2


@dataclass
class DiskEstimate:
    """Bytes a study writes in its output folder (an estimate; see :meth:`DryRunReport.disk_estimate`)."""

    #: weights files: parameters × 4 bytes × files per trial (initial, final, warm-start checkpoints)
    weights: int
    #: per-trial result files (``trials/*.nc``)
    trial_files: int
    #: the combined ``results.nc`` (about the trial files together)
    results: int
    #: weights files in all
    weights_files: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.trial_files + self.results


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class DryRunReport:
    study: Study
    device: torch.device
    steps: int
    results: list[CheckResult]
    #: trials a search trains (n_trials × seeds); None for a grid study
    search_trials: Optional[int] = None
    #: vectorized groups: group key → (members, stacked step seconds ÷ members' single steps)
    groups: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: each cell's group key (None: it trains alone)
    cell_groups: dict[str, Optional[str]] = field(default_factory=dict)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def study_seconds(self, jobs: int = 1) -> Optional[tuple[float, float]]:
        """Estimated (least, most) seconds of the whole study, trials one after another, or
        with ``jobs`` workers (``lbgap study run --jobs``).

        A grid study's estimate is one number (least = most); a search's trials take between
        its fastest and its slowest probe's estimate. None if a probe failed. With several
        workers, each takes the next queued trial (in the order a run with workers queues
        them: :func:`~lbgap.driver.cells.queue_order`) when it is free, and is assumed to train as fast as the probe did alone; a search trains one
        trial at a time whatever ``jobs`` is.
        """
        if self.failed or not self.results:
            return None
        per_trial = [r.result.trial_seconds for r in self.results if r.result is not None]
        if self.search_trials is not None:
            return self.search_trials * min(per_trial), self.search_trials * max(per_trial)
        total = _makespan(self._queued_trial_seconds(jobs > 1), jobs) if jobs > 1 else sum(self._queued_trial_seconds())
        return total, total

    def disk_estimate(self) -> Optional[DiskEstimate]:
        """What the study will write: weights (each probe's parameters × 4 bytes × the files each of
        its trials keeps, :func:`~lbgap.results.trialfile.weights_files_kept`: initial and final
        weights with ``keep_weights: final``, also every epoch's with ``all``, and the checkpoints that
        warm-started trials start from), per-trial files and ``results.nc``. None if a probe failed.

        Per-epoch arrays of metric plugins and Optuna's journal are not counted; buffers (batch
        norm statistics) are within the per-file allowance.
        """
        if self.failed or not self.results:
            return None
        probes = [r for r in self.results if r.result is not None]
        if self.search_trials is not None:
            biggest = max(probes, key=lambda r: r.result.n_params)
            epochs = max(r.result.epochs for r in probes)
            files = weights_files_kept(biggest.check.config, epochs)
            weights_files = files * self.search_trials
            weights = weights_files * (4 * biggest.result.n_params + WEIGHTS_FILE_OVERHEAD)
            trial_files = self.search_trials * _trial_file_bytes(epochs)
            return DiskEstimate(weights, trial_files, trial_files, weights_files)
        cells = self.study.cells()
        needs: dict[str, set[int]] = {}  # the checkpoints warm-started cells start from, by source
        for cell in cells:
            ws = cell.config.warm_start
            if ws is not None:
                needs.setdefault(cell_key(ws.variant, cell.point, cell.seed), set()).add(ws.epochs)
        by_group = {g: r.result for r in probes for g in r.check.groups}
        weights = trial_files = weights_files = 0
        for cell in cells:
            res = by_group.get(cell.group)
            if res is None:
                continue
            files = weights_files_kept(cell.config, res.epochs, needs.get(cell.key))
            weights_files += files
            weights += files * (4 * res.n_params + WEIGHTS_FILE_OVERHEAD)
            trial_files += _trial_file_bytes(res.epochs)
        return DiskEstimate(weights, trial_files, trial_files, weights_files)

    @property
    def disk_bytes(self) -> Optional[int]:
        """Estimated bytes the study writes (:meth:`disk_estimate`), or None if a probe failed."""
        estimate = self.disk_estimate()
        return None if estimate is None else estimate.total

    def disk_warning(self, out_dir: Path) -> Optional[str]:
        """A warning when the file system of ``out_dir`` (or of its nearest existing parent) has
        less free space than :data:`DISK_MARGIN` × the estimate; None when there is room."""
        need = self.disk_bytes
        if need is None:
            return None
        where = Path(out_dir).absolute()
        while not where.exists() and where != where.parent:
            where = where.parent
        free = shutil.disk_usage(where).free
        if free >= need * DISK_MARGIN:
            return None
        return (
            f"the study will write about {format_bytes(need)} to {out_dir}, but only {format_bytes(free)} is free "
            "there: free some space, choose another --out, or keep fewer weights (keep_weights: none)"
        )

    def _queued_trial_seconds(self, longest_first: bool = False) -> list[float]:
        """The estimated seconds of each unit a worker takes (a cell, or a vectorized group of
        cells), in the order a run queues the cells."""
        probes = {g: r.result for r in self.results if r.result is not None for g in r.check.groups}
        cells = queue_order(
            self.study, self.study.cells(), longest_first=longest_first, group_of=lambda c: self.cell_groups.get(c.key)
        )
        units: list[float] = []
        last, members = None, 0
        for c in cells:
            if c.group not in probes:
                continue
            res, key = probes[c.group], self.cell_groups.get(c.key)
            size, factor = self.groups.get(key, (1, 1.0)) if key is not None else (1, 1.0)
            train = res.epochs * res.steps_per_epoch * res.step_seconds
            seconds = res.trial_seconds - train * (1.0 - factor)
            if key is not None and key == last and members < size:
                units[-1] += seconds
                members += 1
            else:
                units.append(seconds)
                last, members = key, 1
        return units


def _trial_file_bytes(epochs: int) -> int:
    return TRIAL_FILE_OVERHEAD + 8 * PER_EPOCH_VARIABLES * max(1, epochs)


def _makespan(durations: list[float], jobs: int) -> float:
    """Seconds until ``jobs`` workers, each taking the next duration when free, are done."""
    import heapq

    free = [0.0] * jobs
    for d in durations:
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def _signature(cfg: Any) -> str:
    """The configuration with every floating-point value blanked out."""

    def blank(node: Any) -> Any:
        if isinstance(node, float):
            return _FLOAT
        if isinstance(node, dict):
            return {k: blank(v) for k, v in node.items()}
        if isinstance(node, list):
            return [blank(v) for v in node]
        return node

    return json.dumps(blank(cfg.model_dump(mode="json")), sort_keys=True, default=str)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _label(variant: str, point: tuple[tuple[str, Any], ...]) -> str:
    return cell_key(variant, point, None)


def _grid_checks(study: Study, overrides: dict[str, Any]) -> list[Check]:
    seed = study.seeds[0]
    checks: dict[tuple[str, str], Check] = {}
    for cell in study.cells():
        if cell.seed != seed:
            continue
        label = _label(cell.variant, cell.point)
        cfg = cell.config
        if overrides:
            try:
                cfg = study.resolve(
                    cell.variant, {**{study.grid_paths[d]: v for d, v in cell.point}, **overrides}
                )
            except Exception as exc:
                checks[(label, "")] = Check(
                    label, cell.variant, cell.point, None, seed, config_error=_one_line(exc)
                )
                continue
        found = checks.setdefault(
            (cell.variant, _signature(cfg)), Check(label, cell.variant, cell.point, cfg, seed)
        )
        found.trials += len(study.seeds)
        found.groups.append(cell.group)
    return list(checks.values())


def _search_samples(param: Any) -> list[tuple[Any, Any]]:
    """(value, label) pairs probed for one searched parameter."""
    values = param.probe_values()
    labels = param.labels if param.type == "categorical" and param.labels else values
    return list(zip(values, labels, strict=True))


def _search_checks(study: Study, overrides: dict[str, Any]) -> list[Check]:
    """The first value of every parameter, then each other value of one parameter at a time."""
    search = study.search
    assert search is not None
    samples = {path: _search_samples(p) for path, p in search.params.items()}
    first = {path: s[0] for path, s in samples.items()}
    combos = [first] + [{**first, path: sample} for path, values in samples.items() for sample in values[1:]]
    seed = study.seeds[0]
    checks: dict[str, Check] = {}
    for sp, combo in itertools.product(search_points(study), combos):  # every grid point's search
        variant = sp.variant
        point = sp.point + tuple((str(split_path(path)[-1]), label) for path, (_value, label) in combo.items())
        label = _label(variant, point)
        grid = {study.grid_paths[d]: v for d, v in sp.point}
        try:
            cfg = study.resolve(variant, {**grid, **{p: v for p, (v, _l) in combo.items()}, **overrides})
        except Exception as exc:
            checks[label] = Check(label, variant, point, None, seed, config_error=_one_line(exc))
            continue
        checks.setdefault(_signature(cfg), Check(label, variant, point, cfg, seed))
    return list(checks.values())


def plan_checks(study: Study, overrides: Optional[dict[str, Any]] = None) -> list[Check]:
    """The configurations a dry run probes, warm-start sources first.

    ``overrides``: dotted-path settings applied to every configuration.
    """
    overrides = dict(overrides or {})
    checks = _search_checks(study, overrides) if study.search is not None else _grid_checks(study, overrides)
    return sorted(checks, key=lambda c: c.config is not None and c.config.warm_start is not None)


def dry_run(
    study: Study,
    *,
    device: torch.device,
    steps: int = 2,
    overrides: Optional[dict[str, Any]] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
    vectorize: str = "auto",
) -> DryRunReport:
    """Probe every check of :func:`plan_checks`; failures are collected, not raised. With
    ``vectorize`` ``"auto"``, the groups a run would train as one stacked model are timed too.

    ``progress(i, n, label)`` is called before each probe.
    """
    checks = plan_checks(study, overrides)
    sources = {
        cell_key(c.config.warm_start.variant, c.point, None)
        for c in checks
        if c.config is not None and c.config.warm_start is not None
    }
    states: dict[str, dict[str, torch.Tensor]] = {}
    results = []
    for i, check in enumerate(checks):
        if progress is not None:
            progress(i, len(checks), check.label)
        out = CheckResult(check)
        results.append(out)
        if check.config is None:
            out.stage, out.error = "config", check.config_error
            continue
        ws = check.config.warm_start
        init_state = None
        if ws is not None:
            init_state = states.get(cell_key(ws.variant, check.point, None))
            when = "its initial weights" if ws.epochs == 0 else f"its weights after {ws.epochs} epochs"
            if init_state is not None:
                out.notes.append(
                    f"warm start from {ws.variant}: {ws.variant}'s initial weights stand in for {when}"
                )
            else:
                out.notes.append(f"warm start from {ws.variant} not checked: {ws.variant} did not probe")
        keep = any(g in sources for g in check.groups)
        try:
            out.result = probe(
                check.config,
                check.seed,
                registry=study.registry,
                device=device,
                steps=steps,
                init_state=init_state,
                keep_initial_state=keep,
                key=check.label,
            )
        except ProbeError as exc:
            out.stage, out.error = exc.stage, exc.message
            continue
        if keep and out.result.initial_state is not None:
            for group in check.groups:
                states[group] = out.result.initial_state
            out.result.initial_state = None
        if out.result.batch_size > out.result.n_train:
            out.notes.append(
                f"batch size {out.result.batch_size:,} exceeds the {out.result.n_train:,} training samples: "
                "one batch of all of them per epoch"
            )
    states.clear()
    report = DryRunReport(study, device, steps, results, _search_trials(study))
    if study.search is None and not report.failed:
        _time_groups(report, vectorize)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return report


def _time_groups(report: DryRunReport, vectorize: str) -> None:
    """Time one stacked step of each vectorized group the run would form, against its members'
    single steps (the probes)."""
    from ..engine.group import Member, NotStackable, time_group_step
    from .groups import GroupPlanner

    study = report.study
    planner = GroupPlanner(study, report.device, vectorize)
    by_key: dict[str, list[Any]] = {}
    for cell in study.cells():
        key = planner.key(cell)
        report.cell_groups[cell.key] = key
        if key is not None:
            by_key.setdefault(key, []).append(cell)
    probes = {g: r.result for r in report.results if r.result is not None for g in r.check.groups}
    for key, cells in by_key.items():
        size = min(len(cells), planner.limit(key, cells[0]))
        single = probes.get(cells[0].group)
        if size < 2 or single is None:
            continue
        members = [Member(c.config, c.seed, c.key) for c in cells[:size]]
        try:
            seconds = time_group_step(members, registry=study.registry, device=report.device, steps=report.steps)
        except NotStackable:
            for c in cells:
                report.cell_groups[c.key] = None
            continue
        report.groups[key] = (size, seconds / (size * single.step_seconds))


def _search_trials(study: Study) -> Optional[int]:
    """Trials a search trains: its budget (capped at the grid's size for the grid sampler) × seeds
    × grid points (one search per point)."""
    if study.search is None:
        return None
    return search_budget(study.search) * len(study.seeds) * len(search_points(study))


def metric_names(study: Study) -> list[str]:
    """Names of the metric plugins the study's variants measure (their time is not in the estimates)."""
    names: list[str] = []
    for cfg in study.variants.values():
        for m in cfg.metrics:
            if m.name not in names:
                names.append(m.name)
    return names
