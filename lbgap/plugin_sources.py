"""Which package provided each plugin a study names: recorded when a study runs (the run
folder's ``study.json``, results.nc's ``lbgap_plugin_sources_json``), so that a later load on a
machine without one of them names the package to install."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

__all__ = ["missing_plugin_hint", "plugin_names", "recorded_plugin_sources"]


def missing_plugin_hint(kind: str, name: str, recorded: Mapping[str, Any] | str | None) -> Optional[str]:
    """For an unknown plugin: which package provided it when results were made.

    ``recorded`` is the ``lbgap_plugin_sources_json`` attribute of ``results.nc``
    (:func:`lbgap.results.combine.study_attrs`; the JSON text or its parsed
    mapping). Returns e.g. ``"metric 'layer_norms' was provided by showpkg 1.5:
    install that package"``, or None when nothing was recorded.
    """
    if isinstance(recorded, str):
        try:
            recorded = json.loads(recorded)
        except ValueError:
            return None
    entry = (recorded or {}).get(f"{kind}:{name}")
    if not isinstance(entry, Mapping) or not entry.get("package"):
        return None
    package = " ".join(str(p) for p in (entry.get("package"), entry.get("version")) if p)
    return f"{kind} {name!r} was provided by {package}: install that package"


def plugin_names(doc: Any) -> set[str]:
    """Every ``name:`` value in a spec document (the plugins it selects)."""
    if isinstance(doc, Mapping):
        found = {doc["name"]} if isinstance(doc.get("name"), str) else set()
        return found.union(*(plugin_names(v) for v in doc.values()))
    if isinstance(doc, list):
        return set().union(*(plugin_names(v) for v in doc))
    return set()


def recorded_plugin_sources(spec_file: str) -> dict[str, Any]:
    """The plugin sources (``kind:name`` → package and version) that the run folder of
    ``spec_file`` recorded in its ``study.json`` when the study started; empty elsewhere."""
    meta = Path(spec_file).parent / "study.json"
    try:
        recorded = json.loads(meta.read_text()).get("plugin_sources", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}
