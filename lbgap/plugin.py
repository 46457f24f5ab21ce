"""Plugin records: what a plugin package hands to lbgap.

A plugin package implements one or more ``lbgap_register_*`` hooks (see
:mod:`lbgap.hookspecs`); each returns a list of records defined here. A record
names the plugin, gives its pydantic configuration model and a ``build``
factory. The host checks names for duplicates and builds the study-spec model
from the configuration models, so a plugin author never touches the spec.

Configuration models derive from :class:`PluginConfig` and do **not** declare
the ``name`` field: the registry adds ``name: Literal["<plugin name>"]`` so that
each plugin kind becomes a discriminated union keyed on ``name``.

A configuration field marked :class:`Nested` holds a list of other plugins'
configurations (a metric that runs other metrics, for instance): the study
validator checks its entries like a top-level section, and
the host builds them and hands the built objects
to the plugin's ``build``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

__all__ = [
    "PluginConfig",
    "Nested",
    "Deferred",
    "nested_fields",
    "PluginRecord",
    "ModelPlugin",
    "DatasetPlugin",
    "OptimizerPlugin",
    "SchedulePlugin",
    "RegimePlugin",
    "NoisePlugin",
    "MetricPlugin",
    "StoppingPlugin",
    "PluginKind",
    "KINDS",
    "KIND_BY_NAME",
    "PLUGIN_KINDS",
]


class PluginConfig(BaseModel):
    """Base class of every plugin configuration model.

    Unknown keys are errors and instances are immutable, so a resolved trial
    configuration cannot drift while a trial runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)



@dataclass(frozen=True)
class Nested:
    """Marks a configuration field as a list of configurations of plugins of ``kind``.

    ::

        class WrapperConfig(PluginConfig):
            metrics: Annotated[list[dict[str, Any]], Nested("metric")] = Field(min_length=1)

    On its own the field holds plain mappings. In a study (and in ``lbgap
    measure``) each entry is validated against the installed plugins of
    ``kind``, with the same syntax and error messages as a top-level section;
    entries cannot themselves hold nested plugins. The host builds the entries
    in order and passes the built objects to the plugin's ``build`` as a
    keyword argument named like the field (``build(cfg, metrics=[...])``).
    Only kinds whose ``build`` takes just the configuration can be nested.
    """

    kind: str

    def __post_init__(self) -> None:
        nestable = [k.name for k in KINDS if k.plain]
        if self.kind not in nestable:
            raise ValueError(f"plugins of kind {self.kind!r} cannot be nested; nestable: {', '.join(nestable)}")


def nested_fields(config: type[BaseModel]) -> dict[str, str]:
    """``{field name: plugin kind}`` of the fields of ``config`` marked :class:`Nested`."""
    out: dict[str, str] = {}
    for name, info in config.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, Nested):
                out[name] = meta.kind
    return out


class Deferred:
    """A ``build`` factory imported on its first call: ``Deferred(".networks", "build_net", __name__)``
    names the function ``build_net`` of the module ``.networks`` of the calling package (the
    arguments of :func:`importlib.import_module`, then the function's name).

    A plugin package whose records name their builds this way registers (``lbgap plugins list``,
    ``lbgap study validate``) with only its configuration models imported: torch and the rest load
    when a trial builds the plugin. ``__doc__`` is the function's (``lbgap plugins show``).
    """

    def __init__(self, module: str, name: str, package: str | None = None) -> None:
        self.module, self.name, self.package = module, name, package

    def resolve(self) -> Callable[..., Any]:
        """The function itself (imported now)."""
        return getattr(importlib.import_module(self.module, self.package), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattribute__(self, name: str) -> Any:
        if name == "__doc__":  # an instance's documentation is the function's; the class keeps its own
            return object.__getattribute__(self, "resolve")().__doc__
        return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        where = self.module if self.package is None or not self.module.startswith(".") else f"{self.package}{self.module}"
        return f"<build {where}.{self.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deferred) and (self.module, self.name, self.package) == (
            other.module, other.name, other.package
        )

    def __hash__(self) -> int:
        return hash((self.module, self.name, self.package))


@dataclass(frozen=True, kw_only=True)
class PluginRecord:
    """One plugin: its name, configuration model and factory.

    Attributes
    ----------
    name:
        The value of ``name:`` that selects this plugin in a study file.
    config:
        A :class:`PluginConfig` subclass describing the plugin's settings.
    build:
        Factory called with the validated configuration (and kind-specific
        keyword arguments documented on each record class).
    summary:
        One line shown by ``lbgap plugins list``; defaults to the first line of
        the configuration model's docstring.
    vectorizable:
        The plugin's objects work in a vectorized group, where several trials train
        as one stacked model (``vectorize: auto``). A model plugin declares that its
        networks are made of stackable layers (see :mod:`lbgap.engine.stacked`); a
        noise plugin, that it acts only through the trial's hooks, generators and
        :class:`~lbgap.api.NoiseSite` functions, never through the network's own
        forward pass. Other kinds act on each trial's own objects and need not
        declare anything. A trial that uses a model or noise plugin without the
        declaration trains on its own.
    """

    kind: ClassVar[str] = "plugin"
    name: str
    config: type[PluginConfig]
    build: Callable[..., Any]
    summary: str = ""
    vectorizable: bool = False
    origin: str = field(default="", compare=False)
    version: str = field(default="", compare=False)

    def describe(self) -> str:
        if self.summary:
            return self.summary
        doc = (self.config.__doc__ or "").strip()
        first_paragraph = doc.split("\n\n")[0]
        return " ".join(line.strip() for line in first_paragraph.splitlines())


@dataclass(frozen=True, kw_only=True)
class ModelPlugin(PluginRecord):
    """A network. ``build(config, *, info: DataInfo) -> torch.nn.Module``."""

    kind: ClassVar[str] = "model"


@dataclass(frozen=True, kw_only=True)
class DatasetPlugin(PluginRecord):
    """A data set held in memory.

    ``build(config, *, seed: int, device: torch.device) -> lbgap.api.InMemoryData``.
    """

    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True, kw_only=True)
class OptimizerPlugin(PluginRecord):
    """An optimizer. The configuration must have a float field ``lr``.

    ``build(config, params) -> torch.optim.Optimizer``.
    """

    kind: ClassVar[str] = "optimizer"


@dataclass(frozen=True, kw_only=True)
class SchedulePlugin(PluginRecord):
    """A learning-rate schedule. ``build(config) -> lbgap.api.Schedule``."""

    kind: ClassVar[str] = "schedule"


@dataclass(frozen=True, kw_only=True)
class RegimePlugin(PluginRecord):
    """A training-plan transform (LR scaling, regime adaptation, ...).

    ``build(config) -> callable(plan: lbgap.api.TrainingPlan) -> TrainingPlan``.
    """

    kind: ClassVar[str] = "regime"


@dataclass(frozen=True, kw_only=True)
class NoisePlugin(PluginRecord):
    """A noise injector: an object whose methods are lifecycle hook
    implementations (``@lbgap.hookimpl``), registered for one trial.

    ``build(config) -> object``.
    """

    kind: ClassVar[str] = "noise"


@dataclass(frozen=True, kw_only=True)
class MetricPlugin(PluginRecord):
    """A measurement. ``build(config) -> lbgap.api.Metric``."""

    kind: ClassVar[str] = "metric"


@dataclass(frozen=True, kw_only=True)
class StoppingPlugin(PluginRecord):
    """A stopping rule. ``build(config) -> lbgap.api.StoppingRule``."""

    kind: ClassVar[str] = "stopping"


@dataclass(frozen=True)
class PluginKind:
    """One kind of plugin, declared once: the registry, the study spec, the engine's parts and the
    docs are derived from :data:`KINDS`, so adding a kind is one entry there (plus its record
    class, its registration hook in :mod:`lbgap.hookspecs` and the engine's use of it)."""

    #: the kind's name (``PluginRecord.kind``)
    name: str
    #: the record type its registration hook returns
    record: type[PluginRecord]
    #: the registration hook (``lbgap_register_*``) that returns the kind's records
    hook: str
    #: the trial-config field (and study-file key) that selects plugins of this kind
    field: str
    #: whether that field holds a list of plugins (applied in order) or exactly one
    many: bool
    #: what the field is, for the spec's documentation and JSON Schema
    doc: str
    #: how the engine receives a built plugin (for the docs)
    engine: str
    #: the configuration used when a study leaves the field out (None: the field is required)
    default: Optional[dict[str, Any]] = None
    #: whether the built objects only need their configuration, so that another plugin can hold
    #: them (:class:`Nested`), and whether the registry marks them with their record (messages and
    #: the results' ``source`` name the plugin)
    plain: bool = True


KINDS: tuple[PluginKind, ...] = (
    PluginKind(
        "dataset", DatasetPlugin, "lbgap_register_datasets", "dataset", False, "The data set.",
        "build(config, seed=, device=) -> InMemoryData, once per trial", plain=False,
    ),
    PluginKind(
        "model", ModelPlugin, "lbgap_register_models", "model", False, "The network.",
        "build(config, info=) -> torch.nn.Module, moved to the trial's device", plain=False,
    ),
    PluginKind(
        "optimizer", OptimizerPlugin, "lbgap_register_optimizers", "optimizer", False,
        "The optimizer (its lr is the base learning rate).",
        "build(config, params) -> torch.optim.Optimizer over the model's parameters", plain=False,
    ),
    PluginKind(
        "schedule", SchedulePlugin, "lbgap_register_schedules", "schedule", False, "The learning-rate schedule.",
        "build(config) -> Schedule; its multiplier of the base lr is set before every step",
        default={"name": "constant"},
    ),
    PluginKind(
        "regime", RegimePlugin, "lbgap_register_regimes", "regime", True,
        "Training-plan transforms applied in order (LR scaling, regime adaptation).",
        "build(config) -> callable(TrainingPlan) -> TrainingPlan, applied in order before training",
    ),
    PluginKind(
        "noise", NoisePlugin, "lbgap_register_noise", "noise", True, "Noise injectors.",
        "build(config) -> object with lifecycle hooks, registered with pluggy for the trial",
    ),
    PluginKind(
        "metric", MetricPlugin, "lbgap_register_metrics", "metrics", True,
        "Measurements during or after training.",
        "build(config) -> Metric, computed at its epochs with a MeasureContext",
    ),
    PluginKind(
        "stopping", StoppingPlugin, "lbgap_register_stopping", "stopping", True,
        "Stopping rules, checked at the end of every epoch.",
        "build(config) -> StoppingRule, asked after every epoch",
    ),
)

#: kind name → its declaration
KIND_BY_NAME: dict[str, PluginKind] = {k.name: k for k in KINDS}

#: kind name → record type
PLUGIN_KINDS: dict[str, type[PluginRecord]] = {k.name: k.record for k in KINDS}
