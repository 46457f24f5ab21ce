"""Warm starts: a cell that starts from another cell's weights waits for its source's checkpoint."""

from __future__ import annotations

import time
from typing import Optional

import optuna
import torch
from optuna.trial import TrialState

from ..results import load_weights, weights_dir
from ..spec.load import Cell
from .cells import source_key
from .runner import Runner

__all__ = ["warm_start_state", "queued_or_running"]


def warm_start_state(runner: Runner, cell: Cell, timeout: float = 3600.0) -> Optional[dict[str, torch.Tensor]]:
    ws = cell.config.warm_start
    if ws is None:
        return None
    src = source_key(cell)
    assert src is not None
    name = "initial.pt" if ws.epochs == 0 else f"epoch_{ws.epochs}.pt"
    path = weights_dir(runner.out_dir, src) / name
    deadline = time.monotonic() + timeout
    checked = time.monotonic()
    while not path.exists():  # another worker may still be training the source
        if runner.trial_path(src).exists():  # the source is done, without that checkpoint
            raise FileNotFoundError(
                f"warm start from {src} after {ws.epochs} epochs: the source trial ended before epoch "
                f"{ws.epochs} (stopped early or diverged), so {path.name} does not exist"
            )
        if runner.ostudy is not None and time.monotonic() - checked > 2.0:
            checked = time.monotonic()
            # a source trains while its trial is queued or running (the checkpoint is written before
            # the trial ends): if it is neither, and the checkpoint is still missing, it failed or
            # its worker was killed, and this trial cannot start before a later run trains it
            if not queued_or_running(runner.ostudy, src) and not path.exists():
                raise FileNotFoundError(
                    f"warm start from {src}: the source trial failed or was interrupted; "
                    "run the study again to train both"
                )
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"warm start: {path} did not appear")
        time.sleep(0.5)
    return load_weights(path, map_location=runner.device)


def queued_or_running(ostudy: optuna.Study, key: str) -> bool:
    states = (TrialState.WAITING, TrialState.RUNNING)
    return any(t.user_attrs.get("cell") == key for t in ostudy.get_trials(deepcopy=False, states=states))

