"""Which plugin wrote which results variable, and no two writing the same one.

Every value in ``results.nc`` is written either by lbgap itself (the *core*
variables: ``train_loss``, ``test_accuracy``, ``weight_distance``, ``step``...,
see :data:`lbgap.results.attrs.CORE_VARIABLES`) or by one plugin. A plugin
variable named like a core variable, or like another plugin's, would silently
replace it; both are errors that name the two writers:

* before training, :func:`check_output_names` compares the names that the
  trial's metrics declare (:attr:`Metric.outputs`, or the keys of
  :attr:`Metric.attrs` when set at build time) with the core names and with
  each other;
* while training, a :class:`VariableSources` records the writer of every
  variable as it is first written and refuses a second writer;
* :func:`variable_attrs_of` gives each plugin variable its declared ``units``
  and ``long_name`` and a ``source`` attribute naming the plugin, for the
  per-trial file (:func:`lbgap.results.trialfile.trial_dataset`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Optional

from .plugin import PluginRecord
from .plugin_sources import missing_plugin_hint
from .registry import plugin_of
from .results.attrs import is_core_variable

__all__ = [
    "CORE",
    "OutputClashError",
    "VariableSources",
    "check_output_names",
    "declared_outputs",
    "hook_label",
    "missing_plugin_hint",
    "plugin_label",
    "variable_attrs_of",
]

#: the writer of the core variables
CORE = "lbgap"


class OutputClashError(ValueError):
    """Two writers (lbgap itself or plugins) of one results variable."""


def plugin_label(owner: Any) -> str:
    """How messages and the ``source`` attribute name a writer: ``metric 'name' (package version)``.

    ``owner`` is a label already, a :class:`~lbgap.plugin.PluginRecord`, or an
    object built by :meth:`lbgap.registry.Registry.build` (else its type names it).
    """
    if isinstance(owner, str):
        return owner
    rec = owner if isinstance(owner, PluginRecord) else plugin_of(owner)
    if rec is not None:
        package = " ".join(p for p in (rec.origin, rec.version) if p)
        return f"{rec.kind} {rec.name!r}" + (f" ({package})" if package else "")
    if isinstance(owner, ModuleType):
        return f"module {owner.__name__}"
    cls = type(owner)
    return f"{cls.__module__}.{cls.__qualname__}"


def hook_label(impl: Any, registry: Any = None) -> str:
    """How messages and ``source`` name the writer behind one hook implementation (a pluggy
    ``HookImpl``, from ``pm.hook.<name>.get_hookimpls()``): the plugin that built its object, or
    the entry point and package that registered its module."""
    rec = plugin_of(impl.plugin)
    if rec is not None:
        return plugin_label(rec)
    packages = getattr(registry, "packages", {}) if registry is not None else {}
    if impl.plugin_name in packages:
        package = " ".join(p for p in packages[impl.plugin_name] if p)
        return f"plugin {impl.plugin_name!r}" + (f" ({package})" if package else "")
    return plugin_label(impl.plugin)


def declared_outputs(metric: Any) -> Optional[frozenset[str]]:
    """The variable names a metric says it writes, or None when it does not say.

    Taken from ``metric.outputs`` (a collection of names; a method of that name
    does not count), else from the keys of ``metric.attrs`` if the metric filled
    them when it was built.
    """
    outputs = getattr(metric, "outputs", None)
    if outputs is not None and not callable(outputs) and not isinstance(outputs, str):
        try:
            return frozenset(str(o) for o in outputs)
        except TypeError:  # not a collection of names: the metric declares nothing
            pass
    attrs = getattr(metric, "attrs", None)
    if isinstance(attrs, Mapping) and attrs:
        return frozenset(attrs)
    return None


class VariableSources:
    """The writer of every results variable of one trial.

    ``claim(name, owner)`` records that ``owner`` writes ``name``; it raises
    :class:`OutputClashError` naming both writers if ``name`` is a core variable
    (and ``owner`` is not lbgap itself) or was claimed by another owner. The
    same owner may write a variable again (at every epoch). Owners are compared
    by identity, so two instances of one metric writing the same name clash too.
    """

    def __init__(self) -> None:
        self._owners: dict[str, tuple[int, str]] = {}

    def claim(self, name: str, owner: Any) -> None:
        key = hash(owner) if isinstance(owner, str) else id(owner)
        label = plugin_label(owner)
        if label != CORE and is_core_variable(name):
            raise OutputClashError(
                f"{label} writes {name!r}, which lbgap itself writes (a core results variable); "
                f"rename the plugin's variable"
            )
        prev = self._owners.get(name)
        if prev is not None and prev[0] != key:
            raise OutputClashError(
                f"{prev[1]} and {label} both write the results variable {name!r}; rename one of them"
            )
        self._owners[name] = (key, label)

    def claim_all(self, names: Iterable[str], owner: Any) -> None:
        for name in names:
            self.claim(name, owner)

    def source(self, name: str) -> Optional[str]:
        """The writer of ``name`` (None if nobody claimed it)."""
        found = self._owners.get(name)
        return found[1] if found else None

    def as_dict(self) -> dict[str, str]:
        """``{variable: writer}`` of every plugin variable (core ones left out)."""
        return {name: label for name, (_key, label) in self._owners.items() if label != CORE}


def check_output_names(metric_objects: Iterable[Any]) -> None:
    """Before training: the declared variables of ``metric_objects`` (built metrics, see
    :func:`declared_outputs`) clash neither with core variables nor with each other.

    Raises :class:`OutputClashError` naming both writers. Metrics that declare
    nothing are checked while training (:class:`VariableSources`).
    """
    sources = VariableSources()
    for metric in metric_objects:
        names = declared_outputs(metric)
        if names:
            sources.claim_all(sorted(names), metric)


def variable_attrs_of(
    metric_objects: Iterable[Any], sources: Optional[VariableSources | Mapping[str, str]] = None
) -> dict[str, dict[str, str]]:
    """``{variable: attrs}`` for the per-trial file: each metric's ``attrs`` (``units``,
    ``long_name``), and ``source`` (the plugin that wrote it) from ``sources``.

    Call it after training: metrics may fill ``attrs`` as they compute.
    """
    out: dict[str, dict[str, str]] = {}
    for metric in metric_objects:
        attrs = getattr(metric, "attrs", None)
        if not isinstance(attrs, Mapping):
            continue
        for name, meta in attrs.items():
            entry = out.setdefault(str(name), {})
            if isinstance(meta, Mapping):
                entry.update({str(k): str(v) for k, v in meta.items()})
            if sources is None:
                entry.setdefault("source", plugin_label(metric))
    if isinstance(sources, VariableSources):
        sources = sources.as_dict()
    for name, label in (sources or {}).items():
        out.setdefault(name, {})["source"] = label
    return out
