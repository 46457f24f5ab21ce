"""The end of an epoch and of a trial: the evaluation record, measurement, stopping, the outcome.

Each piece takes the :class:`TrialRun` of one trial, so the single-trial loop
(:mod:`lbgap.engine.train`) and the vectorized group (:mod:`lbgap.engine.group`)
end their trials' epochs with the same code.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..metric import MeasureContext
from ..outcome import StopTrial, TrialOutcome
from ..provenance import VariableSources, hook_label, plugin_label, variable_attrs_of
from ..schedule import Progress
from ..seeds import EVAL_STREAM, RANK_STRIDE, VALIDATION_STREAM, seeded_generator
from ..trial import TrialContext
from .evaluate import evaluate
from .parts import Parts
from .step import StepSettings, StepState
from .target import TargetTracker

__all__ = ["TrialRun", "EpochSums", "end_epoch", "cut_short", "finish_trial", "weight_distance", "clone_state"]

log = logging.getLogger(__name__)


@dataclass
class TrialRun:
    """Everything one running trial holds between its steps and epochs."""

    cfg: Any
    parts: Parts
    trial: TrialContext
    pm: Any
    registry: Any
    t_start: float
    checkpoint_epochs: set[int]
    rank: int = 0
    world: int = 1
    on_epoch: Optional[Callable[[int, dict[str, float], TrialContext], None]] = None
    want_before: bool = False
    want_after: bool = False
    registered: list[str] = field(default_factory=list)
    initial_state: dict[str, torch.Tensor] = field(default_factory=dict)
    init_params: list[torch.Tensor] = field(default_factory=list)
    checkpoints: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    perm_gen: Optional[torch.Generator] = None
    aug_gen: Optional[torch.Generator] = None
    #: optimizer steps in the current epoch, its global batch size and the batch schedule's
    #: learning-rate factor (set at the start of every epoch: :func:`lbgap.engine.train.begin_epoch`)
    n_steps: int = 0
    batch_size: int = 0
    lr_factor: float = 1.0
    step_state: Optional[StepState] = None
    settings: Optional[StepSettings] = None
    history: dict[str, list[float]] = field(default_factory=dict)
    epoch_arrays: dict[str, dict[int, Any]] = field(default_factory=dict)
    end: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    reason: str = ""
    cut: bool = False
    cut_epoch_loss: float = math.nan
    last_train_loss: float = math.nan
    lr_now: Optional[float] = None
    #: set once the trial has ended (its last epoch recorded, or stopped, diverged, pruned)
    done: bool = False
    #: plugin objects of the other trials of a vectorized group, whose hooks this trial skips
    others: list[Any] = field(default_factory=list)
    objects: list[Any] = field(default_factory=list)
    _callers: dict[str, Any] = field(default_factory=dict)
    #: the plugin behind every variable a plugin wrote
    sources: VariableSources = field(default_factory=VariableSources)
    #: progress against the trial's target (steps to target), if it has one
    target: Optional[TargetTracker] = None

    @property
    def model(self) -> torch.nn.Module:
        return self.parts.model

    @property
    def data(self) -> Any:
        return self.parts.data

    @property
    def plan(self) -> Any:
        return self.parts.plan

    def register_plugins(self) -> None:
        """Register the trial's plugin objects that implement hooks, for the trial's duration."""
        objs = (self.parts.schedule, *self.parts.stopping, *self.parts.noise, *self.parts.metrics)
        for i, obj in enumerate(o for o in objs if _has_hookimpls(o)):
            name = f"trial:{self.trial.key}:{i}"
            self.pm.register(obj, name=name)
            self.registered.append(name)
            self.objects.append(obj)

    def hook(self, name: str) -> Any:
        """The caller of hook ``name`` for this trial: every implementation but those of the
        other trials of its group."""
        if not self.others:
            return getattr(self.pm.hook, name)
        if name not in self._callers:
            self._callers[name] = self.pm.subset_hook_caller(name, remove_plugins=self.others)
        return self._callers[name]

    def close(self) -> None:
        for name in self.registered:
            self.pm.unregister(name=name)
        self.registered.clear()


def _has_hookimpls(obj: Any) -> bool:
    return any(hasattr(getattr(obj, n, None), "lbgap_impl") for n in dir(obj) if n.startswith("lbgap_"))


@dataclass
class EpochSums:
    """Running sums over an epoch's steps (device tensors: no host sync per step)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    cut: bool = False
    #: the trial met its target in this epoch and stops (``target.stop``)
    target_stop: bool = False

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        z = torch.zeros((), device=device, dtype=torch.float64)
        return cls(z, z.clone())

    def add(self, loss: torch.Tensor, correct: Optional[torch.Tensor], batch: int) -> None:
        self.loss += loss * batch
        if correct is not None:
            self.correct += correct
        self.seen += batch


def clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def weight_distance(params: list[torch.Tensor], initial: list[torch.Tensor]) -> torch.Tensor:
    """‖w − w₀‖₂ over all given tensors, as a 0-d tensor (no host sync)."""
    diffs = torch._foreach_sub(params, initial)
    norms = torch._foreach_norm(diffs)
    return torch.linalg.vector_norm(torch.stack(norms))


# ------------------------------------------------------------------ epoch end


def end_epoch(run: TrialRun, epoch: int, sums: EpochSums, t_epoch: float) -> bool:
    """Record ``epoch`` (evaluate, measure, hooks, checkpoint) and decide whether the trial ends."""
    trial = run.trial
    trial.epoch = epoch
    if run.world > 1:
        _sync_ranks(run, sums, epoch)
    running_loss = float(sums.loss) / max(sums.seen, 1)
    running_accuracy = float(sums.correct) / max(sums.seen, 1)
    diverged = not math.isfinite(running_loss)
    evaluated = diverged or epoch % run.cfg.eval.every == 0 or epoch == run.plan.epochs
    record = epoch_record(run, epoch, running_loss, running_accuracy, evaluate_now=evaluated and not diverged)
    run.last_train_loss = running_loss if run.cfg.eval.train_metrics == "running" else record["train_loss"]
    if not diverged:
        measure_epoch(run, epoch, record)
    collect_hook(run, "lbgap_epoch_end", record=record)
    record["epoch_time"] = time.perf_counter() - t_epoch
    _append_history(run.history, epoch, record)
    if epoch in run.checkpoint_epochs:
        run.checkpoints[epoch] = clone_state(run.model)
    params = run.step_state.params
    if diverged or any(not math.isfinite(p.detach().sum().item()) for p in params[:1]):
        return _end(run, "diverged", f"training loss became {running_loss} in epoch {epoch}", warn=True)
    status, reason = _stop_reason(run, epoch, record, sums.target_stop)
    if status is None:
        return False
    if not evaluated:
        _evaluate_last(run, epoch, running_loss, running_accuracy)
    return _end(run, status, reason)


def _end(run: TrialRun, status: str, reason: str, warn: bool = False) -> bool:
    run.status, run.reason, run.done = status, reason, True
    if warn:
        log.warning("%s: %s", run.trial.key, reason)
    return True


def _sync_ranks(run: TrialRun, sums: EpochSums, epoch: int) -> None:
    import torch.distributed as dist

    dist.all_reduce(sums.correct)  # the loss sum is already global
    _check_ranks_agree(run.step_state.params, run.trial.key, epoch)


def _stop_reason(
    run: TrialRun, epoch: int, record: dict[str, float], target_stop: bool = False
) -> tuple[Optional[str], str]:
    """``(status, reason)`` if a pruner (through ``on_epoch``), the target or a stopping rule ends the trial."""
    try:
        if run.on_epoch is not None:
            run.on_epoch(epoch, record, run.trial)
    except StopTrial as stop:
        return stop.status, stop.reason
    if run.target is not None and (target_stop or run.target.check(run)):
        return "stopped", run.target.reason()
    progress = Progress(
        epoch=float(epoch), step=run.trial.step, steps_per_epoch=run.n_steps,
        time_scale=run.plan.time_scale, last_train_loss=run.last_train_loss,
    )
    for rule in run.parts.stopping:
        reason = rule.should_stop(progress, run.history)
        if reason:
            return "stopped", reason
    return None, ""


def epoch_record(
    run: TrialRun, epoch: int, running_loss: float, running_accuracy: float, *, evaluate_now: bool
) -> dict[str, float]:
    """The epoch's per-epoch values: train and test metrics (NaN where not evaluated), weight
    distance, steps, learning rate, batch size."""
    if evaluate_now:
        train, test = _eval_epoch(run, epoch, running_loss, running_accuracy)
    else:
        train, test = _nan_metrics(run.data, running_loss)
    record: dict[str, float] = {f"train_{k}": v for k, v in train.items()}
    record.update({f"test_{k}": v for k, v in test.items()})
    if run.data.val_x is not None:
        record.update(_validation(run, epoch) if evaluate_now else {"validation_loss": math.nan, "validation_accuracy": math.nan})
    params = run.step_state.params
    with torch.no_grad():
        record["weight_distance"] = float(weight_distance(params, run.init_params))
        if run.cfg.weight_distance_first_param and params:
            record["weight_distance_first_param"] = float(torch.linalg.vector_norm(params[0] - run.init_params[0]))
    record["step"] = float(run.trial.step)
    record["learning_rate"] = float(run.lr_now if run.lr_now is not None else run.plan.lr)
    record["batch_size_epoch"] = float(run.batch_size)
    record["train_loss_running"] = running_loss
    return record


def _nan_metrics(data: Any, running_loss: float) -> tuple[dict[str, float], dict[str, float]]:
    """Train and test values of an epoch that is not evaluated (the loss kept if it diverged)."""
    diverged = not math.isfinite(running_loss)
    train = {"loss": running_loss if diverged else math.nan, "accuracy": math.nan}
    test = {"loss": math.nan, "accuracy": math.nan}
    for g in data.test_groups:
        test[f"loss_{g}"] = test[f"accuracy_{g}"] = math.nan
    for g in data.train_groups:
        train[f"loss_{g}"] = train[f"accuracy_{g}"] = math.nan
    return train, test


def _eval_epoch(run: TrialRun, epoch: int, running_loss: float, running_accuracy: float) -> tuple[dict, dict]:
    """Train and test metrics of the model as it is after ``epoch``."""
    data, ev = run.data, run.cfg.eval
    # evaluation draws (a data set that redraws test patterns, say) come from their own
    # generator, so evaluating never shifts training's stream
    eval_gen = seeded_generator(run.trial.seed, EVAL_STREAM + RANK_STRIDE * epoch, run.trial.device)

    def pass_over(x: torch.Tensor, y: torch.Tensor, groups: dict) -> dict[str, float]:
        return evaluate(
            run.model, x, y, task=data.task, transform=data.eval_transform, generator=eval_gen,
            batch_size=ev.batch_size, bn_mode=ev.bn_mode, groups=groups,
        )

    test = pass_over(data.test_x, data.test_y, data.test_groups)
    if ev.train_metrics == "eval_pass":
        return pass_over(data.train_x, data.train_y, data.train_groups), test
    accuracy = running_accuracy if data.task == "classification" else math.nan
    train = {"loss": running_loss, "accuracy": accuracy}
    if data.train_groups:  # per-group values need a pass; the totals stay running means
        extra = pass_over(data.train_x, data.train_y, data.train_groups)
        train.update({k: v for k, v in extra.items() if k not in ("loss", "accuracy")})
    return train, test


def _validation(run: TrialRun, epoch: int) -> dict[str, float]:
    data, ev = run.data, run.cfg.eval
    gen = seeded_generator(run.trial.seed, VALIDATION_STREAM + RANK_STRIDE * epoch, run.trial.device)
    out = evaluate(
        run.model, data.val_x, data.val_y, task=data.task, transform=data.eval_transform, generator=gen,
        batch_size=ev.batch_size, bn_mode=ev.bn_mode,
    )
    return {"validation_loss": out["loss"], "validation_accuracy": out["accuracy"]}


def _evaluate_last(run: TrialRun, epoch: int, running_loss: float, running_accuracy: float) -> None:
    """Fill in the train and test metrics of the last recorded epoch (a trial stopped early on
    an epoch that ``eval.every`` skipped): the results' last values are the final model's."""
    train, test = _eval_epoch(run, epoch, running_loss, running_accuracy)
    values = {f"train_{k}": v for k, v in train.items()} | {f"test_{k}": v for k, v in test.items()}
    if run.data.val_x is not None:
        values.update(_validation(run, epoch))
    for k, v in values.items():
        run.history.setdefault(k, [math.nan] * epoch)[-1] = v


def _append_history(history: dict[str, list[float]], epoch: int, record: dict[str, float]) -> None:
    for k, v in record.items():
        history.setdefault(k, [math.nan] * (epoch - 1)).append(v)
    for k in history:
        if len(history[k]) < epoch:
            history[k].append(math.nan)


# ---------------------------------------------------------------- measurement


def measure_context(run: TrialRun, epoch: Optional[int]) -> MeasureContext:
    """What a metric sees of the trial (the model as it is now)."""
    return MeasureContext(
        model=run.model, data=run.data, loss_fn=run.trial.loss_fn, device=run.trial.device,
        eval_batch_size=run.cfg.eval.batch_size, initial_state=run.initial_state, epoch=epoch,
        seed=run.trial.seed, trial_key=run.trial.key,
    )


def measure_epoch(run: TrialRun, epoch: int, record: dict[str, float]) -> None:
    """Per-epoch metrics due at ``epoch``: numbers into ``record``, arrays into ``epoch_arrays``."""
    for metric in run.parts.metrics:
        if metric.every and epoch % metric.every == 0:
            for name, value in metric.compute(measure_context(run, epoch)).items():
                run.sources.claim(name, metric)
                if hasattr(value, "dims"):  # an xarray.DataArray: kept per epoch
                    run.epoch_arrays.setdefault(name, {})[epoch] = value
                else:
                    record[name] = _as_float(value, name)


def measure_end(run: TrialRun) -> None:
    """End-of-training metrics, and per-epoch metrics also due at the end (their last epoch)."""
    for metric in run.parts.metrics:
        if not metric.at_end:
            continue
        if not metric.every:
            values = metric.compute(measure_context(run, None))
            run.sources.claim_all(values, metric)
            run.end.update(values)
        elif run.trial.epoch % metric.every != 0 and run.trial.epoch > 0:
            for name, value in metric.compute(measure_context(run, run.trial.epoch)).items():
                run.sources.claim(name, metric)
                if hasattr(value, "dims"):
                    run.epoch_arrays.setdefault(name, {})[run.trial.epoch] = value
                else:
                    run.history.setdefault(name, [math.nan] * run.trial.epoch)[-1] = _as_float(value, name)


def _as_float(value: Any, name: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    raise TypeError(f"per-epoch metric {name!r} must be a number, got {type(value).__name__}")


# ------------------------------------------------------------------ trial end


def cut_short(run: TrialRun, epoch: int, sums: EpochSums, max_steps: Optional[int]) -> None:
    """End a trial that ``max_steps`` cut in the middle of ``epoch`` (not recorded)."""
    run.cut = True
    run.cut_epoch_loss = float(sums.loss) / max(sums.seen, 1)  # the loss sum is global on every rank
    if math.isfinite(run.cut_epoch_loss):
        _end(run, "stopped", f"max_steps: stopped after {run.trial.step} optimizer steps")
    else:
        reason = f"training loss became {run.cut_epoch_loss} in epoch {epoch} (max_steps {max_steps})"
        _end(run, "diverged", reason, warn=True)


def finish_trial(run: TrialRun) -> TrialOutcome:
    """Measure at the end (unless diverged or cut), call ``lbgap_trial_end``, return the outcome."""
    run.done = True
    if run.target is not None:
        run.end.update(run.target.results())
    if run.status != "diverged" and not run.cut:
        measure_end(run)
    clash = sorted(set(run.end) & (set(run.history) | set(run.epoch_arrays)))
    if clash:
        raise ValueError(f"end-of-training values {clash} clash with per-epoch variables of the same name")
    run.trial.status = run.status
    collect_hook(run, "lbgap_trial_end", results=run.end)
    return TrialOutcome(
        key=run.trial.key, seed=run.trial.seed, status=run.status, reason=run.reason, plan=run.plan,
        history=run.history, end=run.end, initial_state=run.initial_state, final_state=clone_state(run.model),
        checkpoints=run.checkpoints, epoch_arrays=run.epoch_arrays, wall_time=time.perf_counter() - run.t_start,
        data_description=run.data.description, cut_epoch_loss=run.cut_epoch_loss,
        variable_attrs=variable_attrs_of(run.parts.metrics, run.sources),
    )


def collect_hook(run: TrialRun, name: str, **target: dict[str, Any]) -> None:
    """Call hook ``name`` one implementation at a time (in pluggy's order) with the trial and the
    dict it may fill, and record which plugin wrote each key: a key written by two plugins, or a
    core variable written by a plugin, is an error naming both. An implementation may also
    return a mapping of values instead of writing into the dict."""
    caller = run.hook(name)
    impls = caller.get_hookimpls()
    (arg, values), = target.items()
    if any(i.hookwrapper or getattr(i, "wrapper", False) for i in impls):
        caller(trial=run.trial, **target)  # wrappers need pluggy's own call; no tracing
        return
    for impl in reversed(impls):  # pluggy calls the last registered first
        traced = _TracedDict(values)
        returned = impl.function(*[{"trial": run.trial, arg: traced}[a] for a in impl.argnames])
        if isinstance(returned, Mapping):
            traced.update(returned)
        if traced.written:
            label = hook_label(impl, run.registry)
            owner = impl.plugin if label == plugin_label(impl.plugin) else label
            for key in sorted(traced.written):
                run.sources.claim(key, owner)
        values.update(traced)


class _TracedDict(dict):
    """A copy of a hook's dict that records which keys an implementation writes."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.written: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.add(key)
        super().__setitem__(key, value)

    def update(self, *args: Any, **kw: Any) -> None:
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]


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
