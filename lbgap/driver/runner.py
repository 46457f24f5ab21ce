"""The driver's trainer: train one cell (or a vectorized group of cells) with the engine,
write its trial file and weights, and report progress."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import optuna
import torch

from ..engine.group import Member, run_group
from ..engine.train import run_trial
from ..outcome import TrialOutcome
from ..results import save_weights, trial_dataset, weight_epochs, write_atomic
from ..spec.load import Cell, Study
from .cells import cell_coords
from .groups import GroupPlanner
from .progress import Reporter

__all__ = ["RunSummary", "resolve_device", "final_value", "Runner"]


@dataclass
class RunSummary:
    out_dir: Path
    results: Optional[Path]
    trained: int
    skipped: int
    failed: list[str]
    diverged: list[str]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def final_value(history: dict[str, list[float]], name: str) -> float:
    values = [v for v in history.get(name, []) if not math.isnan(v)]
    return values[-1] if values else math.nan


class Runner:
    """Shared machinery: train a config with a seed, save, report."""

    def __init__(
        self, study: Study, out_dir: Path, device: torch.device, reporter: Reporter, nproc: int = 1,
        vectorize: Optional[str] = None,
    ) -> None:
        self.study = study
        #: "auto" or "off" (the study's setting unless overridden); data-parallel trials never group
        self.vectorize = "off" if nproc > 1 else (vectorize or getattr(study.header, "vectorize", "auto"))
        self.groups = GroupPlanner(study, device, self.vectorize)
        self.out_dir = out_dir
        self.device = device
        self.reporter = reporter
        self.nproc = nproc
        self.write = True  # False on data-parallel ranks other than 0
        self.ostudy: Optional[optuna.Study] = None  # the Optuna study its grid loop takes cells from

    def trial_path(self, key: str) -> Path:
        return self.out_dir / "trials" / f"{key}.nc"

    def train(
        self,
        cfg: Any,
        seed: int,
        key: str,
        coords: dict[str, Any],
        *,
        init_state: Optional[dict[str, torch.Tensor]] = None,
        checkpoints: Optional[set[int]] = None,
        on_epoch: Any = None,
    ) -> TrialOutcome:
        rep = self.reporter

        def epoch_cb(epoch: int, record: dict[str, float], trial: Any) -> None:
            rep.epoch_end(key, epoch, record)
            if on_epoch is not None:
                on_epoch(epoch, record, trial)

        rep.trial_start(key, cfg.epochs, 0)
        outcome = run_trial(
            cfg,
            seed,
            registry=self.study.registry,
            device=self.device,
            key=key,
            init_state=init_state,
            checkpoint_epochs=weight_epochs(cfg, checkpoints, registry=self.study.registry),
            on_epoch=epoch_cb,
            on_step=lambda s: rep.step(key, s),
        )
        self.save(outcome, cfg, coords, checkpoints)
        return outcome

    def save(self, outcome: TrialOutcome, cfg: Any, coords: dict[str, Any], checkpoints: Optional[set[int]]) -> None:
        """Write the trial's file (and weights) and report its end."""
        key = outcome.key
        if self.write:
            ds = trial_dataset(outcome, coords)
            save_weights(outcome, self.out_dir, keep=cfg.keep_weights)
            write_atomic(ds, self.trial_path(key))
        acc = final_value(outcome.history, "test_accuracy")
        self.reporter.trial_end(key, outcome.status, f"test accuracy {acc:.4f}" if not math.isnan(acc) else outcome.reason)

    def train_group(
        self, cells: list[Cell], checkpoints: dict[str, set[int]], on_done: Any, on_epoch: Optional[dict] = None
    ) -> None:
        """Train ``cells`` as one vectorized group; ``on_done(cell, outcome)`` after each member's file
        is written. Raises :class:`NotStackable` before any training if they cannot train together."""
        rep = self.reporter

        def member(cell: Cell) -> Member:
            key = cell.key
            rep.trial_start(key, cell.config.epochs, 0)
            extra = (on_epoch or {}).get(key)

            def epoch_end(e: int, r: dict, t: Any, key: str = key, extra: Any = extra) -> None:
                rep.epoch_end(key, e, r)
                if extra is not None:
                    extra(e, r, t)

            return Member(
                cell.config, cell.seed, key, on_epoch=epoch_end,
                on_step=lambda s, key=key: rep.step(key, s), checkpoint_epochs=weight_epochs(cell.config, checkpoints.get(cell.key), registry=self.study.registry),
            )

        def done(i: int, outcome: TrialOutcome) -> None:
            cell = cells[i]
            self.save(outcome, cell.config, cell_coords(cell), checkpoints.get(cell.key))
            on_done(cell, outcome)

        run_group([member(c) for c in cells], registry=self.study.registry, device=self.device, on_done=done)

