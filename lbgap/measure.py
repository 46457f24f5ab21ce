"""Metrics after the fact: measure a finished study's saved weights and add
the values to its ``results.nc`` (``lbgap measure``).

Each trial's final weights are loaded into a freshly built model on the
trial's own data; pairwise metrics (interpolation, distance between
minimizers) get the final weights of the same seed and grid point of a
reference variant.

The measured variables are kept in their own files (``DIR/measured/<name>.nc``, each with its
``history`` line) before ``results.nc`` is rewritten, and merged back whenever a run or a resume
rebuilds ``results.nc`` from the trial files, so they are never lost. ``lbgap measure`` holds the
folder's lock (:func:`lbgap.driver.storage.claim_folder`): it does not run while a study runs in
the folder, nor a study while it measures.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import xarray as xr
from pydantic import TypeAdapter, ValidationError

from .engine.evaluate import loss_function
from .engine.train import build_parts
from .metric import MeasureContext
from .registry import Registry, get_registry
from .results import save_measured, weights_dir, write_atomic
from .results.attrs import variable_attrs
from .results.trialfile import DamagedWeightsError, load_weights
from .spec import load_study
from .spec.load import cell_key, clean_loc
from .spec.model import plugin_config_model

__all__ = ["measure_study", "MeasureError", "parse_metric_configs"]

log = logging.getLogger(__name__)


class MeasureError(Exception):
    """The measurement cannot run (bad metric config, missing weights...)."""


def parse_metric_configs(items: list[Any], registry: Registry) -> list[Any]:
    """Validate metric configurations (dicts with ``name``; nested metrics included)."""
    if not registry.of_kind("metric"):
        raise MeasureError("no metric plugins are installed")
    out = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if name not in registry.of_kind("metric"):
            known = ", ".join(sorted(registry.of_kind("metric")))
            raise MeasureError(f"unknown metric plugin {name!r}; installed: {known}")
        try:
            out.append(
                TypeAdapter(plugin_config_model(registry.get("metric", name), registry)).validate_python(item)
            )
        except ValidationError as exc:
            lines = [
                f"metric {name}: {'.'.join(map(str, clean_loc(e['loc'], item)))}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
            raise MeasureError("\n".join(lines)) from None
    return out


def _load(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise MeasureError(
            f"{path} does not exist: measuring needs each trial's final weights, which a study keeps with "
            "keep_weights: final (the default) or all, not none"
        )
    try:
        return load_weights(path, map_location=device)
    except DamagedWeightsError as exc:
        raise MeasureError(str(exc)) from None


def measure_study(
    out_dir: Path,
    metric_items: list[dict[str, Any]],
    *,
    reference_variant: Optional[str] = None,
    variants: Optional[list[str]] = None,
    device: str = "cpu",
    registry: Optional[Registry] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> xr.Dataset:
    """Measure every trial of a finished grid study; return the updated results.

    Raises :class:`MeasureError` if another lbgap process (a run, a resume or another
    measurement) is using ``out_dir``."""
    from .driver.storage import FolderBusyError, claim_folder

    out_dir = Path(out_dir)
    if not (out_dir / "spec.yaml").exists():
        raise MeasureError(f"{out_dir} is not a study folder (no spec.yaml)")
    try:
        lock = claim_folder(out_dir)
    except FolderBusyError:
        raise MeasureError(
            f"{out_dir} is busy: another lbgap process (a study run, a resume or a measurement) is using it; "
            "measure once it has finished"
        ) from None
    try:
        return _measure_study(out_dir, metric_items, reference_variant, variants, device, registry, progress)
    finally:
        lock.close()


def _measure_study(
    out_dir: Path,
    metric_items: list[dict[str, Any]],
    reference_variant: Optional[str],
    variants: Optional[list[str]],
    device: str,
    registry: Optional[Registry],
    progress: Optional[Callable[[str], None]],
) -> xr.Dataset:
    reg = registry or get_registry()
    study = load_study(out_dir / "spec.yaml", reg)
    if study.search is not None:
        raise MeasureError("lbgap measure works on grid studies (searches have no fixed cells)")
    metrics_cfg = parse_metric_configs(metric_items, reg)
    if reference_variant is not None and reference_variant not in study.variants:
        raise MeasureError(
            f"unknown reference variant {reference_variant!r}; variants: {', '.join(study.variants)}"
        )
    results_path = out_dir / "results.nc"
    if not results_path.exists():
        raise MeasureError(f"{results_path} does not exist: finish the study first")
    with xr.open_dataset(results_path) as f:
        ds = f.load()
    dev = torch.device(device)
    dims = ["variant", *study.grid_paths, "seed"]
    collected: dict[str, dict[tuple, Any]] = {}
    for cell in study.cells():
        if variants and cell.variant not in variants:
            continue
        folder = weights_dir(out_dir, cell.key)
        parts = build_parts(cell.config, cell.seed, reg, dev)
        parts.model.load_state_dict(_load(folder / "final.pt", dev))
        ref = None
        if reference_variant is not None:
            ref = _load(
                weights_dir(out_dir, cell_key(reference_variant, cell.point, cell.seed)) / "final.pt", dev
            )
        ctx = MeasureContext(
            model=parts.model,
            data=parts.data,
            loss_fn=loss_function(parts.data.task),
            device=dev,
            eval_batch_size=cell.config.eval.batch_size,
            initial_state=_load(folder / "initial.pt", dev),
            reference_state=ref,
            seed=cell.seed,
            trial_key=cell.key,
        )
        index = (cell.variant, *(v for _, v in cell.point), cell.seed)
        for cfg in metrics_cfg:
            metric = reg.build("metric", cfg)
            if progress:
                progress(f"{cfg.name} on {cell.key}")
            for name, value in metric.compute(ctx).items():
                collected.setdefault(name, {})[index] = value
    coords = {d: ds[d].values for d in dims}
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    names = ", ".join(c.name for c in metrics_cfg)
    history = f"{now}: lbgap measure {out_dir} ({names})"
    for name, cells in collected.items():
        sample = next(iter(cells.values()))
        if isinstance(sample, xr.DataArray):
            extra_dims = list(sample.dims)
            shape = [len(coords[d]) for d in dims] + list(sample.shape)
            arr = np.full(shape, np.nan)
            attrs = {**variable_attrs(name), **sample.attrs}
            extra_coords = {d: sample[d].values for d in sample.dims if d in sample.coords}
        else:
            extra_dims, extra_coords = [], {}
            arr = np.full([len(coords[d]) for d in dims], np.nan)
            attrs = variable_attrs(name)
        for index, value in cells.items():
            pos = tuple(
                int(np.where(coords[d] == _match(coords[d], v))[0][0])
                for d, v in zip(dims, index, strict=False)
            )
            arr[pos] = value.values if isinstance(value, xr.DataArray) else float(value)
        if name in ds:
            log.warning("replacing the existing variable %s", name)
            ds = ds.drop_vars(name)
        ds[name] = xr.DataArray(
            arr, dims=dims + extra_dims, coords={**{d: coords[d] for d in dims}, **extra_coords}, attrs=attrs
        )
        if reference_variant is not None:
            ds[name].attrs["reference_variant"] = reference_variant
        # kept apart first: a rebuilt results.nc (resume, re-run) merges it back in
        save_measured(out_dir, ds[name], history)
    ds.attrs["history"] = ds.attrs.get("history", "") + "\n" + history
    write_atomic(ds, results_path)
    return ds


def _match(values: np.ndarray, v: Any) -> Any:
    from .results.trialfile import coord_value

    cv = coord_value(v)
    if values.dtype.kind in "fc":
        return values[np.argmin(np.abs(values.astype(float) - float(cv)))]
    return cv
