"""A grid study's cells as the driver sees them: their coordinates (in trial files and in
Optuna), their warm-start sources, their planned length and the order a run queues them in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..results.trialfile import coord_value
from ..spec.load import Cell, Study, cell_key

__all__ = [
    "cell_coords", "cell_attrs", "grid_choices", "source_key", "checkpoint_needs", "GridPlan", "planned_epochs",
    "queue_order",
]


def cell_coords(cell: Cell) -> dict[str, Any]:
    """The cell's coordinates (variant, grid point, seed) as results and Optuna hold them."""
    return {"variant": cell.variant, **{d: coord_value(v) for d, v in cell.point}, "seed": cell.seed}


def cell_attrs(cell: Cell) -> dict[str, Any]:
    """The user attributes of a cell's Optuna trial: which cell it is and where its results are."""
    return {
        "cell": cell.key, "variant": cell.variant, "seed": cell.seed,
        "grid_point": {d: coord_value(v) for d, v in cell.point}, "trial_file": f"trials/{cell.key}.nc",
    }


def grid_choices(study: Study) -> dict[str, list[Any]]:
    """Every coordinate's values: the choices of a grid trial's Optuna parameters."""
    choices: dict[str, list[Any]] = {"variant": list(study.variants)}
    for dim, values in study.grid_values.items():
        choices[dim] = [coord_value(v) for v in values]
    choices["seed"] = list(study.seeds)
    return choices


def source_key(cell: Cell) -> Optional[str]:
    ws = cell.config.warm_start
    return cell_key(ws.variant, cell.point, cell.seed) if ws is not None else None


def checkpoint_needs(cells: list[Cell]) -> dict[str, set[int]]:
    """The epochs after which each warm-start source must keep its weights: source key → epochs."""
    needs: dict[str, set[int]] = {}
    for cell in cells:
        src = source_key(cell)
        if src is not None:
            needs.setdefault(src, set()).add(cell.config.warm_start.epochs)
    return needs


@dataclass
class GridPlan:
    """A grid study's cells, and the checkpoints warm-started cells need from their sources."""

    cells: list[Cell]
    by_key: dict[str, Cell]
    needs: dict[str, set[int]]

    @classmethod
    def of(cls, study: Study) -> GridPlan:
        cells = study.cells()
        return cls(cells, {c.key: c for c in cells}, checkpoint_needs(cells))


def planned_epochs(study: Study, cell: Cell) -> int:
    """The epochs ``cell`` trains after its regime plugins (regime adaptation lengthens training)."""
    from ..engine.parts import build_plan

    try:
        return build_plan(cell.config, study.registry).epochs
    except Exception:  # the trial itself will report a bad regime
        return cell.config.epochs


def queue_order(
    study: Study, cells: list[Cell], longest_first: bool = False, group_of: Optional[Any] = None
) -> list[Cell]:
    """The order in which a run queues ``cells``: warm-start sources before the cells that start
    from them; with ``longest_first`` (several workers), the longest trials (by planned epochs)
    first within each, so that no worker is left with a long trial at the end while the others
    idle; with ``group_of`` (a cell's vectorized group key, or None), the cells of one group next
    to each other, so that a worker takes them together. The order changes no result: a trial
    depends only on its configuration and seed."""
    if not longest_first:
        order = sorted(cells, key=lambda c: (source_key(c) is not None,))  # sources first, stable
    else:
        epochs = {c.key: planned_epochs(study, c) for c in cells}
        order = sorted(cells, key=lambda c: (source_key(c) is not None, -epochs[c.key]))
    if group_of is None:
        return order
    first: dict[Any, int] = {}
    for i, c in enumerate(order):
        first.setdefault(group_of(c) or c.key, i)
    return sorted(order, key=lambda c: first[group_of(c) or c.key])

