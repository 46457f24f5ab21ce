"""Probe one trial configuration: build it, take a few optimizer steps, evaluate one batch, time both.

A probe goes through the engine's own code (:func:`build_parts`, then :func:`run_trial` with
``max_steps``), so it fails where a real trial would fail at its start: missing data files, a
network that does not fit its data, a plugin that breaks in its first steps, a loss that is not
finite. Its timings give estimates of an epoch and of a whole trial on the same device.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..registry import Registry
from ..seeds import EVAL_STREAM, seeded_generator
from .evaluate import evaluate
from .train import build_parts, run_trial, steps_per_epoch

__all__ = ["ProbeError", "ProbeResult", "probe"]


class ProbeError(Exception):
    """A probe failed; ``stage`` is ``"build"``, ``"train"`` or ``"evaluate"``."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
        self.message = message


@dataclass
class ProbeResult:
    """What a probe measured, and the estimates derived from it."""

    n_params: int
    n_train: int
    n_test: int
    #: the training plan's batch size, epochs and steps (after regime transforms)
    batch_size: int
    epochs: int
    steps_per_epoch: int
    #: optimizer steps taken and how many of them the timing averages (the first one warms up)
    steps: int
    timed_steps: int
    step_seconds: float
    train_loss: float
    #: the evaluation batch: samples, seconds, loss
    eval_batch: int
    eval_seconds: float
    eval_loss: float
    #: samples one evaluation covers (test set, plus the training set for ``train_metrics: eval_pass``)
    eval_samples: int
    #: evaluations in a whole trial (every ``eval.every`` epochs and after the last)
    evaluations: int
    build_seconds: float
    #: peak memory allocated on a CUDA device, in bytes (None elsewhere)
    peak_memory: Optional[int] = None
    #: the initial weights (CPU), kept when asked for (warm starts of other probes)
    initial_state: Optional[dict[str, torch.Tensor]] = field(default=None, repr=False)

    @property
    def evaluation_seconds(self) -> float:
        """Estimated seconds of one evaluation, from the evaluation batch's time per sample."""
        return self.eval_seconds / self.eval_batch * self.eval_samples if self.eval_batch else 0.0

    @property
    def epoch_seconds(self) -> float:
        """Estimated seconds of an epoch with an evaluation."""
        return self.steps_per_epoch * self.step_seconds + self.evaluation_seconds

    @property
    def trial_seconds(self) -> float:
        """Estimated seconds of a trial that trains all its epochs (metrics left out)."""
        return (
            self.epochs * self.steps_per_epoch * self.step_seconds
            + self.evaluations * self.evaluation_seconds
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def probe(
    cfg: Any,
    seed: int,
    *,
    registry: Registry,
    device: torch.device,
    steps: int = 2,
    init_state: Optional[dict[str, torch.Tensor]] = None,
    keep_initial_state: bool = False,
    key: str = "probe",
) -> ProbeResult:
    """Build ``cfg`` with ``seed``, train ``steps`` optimizer steps, evaluate one test batch.

    The steps stay within the first epoch (a smaller epoch takes fewer), so no full evaluation
    pass and no metric runs; metrics and stopping rules are built. ``init_state`` starts from
    other weights (a warm start). Raises :class:`ProbeError` naming the stage that failed.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    try:
        parts = build_parts(cfg, seed, registry, device)
    except Exception as exc:
        raise ProbeError("build", _one_line(exc)) from exc
    _sync(device)
    build_seconds = time.perf_counter() - t0
    data, plan = parts.data, parts.plan
    n_steps = steps_per_epoch(data.n_train, plan.batch_size, cfg.drop_last)
    max_steps = min(steps, n_steps)

    stamps: list[float] = []

    def on_step(_step: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    t_start = time.perf_counter()
    try:
        outcome = run_trial(
            cfg,
            seed,
            registry=registry,
            device=device,
            key=key,
            init_state=init_state,
            on_step=on_step,
            parts=parts,
            max_steps=max_steps,
        )
    except Exception as exc:
        raise ProbeError("train", _one_line(exc)) from exc
    if outcome.status == "diverged" or not math.isfinite(outcome.cut_epoch_loss):
        raise ProbeError(
            "train", f"the training loss is {outcome.cut_epoch_loss} after {len(stamps)} step(s)"
        )
    durations = [b - a for a, b in zip([t_start, *stamps], stamps, strict=False)]
    timed = durations[1:] or durations  # the first step warms up; alone, it is all there is

    n_eval = min(cfg.eval.batch_size, len(data.test_y))
    generator = seeded_generator(seed, EVAL_STREAM, device)  # the evaluation stream of "epoch 0"
    t_eval = time.perf_counter()
    try:
        result = evaluate(
            parts.model,
            data.test_x[:n_eval],
            data.test_y[:n_eval],
            task=data.task,
            transform=data.eval_transform,
            generator=generator,
            batch_size=cfg.eval.batch_size,
            bn_mode=cfg.eval.bn_mode,
        )
    except Exception as exc:
        raise ProbeError("evaluate", _one_line(exc)) from exc
    _sync(device)
    eval_seconds = time.perf_counter() - t_eval
    if not math.isfinite(result["loss"]):
        raise ProbeError("evaluate", f"the loss on the first {n_eval} test samples is {result['loss']}")

    full_train_pass = cfg.eval.train_metrics == "eval_pass" or bool(data.train_groups)
    every = cfg.eval.every
    return ProbeResult(
        n_params=sum(p.numel() for p in parts.model.parameters()),
        n_train=data.n_train,
        n_test=len(data.test_y),
        batch_size=plan.batch_size,
        epochs=plan.epochs,
        steps_per_epoch=n_steps,
        steps=len(stamps),
        timed_steps=len(timed),
        step_seconds=sum(timed) / len(timed),
        train_loss=outcome.cut_epoch_loss,
        eval_batch=n_eval,
        eval_seconds=eval_seconds,
        eval_loss=result["loss"],
        eval_samples=len(data.test_y) + (data.n_train if full_train_pass else 0),
        evaluations=plan.epochs // every + (1 if plan.epochs % every else 0),
        build_seconds=build_seconds,
        peak_memory=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        initial_state=outcome.initial_state if keep_initial_state else None,
    )
