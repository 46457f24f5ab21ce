"""Deep merge of variant overrides and dotted-path access to configs."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["deep_merge", "set_path", "get_path", "split_path"]


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` onto ``base`` (neither is modified).

    Mappings merge key by key. A plugin section (a mapping with ``name``) whose
    override names a different plugin is replaced whole, since the old
    plugin's settings would not apply to the new one. Lists and scalars are
    replaced.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        if "name" in override and "name" in base and override["name"] != base["name"]:
            return copy.deepcopy(override)
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def split_path(path: str) -> list[str | int]:
    """``"regime.0.reference_batch"`` → ``["regime", 0, "reference_batch"]``."""
    out: list[str | int] = []
    for part in path.split("."):
        if not part:
            raise ValueError(f"empty segment in path {path!r}")
        out.append(int(part) if part.isdigit() else part)
    return out


def set_path(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``config`` with the value at dotted ``path`` replaced."""
    out = copy.deepcopy(config)
    parts = split_path(path)
    node: Any = out
    for part in parts[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise KeyError(f"{path}: no {part!r} here")
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise KeyError(f"{path}: index {last!r} out of range")
        node[last] = copy.deepcopy(value)
    elif isinstance(node, dict):
        node[last] = copy.deepcopy(value)
    else:
        raise KeyError(f"{path}: cannot set inside a {type(node).__name__}")
    return out


def get_path(config: Any, path: str) -> Any:
    node = config
    for part in split_path(path):
        node = node[part] if not isinstance(node, dict) else node[part]
    return node
