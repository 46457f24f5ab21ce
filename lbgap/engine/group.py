"""Several trials trained as one stacked model (vectorized trials).

Trials that share the data set, architecture, batch size (at every epoch: a
batch-size schedule groups only with the same batch sizes) and step count (the
seeds of a study arm; grid points that differ only in float settings such as
the learning rate) train together: each member keeps its own parameters (views
into the stacked tensors), optimizer, schedule, generators, stopping rules,
metrics and history, exactly as :func:`lbgap.engine.train.run_trial` would
build them, and only the forward and backward passes run once for all members
(:class:`lbgap.engine.stacked.StackedModel`). A member whose trial ends
(stopped, diverged, pruned, or out of epochs while others train longer) leaves
the group, which is restacked from the members still training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..outcome import TrialOutcome
from ..registry import Registry
from ..trial import TrialContext
from .epoch import EpochSums, TrialRun, end_epoch, finish_trial
from .parts import Parts, build_parts
from .stacked import NotStackable, StackedModel
from .step import apply_update
from .train import (
    begin_epoch,
    begin_training,
    deterministic,
    epoch_order,
    next_batch,
    set_step_lr,
    start_trial,
)

__all__ = ["Member", "run_group", "time_group_step", "group_step", "NotStackable"]


@dataclass
class Member:
    """One trial of a group: what :func:`run_trial` takes for it."""

    cfg: Any
    seed: int
    key: str
    on_epoch: Optional[Callable[[int, dict[str, float], TrialContext], None]] = None
    on_step: Optional[Callable[[int], None]] = None
    checkpoint_epochs: Optional[set[int]] = None


def run_group(
    members: list[Member],
    *,
    registry: Registry,
    device: torch.device,
    on_done: Optional[Callable[[int, TrialOutcome], None]] = None,
) -> list[TrialOutcome]:
    """Train ``members`` as one stacked model; return their outcomes in order.

    ``on_done(i, outcome)`` is called as soon as member ``i`` ends (its file can be
    written while the others train on). Raises :class:`NotStackable` before any
    training if the members cannot train together.
    """
    parts = [build_parts(m.cfg, m.seed, registry, device) for m in members]
    _check_compatible(members, parts)
    StackedModel([p.model for p in parts])  # raises NotStackable before any hook runs
    outcomes: list[Optional[TrialOutcome]] = [None] * len(members)
    with deterministic(members[0].cfg.deterministic):
        runs = [_start(m, p, registry, device) for m, p in zip(members, parts, strict=True)]
        try:
            _begin_members(runs)
            _train(runs, members, outcomes, on_done)
        finally:
            for run in runs:
                run.close()
    return [o for o in outcomes if o is not None]


def _begin_members(runs: list[TrialRun]) -> None:
    """Start every member's training; each member's hooks skip the other members' plugin objects."""
    for run in runs:
        run.others = [obj for other in runs if other is not run for obj in other.objects]
        begin_training(run)


def _start(m: Member, parts: Parts, registry: Registry, device: torch.device) -> TrialRun:
    return start_trial(
        m.cfg, m.seed, registry=registry, device=device, key=m.key,
        checkpoint_epochs=m.checkpoint_epochs, parts=parts, on_epoch=m.on_epoch,
    )


def _check_compatible(members: list[Member], parts: list[Parts]) -> None:
    first = parts[0]
    epochs = range(1, max(p.plan.epochs for p in parts) + 1)
    batches = [first.plan.batch_size_at(e) for e in epochs]
    for m, p in zip(members, parts, strict=True):
        if p.plan.batch_size != first.plan.batch_size or p.data.n_train != first.data.n_train:
            raise NotStackable("members differ in batch size or training-set size")
        if [p.plan.batch_size_at(e) for e in epochs] != batches:  # every step must be one stacked batch
            raise NotStackable("members differ in their batch-size schedules")
        if m.cfg.accumulation_steps != 1:
            raise NotStackable("gradient accumulation trains one trial at a time")
        if m.cfg.target is not None and m.cfg.target.stop:
            raise NotStackable("a trial that stops at its target within an epoch trains on its own")


def _train(
    runs: list[TrialRun], members: list[Member], outcomes: list, on_done: Optional[Callable]
) -> None:
    active = list(range(len(runs)))
    for epoch in range(1, max(r.plan.epochs for r in runs) + 1):
        group = StackedModel([runs[i].model for i in active])
        t_epoch = time.perf_counter()
        sums = _train_epoch([runs[i] for i in active], [members[i] for i in active], group, epoch)
        still = []
        for i, s in zip(active, sums, strict=True):
            if end_epoch(runs[i], epoch, s, t_epoch) or epoch == runs[i].plan.epochs:
                outcomes[i] = finish_trial(runs[i])
                if on_done is not None:
                    on_done(i, outcomes[i])
            else:
                still.append(i)
        active = still
        if not active:
            return


def _train_epoch(runs: list[TrialRun], members: list[Member], group: StackedModel, epoch: int) -> list[EpochSums]:
    """One epoch of every member: the stacked forward/backward, each member's own update."""
    for run in runs:
        begin_epoch(run, epoch)  # the members' batch schedules agree (_check_compatible)
    group.train()
    perms = [epoch_order(r) for r in runs]
    sums = [EpochSums.zeros(r.trial.device) for r in runs]
    for i in range(runs[0].n_steps):
        group_step(runs, members, group, perms, epoch, i, sums)
    return sums


def group_step(
    runs: list[TrialRun], members: list[Member], group: StackedModel, perms: list[torch.Tensor],
    epoch: int, i: int, sums: list[EpochSums],
) -> None:
    """Step ``i`` of ``epoch`` for every member: one stacked forward and backward pass, then each
    member's own hooks, clipping and optimizer step."""
    xs, ys, b = _member_batches(runs, perms, epoch, i)
    with runs[0].settings.autocast(xs[0].device):
        out = group(torch.stack(xs, dim=1))
        losses = torch.stack([runs[0].trial.loss_fn(out[:, k], ys[k]) for k in range(len(runs))])
    losses.sum().backward()
    losses = losses.detach()
    count = runs[0].settings.count_correct
    correct = (out.detach().argmax(2) == torch.stack(ys, dim=1)).sum(0) if count else None
    group.member_grads()
    for k, run in enumerate(runs):
        apply_update(run.step_state, run.settings)
        run.trial.step += 1
        sums[k].add(losses[k], correct[k] if correct is not None else None, b)
        if run.target is not None:
            run.target.after_step(run, losses[k], b)
        if run.want_after:
            run.hook("lbgap_after_step")(trial=run.trial, loss=losses[k])
        if members[k].on_step is not None:
            members[k].on_step(run.trial.step)
    group.zero_grad()


def time_group_step(members: list[Member], *, registry: Registry, device: torch.device, steps: int = 3) -> float:
    """Seconds of one stacked step of ``members`` (median of ``steps`` after one warm-up step);
    nothing is recorded. Raises :class:`NotStackable` like :func:`run_group`."""
    import statistics

    parts = [build_parts(m.cfg, m.seed, registry, device) for m in members]
    _check_compatible(members, parts)
    group = StackedModel([p.model for p in parts])
    runs = [_start(m, p, registry, device) for m, p in zip(members, parts, strict=True)]
    try:
        _begin_members(runs)
        group.train()
        perms = [epoch_order(r) for r in runs]
        sums = [EpochSums.zeros(r.trial.device) for r in runs]
        times = []
        for i in range(steps + 1):
            t = time.perf_counter()
            group_step(runs, members, group, perms, 1, i % runs[0].n_steps, sums)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
        return statistics.median(times[1:])
    finally:
        for run in runs:
            run.close()


def _member_batches(runs: list[TrialRun], perms: list[torch.Tensor], epoch: int, i: int):
    xs, ys, b = [], [], 0
    for run, perm in zip(runs, perms, strict=True):
        set_step_lr(run, epoch, i)
        x, y, b = next_batch(run, perm, i)
        if run.want_before:
            run.hook("lbgap_before_step")(trial=run.trial, x=x, y=y)
        xs.append(x)
        ys.append(y)
    return xs, ys, b
