"""The critical-batch analysis of a finished study's ``results.nc``.

:func:`steps_per_batch_size` gathers the steps to target of every trial per
batch size, whether the batch size is a grid dimension (``batch_size``) or a
coordinate along ``trial`` (a search). :func:`best_per_batch_size` reduces a
results variable to the best (fewest steps) per batch size and seed, taking the
minimum over every other dimension (the trials of a search inside each grid
point, other grid dimensions such as a learning-rate grid).
:func:`critical_batch_analysis` fits
:func:`lbgap.analysis.critical_batch.fit_critical_batch` to those bests, one fit
per variant, with ``B_simple`` from the ``gradient_noise_scale`` metric when the
study measured it; :func:`critical_batch_result_figures` draws a fit
(:func:`lbgap.analysis.figures.steps_to_target_figure` and, with
``examples_to_target``, :func:`lbgap.analysis.figures.examples_steps_figure`) and
:func:`critical_batch_summary` writes the markdown table of ``lbgap report``.
:func:`critical_batch_figures` does both figures for every variant; its
signature is that of the ``lbgap_report_figures`` hook. All of them do nothing
when the study has no steps-to-target variable along a batch size.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .critical_batch import _AGGREGATES, Aggregate, CriticalBatchFit, fit_critical_batch
from .figures import examples_steps_figure, steps_to_target_figure

__all__ = [
    "CriticalBatchResult",
    "NoiseScaleSummary",
    "b_simple_of",
    "b_simple_summary",
    "best_per_batch_size",
    "critical_batch_analysis",
    "critical_batch_figures",
    "critical_batch_result_figures",
    "critical_batch_summary",
    "fit_results",
    "steps_per_batch_size",
]

log = logging.getLogger(__name__)


def steps_per_batch_size(
    ds: Any, variable: str = "steps_to_target", batch: str = "batch_size"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(batch sizes, [measurements per batch size])``: every value of ``variable`` (seeds, trials,
    other grid dimensions pooled), NaN included (a missed target), per distinct batch size.

    ``batch`` is a dimension of the variable, or a coordinate along one of its dimensions (the
    parameter coordinates of a search along ``trial``). Raises ``KeyError`` if ``variable`` is
    missing and ``ValueError`` if it has an ``epoch`` dimension or no batch size to group by.
    """
    da = ds[variable]
    if "epoch" in da.dims:
        raise ValueError(f"{variable} has an epoch dimension: give an end-of-training variable")
    if batch in da.dims:
        values = [np.asarray(da.sel({batch: b}).values, dtype=float).ravel() for b in da[batch].values]
        return np.asarray(da[batch].values, dtype=float), values
    if batch in da.coords:
        coord = da.coords[batch]
        if coord.ndim != 1:
            raise ValueError(f"the {batch} coordinate of {variable} has {coord.ndim} dimensions; expected one")
        (dim,) = coord.dims
        bs = np.asarray(coord.values, dtype=float)
        keys = np.unique(bs[np.isfinite(bs)])
        moved = da.transpose(dim, ...)
        arr = np.asarray(moved.values, dtype=float).reshape(len(bs), -1)
        return keys, [arr[bs == k].ravel() for k in keys]
    raise ValueError(f"{variable} has no {batch!r} dimension or coordinate to group by")


def best_per_batch_size(da: Any, batch: str = "batch_size", keep: Sequence[str] = ("seed",)) -> Any:
    """The best (smallest) value of ``da`` per batch size and per index of the ``keep`` dimensions.

    The minimum, NaN left out (a missed target), is taken over every other dimension: the
    trials of a search inside each grid point (``trial``), and other grid dimensions (a
    learning-rate grid is a search of each batch size's hyper-parameters). ``batch`` is a
    dimension of ``da`` (a grid over batch sizes, with or without a ``trial`` dimension inside
    each grid point) or a coordinate along one of its dimensions (a search whose trials each
    have a ``batch_size`` parameter), whose trials are then grouped by their batch size. A
    plain ``(batch_size, seed)`` grid comes back unchanged. Select one variant first.

    Returns a DataArray with ``batch`` first and the ``keep`` dimensions that ``da`` has; an
    entry is NaN when no trial of it met the target. Raises ``ValueError`` for a variable with
    an ``epoch`` dimension or nothing to group by.
    """
    import xarray as xr

    if "epoch" in da.dims:
        raise ValueError(f"{da.name} has an epoch dimension: give an end-of-training variable")
    keep = [d for d in keep if d != batch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN minima: a batch size that never met the target
        if batch in da.dims:
            drop = [d for d in da.dims if d != batch and d not in keep]
            out = da.min(drop, skipna=True) if drop else da
        elif batch in da.coords:
            coord = da.coords[batch]
            if coord.ndim != 1:
                raise ValueError(f"the {batch} coordinate of {da.name} has {coord.ndim} dimensions; expected one")
            (dim,) = coord.dims
            if dim in keep:
                raise ValueError(f"{batch} lies along {dim!r}, which is kept: nothing to group")
            bs = np.asarray(coord.values, dtype=float)
            keys = np.unique(bs[np.isfinite(bs)])
            parts = []
            for k in keys:
                sub = da.isel({dim: np.flatnonzero(bs == k)})
                parts.append(sub.min([d for d in sub.dims if d not in keep], skipna=True))
            out = xr.concat(parts, dim=batch, coords="minimal", compat="override").assign_coords({batch: keys})
        else:
            raise ValueError(f"{da.name} has no {batch!r} dimension or coordinate to group by")
    return out.transpose(batch, ...)


def _per_batch_size(best: Any, batch: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(batch sizes, [values per batch size])`` of :func:`best_per_batch_size`'s result."""
    arr = np.asarray(best.values, dtype=float).reshape(best.sizes[batch], -1)
    return np.asarray(best[batch].values, dtype=float), list(arr)


def _last_values(ds: Any, variable: str, select: Optional[dict[str, Any]]) -> np.ndarray:
    """Each run's last finite value of ``variable`` (the values themselves without ``epoch``), finite only."""
    da = ds[variable] if not select else ds[variable].sel(select)
    if "epoch" in da.dims:
        arr = np.asarray(da.transpose(..., "epoch").values, dtype=float)
        arr = arr.reshape(-1, arr.shape[-1])
        finite = np.isfinite(arr)
        last = arr.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)  # each trial's last finite epoch
        values = np.where(finite.any(axis=1), arr[np.arange(arr.shape[0]), last], np.nan)
    else:
        values = np.asarray(da.values, dtype=float).ravel()
    return values[np.isfinite(values)]


def b_simple_of(ds: Any, variable: str = "gradient_noise_scale", select: Optional[dict[str, Any]] = None) -> float:
    """The measured gradient noise scale ``B_simple`` to mark beside B_crit: the median over every
    trial of its last finite value (the end of training, near the target, where McCandlish et al.
    compare it with B_crit); NaN when the study did not measure it."""
    if variable not in ds:
        return math.nan
    values = _last_values(ds, variable, select)
    return float(np.median(values)) if values.size else math.nan


@dataclass(frozen=True)
class NoiseScaleSummary:
    """``B_simple`` over the runs of one arm: the median, 25th and 75th percentiles over runs of
    each run's last finite value of ``variable``, and how many runs had one."""

    median: float
    low: float
    high: float
    n_runs: int
    variable: str


def b_simple_summary(
    ds: Any, variable: str = "gradient_noise_scale", select: Optional[dict[str, Any]] = None
) -> Optional[NoiseScaleSummary]:
    """:class:`NoiseScaleSummary` of ``variable``; ``None`` when the study did not measure it or
    no run has a finite value."""
    if variable not in ds:
        return None
    values = _last_values(ds, variable, select)
    if not values.size:
        return None
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return NoiseScaleSummary(float(q50), float(q25), float(q75), int(values.size), variable)


def fit_results(
    ds: Any,
    *,
    variable: str = "steps_to_target",
    batch: str = "batch_size",
    select: Optional[dict[str, Any]] = None,
    aggregate: Aggregate = "min",
    n_boot: int = 1000,
    seed: int = 0,
) -> CriticalBatchFit:
    """:func:`fit_critical_batch` on :func:`steps_per_batch_size` of ``ds`` (after ``ds.sel(select)``)."""
    sub = ds.sel(select) if select else ds
    b, steps = steps_per_batch_size(sub, variable, batch)
    return fit_critical_batch(b, steps, aggregate=aggregate, n_boot=n_boot, seed=seed)


@dataclass(frozen=True)
class CriticalBatchResult:
    """The critical-batch analysis of one variant (see :func:`critical_batch_analysis`).

    Attributes
    ----------
    variant:
        The variant's name (``None`` when the results have no ``variant`` dimension).
    tag:
        The suffix of the figure files (empty for a study with one variant).
    fit:
        The fit, or ``None`` when it could not run (``reason`` says why).
    reason:
        Why there is no fit (``""`` with one).
    batch_sizes:
        Every batch size measured (ascending), met the target or not.
    n_per_batch:
        The most measurements (seeds) any batch size has after :func:`best_per_batch_size`.
    best_over:
        The dimensions the best was taken over (``trial``, other grid dimensions).
    resample:
        What the bootstrap resampled: ``"measurements"`` (the seeds of each batch size) or
        ``"batch_sizes"`` (one measurement per batch size).
    examples:
        The measured examples to target of each of ``fit.batch_sizes``, aggregated like the
        steps (``None`` without ``examples_to_target`` or a fit).
    b_simple:
        The measured gradient noise scale (``None`` when not measured).
    """

    variant: Optional[str]
    tag: str
    fit: Optional[CriticalBatchFit]
    reason: str
    batch_sizes: np.ndarray
    n_per_batch: int
    best_over: tuple[str, ...]
    resample: str
    examples: Optional[np.ndarray]
    b_simple: Optional[NoiseScaleSummary]


def _aggregate(values: np.ndarray, aggregate: str) -> float:
    """``aggregate`` (as in :func:`fit_critical_batch`) of the finite ``values``; NaN if none."""
    v = values[np.isfinite(values)]
    return _AGGREGATES[aggregate](v) if v.size else math.nan


def _has_batch(ds: Any, variable: str, batch: str) -> bool:
    if variable not in ds:
        return False
    da = ds[variable]
    return "epoch" not in da.dims and (batch in da.dims or (batch in da.coords and da.coords[batch].ndim == 1))


def critical_batch_analysis(
    ds: Any,
    *,
    variable: str = "steps_to_target",
    examples_variable: str = "examples_to_target",
    batch: str = "batch_size",
    noise_variable: str = "gradient_noise_scale",
    aggregate: Optional[Aggregate] = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[CriticalBatchResult]:
    """Fit McCandlish et al.'s model to the best steps to target per batch size, one fit per variant.

    Per variant, :func:`best_per_batch_size` takes the best (fewest steps) per batch size and
    seed; each batch size's seeds are then reduced with ``aggregate`` (default: the median when
    some batch size has several seeds) and the bootstrap resamples them (with one measurement
    per batch size it resamples the batch sizes instead). A fit that cannot run (fewer than three
    batch sizes met the target, all NaN) gives a result with ``fit = None`` and the reason.
    Returns ``[]`` when ``variable`` is absent or has no batch size to group by.
    """
    if not _has_batch(ds, variable, batch):
        return []
    da = ds[variable]
    variants: list[Optional[str]] = [None]
    if "variant" in da.dims:
        variants = [str(v) for v in ds["variant"].values]
    several = len(variants) > 1
    with_examples = _has_batch(ds, examples_variable, batch)
    out: list[CriticalBatchResult] = []
    for variant in variants:
        select = {"variant": variant} if variant is not None else None
        sub = da.sel(select) if select else da
        best = best_per_batch_size(sub, batch)
        over = tuple(str(d) for d in sub.dims if d not in best.dims)
        if batch not in sub.dims:
            over = tuple(dict.fromkeys(over + (str(sub.coords[batch].dims[0]),)))
        b, per_b = _per_batch_size(best, batch)
        n_per = max((int(np.isfinite(v).sum()) for v in per_b), default=0)
        agg = aggregate or ("median" if n_per > 1 else "min")
        resample = "measurements" if n_per > 1 else "batch_sizes"
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", variant) if several and variant is not None else ""
        b_simple = b_simple_summary(ds, noise_variable, select)
        common = dict(variant=variant, tag=tag, batch_sizes=np.sort(b), n_per_batch=n_per, best_over=over,
                      resample=resample, b_simple=b_simple)
        try:
            fit = fit_critical_batch(
                b, per_b, aggregate=agg, n_boot=n_boot, confidence=confidence, resample=resample, seed=seed
            )
        except ValueError as exc:
            log.info("critical batch size%s: %s", f" of {variant}" if variant else "", exc)
            out.append(CriticalBatchResult(fit=None, reason=str(exc), examples=None, **common))
            continue
        examples = None
        if with_examples:
            e_sub = ds[examples_variable].sel(select) if select else ds[examples_variable]
            e_best = best_per_batch_size(e_sub, batch)
            e_b, e_per = _per_batch_size(e_best, batch)
            by_b = {float(k): v for k, v in zip(e_b, e_per, strict=True)}
            examples = np.array([_aggregate(by_b.get(float(k), np.array([np.nan])), agg) for k in fit.batch_sizes])
        out.append(CriticalBatchResult(fit=fit, reason="", examples=examples, **common))
    return out


def critical_batch_result_figures(
    result: CriticalBatchResult, out_dir: Path, *, examples_steps: bool = True
) -> list[tuple[str, Path]]:
    """The figures of one :class:`CriticalBatchResult` in ``out_dir``: steps to target against batch
    size (``critical_batch[_<variant>].png``) and, with ``examples_steps`` and measured examples,
    examples against steps (``examples_steps[_<variant>].png``). Nothing without a fit."""
    fit = result.fit
    if fit is None:
        return []
    out_dir = Path(out_dir)
    suffix = f" ({result.variant})" if result.tag else ""
    file_suffix = f"_{result.tag}" if result.tag else ""
    title = f"Steps to target against batch size{suffix}: B_crit = {fit.b_crit:.3g}"
    if fit.at_bound:
        title = f"Steps to target against batch size{suffix}: B_crit not determined (one regime)"
    b_simple = result.b_simple.median if result.b_simple is not None else None
    figures = [(title, steps_to_target_figure(fit, out_dir / f"critical_batch{file_suffix}.png", b_simple=b_simple,
                                              title=title))]
    if examples_steps and result.examples is not None and np.isfinite(result.examples).any():
        e_title = f"Examples against steps to target{suffix}"
        figures.append((e_title, examples_steps_figure(
            fit, out_dir / f"examples_steps{file_suffix}.png", examples=result.examples,
            title=f"{e_title} (labels: batch size)",
        )))
    return figures


def _ci(value: float, interval: tuple[float, float]) -> str:
    lo, hi = interval
    text = f"{value:.4g}"
    return text + (f" [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) and math.isfinite(hi) else "")


def critical_batch_summary(results: Sequence[CriticalBatchResult]) -> list[str]:
    """The markdown section of ``lbgap report``: a table of S_min, E_min, B_crit with their
    bootstrap intervals and B_simple, one row per variant; a variant without a fit gets one line
    saying why. Empty for no results."""
    if not results:
        return []
    fitted = [r for r in results if r.fit is not None]
    lines = ["## Critical batch size", ""]
    if fitted:
        f0 = fitted[0].fit
        assert f0 is not None
        boot = (f"{100 * f0.confidence:g} % percentile bootstrap intervals ({f0.n_boot} replicates) in brackets"
                if f0.n_boot else "no bootstrap")
        lines += [
            "McCandlish et al. (2018): `S(B) = S_min (1 + B_crit/B)`, i.e. `(S/S_min − 1)(E/E_min − 1) = 1`, fitted "
            f"in log space to the best steps to target per batch size; {boot}.",
            "",
            "| arm | batch sizes fitted | per batch size | S_min [steps] | E_min [examples] | B_crit | "
            "B_simple | rms log residual |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in fitted:
            fit = r.fit
            assert fit is not None
            used = f"{fit.batch_sizes.size} of {r.batch_sizes.size} ({fit.batch_sizes.min():g}–{fit.batch_sizes.max():g})"
            best = f"best over {', '.join(r.best_over)}; " if r.best_over else ""
            if r.n_per_batch > 1:
                per = f"{best}{fit.aggregate} of ≤ {r.n_per_batch} seeds (bootstrap: seeds)"
            else:
                per = f"{best}one run (bootstrap: batch sizes)"
            b_crit = _ci(fit.b_crit, fit.intervals.get("b_crit", (math.nan, math.nan)))
            if fit.at_bound:
                b_crit += " (not determined: all batch sizes in one regime)"
            bs = r.b_simple
            b_simple = "—" if bs is None else f"{bs.median:.4g} [{bs.low:.4g}, {bs.high:.4g}] ({bs.n_runs} runs)"
            lines.append(
                f"| {r.variant or 'all'} | {used} | {per} | {_ci(fit.s_min, fit.intervals['s_min'])} | "
                f"{_ci(fit.e_min, fit.intervals['e_min'])} | {b_crit} | {b_simple} | {fit.rms_log_residual:.3g} |"
            )
        noise = next((r.b_simple.variable for r in fitted if r.b_simple is not None), "gradient_noise_scale")
        lines += [
            "",
            "- batch sizes fitted: those where some run met the target, of all measured, and their range;",
            "- per batch size: one number per batch size — the best (fewest steps) over the dimensions named "
            "(a search's trials, other grid dimensions) for each seed, then the aggregate over seeds; the "
            "bootstrap redraws the seeds of every batch size, or the batch sizes when each has one run;",
            "- S_min: the fewest optimizer steps any batch size needs (B → ∞); E_min: the fewest training "
            "examples (B → 0); B_crit = E_min/S_min: the batch size that takes 2·S_min steps and 2·E_min examples;",
            f"- B_simple: the measured gradient noise scale `{noise}` (tr(Σ)/|G|²) — the median over runs of each "
            "run's last measured value (the end of training, near the target), its 25th and 75th percentiles "
            "over runs in brackets; — when not measured;",
            "- rms log residual: root mean square of log S − log S(B) over the batch sizes fitted.",
            "",
        ]
    for r in results:
        if r.fit is None:
            lines.append(f"Critical batch size of {r.variant or 'all'} not fitted: {r.reason}")
            lines.append("")
    return lines


def critical_batch_figures(
    ds: Any,
    out_dir: Path,
    *,
    variable: str = "steps_to_target",
    batch: str = "batch_size",
    noise_variable: str = "gradient_noise_scale",
    aggregate: Optional[Aggregate] = None,
    n_boot: int = 1000,
    seed: int = 0,
    examples_steps: bool = False,
) -> list[tuple[str, Path]]:
    """The steps-to-target figure of :func:`critical_batch_analysis` for every variant, in
    ``out_dir`` (with ``examples_steps``, each followed by its examples-against-steps figure).

    Returns ``(title, path)`` pairs; nothing when ``variable`` is absent. A variant whose
    measurements cannot be fitted (fewer than three batch sizes met the target) is skipped with a
    log message.
    """
    results = critical_batch_analysis(
        ds, variable=variable, batch=batch, noise_variable=noise_variable, aggregate=aggregate, n_boot=n_boot,
        seed=seed,
    )
    figures: list[tuple[str, Path]] = []
    for result in results:
        figures += critical_batch_result_figures(result, out_dir, examples_steps=examples_steps)
    return figures
