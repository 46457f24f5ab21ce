"""One optimizer step of one trial, as a function.

:func:`train_step` reads and writes only what it is given: the parameters,
buffers and optimizer state (held by :class:`StepState`), one batch, and the
step's fixed settings (:class:`StepSettings`). It returns the step's mean loss
and, when asked, the number of correct predictions, both as device tensors so
that no step waits for the host. The trial loop in :mod:`lbgap.engine.train`
calls it once per batch; the vectorized group in :mod:`lbgap.engine.group`
replaces only its forward and backward pass and keeps the rest per member.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["StepSettings", "StepState", "train_step", "apply_update", "all_reduce_gradients"]


@dataclass(frozen=True)
class StepSettings:
    """What every step of a trial does the same way."""

    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    #: micro-batches per optimizer step (gradient accumulation)
    micro: int = 1
    #: maximum gradient norm, or None for no clipping
    clip: Optional[float] = None
    #: data-parallel processes (gradients are summed over them)
    world: int = 1
    #: count correct predictions (classification with running training metrics)
    count_correct: bool = False
    #: called between the backward pass and clipping (the ``lbgap_after_backward`` hook)
    after_backward: Optional[Callable[[], None]] = None
    #: forward-pass arithmetic: "fp32", or "bf16" (autocast)
    precision: str = "fp32"

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The forward pass's autocast context (a no-op in fp32)."""
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


@dataclass
class StepState:
    """The parameters, buffers and optimizer state a step updates (in place, for speed)."""

    model: torch.nn.Module
    params: list[torch.Tensor]
    optimizer: torch.optim.Optimizer


def train_step(
    state: StepState, x: torch.Tensor, y: torch.Tensor, batch: int, s: StepSettings
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Forward, backward and update on one batch; returns ``(mean loss, correct count or None)``.

    ``batch`` is the global batch size of this step (``len(x)`` times the
    data-parallel processes, up to an uneven last share): each micro-batch's
    loss is weighted by its share of it, so the gradient is the global batch's.
    """
    correct = torch.zeros((), dtype=torch.long, device=x.device) if s.count_correct else None
    if s.micro == 1 and s.world == 1:
        with s.autocast(x.device):
            out = state.model(x)
            loss = s.loss_fn(out, y)
        loss.backward()
        step_loss = loss.detach()
        if correct is not None:
            correct = correct + (out.detach().argmax(1) == y).sum()
    else:
        step_loss = torch.zeros((), device=x.device)
        for xm, ym in zip(x.chunk(s.micro), y.chunk(s.micro), strict=False):
            with s.autocast(x.device):
                out = state.model(xm)
                part = s.loss_fn(out, ym) * (len(ym) / batch)
            part.backward()
            step_loss += part.detach()
            if correct is not None:
                correct = correct + (out.detach().argmax(1) == ym).sum()
    if s.world > 1:
        step_loss = all_reduce_gradients(state.params, step_loss)
    apply_update(state, s)
    return step_loss, correct


def apply_update(state: StepState, s: StepSettings) -> None:
    """The after-backward hook, clipping and the optimizer step, on gradients already computed."""
    if s.after_backward is not None:
        s.after_backward()
    if s.clip is not None:
        torch.nn.utils.clip_grad_norm_(state.params, s.clip)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)


def all_reduce_gradients(params: list[torch.Tensor], step_loss: torch.Tensor) -> torch.Tensor:
    """Sum gradients and the step loss over ranks, in one flat buffer.

    Each rank's loss was weighted by its share of the global batch, so the
    sum is the gradient of the global batch's mean loss, exactly, also when
    the shares are unequal (the last batch of an epoch).
    """
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [step_loss.reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        k = g.numel()
        p.grad = flat[offset : offset + k].view_as(p)
        offset += k
    return flat[-1].detach()
