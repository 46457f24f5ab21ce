"""One netCDF file per trial, written once and atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
import xarray as xr

from .attrs import variable_attrs

if TYPE_CHECKING:  # pragma: no cover - results do not depend on the engine at run time
    from ..outcome import TrialOutcome

__all__ = [
    "trial_dataset",
    "write_atomic",
    "save_weights",
    "weights_dir",
    "coord_value",
    "fsync_dir",
    "replace_durably",
    "is_temporary",
    "trial_file_value",
]

#: how the name of a file being written starts and what follows its name: ``.<name>.tmp-<pid>``
TMP_MARK = ".tmp-"


def coord_value(value: Any) -> Any:
    """A grid or search value as a netCDF-friendly coordinate (number or string)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def trial_dataset(
    outcome: TrialOutcome,
    coords: Mapping[str, Any],
    variable_attrs_by_name: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> xr.Dataset:
    """Per-epoch history and end-of-training values of one trial.

    ``coords`` are the scalar coordinates that place the trial in the study
    (variant, grid values, seed, or trial number).

    Plugin variables carry the attributes their metric declared (``units``,
    ``long_name``; see :attr:`lbgap.metric.Metric.attrs`) and ``source`` (the
    plugin that wrote them): ``variable_attrs_by_name`` if given, else the
    outcome's ``variable_attrs`` (``{name: {attribute: value}}``, see
    :func:`lbgap.provenance.variable_attrs_of`). A returned ``DataArray``'s own
    ``units`` and ``long_name`` take precedence over the declared ones.
    """
    declared = variable_attrs_by_name
    if declared is None:
        declared = getattr(outcome, "variable_attrs", None) or {}

    def attrs_of(name: str, own: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        attrs = {**variable_attrs(name, declared.get(name)), **(own or {})}
        if "source" in (declared.get(name) or {}):
            attrs["source"] = declared[name]["source"]  # the writer is known here, not by the value
        return attrs

    n_epochs = max((len(v) for v in outcome.history.values()), default=0)
    epoch = np.arange(1, n_epochs + 1, dtype=np.int64)
    data_vars: dict[str, Any] = {}
    for name, values in outcome.history.items():
        arr = np.asarray(values + [math.nan] * (n_epochs - len(values)), dtype=np.float64)
        data_vars[name] = xr.Variable(("epoch",), arr, attrs=attrs_of(name))
    for name, by_epoch in outcome.epoch_arrays.items():
        epochs = sorted(by_epoch)
        stacked = xr.concat(
            [by_epoch[e] for e in epochs], dim=xr.DataArray(epochs, dims="epoch"), join="outer",
            coords="different", compat="equals", combine_attrs="drop_conflicts",
        )
        stacked = stacked.reindex(epoch=epoch).drop_vars("epoch")  # NaN where not measured
        data_vars[name] = stacked.assign_attrs(attrs_of(name, by_epoch[epochs[0]].attrs)).transpose("epoch", ...)
    for name, value in outcome.end.items():
        if isinstance(value, xr.DataArray):
            data_vars[name] = value.assign_attrs(attrs_of(name, value.attrs))
        elif isinstance(value, torch.Tensor):
            data_vars[name] = xr.Variable((), float(value), attrs=attrs_of(name))
        else:
            data_vars[name] = xr.Variable((), float(value), attrs=attrs_of(name))
    plan = outcome.plan
    scalars = {
        "effective_learning_rate": float(plan.lr),
        "planned_epochs": float(plan.epochs),
        "time_scale": float(plan.time_scale),
        "epochs_done": float(n_epochs),
        "wall_time": float(outcome.wall_time),
    }
    for name, value in scalars.items():
        data_vars[name] = xr.Variable((), value, attrs=variable_attrs(name))
    data_vars["status"] = xr.Variable((), outcome.status, attrs=variable_attrs("status"))
    data_vars["status_reason"] = xr.Variable((), outcome.reason, attrs=variable_attrs("status_reason"))
    ds = xr.Dataset(data_vars, coords={"epoch": ("epoch", epoch, variable_attrs("epoch"))})
    for name, value in coords.items():
        ds = ds.assign_coords({name: coord_value(value)})
        ds[name].attrs.update(variable_attrs(name))
    ds.attrs["lbgap_trial_key"] = outcome.key
    ds.attrs["data_description"] = outcome.data_description
    return ds


def write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # fletcher32: HDF5 checks each chunk when it is read, so a damaged file is detected, not combined
    encoding = {
        name: {"zlib": True, "complevel": 4, "fletcher32": True}
        for name, var in ds.variables.items()
        if var.dtype.kind == "f" and var.ndim > 0
    }
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or an error: no partial file is left behind
        raise


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a file being written (``.<name>.tmp-<pid>``), or left by a writer that was killed."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (the folder's entry is on disk, not only the file)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, rename it to ``path`` and flush the folder: after a power cut the file is
    either the old one or the complete new one."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def trial_file_value(path: Path) -> tuple[str, float]:
    """(status, final test accuracy) of a finished trial's file (NaN if it has none)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        status = str(ds["status"].values) if "status" in ds else "completed"
        if "test_accuracy" not in ds:
            return status, math.nan
        values = np.asarray(ds["test_accuracy"].values, dtype=np.float64).ravel()
    finite = values[~np.isnan(values)]
    return status, float(finite[-1]) if finite.size else math.nan


def weights_dir(out_dir: Path, key: str) -> Path:
    return Path(out_dir) / "weights" / key


def save_weights(outcome: TrialOutcome, out_dir: Path) -> Path:
    """Keep initial, final and checkpoint state dicts of a trial (atomic per file)."""
    folder = weights_dir(out_dir, outcome.key)
    folder.mkdir(parents=True, exist_ok=True)
    items = {"initial": outcome.initial_state, "final": outcome.final_state}
    items.update({f"epoch_{k}": v for k, v in outcome.checkpoints.items()})
    for name, state in items.items():
        target = folder / f"{name}.pt"
        tmp = folder / f".{name}.pt.tmp-{os.getpid()}"
        try:
            torch.save(state, tmp)
            replace_durably(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(folder.parent)  # the trial's folder itself, new in weights/
    return folder
