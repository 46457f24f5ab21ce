"""Variables measured after the fact (``lbgap measure``), kept in their own files.

``results.nc`` is derived: a run or a resume rebuilds it from the per-trial files. What
``lbgap measure`` adds is kept apart, one file per variable in ``DIR/measured/``, each with the
``history`` line of the measurement that made it, and merged into ``results.nc`` every time it
is rebuilt, so no measured variable (and no line of its history) is lost by a resume or a re-run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import xarray as xr

from .trialfile import is_temporary, write_atomic

__all__ = ["MEASURED_DIR", "measured_path", "save_measured", "merge_measured"]

log = logging.getLogger(__name__)

#: the folder, inside a study's output folder, of the variables ``lbgap measure`` added
MEASURED_DIR = "measured"


def measured_path(out_dir: Path, name: str) -> Path:
    """The file that keeps the measured variable ``name`` (any name: it is quoted into a file name)."""
    return Path(out_dir) / MEASURED_DIR / f"{quote(name, safe='')}.nc"


def save_measured(out_dir: Path, da: xr.DataArray, history: str) -> Path:
    """Keep the measured variable ``da`` (named) with the ``history`` line of its measurement."""
    assert da.name is not None
    ds = da.to_dataset()
    ds.attrs = {"history": history}
    path = measured_path(out_dir, str(da.name))
    write_atomic(ds, path)
    return path


def merge_measured(ds: xr.Dataset, out_dir: Path) -> xr.Dataset:
    """``ds`` (a freshly combined ``results.nc``) with every variable kept in ``out_dir/measured``
    added (aligned on ``ds``'s coordinates; it replaces a variable of the same name), and their
    history lines appended to ``ds.attrs["history"]`` (each once, oldest first)."""
    folder = Path(out_dir) / MEASURED_DIR
    if not folder.is_dir():
        return ds
    lines: list[str] = []
    for path in sorted(folder.glob("*.nc")):
        if is_temporary(path):
            continue
        try:
            with xr.open_dataset(path, engine="netcdf4") as f:
                kept = f.load()
        except Exception as exc:  # a damaged file must not stop the study's results from being written
            log.warning("cannot read the measured variable file %s (%s); it is left out of results.nc", path, exc)
            continue
        for name, da in kept.data_vars.items():
            if name in ds.data_vars:
                ds = ds.drop_vars(name)
            _, aligned = xr.align(ds, da, join="left", exclude=[d for d in da.dims if d not in ds.dims])
            ds[name] = aligned
        lines.extend(line for line in str(kept.attrs.get("history", "")).splitlines() if line.strip())
    old = [line for line in str(ds.attrs.get("history", "")).splitlines() if line.strip()]
    new = sorted({line for line in lines if line not in old})  # lines start with an ISO time: oldest first
    if new:
        ds.attrs["history"] = "\n".join([*old, *new])
    return ds
