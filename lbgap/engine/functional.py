"""The training step as a pure function of (parameters, buffers, batch).

The engine trains modules in place for speed, but every loss it computes is
also available in this functional form, which ``torch.func`` can vectorise
over several seeds (``vmap`` over stacked parameters) or differentiate twice
(Hessian-vector products in metrics).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call, grad_and_value

__all__ = ["functional_loss", "functional_step"]


def functional_loss(
    model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Callable[[dict, dict, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(params, buffers, x, y) -> mean loss`` for ``model``'s architecture."""

    def f(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, (params, buffers), (x,)), y)

    return f


def functional_step(
    model: torch.nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> Callable[[dict, dict, torch.Tensor, torch.Tensor, float], tuple[dict, torch.Tensor]]:
    """One plain SGD step as a pure function: ``(params, buffers, x, y, lr) -> (new params, loss)``."""
    g_and_v = grad_and_value(functional_loss(model, loss_fn))

    def step(params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor, lr: float):
        grads, loss = g_and_v(params, buffers, x, y)
        return {k: p - lr * grads[k] for k, p in params.items()}, loss

    return step
