"""CF-style ``units`` and ``long_name`` for every results variable.

Core variables (written by lbgap itself) are described here; a plugin variable
gets the ``units`` and ``long_name`` its metric declares (``Metric.attrs``, or
the attributes of a returned ``xarray.DataArray``), passed as ``declared``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Optional

__all__ = ["variable_attrs", "CORE_VARIABLES", "is_core_variable"]

_CORE: dict[str, tuple[str, str]] = {
    "train_loss": ("1", "mean training loss over the training set (evaluation pass)"),
    "train_accuracy": ("1", "training accuracy (fraction correct)"),
    "test_loss": ("1", "mean test loss"),
    "test_accuracy": ("1", "test accuracy (fraction correct)"),
    "validation_loss": ("1", "mean loss on the validation split held out of the training set"),
    "validation_accuracy": ("1", "accuracy on the validation split (fraction correct)"),
    "steps_to_target": ("1", "optimizer steps until the target was first met (NaN: never within the budget)"),
    "examples_to_target": ("1", "training examples drawn until the target was first met (NaN: never)"),
    "train_loss_running": ("1", "mean training loss over the epoch's batches (training mode)"),
    "weight_distance": ("1", "Euclidean distance of all parameters from initialization ||w_t - w_0||"),
    "weight_distance_first_param": ("1", "||w_t - w_0|| of the first parameter tensor (Hoffer's logging)"),
    "step": ("1", "optimizer steps done at the end of the epoch"),
    "learning_rate": ("1", "learning rate in use at the end of the epoch"),
    "batch_size_epoch": ("1", "global batch size of the epoch's optimizer steps (a batch-size schedule changes it)"),
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


#: names of the variables (and coordinates) that lbgap itself writes; a plugin may not write them
CORE_VARIABLES: frozenset[str] = frozenset(_CORE) | {"trial_state"}

_GROUP = re.compile(r"(train|test)_(loss|accuracy)_(\w+)")


def is_core_variable(name: str) -> bool:
    """Whether lbgap itself writes ``name``: a core variable, or a per-group loss or
    accuracy (``test_accuracy_<group>``: the data set's evaluation groups)."""
    return name in CORE_VARIABLES or _GROUP.fullmatch(name) is not None


def variable_attrs(name: str, declared: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Units and long name for a results variable (per-group names included).

    ``declared``: the attributes a plugin declared for its variable (``units``,
    ``long_name``, ``source``...); they replace the defaults.
    """
    if declared:
        base = variable_attrs(name)
        return {**base, **{str(k): str(v) for k, v in declared.items()}}
    if name in _CORE:
        units, long_name = _CORE[name]
        return {"units": units, "long_name": long_name}
    m = _GROUP.fullmatch(name)
    if m:
        split, what, group = m.groups()
        return {
            "units": "1",
            "long_name": f"{split} {'accuracy (fraction correct)' if what == 'accuracy' else 'mean loss'} on the {group} group",
        }
    return {"units": "1", "long_name": name.replace("_", " ")}
