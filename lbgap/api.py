"""The public API of lbgap for plugin authors.

Everything a plugin may use is importable from here, and only from here::

    from lbgap.api import hookimpl, MetricPlugin, PluginConfig, MeasureContext

The names below are stable: a change to one of them is announced and given a transition. Every
other module of lbgap (``lbgap.engine``, ``lbgap.spec``, ``lbgap.driver``, ``lbgap.registry``,
``lbgap.results``..., and the modules these names are defined in) is private and may change
without notice; the built-in plugins follow the same rule (a test checks that they import
nothing else). ``from lbgap import hookimpl`` remains valid: it is the same marker.

Groups:

* hook marker: :data:`hookimpl`;
* plugin records and configuration: :class:`PluginConfig`, :class:`Nested`, one record type per
  kind (:class:`ModelPlugin`, :class:`DatasetPlugin`, :class:`OptimizerPlugin`,
  :class:`SchedulePlugin`, :class:`RegimePlugin`, :class:`NoisePlugin`, :class:`MetricPlugin`,
  :class:`StoppingPlugin`);
* data: :class:`InMemoryData`, :class:`DataInfo`, :data:`BatchTransform`;
* contexts handed to plugins: :class:`TrialContext` (lifecycle hooks), :class:`MeasureContext`
  (metrics), :class:`Progress` (schedules, stopping rules), :class:`TrainingPlan` (regimes);
* protocols a built object satisfies: :class:`Schedule`, :class:`StoppingRule`, :class:`Metric`
  (:data:`MetricValue`);
* network helpers: :class:`NoiseSite`, :func:`noise_sites`, :func:`batchnorm_layers`,
  :func:`bn_eval_mode`, :data:`BN_MODES`;
* results helpers: :func:`variable_attrs`, :func:`is_core_variable`, :data:`CORE_VARIABLES`,
  :func:`final_values`, :func:`hold_final`, :func:`band_over_runs`;
* seeds: :func:`derive_seed`, :func:`seeded_generator` and the engine's stream numbers
  (:mod:`lbgap.seeds` documents them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import hookimpl
from .plugin import (
    DatasetPlugin,
    Deferred,
    MetricPlugin,
    ModelPlugin,
    Nested,
    NoisePlugin,
    OptimizerPlugin,
    PluginConfig,
    RegimePlugin,
    SchedulePlugin,
    StoppingPlugin,
)

if TYPE_CHECKING:
    from .data import BatchTransform, DataInfo, InMemoryData
    from .metric import MeasureContext, Metric, MetricValue
    from .nn import BN_MODES, NoiseSite, batchnorm_layers, bn_eval_mode, noise_sites
    from .plan import TrainingPlan
    from .results.attrs import CORE_VARIABLES, is_core_variable, variable_attrs
    from .results.final import band_over_runs, final_values, hold_final
    from .schedule import Progress, Schedule, StoppingRule
    from .seeds import (
        AUGMENT_STREAM,
        BATCH_ORDER_STREAM,
        EVAL_STREAM,
        LOCAL_STREAM,
        RANK_STRIDE,
        SEED_STRIDE,
        TRIAL_STREAM,
        derive_seed,
        seeded_generator,
    )
    from .trial import TrialContext

#: the module defining each of the other names. They are imported on first use (PEP 562), so
#: that a plugin package's registration and configuration models, which need only the names
#: above, load without torch, xarray or numpy: ``lbgap study validate`` and ``lbgap plugins
#: list`` start quickly. The ``TYPE_CHECKING`` imports above name the same modules for type
#: checkers.
_LAZY_MODULES: dict[str, tuple[str, ...]] = {
    ".data": ("BatchTransform", "DataInfo", "InMemoryData"),
    ".metric": ("MeasureContext", "Metric", "MetricValue"),
    ".nn": ("BN_MODES", "NoiseSite", "batchnorm_layers", "bn_eval_mode", "noise_sites"),
    ".plan": ("TrainingPlan",),
    ".results.attrs": ("CORE_VARIABLES", "is_core_variable", "variable_attrs"),
    ".results.final": ("band_over_runs", "final_values", "hold_final"),
    ".schedule": ("Progress", "Schedule", "StoppingRule"),
    ".seeds": (
        "AUGMENT_STREAM",
        "BATCH_ORDER_STREAM",
        "EVAL_STREAM",
        "LOCAL_STREAM",
        "RANK_STRIDE",
        "SEED_STRIDE",
        "TRIAL_STREAM",
        "derive_seed",
        "seeded_generator",
    ),
    ".trial": ("TrialContext",),
}
_MODULE_OF = {name: module for module, names in _LAZY_MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a lazily exported name from its module, once (later look-ups find it in globals)."""
    try:
        module = _MODULE_OF[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __package__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    # hook marker
    "hookimpl",
    # plugin records and configuration
    "PluginConfig",
    "Nested",
    "Deferred",
    "ModelPlugin",
    "DatasetPlugin",
    "OptimizerPlugin",
    "SchedulePlugin",
    "RegimePlugin",
    "NoisePlugin",
    "MetricPlugin",
    "StoppingPlugin",
    # data
    "InMemoryData",
    "DataInfo",
    "BatchTransform",
    # contexts
    "TrialContext",
    "MeasureContext",
    "Progress",
    "TrainingPlan",
    # protocols
    "Schedule",
    "StoppingRule",
    "Metric",
    "MetricValue",
    # networks
    "NoiseSite",
    "noise_sites",
    "batchnorm_layers",
    "bn_eval_mode",
    "BN_MODES",
    # results
    "variable_attrs",
    "is_core_variable",
    "CORE_VARIABLES",
    "final_values",
    "hold_final",
    "band_over_runs",
    # seeds
    "derive_seed",
    "seeded_generator",
    "SEED_STRIDE",
    "RANK_STRIDE",
    "TRIAL_STREAM",
    "BATCH_ORDER_STREAM",
    "AUGMENT_STREAM",
    "LOCAL_STREAM",
    "EVAL_STREAM",
]
