"""results.nc of a search inside every grid point: each point's search results (as
:func:`~lbgap.results.combine.combine_search` makes them, dims ``(trial, seed, epoch)``) stacked
along the grid's dimensions, plus the best trial of each point.

Layout: dims ``(<grid dims>..., trial, seed, epoch)``; ``trial`` numbers each point's trials from 0
(points with fewer trials are padded: NaN, ``trial_state = "missing"``). The searched values are
data variables along ``(<grid dims>..., trial)`` (they differ from point to point), ``objective``
and ``trial_state`` likewise; ``best_trial`` and ``best_objective`` along the grid dims (``-1`` and
NaN where no trial of the point finished with a value).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .combine import _nest
from .trialfile import coord_value, write_atomic

__all__ = ["combine_grid_search", "best_of_points"]

_COMBINE = {"combine_attrs": "drop_conflicts", "join": "outer", "coords": "different", "compat": "no_conflicts"}


def combine_grid_search(
    parts: Sequence[tuple[dict[str, Any], xr.Dataset]],
    dims: Sequence[str],
    shape: Sequence[int],
    direction: str,
    attrs: dict[str, Any],
    out: Path,
) -> xr.Dataset:
    """Stack the points' search datasets ``parts`` ((grid point, dataset), in grid order) along
    ``dims`` (of sizes ``shape``), add the best trial per point and write ``out``."""
    width = max((ds.sizes.get("trial", 0) for _, ds in parts), default=0)
    searched = sorted({name for _, ds in parts for name in ds.coords if ds[name].dims == ("trial",) and name != "trial"})
    cells = [_point_dataset(point, ds, searched, width) for point, ds in parts]
    ds = xr.combine_nested(_nest(cells, shape), concat_dim=list(dims), **_COMBINE)
    ds["trial_state"] = ds["trial_state"].fillna("missing").astype(str)
    best, best_value = best_of_points(ds["objective"], direction)
    ds["best_trial"] = best
    ds["best_trial"].attrs.update({"units": "1", "long_name": "trial with the best objective at the grid point (-1: none)"})
    ds["best_objective"] = best_value
    ds["best_objective"].attrs.update({"units": "1", "long_name": "best objective at the grid point"})
    ds = ds.transpose(*dims, "trial", "seed", "epoch", ...)
    ds.attrs = {**{k: v for k, v in ds.attrs.items() if k != "lbgap_trial_key"}, **attrs}
    write_atomic(ds, out)
    return ds


def _point_dataset(point: dict[str, Any], ds: xr.Dataset, searched: list[str], width: int) -> xr.Dataset:
    """One point's dataset with its searched values as variables, ``width`` trials, and the grid
    coordinates of the point as new length-1 dimensions."""
    ds = ds.reset_coords([name for name in searched if name in ds.coords])
    ds = ds.reindex(trial=np.arange(width))
    for name in searched:
        if name not in ds:
            ds[name] = ("trial", np.full(width, np.nan))
    ds["trial_state"] = ds["trial_state"].astype(object).where(ds["trial_state"].notnull(), "missing")
    return ds.expand_dims({d: [coord_value(v)] for d, v in point.items()})


def best_of_points(objective: xr.DataArray, direction: str) -> tuple[xr.DataArray, xr.DataArray]:
    """(index of the best trial, its objective) at every grid point; ``-1`` and NaN where every
    trial's objective is NaN."""
    values = objective.values
    sign = -1.0 if direction == "maximize" else 1.0
    keyed = np.where(np.isnan(values), np.inf, sign * values)
    idx = np.argmin(keyed, axis=-1)
    none = np.all(np.isnan(values), axis=-1)
    best_value = np.take_along_axis(values, idx[..., None], axis=-1)[..., 0]
    grid_dims = objective.dims[:-1]
    coords = {d: objective[d] for d in grid_dims}
    return (
        xr.DataArray(np.where(none, -1, idx).astype(np.int64), dims=grid_dims, coords=coords),
        xr.DataArray(np.where(none, np.nan, best_value), dims=grid_dims, coords=coords),
    )
