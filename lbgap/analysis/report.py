"""The critical-batch analysis of a finished study's ``results.nc``.

:func:`steps_per_batch_size` gathers the steps to target of every trial per
batch size, whether the batch size is a grid dimension (``batch_size``) or a
coordinate along ``trial`` (a search); :func:`critical_batch_figures` fits
:func:`lbgap.analysis.critical_batch.fit_critical_batch` to them and draws
:func:`lbgap.analysis.figures.steps_to_target_figure`, one figure per variant,
with ``B_simple`` from the ``gradient_noise_scale`` metric when the study
measured it. The signature is that of the ``lbgap_report_figures`` hook, so
the report can call it as it is; it draws nothing when the study has no
steps-to-target variable.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .critical_batch import Aggregate, CriticalBatchFit, fit_critical_batch
from .figures import steps_to_target_figure

__all__ = ["b_simple_of", "critical_batch_figures", "fit_results", "steps_per_batch_size"]

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


def b_simple_of(ds: Any, variable: str = "gradient_noise_scale", select: Optional[dict[str, Any]] = None) -> float:
    """The measured gradient noise scale ``B_simple`` to mark beside B_crit: the median over every
    trial of its last finite value (the end of training, near the target, where McCandlish et al.
    compare it with B_crit); NaN when the study did not measure it."""
    if variable not in ds:
        return math.nan
    da = ds[variable] if not select else ds[variable].sel(select)
    if "epoch" in da.dims:
        arr = np.asarray(da.transpose(..., "epoch").values, dtype=float)
        arr = arr.reshape(-1, arr.shape[-1])
        finite = np.isfinite(arr)
        last = arr.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)  # each trial's last finite epoch
        values = np.where(finite.any(axis=1), arr[np.arange(arr.shape[0]), last], np.nan)
    else:
        values = np.asarray(da.values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else math.nan


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


def critical_batch_figures(
    ds: Any,
    out_dir: Path,
    *,
    variable: str = "steps_to_target",
    batch: str = "batch_size",
    noise_variable: str = "gradient_noise_scale",
    aggregate: Aggregate = "min",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[tuple[str, Path]]:
    """Steps to target against batch size with the fitted model, one PNG per variant, in ``out_dir``.

    Returns ``(title, path)`` pairs; nothing when ``variable`` is absent. A variant whose
    measurements cannot be fitted (fewer than three batch sizes met the target) is skipped with a
    log message.
    """
    if variable not in ds:
        return []
    out_dir = Path(out_dir)
    variants = [None]
    if "variant" in ds[variable].dims and ds.sizes["variant"] > 1:
        variants = [str(v) for v in ds["variant"].values]
    figures: list[tuple[str, Path]] = []
    for variant in variants:
        select = {"variant": variant} if variant is not None else None
        try:
            fit = fit_results(
                ds, variable=variable, batch=batch, select=select, aggregate=aggregate, n_boot=n_boot, seed=seed
            )
        except ValueError as exc:
            log.info("critical batch size%s: %s", f" of {variant}" if variant else "", exc)
            continue
        b_simple = b_simple_of(ds, noise_variable, select)
        suffix = f" ({variant})" if variant else ""
        title = f"Steps to target against batch size{suffix}: B_crit = {fit.b_crit:.3g}"
        if fit.at_bound:
            title = f"Steps to target against batch size{suffix}: B_crit not determined (one regime)"
        name = "critical_batch" + ("_" + re.sub(r"[^A-Za-z0-9_.-]", "_", variant) if variant else "") + ".png"
        path = steps_to_target_figure(
            fit, out_dir / name, b_simple=b_simple if math.isfinite(b_simple) else None, title=title
        )
        figures.append((title, path))
    return figures
