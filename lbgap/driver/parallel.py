"""Data-parallel trials: the driver launches ``torchrun`` for one cell (or one seed of a search
trial) and reads back its file; each process runs :func:`lbgap.driver.rank.train_rank`
(``python -m lbgap.distributed``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .runner import Runner, final_value

__all__ = ["launch_command", "train_data_parallel", "read_trial", "read_trial_outcome", "final_from_file", "FileOutcome"]


def launch_command(
    out_dir: Path, key: str, nproc: int, device: str, *, search_params: Optional[dict[str, Any]] = None
) -> list[str]:
    """The ``torchrun`` command that trains one cell on ``nproc`` processes (one seed of a search
    trial when ``search_params``, the trial's Optuna parameters, are given)."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "lbgap.distributed", str(out_dir), key, "--device", device,
    ]
    if search_params is not None:
        cmd += ["--search-params", json.dumps(search_params)]
    return cmd


@dataclass
class FileOutcome:
    """What a finished trial's file says: status, per-epoch history, end-of-trial scalars."""

    status: str
    history: dict[str, list[float]]
    end: dict[str, float] = field(default_factory=dict)


def train_data_parallel(runner: Runner, key: str, search_params: Optional[dict[str, Any]] = None) -> FileOutcome:
    """Train one cell (or, with ``search_params``, one seed of a search trial) on ``runner.nproc``
    processes with torchrun; read back its file."""
    runner.reporter.trial_start(key, 0, 0)
    cmd = launch_command(runner.out_dir, key, runner.nproc, str(runner.device), search_params=search_params)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed for {key} (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    outcome = read_trial_outcome(runner.trial_path(key))
    acc = final_value(outcome.history, "test_accuracy")
    runner.reporter.trial_end(key, outcome.status, f"test accuracy {acc:.4f} ({runner.nproc} processes)")
    return outcome


def read_trial(path: Path) -> tuple[str, dict[str, list[float]]]:
    """Status and per-epoch history of a finished trial's file."""
    outcome = read_trial_outcome(path)
    return outcome.status, outcome.history


def read_trial_outcome(path: Path) -> FileOutcome:
    """A finished trial's file as an outcome (status, per-epoch history, numeric scalars)."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        history = {name: ds[name].values.tolist() for name in ds.data_vars if ds[name].dims == ("epoch",)}
        end = {
            name: float(ds[name].values)
            for name in ds.data_vars
            if ds[name].dims == () and ds[name].dtype.kind in "fiu"
        }
        return FileOutcome(str(ds["status"].values), history, end)


def final_from_file(path: Path) -> float:
    value = final_value(read_trial(path)[1], "test_accuracy")
    return 0.0 if math.isnan(value) else value

