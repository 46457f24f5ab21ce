"""One process of a data-parallel trial (``python -m lbgap.distributed``, under ``torchrun``):
rebuild the driver's trial from the run folder and train it as one rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from ..registry import get_registry
from ..spec import load_study
from .cells import cell_coords, checkpoint_needs
from .progress import NullReporter
from .runner import Runner
from .search import search_trial_config
from .warmstart import warm_start_state

__all__ = ["train_rank"]


def train_rank(
    out_dir: Path, key: str, device: torch.device, rank: int, search_params: Optional[dict[str, Any]] = None
) -> None:
    """Train the cell ``key`` of the study in ``out_dir`` (or, with ``search_params``, the seed
    ``key`` of a search trial) as this rank of a data-parallel group; rank 0 writes the files."""
    study = load_study(out_dir / "spec.yaml", get_registry())
    runner = Runner(study, out_dir, device, NullReporter())
    runner.write = rank == 0
    if search_params is not None:
        cfg, seed, coords = search_trial_config(study, key, search_params)
        runner.train(cfg, seed, key, coords)
        return
    cells = study.cells()
    cell = next(c for c in cells if c.key == key)
    runner.train(
        cell.config, cell.seed, cell.key, cell_coords(cell),
        init_state=warm_start_state(runner, cell), checkpoints=checkpoint_needs(cells).get(key),
    )
