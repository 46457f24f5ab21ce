"""Run one trial: build its parts from plugins, train, evaluate, measure.

The loop holds the data set on the device and draws every batch by an index
gather from a per-epoch permutation. Randomness comes from the trial seed
only: the model is initialised under ``torch.manual_seed(seed)`` and every
later draw (shuffles, augmentation, noise) comes from the trial's own
generators, so the same spec and seed give the same numbers on a CPU.

The loop reads top to bottom::

    run = start_trial(...)                       # parts, generators, hooks
    for epoch in 1..epochs:
        sums = train_epoch(run, epoch)           # begin_epoch, batches → train_step (engine.step)
        if end_epoch(run, epoch, sums): break    # record, measure, stop (engine.epoch)
    return finish_trial(run)                     # end-of-training metrics, outcome

and :mod:`lbgap.engine.group` runs the same pieces for several trials that
train as one stacked model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Optional

import torch

from ..outcome import StopTrial, TrialOutcome
from ..registry import Registry
from ..schedule import Progress
from ..seeds import (
    AUGMENT_STREAM,
    BATCH_ORDER_STREAM,
    LOCAL_STREAM,
    RANK_STRIDE,
    TRIAL_STREAM,
    seeded_generator,
)
from ..trial import TrialContext
from .epoch import EpochSums, TrialRun, clone_state, cut_short, end_epoch, finish_trial, weight_distance
from .evaluate import loss_function
from .parts import Parts, build_parts
from .step import StepSettings, StepState, train_step
from .target import TargetTracker

__all__ = [
    "TrialOutcome",
    "run_trial",
    "StopTrial",
    "build_parts",
    "steps_per_epoch",
    "weight_distance",
    "start_trial",
    "begin_training",
    "begin_epoch",
    "train_epoch",
    "TrialRun",
]

log = logging.getLogger(__name__)


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch over ``n_train`` samples (a batch larger than the set is one batch)."""
    return n_train // batch_size if (drop_last and n_train >= batch_size) else math.ceil(n_train / batch_size)


def run_trial(
    cfg: Any,
    seed: int,
    *,
    registry: Registry,
    device: torch.device,
    key: str = "trial",
    init_state: Optional[dict[str, torch.Tensor]] = None,
    checkpoint_epochs: Optional[set[int]] = None,
    on_epoch: Optional[Callable[[int, dict[str, float], TrialContext], None]] = None,
    on_step: Optional[Callable[[int], None]] = None,
    parts: Optional[Parts] = None,
    max_steps: Optional[int] = None,
) -> TrialOutcome:
    """Train one configuration with one seed and return its outcome.

    Parameters
    ----------
    cfg:
        A resolved trial configuration (see :func:`lbgap.spec.model.trial_config_model`).
    init_state:
        Weights to start from (a warm start); the initial weights recorded are these.
    checkpoint_epochs:
        Epochs after which the weights are kept (0 = initial weights).
    on_epoch:
        Called after every epoch with ``(epoch, record, trial)``; may raise
        :class:`StopTrial` (pruning).
    on_step:
        Called after every optimizer step with the step count (progress bars).
    parts:
        Parts already made by :func:`build_parts` for ``cfg`` and ``seed``, trained in place;
        by default they are built here.
    max_steps:
        End training right after this many optimizer steps (a smoke test or a timing): the
        epoch in progress is neither evaluated nor recorded, no end-of-training metric is
        measured, and the status is ``"stopped"``, or ``"diverged"`` when the training loss of
        that epoch's steps is not finite (its mean is ``cut_epoch_loss``). A trial with fewer
        steps ends as usual.
    """
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, not {max_steps}")
    with deterministic(cfg.deterministic):
        run = start_trial(
            cfg, seed, registry=registry, device=device, key=key, init_state=init_state,
            checkpoint_epochs=checkpoint_epochs, parts=parts, on_epoch=on_epoch,
        )
        try:
            begin_training(run)
            for epoch in range(1, run.plan.epochs + 1):
                t_epoch = time.perf_counter()
                sums = train_epoch(run, epoch, on_step, max_steps)
                if sums.cut:
                    cut_short(run, epoch, sums, max_steps)
                    break
                if end_epoch(run, epoch, sums, t_epoch):
                    break
            return finish_trial(run)
        finally:
            run.close()


def start_trial(
    cfg: Any,
    seed: int,
    *,
    registry: Registry,
    device: torch.device,
    key: str,
    init_state: Optional[dict[str, torch.Tensor]] = None,
    checkpoint_epochs: Optional[set[int]] = None,
    parts: Optional[Parts] = None,
    on_epoch: Optional[Callable[[int, dict[str, float], TrialContext], None]] = None,
    others: tuple[Any, ...] = (),
) -> TrialRun:
    """Build the trial's parts, generators and context and register its plugin objects
    (``others``: those of the other trials of a group, whose hooks this trial skips);
    :func:`begin_training` then starts it."""
    t_start = time.perf_counter()
    parts = parts if parts is not None else build_parts(cfg, seed, registry, device)
    if init_state is not None:
        parts.model.load_state_dict(init_state)
    rank, world = distributed_rank()
    trial = _trial_context(cfg, seed, key, parts, device, rank, world)
    run = TrialRun(
        cfg=cfg, parts=parts, trial=trial, pm=registry.pm, registry=registry, on_epoch=on_epoch, t_start=t_start,
        checkpoint_epochs=set(checkpoint_epochs or ()) | set(cfg.checkpoint_epochs), rank=rank, world=world,
    )
    run.register_plugins()
    run.others = list(others)
    return run


def begin_training(run: TrialRun) -> None:
    """Call ``lbgap_trial_start`` and set up what the steps need."""
    trial = run.trial
    run.want_before = bool(run.hook("lbgap_before_step").get_hookimpls())
    run.want_after = bool(run.hook("lbgap_after_step").get_hookimpls())
    after_bw = run.hook("lbgap_after_backward")
    run.hook("lbgap_trial_start")(trial=trial)
    _prepare_training(run, (lambda: after_bw(trial=trial)) if after_bw.get_hookimpls() else None)


def _trial_context(cfg, seed, key, parts: Parts, device, rank: int, world: int) -> TrialContext:
    # The trial generator (noise hooks, plugins) is the same on every data-parallel rank, so
    # updates stay identical across ranks; per-example draws come from each rank's own.
    generator = seeded_generator(seed, TRIAL_STREAM, device)
    local_generator = generator
    if world > 1:
        local_generator = seeded_generator(seed, LOCAL_STREAM + RANK_STRIDE * rank, device)
    return TrialContext(
        key=key, seed=seed, model=parts.model, optimizer=parts.optimizer, data=parts.data, plan=parts.plan,
        loss_fn=loss_function(parts.data.task), device=device, generator=generator,
        local_generator=local_generator, config=cfg, lr=parts.plan.lr,
    )


def _prepare_training(run: TrialRun, after_backward: Optional[Callable[[], None]]) -> None:
    """Initial weights, batch-order and augmentation generators, steps per epoch, step settings."""
    cfg, trial, device = run.cfg, run.trial, run.trial.device
    run.initial_state = clone_state(run.model)
    trial.initial_state = run.initial_state
    params = list(run.model.parameters())
    run.init_params = [p.detach().clone() for p in params]
    if 0 in run.checkpoint_epochs:
        run.checkpoints[0] = run.initial_state
    B = min([run.plan.batch_size] + [s.batch_size for s in run.plan.batch_stages])
    if run.world > 1 and B < run.world:
        raise ValueError(f"batch size {B} is smaller than the {run.world} data-parallel processes")
    # batch order: one generator shared by all ranks; augmentation: one per rank
    run.perm_gen = seeded_generator(trial.seed, BATCH_ORDER_STREAM, device)
    run.aug_gen = seeded_generator(trial.seed, AUGMENT_STREAM + RANK_STRIDE * run.rank, device)
    begin_epoch(run, 1)
    run.step_state = StepState(run.model, params, run.parts.optimizer)
    run.settings = StepSettings(
        loss_fn=trial.loss_fn, micro=cfg.accumulation_steps, clip=cfg.grad_clip, world=run.world,
        count_correct=run.data.task == "classification" and cfg.eval.train_metrics == "running",
        after_backward=after_backward, precision=getattr(cfg, "precision", "fp32"),
    )
    run.target = TargetTracker(cfg.target) if getattr(cfg, "target", None) is not None else None
    if getattr(cfg, "channels_last", False):
        _to_channels_last(run)


def _to_channels_last(run: TrialRun) -> None:
    """Images and convolution weights in the channels-last memory format (the values are unchanged)."""
    data = run.data
    for name in ("train_x", "test_x"):
        x = getattr(data, name)
        if x.dim() == 4:
            setattr(data, name, x.contiguous(memory_format=torch.channels_last))
    run.model.to(memory_format=torch.channels_last)


def begin_epoch(run: TrialRun, epoch: int) -> None:
    """Set the batch size, steps and learning-rate factor of ``epoch`` from the plan's batch
    schedule, and make ``trial.plan`` the epoch's plan (its ``batch_size`` the batch in use)."""
    plan = run.plan
    B = plan.batch_size_at(epoch)
    if B != run.batch_size:
        n = run.data.n_train
        if B > n:
            log.warning(
                "%s: batch size %d exceeds the %d training samples; using one batch of %d", run.trial.key, B, n, n
            )
        if run.batch_size:
            log.info("%s: batch size %d from epoch %d", run.trial.key, B, epoch)
        run.batch_size = B
        run.n_steps = steps_per_epoch(n, B, run.cfg.drop_last)
    run.lr_factor = plan.lr_factor_at(epoch)
    run.trial.plan = plan.at_epoch(epoch)


def train_epoch(
    run: TrialRun, epoch: int, on_step: Optional[Callable[[int], None]] = None, max_steps: Optional[int] = None
) -> EpochSums:
    """One pass over the training set (or up to ``max_steps``); returns the epoch's sums."""
    begin_epoch(run, epoch)
    run.model.train()
    perm = epoch_order(run)
    sums = EpochSums.zeros(run.trial.device)
    trial = run.trial
    before, after = run.hook("lbgap_before_step"), run.hook("lbgap_after_step")
    for i in range(run.n_steps):
        set_step_lr(run, epoch, i)
        x, y, b = next_batch(run, perm, i)
        if run.want_before:
            before(trial=trial, x=x, y=y)
        loss, correct = train_step(run.step_state, x, y, b, run.settings)
        trial.step += 1
        sums.add(loss, correct, b)
        if run.target is not None and run.target.after_step(run, loss, b):
            sums.target_stop = True
        if run.want_after:
            after(trial=trial, loss=loss)
        if on_step is not None:
            on_step(trial.step)
        if max_steps is not None and trial.step >= max_steps:
            sums.cut = True
            break
        if sums.target_stop:
            break
    return sums


def epoch_order(run: TrialRun) -> torch.Tensor:
    """This epoch's sample order: a permutation from the trial's batch-order generator."""
    n, device = run.data.n_train, run.trial.device
    return torch.randperm(n, device=device, generator=run.perm_gen) if run.cfg.shuffle else torch.arange(n, device=device)


def set_step_lr(run: TrialRun, epoch: int, i: int) -> None:
    """Set the optimizer's learning rate for step ``i`` of ``epoch`` (only when it changes): the
    plan's rate times the batch schedule's factor times the schedule's."""
    progress = Progress(
        epoch=(epoch - 1) + i / run.n_steps,
        step=run.trial.step,
        steps_per_epoch=run.n_steps,
        time_scale=run.plan.time_scale,
        last_train_loss=run.last_train_loss,
    )
    lr = run.plan.lr * run.lr_factor * run.parts.schedule.factor(progress)
    if lr != run.lr_now:
        for group in run.parts.optimizer.param_groups:
            group["lr"] = lr
        run.lr_now = lr
        run.trial.lr = lr


def next_batch(run: TrialRun, perm: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Batch ``i`` of the epoch: ``(x, y, global batch size)``; this rank's share under data parallelism
    (the epoch's global batch split over the ranks by ``tensor_split``, so the shares follow the batch)."""
    B = run.batch_size
    idx = perm[i * B : (i + 1) * B]
    b = len(idx)
    if run.world > 1:
        idx = idx.tensor_split(run.world)[run.rank]
    x, y = run.data.train_x[idx], run.data.train_y[idx]
    if run.data.train_transform is not None:
        x = run.data.train_transform(x, run.aug_gen)
    return x, y, b


@contextlib.contextmanager
def deterministic(flag: bool):
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(flag, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) when running under ``torchrun``, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
