"""A plugin's configuration model as studies hold it: the record's own model with
``name: Literal[<plugin name>]`` added, and its :class:`~lbgap.plugin.Nested` fields typed as
lists of the installed plugins' configurations.

Both the registry (which validates nested entries still given as mappings when it builds) and
the spec layer (which builds the study model from these) use it; it depends only on the plugin
records, so neither imports the other for it. The models are cached on the records that shape
them, not on a registry object.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Protocol, Union

from pydantic import BaseModel, Field, create_model

from .plugin import PluginConfig, PluginRecord, nested_fields

__all__ = ["plugin_config_model", "config_union", "RecordSource"]


class RecordSource(Protocol):
    """What the models need of a registry: its records of a kind."""

    def of_kind(self, kind: str) -> Mapping[str, PluginRecord]: ...


def plugin_config_model(rec: PluginRecord, reg: Optional[RecordSource] = None) -> type[BaseModel]:
    """The record's configuration model with ``name: Literal[rec.name]`` added.

    A configuration with :class:`~lbgap.plugin.Nested` fields needs the
    registry: each such field becomes a list of the registry's plugin
    configurations of its kind (those without nested fields of their own).
    """
    nested = nested_fields(rec.config)
    if not nested:
        return _named_config(rec.kind, rec.name, rec.config)
    if reg is None:
        raise ValueError(f"{rec.kind} plugin {rec.name!r} holds other plugins: its model needs the registry")
    kinds = tuple(sorted(set(nested.values())))
    return _nested_config(rec, tuple((kind, _flat_records(reg, kind)) for kind in kinds))


def config_union(reg: RecordSource, kind: str, *, flat: bool = False) -> Any:
    """The discriminated union of the registry's ``kind`` configurations (``flat``: only
    those without nested plugins); None when there is none."""
    records = _flat_records(reg, kind) if flat else tuple(reg.of_kind(kind).values())
    return _union_of(tuple(plugin_config_model(r, reg) for r in records))


def _flat_records(reg: RecordSource, kind: str) -> tuple[PluginRecord, ...]:
    return tuple(r for r in reg.of_kind(kind).values() if not nested_fields(r.config))


def _union_of(models: tuple[type[BaseModel], ...]) -> Any:
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="name")]


@functools.cache
def _nested_config(
    rec: PluginRecord, members: tuple[tuple[str, tuple[PluginRecord, ...]], ...]
) -> type[BaseModel]:
    """``rec``'s model whose nested fields hold configurations of ``members`` (kind → records)."""
    by_kind = {kind: _union_of(tuple(_named_config(r.kind, r.name, r.config) for r in recs)) for kind, recs in members}
    fields: dict[str, Any] = {}
    for field_name, kind in nested_fields(rec.config).items():
        union = by_kind[kind]
        tp = list[union] if union is not None else Annotated[list[Any], Field(max_length=0)]
        fields[field_name] = (tp, copy.copy(rec.config.model_fields[field_name]))
    named = _named_config(rec.kind, rec.name, rec.config)
    return create_model(f"{rec.kind.capitalize()}_{rec.name}_", __base__=named, **fields)


@functools.cache
def _named_config(kind: str, name: str, config: type[PluginConfig]) -> type[BaseModel]:
    title = f"{kind}:{name}"
    model = create_model(
        f"{kind.capitalize()}_{name}",
        __base__=config,
        name=(Literal[name], Field(description=f"the {kind} plugin to use")),
    )
    # finite numbers unless the plugin's own configuration says otherwise
    model.model_config = {"allow_inf_nan": False, **config.model_config, "title": title}
    model.model_rebuild(force=True)
    return model
