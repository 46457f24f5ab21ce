"""The plugin registry: entry points → pluggy → ``name → record`` per kind.

Every plugin, built-in or third-party, is a module or object named in the
``lbgap`` entry-point group. A plugin that fails to import (or whose
registration hook raises) is reported by name with the reason, and the others
keep working. Two records of one kind with the same name, or two packages
declaring the same entry-point name, are an error naming both packages: a
study must never depend on which package happened to load last.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import pluggy

from . import hookspecs
from .configmodel import plugin_config_model
from .plugin import KINDS, PLUGIN_KINDS, PluginRecord, nested_fields

__all__ = [
    "Registry",
    "PluginLoadError",
    "DuplicatePluginError",
    "get_registry",
    "plugin_of",
    "ENTRY_POINT_GROUP",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lbgap"

#: registration hook name per plugin kind (from :data:`lbgap.plugin.KINDS`)
REGISTER_HOOKS: dict[str, str] = {k.name: k.hook for k in KINDS}


class DuplicatePluginError(RuntimeError):
    """Two plugins of one kind share a name, or two packages share an entry-point name."""


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin that could not be loaded: which one, why, and the traceback (for ``--verbose``)."""

    name: str
    origin: str
    reason: str
    traceback: str = field(default="", compare=False)


#: attribute that :meth:`Registry.build` sets on the objects it builds (see :func:`plugin_of`)
_BUILT_BY = "_lbgap_plugin"


def plugin_of(obj: Any) -> Optional[PluginRecord]:
    """The record of the plugin that built ``obj`` (through :meth:`Registry.build`), or None."""
    rec = getattr(obj, _BUILT_BY, None)
    return rec if isinstance(rec, PluginRecord) else None


@dataclass
class Registry:
    """Plugins by kind and name, plus the pluggy manager for lifecycle hooks."""

    pm: pluggy.PluginManager
    records: dict[str, dict[str, PluginRecord]] = field(default_factory=dict)
    failures: list[PluginLoadError] = field(default_factory=list)
    #: pluggy plugin name (the entry point's name) → (package, version)
    packages: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: (kind, name) of a record → the pluggy plugin name that registered it
    registered_by: dict[tuple[str, str], str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> dict[str, PluginRecord]:
        return self.records.get(kind, {})

    def get(self, kind: str, name: str) -> PluginRecord:
        try:
            return self.records[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.of_kind(kind))) or "none"
            raise KeyError(f"unknown {kind} plugin {name!r}; installed: {known}") from None

    def build(self, kind: str, cfg: Any, *args: Any, **kwargs: Any) -> Any:
        """Build the plugin of ``kind`` that the validated configuration ``cfg`` names.

        ``args`` and ``kwargs`` are the kind's own (``info=`` for models...).
        Nested plugin configurations (fields marked :class:`~lbgap.plugin.Nested`)
        are built first, in order, and passed as a keyword argument named like
        the field; entries still given as mappings are validated here.
        """
        rec = self.get(kind, cfg.name)
        for field_name, sub_kind in nested_fields(rec.config).items():
            entries = getattr(cfg, field_name)
            kwargs[field_name] = [self.build(sub_kind, self._validated(sub_kind, e)) for e in entries]
        obj = rec.build(cfg, *args, **kwargs)
        if kind in _STAMPED:
            try:  # remember which plugin built it, for messages and the results' ``source``
                object.__setattr__(obj, _BUILT_BY, rec)
            except (AttributeError, TypeError):
                pass  # __slots__ or a built-in type: messages fall back to the object's type
        return obj

    def _validated(self, kind: str, entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        name = entry.get("name")
        return plugin_config_model(self.get(kind, str(name)), self).model_validate(entry)

    def all_records(self) -> Iterable[PluginRecord]:
        for kind in PLUGIN_KINDS:
            yield from self.of_kind(kind).values()

    def find(self, name: str) -> list[PluginRecord]:
        """Every record called ``name``, of any kind."""
        return [r for r in self.all_records() if r.name == name]

    def hooks_of(self, plugin: PluginRecord | str) -> list[str]:
        """Names of the hooks implemented by the module (entry point) that registered the record
        ``plugin``, or by every module of the package named ``plugin``."""
        if isinstance(plugin, PluginRecord):
            names = [self.registered_by.get((plugin.kind, plugin.name), "")]
        else:
            names = [n for n, (package, _version) in self.packages.items() if package == plugin]
        hooks: set[str] = set()
        for plugin_name in names:
            obj = self.pm.get_plugin(plugin_name) if plugin_name else None
            if obj is not None:
                hooks.update(caller.name for caller in self.pm.get_hookcallers(obj) or [])
        return sorted(hooks)

    def provenance(self, names: Optional[Iterable[str]] = None) -> dict[str, dict[str, str]]:
        """``{"kind:name": {"package": ..., "version": ...}}`` of the plugins called one of ``names``
        (all plugins if None): recorded in results so that a missing plugin can be named with
        the package that provided it."""
        wanted = None if names is None else set(names)
        return {
            f"{r.kind}:{r.name}": {"package": r.origin, "version": r.version}
            for r in self.all_records()
            if wanted is None or r.name in wanted
        }

    # ------------------------------------------------------------- building

    @classmethod
    def from_plugins(cls, plugins: Iterable[tuple[str, Any, str, str]]) -> Registry:
        """Build a registry from ``(name, plugin object, origin, version)``.

        Used by :func:`load_registry` for entry points, and by tests to build
        a registry from in-process plugin objects.
        """
        pm = make_plugin_manager()
        reg = cls(pm=pm)
        for name, plugin, origin, version in plugins:
            try:
                pm.register(plugin, name=name)
            except Exception as exc:  # pluggy validation: an unknown hook, a bad signature...
                reg.failures.append(
                    PluginLoadError(name, origin, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                )
                log.info("plugin %s (%s) could not be registered: %s", name, origin, exc)
                continue
            reg.packages[name] = (origin, version)
            reg._collect(name, plugin, origin, version)
        return reg

    def _collect(self, name: str, plugin: Any, origin: str, version: str) -> None:
        collected: list[PluginRecord] = []
        for kind, hook_name in REGISTER_HOOKS.items():
            impl = getattr(plugin, hook_name, None)
            if impl is None:
                continue
            try:
                records = list(impl() or [])
            except Exception as exc:
                self.failures.append(
                    PluginLoadError(
                        name, origin, f"{hook_name} raised {type(exc).__name__}: {exc}", traceback.format_exc()
                    )
                )
                log.info("plugin %s: %s raised %s", name, hook_name, exc)
                self._drop(name)
                return
            expected = PLUGIN_KINDS[kind]
            for rec in records:
                if not isinstance(rec, expected):
                    self.failures.append(
                        PluginLoadError(
                            name,
                            origin,
                            f"{hook_name} returned {type(rec).__name__}, not {expected.__name__}",
                        )
                    )
                    self._drop(name)
                    return
                collected.append(replace(rec, origin=origin, version=version))
        for rec in collected:
            bucket = self.records.setdefault(rec.kind, {})
            if rec.name in bucket:
                other = bucket[rec.name]
                raise DuplicatePluginError(
                    f"{rec.kind} plugin {rec.name!r} is provided by both {other.origin} and {rec.origin}"
                )
            bucket[rec.name] = rec
            self.registered_by[(rec.kind, rec.name)] = name

    def _drop(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.packages.pop(name, None)


#: kinds whose built objects are marked with their record (they write results or implement hooks)
_STAMPED = tuple(k.name for k in KINDS if k.plain)


def _canonical(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_point_plugins(group: str) -> tuple[list[tuple[str, Any, str, str]], list[PluginLoadError]]:
    loaded: list[tuple[str, Any, str, str]] = []
    failures: list[PluginLoadError] = []
    seen: dict[str, tuple[str, str]] = {}  # entry-point name → (origin, its value)
    for ep in sorted(md.entry_points(group=group), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        origin = dist.name if dist is not None else ep.value.split(":")[0]
        version = dist.version if dist is not None else ""
        if ep.name in seen:
            first_origin, first_value = seen[ep.name]
            if _canonical(first_origin) == _canonical(origin):
                continue  # the same distribution visible twice on sys.path (editable + site)
            raise DuplicatePluginError(
                f"entry point {ep.name!r} of group {group!r} is declared by both {first_origin} "
                f"({first_value}) and {origin} ({ep.value}); entry-point names must be unique "
                f"across packages: rename one of them"
            )
        seen[ep.name] = (origin, ep.value)
        try:
            obj = ep.load()
        except Exception as exc:
            failures.append(
                PluginLoadError(ep.name, origin, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )
            log.info("plugin %s (%s) failed to load: %s", ep.name, origin, exc)
            continue
        loaded.append((ep.name, obj, origin, version))
    return loaded, failures


_CACHE: Optional[Registry] = None


def load_registry(group: str = ENTRY_POINT_GROUP) -> Registry:
    """Load every plugin of the entry-point ``group`` into a new registry."""
    plugins, failures = _entry_point_plugins(group)
    reg = Registry.from_plugins(plugins)
    reg.failures[:0] = failures
    return reg


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _CACHE
    if _CACHE is None or refresh:
        _CACHE = load_registry()
    return _CACHE
