"""CF-style ``units`` and ``long_name`` for every results variable."""

from __future__ import annotations

import re

__all__ = ["variable_attrs"]

_CORE: dict[str, tuple[str, str]] = {
    "train_loss": ("1", "mean training loss over the training set (evaluation pass)"),
    "train_accuracy": ("1", "training accuracy (fraction correct)"),
    "test_loss": ("1", "mean test loss"),
    "test_accuracy": ("1", "test accuracy (fraction correct)"),
    "train_loss_running": ("1", "mean training loss over the epoch's batches (training mode)"),
    "weight_distance": ("1", "Euclidean distance of all parameters from initialization ||w_t - w_0||"),
    "weight_distance_first_param": ("1", "||w_t - w_0|| of the first parameter tensor (Hoffer's logging)"),
    "step": ("1", "optimizer steps done at the end of the epoch"),
    "learning_rate": ("1", "learning rate in use at the end of the epoch"),
    "epoch_time": ("s", "wall time of the epoch (training, evaluation and metrics)"),
    "effective_learning_rate": ("1", "base learning rate after LR scaling rules"),
    "planned_epochs": ("1", "epochs after regime adaptation"),
    "time_scale": ("1", "multiplier of schedule milestones (regime adaptation)"),
    "epochs_done": ("1", "epochs trained (fewer than planned when stopped or diverged)"),
    "wall_time": ("s", "wall time of the trial"),
    "status": ("", "how the trial ended: completed, stopped, diverged or pruned"),
    "status_reason": ("", "why the trial ended early, if it did"),
    "epoch": ("1", "completed training epochs"),
    "seed": ("1", "trial seed"),
    "variant": ("", "study arm"),
    "trial": ("1", "Optuna trial number"),
    "objective": ("1", "search objective of the trial (mean over seeds)"),
}


def variable_attrs(name: str) -> dict[str, str]:
    """Units and long name for a results variable (per-group names included)."""
    if name in _CORE:
        units, long_name = _CORE[name]
        return {"units": units, "long_name": long_name}
    m = re.fullmatch(r"(train|test)_(loss|accuracy)_(\w+)", name)
    if m:
        split, what, group = m.groups()
        return {
            "units": "1",
            "long_name": f"{split} {'accuracy (fraction correct)' if what == 'accuracy' else 'mean loss'} on the {group} group",
        }
    return {"units": "1", "long_name": name.replace("_", " ")}
