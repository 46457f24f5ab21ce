"""Final values of ragged, NaN-padded per-epoch variables."""

from __future__ import annotations

import xarray as xr

__all__ = ["final_values"]


def final_values(ds: xr.Dataset, name: str) -> xr.DataArray:
    """The last non-NaN value along ``epoch`` of a per-epoch variable.

    Runs of different lengths (regime adaptation, early stopping) are
    NaN-padded in ``results.nc``; this picks each run's own last epoch.
    """
    da = ds[name]
    valid = da.notnull()
    last = valid.cumsum("epoch").argmax("epoch")  # index of the last valid epoch
    return da.isel(epoch=last).where(valid.any("epoch"))
