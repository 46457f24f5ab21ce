"""Which cells of a grid study train together as one vectorized group.

Cells group when they share what a stacked model needs to be one pass: the
data set, the architecture, the batch size, the planned epochs and the
per-step settings (accumulation, order, precision, memory format, kernels);
they may differ in everything a member keeps to itself: seed, optimizer and
its numbers, schedule, regime that only rescales the learning rate, noise,
stopping rules, metrics. A cell trains alone when the study says
``vectorize: off``, when it warm-starts from another cell, when its model or
noise plugin does not declare ``vectorizable``, or, under ``auto``, when
grouping is not faster on the device: on a CPU each member's matrix products
run one after another, so the saving is per-step overhead and grouping pays
only for small steps (batch size × parameters ≤ :data:`CPU_STEP_LIMIT`,
measured in docs/performance.md); on a GPU it always pays.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import torch

from ..spec.load import Cell, Study

__all__ = ["GroupPlanner", "CPU_STEP_LIMIT", "MAX_MEMBERS"]

log = logging.getLogger(__name__)

#: on a CPU, group only trials whose batch size × parameters per member is at most this
CPU_STEP_LIMIT = 10_000_000
#: most members in one group, by device type (a memory budget lowers it further)
MAX_MEMBERS = {"cpu": 8, "cuda": 64}


class GroupPlanner:
    """Decides, once per kind of cell, whether and with how many members cells train together."""

    def __init__(self, study: Study, device: torch.device, mode: str = "auto") -> None:
        self.study = study
        self.device = device
        self.mode = mode
        self._limits: dict[str, int] = {}

    def key(self, cell: Cell) -> Optional[str]:
        """The cell's group key, or None when it trains alone."""
        if self.mode == "off":
            return None
        cfg = cell.config
        if cfg.warm_start is not None or cfg.accumulation_steps != 1 or not self._declared(cfg):
            return None
        if cfg.target is not None and cfg.target.stop:  # it may end within an epoch
            return None
        from ..engine.parts import build_plan

        try:
            plan = build_plan(cfg, self.study.registry)
        except Exception:  # the trial itself will report a bad regime
            return None
        shared = {
            "dataset": cfg.dataset.model_dump(mode="json"),
            "model": cfg.model.model_dump(mode="json"),
            # members share every step's batch: the same batch size in every epoch (batch schedules)
            "batch_sizes": list(plan.batch_sizes()),
            "epochs": plan.epochs,
            "per_step": [cfg.drop_last, cfg.shuffle, cfg.deterministic, cfg.precision, cfg.channels_last],
        }
        key = json.dumps(shared, sort_keys=True, default=str)
        return key if self.limit(key, cell) > 1 else None

    def limit(self, key: str, cell: Cell) -> int:
        """Members per group for cells of ``key`` (1: they train alone)."""
        if key not in self._limits:
            self._limits[key] = self._measure_limit(cell)
        return self._limits[key]

    def _declared(self, cfg: Any) -> bool:
        registry = self.study.registry
        plugins = [("model", cfg.model.name)] + [("noise", n.name) for n in cfg.noise]
        return all(registry.get(kind, name).vectorizable for kind, name in plugins)

    def _measure_limit(self, cell: Cell) -> int:
        """Build the cell's network once: its size decides (CPU step size, memory budget)."""
        from ..engine.parts import build_parts

        parts = build_parts(cell.config, cell.seed, self.study.registry, torch.device("cpu"))
        n_params = sum(p.numel() for p in parts.model.parameters())
        batch = min(parts.plan.batch_size, parts.data.n_train)
        if self.mode == "auto" and self.device.type == "cpu" and batch * n_params > CPU_STEP_LIMIT:
            log.info("cells of %s train one at a time: %d × %d parameters per step", cell.variant, batch, n_params)
            return 1
        per_member = _member_bytes(n_params, batch, parts.data.train_x[:1].numel())
        budget = _free_bytes(self.device) // 2
        return max(1, min(MAX_MEMBERS.get(self.device.type, 8), budget // max(per_member, 1)))


def _member_bytes(n_params: int, batch: int, sample_numel: int) -> int:
    """A generous estimate of one member's memory: parameters, gradients and two optimizer
    states, plus activations and their gradients taken as 8 × batch × (input + parameters / 64)."""
    return 4 * (4 * n_params + 8 * batch * (sample_numel + n_params // 64))


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
