"""Hook specifications of lbgap.

Two families of hooks exist.

*Registration hooks* (``lbgap_register_*``) are implemented by plugin packages
and return lists of plugin records (:mod:`lbgap.plugin`). They are called once
when the registry loads; every record's ``name`` must be unique within its
kind.

*Lifecycle hooks* are called by the training engine around every step, at
the end of each epoch and at the end of a trial. Per-trial objects built from
a study (schedules, stopping rules, noise injectors, metrics) that implement
lifecycle hooks are registered for the duration of one trial only, so they receive the hooks of their own trial; a package-level plugin
(a logger, say) receives them for every trial.

Every hook here is documented where it is declared; ``docs/hooks.md`` is
generated from these docstrings (``python -m lbgap.docgen``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .engine.context import TrialContext
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

PROJECT_NAME = "lbgap"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --------------------------------------------------------------- registration


@hookspec
def lbgap_register_models() -> list[ModelPlugin]:
    """Return the model plugins this package provides.

    Each record's ``build(config, *, info)`` receives the validated
    configuration and a :class:`lbgap.data.DataInfo` (input shape, number of
    classes) and returns a ``torch.nn.Module`` mapping a batch of inputs to
    logits.
    """


@hookspec
def lbgap_register_datasets() -> list[DatasetPlugin]:
    """Return the dataset plugins this package provides.

    Each record's ``build(config, *, seed, device)`` returns a
    :class:`lbgap.data.InMemoryData` whose tensors live on ``device``.
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

    ``build(config)`` returns a :class:`lbgap.schedule.Schedule`.
    """


@hookspec
def lbgap_register_regimes() -> list[RegimePlugin]:
    """Return the regime plugins (training-plan transforms) this package provides.

    ``build(config)`` returns a callable mapping a
    :class:`lbgap.plan.TrainingPlan` to a new one; a study lists regime
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

    ``build(config)`` returns a :class:`lbgap.metric.Metric`.
    """


@hookspec
def lbgap_register_stopping() -> list[StoppingPlugin]:
    """Return the stopping-rule plugins this package provides.

    ``build(config)`` returns a :class:`lbgap.schedule.StoppingRule`.
    """


# ------------------------------------------------------------------ lifecycle


@hookspec
def lbgap_trial_start(trial: TrialContext) -> None:
    """Called once a trial's model, data and optimizer exist, before the first
    epoch and before the initial weights are recorded.

    :param trial: the trial's context (model, data, optimizer, plan, seed).
    """


@hookspec
def lbgap_before_step(trial: TrialContext, x: Any, y: Any) -> None:
    """Called before the forward pass of every optimizer step.

    :param trial: the trial's context; ``trial.step`` is the number of steps done.
    :param x: the (transformed) input batch.
    :param y: the target batch.
    """


@hookspec
def lbgap_after_backward(trial: TrialContext) -> None:
    """Called after gradients are computed (and averaged), before gradient
    clipping and the optimizer step. Gradient-noise injectors act here.

    :param trial: the trial's context.
    """


@hookspec
def lbgap_after_step(trial: TrialContext, loss: Any) -> None:
    """Called after every optimizer step.

    :param trial: the trial's context; ``trial.step`` already counts this step.
    :param loss: the step's mean training loss, a 0-d tensor (not synchronised
        to the host, to keep steps asynchronous on accelerators).
    """


@hookspec
def lbgap_epoch_end(trial: TrialContext, record: dict[str, Any]) -> None:
    """Called at the end of every epoch, after evaluation.

    An implementation may add per-epoch values to ``record`` (a dict of
    variable name → float); the engine stores every key as a variable with an
    ``epoch`` dimension. Keys must be the same at every epoch.

    :param trial: the trial's context; ``trial.epoch`` is the epoch just done (1-based).
    :param record: the epoch's values so far (``train_loss``, ``test_accuracy``...).
    """


@hookspec
def lbgap_trial_end(trial: TrialContext, results: dict[str, Any]) -> None:
    """Called once when a trial ends (normally, stopped early, or diverged).

    An implementation may add end-of-training values to ``results`` (name →
    float or ``xarray.DataArray``); they are stored without an ``epoch``
    dimension.

    :param trial: the trial's context; ``trial.status`` says how it ended.
    :param results: end-of-training values so far.
    """


# --------------------------------------------------------------------- report


@hookspec
def lbgap_report_figures(results: Any, out_dir: Any) -> list[Any]:
    """Draw figures of a finished study for ``lbgap report``.

    Called with every implementation; each draws the figures it knows how to
    make from the variables present (and draws nothing otherwise).

    :param results: the study's combined ``xarray.Dataset`` (``results.nc``).
    :param out_dir: a ``pathlib.Path`` folder to write PNG files into.
    :return: a list of ``(title, path)`` pairs of the figures written.
    """
