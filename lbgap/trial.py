"""The state of one trial, as lifecycle hooks see it (:class:`TrialContext`).

Part of the public API: plugins import it from :mod:`lbgap.api`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .data import InMemoryData
from .plan import TrainingPlan

__all__ = ["TrialContext"]


@dataclass
class TrialContext:
    """Mutable state of a running trial.

    Attributes
    ----------
    key:
        Unique identifier of the trial within its study.
    seed:
        The trial's seed.
    model, optimizer, data, plan:
        The trial's network, optimizer, data and resolved training plan.
    loss_fn:
        ``loss_fn(logits, targets) -> mean loss``.
    device:
        Training device.
    generator:
        The trial's random generator, on ``device``. With data parallelism it
        is the same stream on every rank: draw from it what every rank must
        agree on (noise added to the all-reduced gradient, say).
    local_generator:
        This process's own stream for per-example draws (noise added inside
        the forward pass, say), so that ranks working on different examples
        draw independent values. In a single process it is ``generator``.
    epoch:
        Epochs done (1-based once the first epoch ends).
    step:
        Optimizer steps done.
    lr:
        The learning rate in use (the plan's base rate times the schedule's factor).
    status:
        ``"running"``, ``"completed"``, ``"stopped"`` (a stopping rule fired)
        or ``"diverged"``.
    config:
        The trial's resolved configuration (a pydantic model).
    initial_state:
        The model's state dict at initialization (set once training starts).
    state:
        Free scratch space for plugins, keyed by plugin name.
    """

    key: str
    seed: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: InMemoryData
    plan: TrainingPlan
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    generator: torch.Generator
    local_generator: Optional[torch.Generator] = None
    config: Any = None
    epoch: int = 0
    step: int = 0
    lr: float = 0.0
    status: str = "running"
    initial_state: Optional[dict[str, torch.Tensor]] = None
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.local_generator is None:
            self.local_generator = self.generator
