"""Schedule ``linear_warmup``: Goyal et al.'s gradual warm-up, then any base schedule.

Goyal, Dollár, Girshick, Noordhuis, Wesolowski, Kyrola, Tulloch, Jia & He (2017),
"Accurate, large minibatch SGD: training ImageNet in 1 hour", §2.1–2.2: with a
batch ``B = k·B_ref`` use the linear scaling rule ``η̂ = η·B/B_ref`` (``B_ref =
256`` in the paper), and start from the reference rate ``η``, "increasing the
learning rate by a constant amount at each iteration such that it reaches
η̂ = kη after 5 epochs"; the usual schedule (÷10 at epochs 30, 60, 80) follows.

In lbgap the scaled rate ``η̂`` is the plan's learning rate after the
``lr_scaling`` regime with ``rule: linear``; this schedule's factor at the
fractional epoch ``t`` (``Progress.epoch``, advanced at every step) is

    w(t) = s + (1 − s)·min(t/T, 1),     factor(t) = w(t)·base(t),

with ``T = warmup_epochs`` and ``s = min(1, B_ref/B)`` (so ``η̂·w(0) = η``), or a
fixed ``start_factor``. The learning rate at step ``i`` of a run of
``n`` steps per epoch is therefore ``η + (η̂ − η)·(i/n)/T`` during the warm-up,
Goyal's formula, and ``η̂·base(t)`` after it. Batches at or below ``B_ref`` start
at the full rate (no warm-up), as the rule only ever scales up.

Why not the ``warmup`` schedule with ``lr_scaling``? Together they give Goyal's
warm-up for one batch size (``start_factor: B_ref/B``), but the start factor is
fixed in the file rather than following a batch-size grid, the warm-up length
is whole epochs, and a trial has one schedule, so nothing can follow the
warm-up but a constant rate. ``linear_warmup`` derives ``s`` from the trial's
batch size and nests the base schedule (``then``).

The batch size is read from the trial when it starts (``lbgap_trial_start``,
``trial.plan.batch_size``). The nested schedule's own lifecycle hooks
(``lbgap_trial_start``, ``lbgap_epoch_end``, ``lbgap_trial_end``) are called
through this one.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from lbgap.api import Nested, PluginConfig, Progress, hookimpl

__all__ = ["LinearWarmupConfig", "LinearWarmupSchedule", "build_linear_warmup", "goyal_warmup_lr"]


class LinearWarmupConfig(PluginConfig):
    """Gradual warm-up (Goyal et al. 2017): the LR rises linearly, per step, from the reference batch's LR to
    the scaled LR over warmup_epochs, then follows a base schedule."""

    warmup_epochs: PositiveFloat = 5.0
    """Warm-up length T in epochs, fractional allowed (Goyal: 5); not scaled by regime adaptation."""
    reference_batch: Optional[PositiveInt] = None
    """B_ref of the linear scaling rule: the warm-up starts at min(1, B_ref/B) times the plan's LR, the rate
    tuned for B_ref when the ``lr_scaling`` regime (rule: linear, same reference_batch) scaled it. Give this
    or start_factor."""
    start_factor: Optional[float] = Field(None, gt=0.0, le=1.0)
    """A fixed multiplier of the plan's LR at step 0, whatever the batch size (instead of reference_batch)."""
    then: Annotated[list[dict[str, Any]], Nested("schedule")] = Field(default_factory=list, max_length=1)
    """The base schedule (at most one; none: constant). Its factor multiplies the warm-up's, and its
    milestones count from the start of training, warm-up included (Goyal's ÷10 at epochs 30, 60, 80)."""

    @model_validator(mode="after")
    def _one_start(self) -> LinearWarmupConfig:
        if (self.reference_batch is None) == (self.start_factor is None):
            raise ValueError("give exactly one of reference_batch and start_factor")
        return self


def goyal_warmup_lr(step: int, steps_per_epoch: int, base_lr: float, batch_size: int,
                    reference_batch: int = 256, warmup_epochs: float = 5.0) -> float:
    """Goyal et al.'s learning rate at optimizer step ``step`` (0-based) of the warm-up and after it
    (constant): ``η̂ = η·B/B_ref``; ``η + (η̂ − η)·t/T`` for ``t = step/steps_per_epoch < T``, else ``η̂``.
    ``base_lr`` is ``η``, the rate tuned for ``reference_batch``."""
    target = base_lr * batch_size / reference_batch
    start = min(base_lr, target)
    t = step / steps_per_epoch
    return start + (target - start) * min(t / warmup_epochs, 1.0)


class LinearWarmupSchedule:
    """``factor(t) = (s + (1 − s)·min(t/T, 1))·base(t)``; see the module docstring."""

    def __init__(self, cfg: LinearWarmupConfig, *, then: Optional[list[Any]] = None) -> None:
        self.cfg = cfg
        self.base = then[0] if then else None
        self.batch_size: Optional[int] = None

    def bind(self, batch_size: int) -> None:
        """Set the trial's batch size (done by ``lbgap_trial_start``)."""
        self.batch_size = int(batch_size)

    @property
    def start(self) -> float:
        """The factor at step 0, ``s``."""
        if self.cfg.start_factor is not None:
            return float(self.cfg.start_factor)
        if self.batch_size is None:
            raise RuntimeError(
                "linear_warmup with reference_batch needs the trial's batch size: it is read when the trial "
                "starts (lbgap_trial_start), or call bind(batch_size)"
            )
        assert self.cfg.reference_batch is not None
        return min(1.0, self.cfg.reference_batch / self.batch_size)

    def warmup_factor(self, epoch: float) -> float:
        """``w(t) = s + (1 − s)·min(t/T, 1)``."""
        s = self.start
        return s + (1.0 - s) * min(max(epoch, 0.0) / self.cfg.warmup_epochs, 1.0)

    def factor(self, progress: Progress) -> float:
        base = self.base.factor(progress) if self.base is not None else 1.0
        return self.warmup_factor(progress.epoch) * base

    # ------------------------------------------------------------- lifecycle hooks

    @hookimpl
    def lbgap_trial_start(self, trial: Any) -> None:
        self.bind(getattr(trial, "batch_size", None) or trial.plan.batch_size)
        hook = getattr(self.base, "lbgap_trial_start", None)
        if hook is not None:
            hook(trial)

    @hookimpl
    def lbgap_epoch_end(self, trial: Any, record: dict[str, Any]) -> Any:
        hook = getattr(self.base, "lbgap_epoch_end", None)
        return hook(trial, record) if hook is not None else None

    @hookimpl
    def lbgap_trial_end(self, trial: Any, results: dict[str, Any]) -> Any:
        hook = getattr(self.base, "lbgap_trial_end", None)
        return hook(trial, results) if hook is not None else None


def build_linear_warmup(cfg: LinearWarmupConfig, *, then: Optional[list[Any]] = None) -> LinearWarmupSchedule:
    return LinearWarmupSchedule(cfg, then=then)
