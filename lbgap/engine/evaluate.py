"""Full-data evaluation passes (loss and accuracy, per group)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Optional

import torch
import torch.nn.functional as F

from ..data import BatchTransform
from ..nn import bn_eval_mode

__all__ = ["loss_function", "evaluate", "batch_loss"]


def loss_function(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean cross-entropy for classification, mean squared error for regression."""
    if task == "classification":
        return F.cross_entropy
    return _mse


def _mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if pred.dim() == target.dim() + 1 and pred.shape[-1] == 1:
        pred = pred.squeeze(-1)
    return F.mse_loss(pred, target)


def batch_loss(
    task: str, out: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Per-sample losses and correctness (None for regression)."""
    if task == "classification":
        return F.cross_entropy(out, y, reduction="none"), out.argmax(dim=1) == y
    if out.dim() == y.dim() + 1 and out.shape[-1] == 1:
        out = out.squeeze(-1)
    per = (out - y).pow(2)
    if per.dim() > 1:
        per = per.flatten(1).mean(1)
    return per, None


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    task: str = "classification",
    transform: Optional[BatchTransform] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 2048,
    bn_mode: str = "running",
    groups: Optional[Mapping[str, torch.Tensor]] = None,
) -> dict[str, float]:
    """Mean loss and accuracy over ``(x, y)`` in evaluation mode.

    Returns ``{"loss", "accuracy", "loss_<g>", "accuracy_<g>" for each group}``;
    accuracy is NaN for regression. Train/eval flags are restored afterwards.
    """
    n = len(y)
    losses = torch.empty(n, device=x.device, dtype=torch.float64)
    correct = torch.zeros(n, device=x.device, dtype=torch.bool)
    with bn_eval_mode(model, bn_mode):
        for start in range(0, n, batch_size):
            xb = x[start : start + batch_size]
            if transform is not None:
                xb = transform(xb, generator)
            per, ok = batch_loss(task, model(xb), y[start : start + batch_size])
            losses[start : start + len(per)] = per.to(torch.float64)
            if ok is not None:
                correct[start : start + len(ok)] = ok
    out: dict[str, float] = {}

    def summarise(suffix: str, mask: Optional[torch.Tensor]) -> None:
        sel_l = losses if mask is None else losses[mask]
        cnt = sel_l.numel()
        out["loss" + suffix] = float(sel_l.mean()) if cnt else math.nan
        if task == "classification" and cnt:
            sel_c = correct if mask is None else correct[mask]
            out["accuracy" + suffix] = float(sel_c.to(torch.float64).mean())
        else:
            out["accuracy" + suffix] = math.nan

    summarise("", None)
    for name, mask in (groups or {}).items():
        summarise("_" + name, mask)
    return out
