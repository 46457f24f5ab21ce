"""Run one trial: build its parts from plugins, train, evaluate, measure.

The loop holds the data set on the device and draws every batch by an index
gather from a per-epoch permutation. Randomness comes from the trial seed
only: the model is initialised under ``torch.manual_seed(seed)`` and every
later draw (shuffles, augmentation, noise) comes from the trial's own
generator, so the same spec and seed give the same numbers on a CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..metric import MeasureContext
from ..plan import TrainingPlan
from ..registry import Registry
from ..schedule import Progress
from .context import TrialContext
from .evaluate import evaluate, loss_function

__all__ = ["TrialOutcome", "run_trial", "StopTrial", "build_parts", "steps_per_epoch", "weight_distance"]

log = logging.getLogger(__name__)


class StopTrial(Exception):
    """Raised by an epoch callback to end a trial early (Optuna pruning)."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


@dataclass
class TrialOutcome:
    """What one trial produced."""

    key: str
    seed: int
    status: str  # completed | stopped | diverged | pruned
    reason: str
    plan: TrainingPlan
    history: dict[str, list[float]]
    end: dict[str, Any]
    initial_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    #: per-epoch metric values with dimensions of their own: name → {epoch: DataArray}
    epoch_arrays: dict[str, dict[int, Any]] = field(default_factory=dict)
    wall_time: float = 0.0
    data_description: str = ""
    #: mean training loss of the steps of the epoch that ``max_steps`` cut short (NaN if none was)
    cut_epoch_loss: float = math.nan


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def weight_distance(params: list[torch.Tensor], initial: list[torch.Tensor]) -> torch.Tensor:
    """‖w − w₀‖₂ over all given tensors, as a 0-d tensor (no host sync)."""
    diffs = torch._foreach_sub(params, initial)
    norms = torch._foreach_norm(diffs)
    return torch.linalg.vector_norm(torch.stack(norms))


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Optimizer steps in one epoch over ``n_train`` samples (a batch larger than the set is one batch)."""
    return n_train // batch_size if (drop_last and n_train >= batch_size) else math.ceil(n_train / batch_size)


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


def build_parts(cfg: Any, seed: int, registry: Registry, device: torch.device) -> Parts:
    """Build data, model, plan, optimizer and per-trial plugin objects."""
    data = registry.build("dataset", cfg.dataset, seed=seed, device=device)
    data.to(device)
    torch.manual_seed(seed)
    model = registry.build("model", cfg.model, info=data.info).to(device)
    plan = TrainingPlan(batch_size=cfg.batch_size, lr=cfg.optimizer.lr, epochs=cfg.epochs)
    for regime_cfg in cfg.regime:
        plan = registry.build("regime", regime_cfg)(plan)
    optimizer = registry.build("optimizer", cfg.optimizer, model.parameters())
    schedule = registry.build("schedule", cfg.schedule)
    stopping = [registry.build("stopping", s) for s in cfg.stopping]
    noise = [registry.build("noise", n) for n in cfg.noise]
    metrics = [registry.build("metric", m) for m in cfg.metrics]
    return Parts(data, model, plan, optimizer, schedule, stopping, noise, metrics)


@contextlib.contextmanager
def _deterministic(flag: bool):
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(flag, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


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
    t_start = time.perf_counter()
    checkpoint_epochs = set(checkpoint_epochs or ()) | set(cfg.checkpoint_epochs)
    with _deterministic(cfg.deterministic):
        if parts is None:
            parts = build_parts(cfg, seed, registry, device)
        data, model, plan, optimizer = parts.data, parts.model, parts.plan, parts.optimizer
        if init_state is not None:
            model.load_state_dict(init_state)
        # The trial generator (noise hooks, plugins) is the same on every
        # data-parallel rank, so updates stay identical across ranks; per-example
        # draws come from a generator of each rank's own.
        generator = torch.Generator(device=device)
        generator.manual_seed(seed * 1_000_003 + 17)
        rank, world = _distributed()
        local_generator = generator
        if world > 1:
            local_generator = torch.Generator(device=device)
            local_generator.manual_seed(seed * 1_000_003 + 53 + 7919 * rank)
        loss_fn = loss_function(data.task)
        trial = TrialContext(
            key=key,
            seed=seed,
            model=model,
            optimizer=optimizer,
            data=data,
            plan=plan,
            loss_fn=loss_fn,
            device=device,
            generator=generator,
            local_generator=local_generator,
            config=cfg,
            lr=plan.lr,
        )
        pm = registry.pm
        trial_plugins = [
            obj for obj in (parts.schedule, *parts.stopping, *parts.noise, *parts.metrics) if _has_hookimpls(obj)
        ]
        names = []
        for i, obj in enumerate(trial_plugins):
            name = f"trial:{key}:{i}"
            pm.register(obj, name=name)
            names.append(name)
        try:
            return _train(cfg, trial, parts, pm, checkpoint_epochs, on_epoch, on_step, max_steps, t_start)
        finally:
            for name in names:
                pm.unregister(name=name)


def _distributed() -> tuple[int, int]:
    """(rank, world size) when running under ``torchrun``, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_gradients(params: list[torch.Tensor], step_loss: torch.Tensor) -> torch.Tensor:
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


def _check_ranks_agree(params: list[torch.Tensor], key: str, epoch: int) -> None:
    """Raise if the data-parallel ranks no longer hold the same parameters.

    Every rank applies the same all-reduced gradient, so the parameters stay
    bitwise equal unless something drew rank-dependent numbers into a shared
    quantity. A fingerprint (sum and sum of squares, float64) is compared.
    """
    import torch.distributed as dist

    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).double() for p in params])
        mine = torch.stack([flat.sum(), (flat * flat).sum()])
    high, low = mine.clone(), mine.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if not torch.equal(high, low):
        raise RuntimeError(
            f"{key}: the data-parallel processes hold different parameters after epoch {epoch}; a plugin "
            "drew rank-dependent random numbers into a shared quantity (draw what every rank must agree on "
            "from trial.generator, per-example noise from trial.local_generator)"
        )


def _has_hookimpls(obj: Any) -> bool:
    return any(hasattr(getattr(obj, n, None), "lbgap_impl") for n in dir(obj) if n.startswith("lbgap_"))


def _train(
    cfg, trial: TrialContext, parts: Parts, pm, checkpoint_epochs, on_epoch, on_step, max_steps, t_start
) -> TrialOutcome:
    data, model, plan, optimizer = parts.data, parts.model, parts.plan, parts.optimizer
    device = trial.device
    hook = pm.hook
    want_before = bool(hook.lbgap_before_step.get_hookimpls())
    want_after_bw = bool(hook.lbgap_after_backward.get_hookimpls())
    want_after = bool(hook.lbgap_after_step.get_hookimpls())

    hook.lbgap_trial_start(trial=trial)
    initial_state = _clone_state(model)
    trial.initial_state = initial_state
    params = [p for p in model.parameters()]
    init_params = [p.detach().clone() for p in params]
    checkpoints: dict[int, dict[str, torch.Tensor]] = {}
    if 0 in checkpoint_epochs:
        checkpoints[0] = initial_state

    n = data.n_train
    B = plan.batch_size
    rank, world = _distributed()
    if world > 1 and B < world:
        raise ValueError(f"batch size {B} is smaller than the {world} data-parallel processes")
    # batch order: one generator shared by all ranks; augmentation: one per rank
    perm_gen = torch.Generator(device=device)
    perm_gen.manual_seed(trial.seed * 1_000_003 + 29)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(trial.seed * 1_000_003 + 41 + 7919 * rank)
    if B > n:
        log.warning("%s: batch size %d exceeds the %d training samples; using one batch of %d", trial.key, B, n, n)
    n_steps = steps_per_epoch(n, B, cfg.drop_last)
    micro = cfg.accumulation_steps
    history: dict[str, list[float]] = {}
    epoch_arrays: dict[str, dict[int, Any]] = {}
    end: dict[str, Any] = {}
    status, reason = "completed", ""
    cut, cut_epoch_loss = False, math.nan
    eval_cfg = cfg.eval
    last_train_loss = math.nan
    lr_now = None
    train_x, train_y = data.train_x, data.train_y
    transform = data.train_transform
    task = data.task
    loss_fn = trial.loss_fn
    clip = cfg.grad_clip
    first_param = params[0] if params else None
    first_init = init_params[0] if params else None

    def eval_epoch(epoch: int, running_loss: float, running_accuracy: float) -> tuple[dict, dict]:
        """Train and test metrics of the model as it is after ``epoch``."""
        # evaluation draws (a data set that redraws test patterns, say) come
        # from their own generator, so evaluating never shifts training's stream
        eval_gen = torch.Generator(device=device)
        eval_gen.manual_seed(trial.seed * 1_000_003 + 7919 * epoch + 1)

        def pass_over(x: torch.Tensor, y: torch.Tensor, groups: dict) -> dict[str, float]:
            return evaluate(
                model, x, y, task=task, transform=data.eval_transform, generator=eval_gen,
                batch_size=eval_cfg.batch_size, bn_mode=eval_cfg.bn_mode, groups=groups,
            )

        test = pass_over(data.test_x, data.test_y, data.test_groups)
        if eval_cfg.train_metrics == "eval_pass":
            train = pass_over(train_x, train_y, data.train_groups)
        else:
            accuracy = running_accuracy if task == "classification" else math.nan
            train = {"loss": running_loss, "accuracy": accuracy}
            if data.train_groups:  # per-group values need a pass; the totals stay running means
                extra = pass_over(train_x, train_y, data.train_groups)
                train.update({k: v for k, v in extra.items() if k not in ("loss", "accuracy")})
        return train, test

    def evaluate_last(epoch: int, running_loss: float, running_accuracy: float) -> None:
        """Fill in the train and test metrics of the last recorded epoch (a trial stopped early
        on an epoch that ``eval.every`` skipped): the results' last values are the final model's."""
        train, test = eval_epoch(epoch, running_loss, running_accuracy)
        for prefix, values in (("train", train), ("test", test)):
            for k, v in values.items():
                history.setdefault(f"{prefix}_{k}", [math.nan] * epoch)[-1] = v

    def measure_ctx(epoch: Optional[int]) -> MeasureContext:
        return MeasureContext(
            model=model,
            data=data,
            loss_fn=loss_fn,
            device=device,
            eval_batch_size=eval_cfg.batch_size,
            initial_state=initial_state,
            epoch=epoch,
            seed=trial.seed,
            trial_key=trial.key,
        )

    for epoch in range(1, plan.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        perm = torch.randperm(n, device=device, generator=perm_gen) if cfg.shuffle else torch.arange(n, device=device)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct_sum = torch.zeros((), device=device, dtype=torch.float64)
        seen = 0
        for i in range(n_steps):
            progress = Progress(
                epoch=(epoch - 1) + i / n_steps,
                step=trial.step,
                steps_per_epoch=n_steps,
                time_scale=plan.time_scale,
                last_train_loss=last_train_loss,
            )
            lr = plan.lr * parts.schedule.factor(progress)
            if lr != lr_now:
                _set_lr(optimizer, lr)
                lr_now = lr
                trial.lr = lr
            idx = perm[i * B : (i + 1) * B]
            b = len(idx)
            if world > 1:  # this rank's share of the global batch
                idx = idx.tensor_split(world)[rank]
            x = train_x[idx]
            y = train_y[idx]
            if transform is not None:
                x = transform(x, aug_gen)
            if want_before:
                hook.lbgap_before_step(trial=trial, x=x, y=y)
            if micro == 1 and world == 1:
                out = model(x)
                loss = loss_fn(out, y)
                loss.backward()
                step_loss = loss.detach()
                if task == "classification" and eval_cfg.train_metrics == "running":
                    correct_sum += (out.detach().argmax(1) == y).sum()
            else:
                step_loss = torch.zeros((), device=device)
                for xm, ym in zip(x.chunk(micro), y.chunk(micro), strict=False):
                    out = model(xm)
                    part = loss_fn(out, ym) * (len(ym) / b)
                    part.backward()
                    step_loss += part.detach()
                    if task == "classification" and eval_cfg.train_metrics == "running":
                        correct_sum += (out.detach().argmax(1) == ym).sum()
            if world > 1:
                step_loss = _all_reduce_gradients(params, step_loss)
            if want_after_bw:
                hook.lbgap_after_backward(trial=trial)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            trial.step += 1
            loss_sum += step_loss * b
            seen += b
            if want_after:
                hook.lbgap_after_step(trial=trial, loss=step_loss)
            if on_step is not None:
                on_step(trial.step)
            if max_steps is not None and trial.step >= max_steps:
                break
        if max_steps is not None and trial.step >= max_steps:
            cut = True
            cut_epoch_loss = float(loss_sum) / max(seen, 1)  # the loss sum is global on every rank
            if math.isfinite(cut_epoch_loss):
                status, reason = "stopped", f"max_steps: stopped after {trial.step} optimizer steps"
            else:
                status = "diverged"
                reason = f"training loss became {cut_epoch_loss} in epoch {epoch} (max_steps {max_steps})"
                log.warning("%s: %s", trial.key, reason)
            break
        trial.epoch = epoch
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(correct_sum)  # the loss sum is already global
            _check_ranks_agree(params, trial.key, epoch)
        running_loss = float(loss_sum) / max(seen, 1)
        running_accuracy = float(correct_sum) / max(seen, 1)
        diverged = not math.isfinite(running_loss)
        record: dict[str, float] = {}
        evaluate_now = diverged or epoch % eval_cfg.every == 0 or epoch == plan.epochs
        if evaluate_now and not diverged:
            train, test = eval_epoch(epoch, running_loss, running_accuracy)
        else:
            nan_train = {"loss": running_loss if diverged else math.nan, "accuracy": math.nan}
            nan_test = {"loss": math.nan, "accuracy": math.nan}
            for g in data.test_groups:
                nan_test[f"loss_{g}"] = nan_test[f"accuracy_{g}"] = math.nan
            for g in data.train_groups:
                nan_train[f"loss_{g}"] = nan_train[f"accuracy_{g}"] = math.nan
            train, test = nan_train, nan_test
        for k, v in train.items():
            record[f"train_{k}"] = v
        for k, v in test.items():
            record[f"test_{k}"] = v
        with torch.no_grad():
            record["weight_distance"] = float(weight_distance(params, init_params))
            if cfg.weight_distance_first_param and first_param is not None:
                record["weight_distance_first_param"] = float(torch.linalg.vector_norm(first_param - first_init))
        record["step"] = float(trial.step)
        record["learning_rate"] = float(lr_now if lr_now is not None else plan.lr)
        record["train_loss_running"] = running_loss
        last_train_loss = running_loss if eval_cfg.train_metrics == "running" else record["train_loss"]
        if not diverged:
            for metric in parts.metrics:
                if metric.every and epoch % metric.every == 0:
                    for name, value in metric.compute(measure_ctx(epoch)).items():
                        if hasattr(value, "dims"):  # an xarray.DataArray: kept per epoch
                            epoch_arrays.setdefault(name, {})[epoch] = value
                        else:
                            record[name] = _as_float(value, name)
        hook.lbgap_epoch_end(trial=trial, record=record)
        record["epoch_time"] = time.perf_counter() - t_epoch
        for k, v in record.items():
            history.setdefault(k, [math.nan] * (epoch - 1)).append(v)
        for k in history:
            if len(history[k]) < epoch:
                history[k].append(math.nan)
        if epoch in checkpoint_epochs:
            checkpoints[epoch] = _clone_state(model)
        if diverged or any(not math.isfinite(p.detach().sum().item()) for p in params[:1]):
            status, reason = "diverged", f"training loss became {running_loss} in epoch {epoch}"
            log.warning("%s: %s", trial.key, reason)
            break
        try:
            if on_epoch is not None:
                on_epoch(epoch, record, trial)
        except StopTrial as stop:
            status, reason = stop.status, stop.reason
            if not evaluate_now:
                evaluate_last(epoch, running_loss, running_accuracy)
            break
        stop_reason = None
        final_progress = Progress(
            epoch=float(epoch), step=trial.step, steps_per_epoch=n_steps,
            time_scale=plan.time_scale, last_train_loss=last_train_loss,
        )
        for rule in parts.stopping:
            stop_reason = rule.should_stop(final_progress, history)
            if stop_reason:
                break
        if stop_reason:
            status, reason = "stopped", stop_reason
            if not evaluate_now:
                evaluate_last(epoch, running_loss, running_accuracy)
            break

    if status != "diverged" and not cut:
        for metric in parts.metrics:
            if not metric.at_end:
                continue
            if not metric.every:
                end.update(metric.compute(measure_ctx(None)))
            elif trial.epoch % metric.every != 0 and trial.epoch > 0:
                # a per-epoch metric also measured at the end: fill in the last epoch
                for name, value in metric.compute(measure_ctx(trial.epoch)).items():
                    if hasattr(value, "dims"):
                        epoch_arrays.setdefault(name, {})[trial.epoch] = value
                    else:
                        history.setdefault(name, [math.nan] * trial.epoch)[-1] = _as_float(value, name)
    clash = sorted(set(end) & (set(history) | set(epoch_arrays)))
    if clash:
        raise ValueError(f"end-of-training values {clash} clash with per-epoch variables of the same name")
    trial.status = status
    pm.hook.lbgap_trial_end(trial=trial, results=end)
    return TrialOutcome(
        key=trial.key,
        seed=trial.seed,
        status=status,
        reason=reason,
        plan=plan,
        history=history,
        end=end,
        initial_state=initial_state,
        final_state=_clone_state(model),
        checkpoints=checkpoints,
        epoch_arrays=epoch_arrays,
        wall_time=time.perf_counter() - t_start,
        data_description=data.description,
        cut_epoch_loss=cut_epoch_loss,
    )


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    raise TypeError(f"per-epoch metric {name!r} must be a number, got {type(value).__name__}")
