"""One netCDF file per trial, written once and atomically."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
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
    "WriteFailedError",
    "netcdf_encoding",
    "save_weights",
    "load_weights",
    "weight_epochs",
    "weights_files_kept",
    "DamagedWeightsError",
    "UncheckedWeightsWarning",
    "weights_dir",
    "coord_value",
    "fsync_dir",
    "write_text_atomic",
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


def netcdf_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """How lbgap writes ``ds``'s arrays: float arrays compressed and with HDF5's fletcher32 checksum,
    which HDF5 checks on each read of a chunk, so a damaged file is detected, not combined."""
    return {
        name: {"zlib": True, "complevel": 4, "fletcher32": True}
        for name, var in ds.variables.items()
        if var.dtype.kind == "f" and var.ndim > 0
    }


class WriteFailedError(OSError):
    """A results file could not be written (a full disk, a quota or a file-size limit: the operating
    system's error, or the "NetCDF: HDF error" that HDF5 turns it into). Nothing partial is left."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        errno_ = getattr(cause, "errno", None)
        super().__init__(errno_, f"could not write {path}: {cause} (is the disk full, or a quota or file-size limit reached?)")
        self.path = Path(path)


def write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` through a temporary file in the same folder. A failure to write
    raises :class:`WriteFailedError` and leaves no partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=netcdf_encoding(ds))
        replace_durably(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # a full disk or an error: no partial file is left behind
        if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, WriteFailedError):
            raise WriteFailedError(path, exc) from exc
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


#: what each trial keeps with ``keep_weights`` (a trial setting): initial and final weights with
#: ``final`` and ``all``; the checkpoints in the outcome always (warm starts need them)
KEEP_INITIAL_AND_FINAL = frozenset({"all", "final"})

#: the suffix of the file that records a weights file's SHA-256: ``final.pt`` → ``final.pt.sha256``
CHECKSUM_SUFFIX = ".sha256"


def weight_epochs(
    cfg: Any,
    needed: Optional[Iterable[int]] = None,
    *,
    registry: Any = None,
    planned_epochs: Optional[int] = None,
) -> Optional[set[int]]:
    """The epochs after which a trial's weights are kept (the engine's ``checkpoint_epochs``): those
    ``needed`` by other variants' warm starts and, with ``keep_weights: all``, every epoch its plan
    trains (``planned_epochs``, or the plan its regime plugins give with ``registry``, or
    ``cfg.epochs``). None when there are none."""
    epochs = set(needed or ())
    if getattr(cfg, "keep_weights", "final") == "all":
        if planned_epochs is None:
            planned_epochs = _planned_epochs(cfg, registry)
        epochs.update(range(1, planned_epochs + 1))
    return epochs or None


def weights_files_kept(cfg: Any, planned_epochs: int, needed: Optional[Iterable[int]] = None) -> int:
    """How many weights files :func:`save_weights` keeps for a trial of ``cfg`` that trains
    ``planned_epochs`` epochs, with the checkpoints ``needed`` by warm starts (the dry run's disk
    estimate)."""
    needed = set(needed or ()) | set(getattr(cfg, "checkpoint_epochs", ()))  # the engine adds the latter
    epochs = weight_epochs(cfg, needed, planned_epochs=planned_epochs) or set()
    if getattr(cfg, "keep_weights", "final") in KEEP_INITIAL_AND_FINAL:
        return 2 + len(epochs)
    return len(epochs)


def _planned_epochs(cfg: Any, registry: Any) -> int:
    if registry is not None:
        from ..engine.parts import build_plan  # results do not import the engine otherwise

        try:
            return int(build_plan(cfg, registry).epochs)
        except Exception:  # the trial itself reports a bad regime
            pass
    return int(cfg.epochs)


def save_weights(outcome: TrialOutcome, out_dir: Path, keep: str = "final") -> Optional[Path]:
    """Keep a trial's weights (atomic per file), each with its SHA-256 in ``<name>.pt.sha256``.

    ``keep`` (the trial's ``keep_weights``): ``final`` and ``all`` keep ``initial.pt`` and
    ``final.pt``; every checkpoint of the outcome (``all``: every epoch; warm starts: the epochs they
    start from) is kept as ``epoch_<k>.pt``. With ``none`` only the checkpoints are kept (epoch 0 as
    ``initial.pt``, where a warm start from epoch 0 looks for it). Returns the trial's weights
    folder, or None when nothing is kept."""
    if keep not in ("all", "final", "none"):
        raise ValueError(f"keep_weights must be all, final or none, not {keep!r}")
    items: dict[str, Any] = {}
    if keep in KEEP_INITIAL_AND_FINAL:
        items = {"initial": outcome.initial_state, "final": outcome.final_state}
        items.update({f"epoch_{k}": v for k, v in sorted(outcome.checkpoints.items())})
    else:
        items = {("initial" if k == 0 else f"epoch_{k}"): v for k, v in sorted(outcome.checkpoints.items())}
    if not items:
        return None
    folder = weights_dir(out_dir, outcome.key)
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in items.items():
        _save_state(state, folder / f"{name}.pt")
    fsync_dir(folder.parent)  # the trial's folder itself, new in weights/
    return folder


def _save_state(state: Any, target: Path) -> None:
    """``torch.save`` through a temporary file; its checksum file is renamed into place first, so
    that whoever sees ``target`` also finds the checksum of its bytes."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        write_text_atomic(checksum_path(target), f"{_sha256_file(tmp)}  {target.name}\n", encoding="ascii")
        replace_durably(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` durably: a temporary file, flushed, renamed over ``path``, the
    folder flushed (:func:`replace_durably`); a killed writer leaves at most its temporary file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding=encoding)
        replace_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(weights_file: Path) -> Path:
    """Where the SHA-256 of ``weights_file`` is recorded (``sha256sum -c`` reads it)."""
    weights_file = Path(weights_file)
    return weights_file.with_name(weights_file.name + CHECKSUM_SUFFIX)


class DamagedWeightsError(ValueError):
    """A weights file that is truncated or corrupt: its bytes do not match the SHA-256 recorded when it
    was written, or PyTorch cannot read it. The message names the file and how to train it again."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        super().__init__(f"{self.path}: {what}. {retrain_advice(self.path)}")


class UncheckedWeightsWarning(UserWarning):
    """A weights file without a recorded checksum (written before lbgap recorded them) was loaded
    without being verified."""


def retrain_advice(weights_file: Path) -> str:
    """How to train again the trial that a weights file (``DIR/weights/<key>/<name>.pt``) belongs to."""
    folder = Path(weights_file).parent
    key, out_dir = folder.name, folder.parent.parent
    trial = out_dir / "trials" / f"{key}.nc"
    return (
        f"To train trial {key} again, delete {trial} and {folder}/, then run `lbgap study resume {out_dir}` "
        "(trials that start from its weights are retrained with it)"
    )


def load_weights(path: Path, map_location: Any = "cpu") -> Any:
    """A state dict saved by :func:`save_weights`, after checking the file's SHA-256 against the one
    recorded when it was written.

    Raises :class:`FileNotFoundError` for a missing file and :class:`DamagedWeightsError` for a
    truncated or corrupt one. A file without a recorded checksum (written by an lbgap version that
    did not record them) is loaded with an :class:`UncheckedWeightsWarning`: PyTorch's own checks
    still reject most truncated files."""
    path = Path(path)
    data = path.read_bytes()
    recorded = checksum_path(path)
    if recorded.exists():
        fields = recorded.read_text(encoding="ascii", errors="replace").split()
        expected = fields[0].lower() if fields else ""
        if len(expected) != 64:
            raise DamagedWeightsError(path, f"its checksum file {recorded.name} is damaged (no SHA-256 in it)")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DamagedWeightsError(
                path,
                f"the file is truncated or corrupt: its {len(data)} bytes have SHA-256 {actual[:16]}…, "
                f"not the {expected[:16]}… recorded in {recorded.name} when it was written",
            )
    else:
        warnings.warn(
            f"{path} has no recorded checksum ({recorded.name}; written by an older lbgap?): loaded unverified",
            UncheckedWeightsWarning,
            stacklevel=2,
        )
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # a file damaged before its checksum was taken, or never checked
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DamagedWeightsError(path, f"PyTorch cannot read it ({reason})") from exc
