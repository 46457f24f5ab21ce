"""Final values of ragged, NaN-padded per-epoch variables."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["final_values", "hold_final", "band_over_runs"]


def final_values(ds: xr.Dataset, name: str) -> xr.DataArray:
    """The last non-NaN value along ``epoch`` of a per-epoch variable.

    Runs of different lengths (regime adaptation, early stopping) are
    NaN-padded in ``results.nc``; this picks each run's own last epoch.
    """
    da = ds[name]
    valid = da.notnull()
    last = valid.cumsum("epoch").argmax("epoch")  # index of the last valid epoch
    return da.isel(epoch=last).where(valid.any("epoch"))


def hold_final(values: np.ndarray) -> np.ndarray:
    """``values`` (``[..., epoch]``, NaN-padded) with each run's last finite value carried to the end.

    For means over runs that stopped at different epochs: a run that stopped keeps counting with
    its final value instead of dropping out (which makes the mean jump). Gaps before a run's last
    finite value (epochs ``eval.every`` skipped) stay NaN.
    """
    held = np.array(values, dtype=np.float64, copy=True)
    if held.size == 0:  # no run or no epoch (a study arm whose trials all failed)
        return held
    rows = held.reshape(-1, held.shape[-1])  # a view: held is a fresh C-contiguous array
    for row in rows:
        finite = np.flatnonzero(np.isfinite(row))
        if finite.size:
            row[finite[-1] + 1 :] = row[finite[-1]]
    return held


def band_over_runs(x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, minimum and maximum over runs (``values``: ``[run, epoch]``) at the epochs some run was
    evaluated, a run that stopped early counting with its final value (:func:`hold_final`).

    Returns ``(x, mean, lo, hi)`` restricted to those epochs: with ``eval.every`` > 1 the others are
    NaN, and a line through NaN-separated points draws nothing.
    """
    evaluated = np.isfinite(values).any(axis=0)
    held = hold_final(values)[:, evaluated]
    return np.asarray(x)[evaluated], np.nanmean(held, axis=0), np.nanmin(held, axis=0), np.nanmax(held, axis=0)
