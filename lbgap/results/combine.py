"""Combine per-trial files into the study's ``results.nc``.

Dimensions: ``variant``, one per grid parameter, ``seed`` and ``epoch`` for a
grid study; ``trial``, ``seed`` and ``epoch`` for a search (the searched values
are coordinates along ``trial``). Ragged histories are NaN-padded (``join=
"outer"``); every xarray combine argument is passed explicitly.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

import numpy as np
import xarray as xr

from .. import __version__
from ..plugin_sources import plugin_names
from .measured import merge_measured
from .trialfile import coord_value, write_atomic

__all__ = ["combine_grid", "combine_grid_in_memory", "combine_search", "study_attrs", "open_trial", "DamagedTrialFiles"]

_COMBINE = dict(
    join="outer",
    data_vars="all",
    coords="different",
    compat="no_conflicts",
    combine_attrs="drop_conflicts",
)


def open_trial(path: Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return _strings_as_objects(ds.load())


class DamagedTrialFiles(ValueError):
    """Trial files that cannot be read (truncated, or a checksum that does not match); ``results.nc``
    was not written. A grid study's are moved aside (to ``trials/damaged/``), so that the next run
    trains those trials again."""

    def __init__(self, damaged: dict[Path, str], moved: bool = True) -> None:
        self.damaged = damaged
        names = "; ".join(f"{p.name}: {why}" for p, why in damaged.items())
        if moved:
            folder = next(iter(damaged)).parent
            text = (f"{len(damaged)} trial file(s) could not be read and were moved to {folder}/ ({names}); "
                    "resume the study to train those trials again")
        else:
            text = f"{len(damaged)} trial file(s) could not be read ({names})"
        super().__init__(text)


def _open_checked(path: Path, damaged: dict[Path, str], move: bool = True) -> Optional[xr.Dataset]:
    """``open_trial(path)``, or None for a file that cannot be read (recorded in ``damaged``; with
    ``move``, moved to ``damaged/`` next to it)."""
    try:
        return open_trial(path)
    except Exception as exc:  # netCDF/HDF5 errors have no common type
        import os
        import time

        from .trialfile import fsync_dir

        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        if not move:
            damaged[path] = reason
            return None
        folder = path.parent / "damaged"
        folder.mkdir(exist_ok=True)
        target = folder / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}"
        os.replace(path, target)
        fsync_dir(path.parent)
        damaged[target] = reason
        return None


def _strings_as_objects(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width strings ('<U2') would truncate longer values when trials are
    concatenated ('lb_lr' → 'lb'): hold them as Python objects until written."""
    for name, var in ds.variables.items():
        if var.dtype.kind in "US":
            ds[name] = var.astype(object)
    return ds


def _placeholder(coords: dict[str, Any], status: str = "missing", reason: str = "") -> xr.Dataset:
    variables = {"status": xr.Variable((), status)}
    if reason:
        variables["status_reason"] = xr.Variable((), reason)
    ds = xr.Dataset(variables, coords={"epoch": ("epoch", np.array([1], dtype=np.int64))})
    return _strings_as_objects(ds.assign_coords({k: coord_value(v) for k, v in coords.items()}))


def _nest(items: list, shape: Sequence[int]) -> Any:
    if len(shape) == 1:
        return list(items)
    step = int(np.prod(shape[1:]))
    return [_nest(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _finish(ds: xr.Dataset, attrs: dict[str, Any]) -> xr.Dataset:
    for name in list(ds.variables):
        if ds[name].dtype == object:
            filled = ds[name].fillna("missing") if name in ds.data_vars else ds[name]
            ds[name] = filled.astype(str)
    ds.attrs = {**{k: v for k, v in ds.attrs.items() if k not in ("lbgap_trial_key",)}, **attrs}
    return ds


def _cell_datasets(
    trial_paths: dict[str, Optional[Path]], cells: Sequence[Any], failed: Optional[dict[str, str]], damaged: dict
) -> Iterator[xr.Dataset]:
    """Each cell's trial file opened (a damaged one noted in ``damaged``), or its placeholder:
    ``status = "failed"`` with the reason for the cells in ``failed``, ``"missing"`` otherwise."""
    for cell in cells:
        coords = {"variant": cell.variant, **dict(cell.point), "seed": cell.seed}
        path = trial_paths.get(cell.key)
        ds = _open_checked(path, damaged) if path is not None and path.exists() else None
        if ds is None and failed and cell.key in failed:
            ds = _placeholder(coords, "failed", failed[cell.key])
        yield ds if ds is not None else _placeholder(coords)


def combine_grid_in_memory(
    trial_paths: dict[str, Optional[Path]],
    cells: Sequence[Any],
    dims: Sequence[str],
    shape: Sequence[int],
    attrs: dict[str, Any],
    out: Path,
    measured_from: Optional[Path] = None,
    failed: Optional[dict[str, str]] = None,
) -> xr.Dataset:
    """Combine the files of ``cells`` (in variant × grid × seed order) with one call of
    ``xarray.combine_nested``, every trial's dataset held in memory at once (memory several times the
    results' size: see :func:`combine_grid`, which gives the same ``results.nc``).

    ``failed``: cells without a file that failed (key → reason); their values are NaN with
    ``status = "failed"`` and the reason in ``status_reason``.

    ``measured_from``: a study's output folder whose ``measured/`` variables (``lbgap measure``)
    are merged in (:func:`~lbgap.results.measured.merge_measured`), so a rebuilt ``results.nc``
    keeps them."""
    damaged: dict[Path, str] = {}
    datasets = list(_cell_datasets(trial_paths, cells, failed, damaged))
    if damaged:
        raise DamagedTrialFiles(damaged)
    nested = _nest(datasets, shape)
    ds = xr.combine_nested(nested, concat_dim=list(dims), **_COMBINE)
    ds = ds.transpose(*dims, "epoch", ...)
    ds = _finish(ds, attrs)
    if measured_from is not None:
        ds = merge_measured(ds, measured_from)
    write_atomic(ds, out)
    return ds



def combine_grid(
    trial_paths: dict[str, Optional[Path]],
    cells: Sequence[Any],
    dims: Sequence[str],
    shape: Sequence[int],
    attrs: dict[str, Any],
    out: Path,
    measured_from: Optional[Path] = None,
    failed: Optional[dict[str, str]] = None,
) -> xr.Dataset:
    """Combine the files of ``cells`` (in variant × grid × seed order) into ``out``.

    The same ``results.nc`` as :func:`combine_grid_in_memory` (variables, values, dtypes and
    attributes: xarray's outer join of the epochs, NaN where a trial has no value, conflicting
    attributes dropped), built one trial at a time: each trial file is read, its arrays are kept
    and its dataset dropped, and the combined arrays are filled in place, so memory stays near the
    size of the results instead of growing with xarray's per-dataset overhead (docs/reliability.md,
    "Combining thousands of trials"). A study whose trial files hold anything but per-epoch and
    scalar variables (a metric's per-layer arrays, extra coordinates) is combined by
    :func:`combine_grid_in_memory`.

    ``failed``: cells without a file that failed (key → reason); their values are NaN with
    ``status = "failed"`` and the reason in ``status_reason``.

    ``measured_from``: a study's output folder whose ``measured/`` variables (``lbgap measure``)
    are merged in (:func:`~lbgap.results.measured.merge_measured`), so a rebuilt ``results.nc``
    keeps them."""
    trials: list[_Trial] = []
    damaged: dict[Path, str] = {}
    simple = True
    for ds in _cell_datasets(trial_paths, cells, failed, damaged):
        if simple:
            trial = _Trial.of(ds, dims)
            simple = trial is not None
            if simple:
                trials.append(trial)
            else:
                trials.clear()
        del ds
    if damaged:
        raise DamagedTrialFiles(damaged)
    if not simple:
        return combine_grid_in_memory(trial_paths, cells, dims, shape, attrs, out, measured_from, failed)
    ds = _finish(_assemble(trials, dims, shape), attrs)
    if measured_from is not None:
        ds = merge_measured(ds, measured_from)
    write_atomic(ds, out)
    return ds


@dataclass
class _Trial:
    """What combining needs of one trial's dataset: its arrays and attributes, not the dataset."""

    coords: dict[str, Any]  # the study's dimensions: scalar values
    coord_attrs: dict[str, dict[str, Any]]
    epoch: np.ndarray
    epoch_attrs: dict[str, Any]
    variables: dict[str, tuple[np.ndarray, dict[str, Any]]]  # dims () or ("epoch",)
    encodings: dict[str, dict[str, Any]]  # the files' "coordinates", kept by the one-call concatenation
    attrs: dict[str, Any]

    @classmethod
    def of(cls, ds: xr.Dataset, dims: Sequence[str]) -> Optional[_Trial]:
        """None for a dataset that :func:`_assemble` does not handle (other dimensions or coordinates)."""
        if set(ds.coords) != {*dims, "epoch"} or ds["epoch"].dims != ("epoch",) or set(ds.dims) != {"epoch"}:
            return None
        if any(ds[d].ndim != 0 or ds[d].dtype.kind not in _KINDS for d in dims):
            return None
        variables, encodings = {}, {}
        for name, var in ds.data_vars.items():
            if var.dims not in ((), ("epoch",)) or var.dtype.kind not in _KINDS:
                return None
            variables[name] = (np.asarray(var.values), _shared(var.attrs))
            encodings[name] = _shared({k: v for k, v in var.encoding.items() if k == "coordinates"})
        return cls(
            {d: ds[d].values[()] for d in dims}, {d: _shared(ds[d].attrs) for d in dims},
            np.asarray(ds["epoch"].values), _shared(ds["epoch"].attrs), variables, encodings, _shared(ds.attrs),
        )


_SHARED: dict[str, dict[str, Any]] = {}


def _shared(attrs: Any) -> dict[str, Any]:
    """One dict for attributes that trials repeat (every trial's variables carry the same ones), so
    that the kept trials cost their arrays, not thousands of copies of the same attributes."""
    attrs = dict(attrs)
    try:
        key = repr(sorted(attrs.items()))
    except TypeError:  # unorderable values: not shared
        return attrs
    if len(_SHARED) > 100_000:
        _SHARED.clear()
    return _SHARED.setdefault(key, attrs)


#: dtype kinds :func:`_assemble` handles: integers, floats, Python objects (strings, see _strings_as_objects)
_KINDS = "iufO"


def _drop_conflicts(dicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """xarray's ``combine_attrs="drop_conflicts"``: every attribute, less those whose values differ."""
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for attrs in dicts:
        for key, value in attrs.items():
            if key in dropped:
                continue
            if key not in out:
                out[key] = value
            elif not _equivalent(out[key], value):
                del out[key]
                dropped.add(key)
    return out


def _staged_drop_conflicts(dicts: Sequence[dict[str, Any]], shape: tuple[int, ...]) -> dict[str, Any]:
    """:func:`_drop_conflicts` of ``dicts`` (in C order of ``shape``) as ``xarray.combine_nested``
    applies it: along the first dimension for each index of the others, then along the next on those
    results, and so on (so an attribute that conflicts only within one group is dropped there and
    kept from the other groups)."""
    level = list(dicts)
    for n in shape:
        rest = len(level) // n
        level = [_drop_conflicts([level[i * rest + j] for i in range(n)]) for j in range(rest)]
    return level[0] if level else {}


def _equivalent(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    try:
        return bool(a == b) or (a != a and b != b)  # NaN equals NaN, as in xarray
    except Exception:
        return False


def _promoted(dtype: np.dtype) -> tuple[np.dtype, Any]:
    """The dtype that holds a missing value, and that value (xarray's promotion: integers to float64)."""
    if dtype.kind == "f":
        return dtype, np.nan
    if dtype.kind in "iu":
        return np.dtype(np.float64), np.nan
    return np.dtype(object), np.nan


def _assemble(trials: list[_Trial], dims: Sequence[str], shape: Sequence[int]) -> xr.Dataset:
    """The combined dataset of ``trials`` (in C order of ``shape``), as ``xarray.combine_nested``
    with :data:`_COMBINE` gives it, one variable at a time."""
    shape = tuple(int(n) for n in shape)
    epoch = np.unique(np.concatenate([t.epoch for t in trials])).astype(np.result_type(*(t.epoch for t in trials)))
    positions = [np.unravel_index(i, shape) for i in range(len(trials))]
    names: dict[str, None] = {}
    for t in trials:
        names.update(dict.fromkeys(t.variables))
    aligned = [t.epoch.shape == epoch.shape and bool(np.array_equal(t.epoch, epoch)) for t in trials]
    data_vars: dict[str, xr.Variable] = {}
    for name in names:
        present = [(i, t.variables[name]) for i, t in enumerate(trials) if name in t.variables]
        per_epoch = present[0][1][0].ndim == 1
        if any((v.ndim == 1) != per_epoch for _, (v, _a) in present):
            raise ValueError(f"{name} is per-epoch in some trial files and not in others")
        dtype = np.result_type(*(v.dtype for _, (v, _a) in present))
        gaps = len(present) < len(trials) or (per_epoch and not all(aligned[i] for i, _ in present))
        fill: Any = None
        if gaps:
            dtype, fill = _promoted(dtype)
        values = np.empty(shape + ((len(epoch),) if per_epoch else ()), dtype=dtype)
        if gaps:
            values[...] = fill
        for i, (v, _a) in present:
            where = positions[i]
            if per_epoch:
                values[where + (np.searchsorted(epoch, trials[i].epoch),)] = v
            else:
                values[where] = v[()]
        var_dims = (*dims, "epoch") if per_epoch else tuple(dims)
        data_vars[name] = xr.Variable(var_dims, values, encoding=trials[present[0][0]].encodings[name], attrs=_staged_drop_conflicts([t.variables[name][1] if name in t.variables else {} for t in trials], shape))
    coords: dict[str, Any] = {"epoch": None}  # first, as the concatenation orders them
    for axis, dim in enumerate(dims):
        first: dict[int, Any] = {}
        for t, where in zip(trials, positions, strict=True):
            first.setdefault(int(where[axis]), t.coords[dim])
        values = [first[j] for j in range(shape[axis])]
        array = np.empty(len(values), dtype=object)
        array[:] = values
        if not any(isinstance(v, str) for v in values):
            array = np.asarray(values)
        coords[dim] = xr.Variable((dim,), array, attrs=_staged_drop_conflicts([t.coord_attrs[dim] for t in trials], shape))
    coords["epoch"] = xr.Variable(("epoch",), epoch, attrs=_staged_drop_conflicts([t.epoch_attrs for t in trials], shape))
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = _staged_drop_conflicts([t.attrs for t in trials], shape)
    return ds


def combine_search(
    trial_paths: dict[tuple[int, int], Path],
    trials: Sequence[int],
    seeds: Sequence[int],
    params: dict[int, dict[str, Any]],
    objective: dict[int, float],
    states: dict[int, str],
    attrs: dict[str, Any],
    out: Optional[Path],
) -> xr.Dataset:
    """Combine search results: dims (trial, seed, epoch), params along trial; written to ``out``
    unless it is None."""
    rows = []
    damaged: dict[Path, str] = {}
    for t in trials:
        row = []
        for s in seeds:
            path = trial_paths.get((t, s))
            ds = _open_checked(path, damaged, move=False) if path is not None and path.exists() else None
            if ds is None:
                ds = _placeholder({"trial": t, "seed": s})
            ds = ds.drop_vars([c for c in ds.coords if c not in ("epoch", "trial", "seed")])
            row.append(_strings_as_objects(ds.assign_coords(trial=t, seed=s)))
        rows.append(row)
    if damaged:
        raise DamagedTrialFiles(damaged, moved=False)
    ds = xr.combine_nested(rows, concat_dim=["trial", "seed"], **_COMBINE)
    names = sorted({k for p in params.values() for k in p})
    for name in names:
        values = [coord_value(params[t].get(name, np.nan)) for t in trials]
        ds = ds.assign_coords({name: ("trial", values)})
        ds[name].attrs.update({"long_name": f"searched value of {name}", "units": "1"})
    ds["objective"] = ("trial", np.array([objective.get(t, np.nan) for t in trials], dtype=np.float64))
    ds["objective"].attrs.update({"units": "1", "long_name": "search objective (mean over seeds)"})
    ds["trial_state"] = ("trial", np.array([states.get(t, "missing") for t in trials], dtype=str))
    ds["trial_state"].attrs.update({"units": "", "long_name": "Optuna trial state"})
    ds = ds.transpose("trial", "seed", "epoch", ...)
    ds = _finish(ds, attrs)
    if out is not None:
        write_atomic(ds, out)
    return ds


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_facts() -> dict[str, str]:
    """The processor that computed the numbers: its model name, architecture and the vector
    instruction set torch dispatches its CPU kernels to. Trainings are bitwise reproducible on the
    same kind of processor (and library versions); another instruction set rounds differently, and
    over many steps the runs drift apart (within the seed spread, not bitwise)."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability())
    except (ImportError, AttributeError):
        capability = "unknown"
    return {"model": model, "machine": platform.machine(), "torch_cpu_capability": capability}


def study_attrs(study: Any, registry: Any, device: str, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Global attributes: spec JSON and hash, versions, device, CF metadata, and which package
    (and version) provided each plugin the spec names (``lbgap_plugin_sources_json``, keyed
    ``kind:name``), so that a missing plugin can later be named with its package."""
    plugins = sorted({(r.origin, r.version) for r in registry.all_records()})
    spec_json = study.to_json()
    try:
        used = plugin_names(json.loads(spec_json))
    except (TypeError, ValueError):
        used = set()
    sources = registry.provenance(used)
    libs = {d: _version(d) for d in ("torch", "torchvision", "numpy", "xarray", "netCDF4", "optuna", "pydantic", "pluggy")}
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    attrs = {
        "Conventions": "CF-1.11",
        "title": study.header.description or study.name,
        "source": f"lbgap {__version__}",
        "history": f"{now}: lbgap study run "
        + " ".join(shlex.quote(str(a)) for a in (study.file, *getattr(study, "overrides", ()))),
        "references": study.header.reproduces,
        "lbgap_study": study.name,
        "lbgap_spec_json": spec_json,
        "lbgap_spec_sha256": study.spec_hash,
        "lbgap_version": __version__,
        "lbgap_plugins_json": json.dumps({o: v for o, v in plugins}, sort_keys=True),
        "lbgap_plugin_sources_json": json.dumps(sources, sort_keys=True),
        "lbgap_library_versions_json": json.dumps(libs, sort_keys=True),
        "python_version": platform.python_version(),
        "device": device,
        "lbgap_cpu_json": json.dumps(cpu_facts(), sort_keys=True),
    }
    attrs.update(extra or {})
    return attrs
