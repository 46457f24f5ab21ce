"""Hook specifications of lbgap.

Two families of hooks exist.

*Registration hooks* (``lbgap_register_*``) are implemented by plugin packages
and return lists of plugin records (:mod:`lbgap.api`: ``ModelPlugin``...).
They are called once when the registry loads; every implementation is called
and the lists are joined. Every record's ``name`` must be unique within its
kind: a second record of that name is an error naming both packages, so the
order of the packages never decides which plugin a study gets.

*Lifecycle hooks* are called by the training engine around every step, at
the end of each epoch and at the end of a trial. Per-trial objects built from
a study (schedules, stopping rules, noise injectors, metrics) that implement
lifecycle hooks are registered for the duration of one trial only, so they
receive the hooks of their own trial; a package-level plugin (a logger, say)
receives them for every trial.

*How implementations are combined.* Every implementation of a hook is called
(none can stop the others), in pluggy's order: the last registered first, so
a trial's own objects (registered when the trial starts) before package-level
plugins, and the packages in reverse order of loading; ``tryfirst`` and
``trylast`` move an implementation to the front or the back. Lifecycle hooks
return nothing, except ``lbgap_epoch_end`` and ``lbgap_trial_end``: the engine
calls each of their implementations on its own copy of the values, which
records the keys it writes, and an implementation may instead *return* a
mapping of values. Every value is traced to the plugin that wrote it (the
``source`` attribute in ``results.nc``); a key written by two plugins, or a
core variable (``train_loss``, ``test_accuracy``...) written by a plugin, is
an error naming both writers. ``lbgap_report_figures`` implementations are
called one at a time: one that raises is named in the report and the others
still draw.

The types in the signatures are those of :mod:`lbgap.api`.

Every hook here is documented where it is declared; ``docs/hooks.md`` is
generated from these docstrings (``python -m lbgap.docgen``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import xarray

    from .metric import MetricValue
    from .plugin import (
        DatasetPlugin,
        MetricPlugin,
        ModelPlugin,
        NoisePlugin,
        OptimizerPlugin,
        RegimePlugin,
        SchedulePlugin,
        StoppingPlugin,
    )
    from .trial import TrialContext

PROJECT_NAME = "lbgap"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --------------------------------------------------------------- registration


@hookspec
def lbgap_register_models() -> list[ModelPlugin]:
    """Return the model plugins this package provides.

    Each record's ``build(config, *, info)`` receives the validated
    configuration and a :class:`lbgap.api.DataInfo` (input shape, number of
    classes) and returns a ``torch.nn.Module`` mapping a batch of inputs to
    logits.
    """


@hookspec
def lbgap_register_datasets() -> list[DatasetPlugin]:
    """Return the dataset plugins this package provides.

    Each record's ``build(config, *, seed, device)`` returns a
    :class:`lbgap.api.InMemoryData` whose tensors live on ``device``.
    ``seed`` is the trial seed, for data sets generated at random.
    """


@hookspec
def lbgap_register_optimizers() -> list[OptimizerPlugin]:
    """Return the optimizer plugins this package provides.

    The configuration must have a float field ``lr``: the base learning rate
    that regime plugins rescale and schedules multiply.
    ``build(config, params)`` returns a ``torch.optim.Optimizer``.
    """


@hookspec
def lbgap_register_schedules() -> list[SchedulePlugin]:
    """Return the learning-rate schedule plugins this package provides.

    ``build(config)`` returns a :class:`lbgap.api.Schedule`.
    """


@hookspec
def lbgap_register_regimes() -> list[RegimePlugin]:
    """Return the regime plugins (training-plan transforms) this package provides.

    ``build(config)`` returns a callable mapping a
    :class:`lbgap.api.TrainingPlan` to a new one; a study lists regime
    plugins and they apply in that order (LR scaling rules, regime
    adaptation).
    """


@hookspec
def lbgap_register_noise() -> list[NoisePlugin]:
    """Return the noise-injector plugins this package provides.

    ``build(config)`` returns an object implementing lifecycle hooks
    (``lbgap_trial_start``, ``lbgap_after_backward``...) with
    ``@lbgap.hookimpl``; it is registered for one trial.
    """


@hookspec
def lbgap_register_metrics() -> list[MetricPlugin]:
    """Return the metric plugins this package provides.

    ``build(config)`` returns a :class:`lbgap.api.Metric`.
    """


@hookspec
def lbgap_register_stopping() -> list[StoppingPlugin]:
    """Return the stopping-rule plugins this package provides.

    ``build(config)`` returns a :class:`lbgap.api.StoppingRule`.
    """


# ------------------------------------------------------------------ lifecycle


@hookspec
def lbgap_trial_start(trial: TrialContext) -> None:
    """Called once a trial's model, data and optimizer exist, before the first
    epoch and before the initial weights are recorded.

    :param trial: the trial's context (model, data, optimizer, plan, seed).
    """


@hookspec
def lbgap_before_step(trial: TrialContext, x: torch.Tensor, y: torch.Tensor) -> None:
    """Called before the forward pass of every optimizer step.

    :param trial: the trial's context; ``trial.step`` is the number of steps done.
    :param x: the (transformed) input batch, on ``trial.device``.
    :param y: the target batch.
    """


@hookspec
def lbgap_after_backward(trial: TrialContext) -> None:
    """Called after gradients are computed (and averaged), before gradient
    clipping and the optimizer step. Gradient-noise injectors act here.

    :param trial: the trial's context.
    """


@hookspec
def lbgap_after_step(trial: TrialContext, loss: torch.Tensor) -> None:
    """Called after every optimizer step.

    :param trial: the trial's context; ``trial.step`` already counts this step.
    :param loss: the step's mean training loss, a 0-d tensor (not synchronised
        to the host, to keep steps asynchronous on accelerators).
    """


@hookspec
def lbgap_epoch_end(trial: TrialContext, record: dict[str, float]) -> Optional[Mapping[str, float]]:
    """Called at the end of every epoch, after evaluation and the epoch's metrics.

    An implementation adds per-epoch values (variable name → float) by
    returning them as a mapping, or by writing them into ``record``; the
    engine stores every key as a variable with an ``epoch`` dimension. Keys
    must be the same at every epoch.

    Each implementation is called on its own copy of the epoch's values so far,
    in pluggy's order (last registered first); the keys it writes or returns are
    then merged and claimed by its plugin. A key already written by another
    plugin, or a core variable, is an error naming both writers; the values of
    earlier implementations are visible to later ones.

    :param trial: the trial's context; ``trial.epoch`` is the epoch just done (1-based).
    :param record: the epoch's values so far (``train_loss``, ``test_accuracy``...).
    :return: None, or a mapping of the values to add.
    """


@hookspec
def lbgap_trial_end(
    trial: TrialContext, results: dict[str, MetricValue]
) -> Optional[Mapping[str, MetricValue]]:
    """Called once when a trial ends (normally, stopped early, or diverged),
    after the end-of-training metrics.

    An implementation adds end-of-training values (name → float or
    ``xarray.DataArray``) by returning them as a mapping, or by writing them
    into ``results``; they are stored without an ``epoch`` dimension. As for
    :func:`lbgap_epoch_end`, each implementation works on its own copy, in
    pluggy's order, and a key written by two plugins or a core variable written
    by a plugin is an error naming both writers.

    :param trial: the trial's context; ``trial.status`` says how it ended.
    :param results: end-of-training values so far.
    :return: None, or a mapping of the values to add.
    """


# --------------------------------------------------------------------- report


@hookspec
def lbgap_report_figures(results: xarray.Dataset, out_dir: Path) -> list[tuple[str, Path]]:
    """Draw figures of a finished study for ``lbgap report``.

    Every implementation is called, one at a time, in pluggy's order (last
    registered first); each draws the figures it knows how to make from the
    variables present (and returns an empty list otherwise). The lists are
    joined in that order. An implementation that raises is named in the log
    (with its traceback) and under "Figures not drawn" in ``summary.md``; the
    other figures are still drawn and ``lbgap report`` exits with status 1.

    :param results: the study's combined dataset (``results.nc``).
    :param out_dir: the folder to write PNG files into.
    :return: ``(title, path)`` pairs of the figures written.
    """
