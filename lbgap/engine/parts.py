"""The parts of one trial, built from its configuration by the plugins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..plan import TrainingPlan
from ..provenance import check_output_names
from ..registry import Registry

__all__ = ["Parts", "build_parts", "build_plan"]


@dataclass
class Parts:
    data: Any
    model: torch.nn.Module
    plan: TrainingPlan
    optimizer: torch.optim.Optimizer
    schedule: Any
    stopping: list[Any]
    noise: list[Any]
    metrics: list[Any]


def build_plan(cfg: Any, registry: Registry) -> TrainingPlan:
    """The trial's training plan after its regime plugins (in the order the study lists them)."""
    plan = TrainingPlan(batch_size=cfg.batch_size, lr=cfg.optimizer.lr, epochs=cfg.epochs)
    for regime_cfg in cfg.regime:
        plan = registry.build("regime", regime_cfg)(plan)
    return plan


def build_parts(cfg: Any, seed: int, registry: Registry, device: torch.device) -> Parts:
    """Build data, model, plan, optimizer and per-trial plugin objects."""
    data = registry.build("dataset", cfg.dataset, seed=seed, device=device)
    data.to(device)
    validation = getattr(cfg, "validation", None)
    if validation is not None:
        data.hold_out(validation.fraction, validation.seed)
    torch.manual_seed(seed)
    model = registry.build("model", cfg.model, info=data.info).to(device)
    plan = build_plan(cfg, registry)
    optimizer = registry.build("optimizer", cfg.optimizer, model.parameters())
    schedule = registry.build("schedule", cfg.schedule)
    stopping = [registry.build("stopping", s) for s in cfg.stopping]
    noise = [registry.build("noise", n) for n in cfg.noise]
    metrics = [registry.build("metric", m) for m in cfg.metrics]
    check_output_names(metrics)  # a declared clash fails before training
    return Parts(data, model, plan, optimizer, schedule, stopping, noise, metrics)
