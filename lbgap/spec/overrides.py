"""Command-line overrides of a study: ``key=value`` with a dotted path.

An override names a setting by its dotted path in the study file and gives its value as YAML
1.2 (``base.epochs=2``, ``variants.lb.batch_size=2048``, ``grid.optimizer.lr=[0.1, 0.01]``,
``base.optimizer={name: adam, lr: 1.0e-3}``). It is applied to the parsed document before
validation, so a setting the overrides leave alone keeps its file and line in error messages,
and an error in an overridden value names the override::

    study.yaml:12: override 2 (base.epochs=0): base.epochs: Input should be greater than 0 (got 0)

A path is read against the document: a mapping key that itself holds dots (a grid or search
path such as ``optimizer.lr``, a variant named ``lr.1``) is matched whole where the file has it;
below ``grid`` and ``search.params`` the rest of the path is one key.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SpecError, SpecIssue
from .yamlio import LoadedYAML, YAMLSyntaxError, load_yaml

__all__ = ["Override", "parse_override", "apply_overrides", "label_issues"]

#: mappings whose keys are dotted paths themselves: the rest of an override's path is one key
_PATH_KEYED = (("grid",), ("search", "params"))


@dataclass(frozen=True)
class Override:
    """One ``key=value`` override (``index`` counts from 1, as the message says)."""

    index: int
    text: str
    key: str
    value: Any

    @property
    def label(self) -> str:
        return f"override {self.index} ({self.text})"


def parse_override(index: int, text: str) -> Override:
    """Parse one ``key=value`` text (``index`` counts from 1). Raises ``_PathError``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise _PathError((), "an override is KEY=VALUE with a dotted KEY (base.epochs=2)")
    if any(not part.strip() for part in key.split(".")):
        raise _PathError((), f"{key!r} has an empty segment")
    label = f"override {index} ({text})"
    try:
        value = load_yaml(label, "value: " + raw if raw.strip() else "value: null").data["value"]
    except YAMLSyntaxError as exc:
        raise _PathError((), f"the value is not YAML: {exc.message}") from None
    return Override(index, text, key, value)


def apply_overrides(doc: LoadedYAML, texts: Sequence[str]) -> tuple[LoadedYAML, dict[str, Override]]:
    """``doc`` with the overrides ``texts`` (``key=value``) applied in order (``doc`` is not
    changed), and the dotted path of each setting they wrote (as error messages show it) → its
    override. Every malformed override is reported, in one :class:`SpecError`.

    A replaced setting keeps its line; a new one, and everything inside an override's value,
    is placed at the line of the deepest setting above it that the file has."""
    data = copy.deepcopy(doc.data)
    positions = dict(doc.positions)
    files = dict(doc.files)
    written: dict[str, Override] = {}
    issues: list[SpecIssue] = []
    for index, text in enumerate(texts, start=1):
        try:
            ov = parse_override(index, text)
            path = _place(data, ov)
        except _PathError as exc:
            issues.append(SpecIssue(doc.file_of(exc.at), doc.line_of(exc.at), f"override {index} ({text})", exc.message))
            continue
        prefix = len(path)
        stale = [p for p in positions if len(p) > prefix and p[:prefix] == path]
        for p in stale:
            positions.pop(p, None)
            files.pop(p, None)
        at = path
        while at not in positions:
            at = at[:-1]
        if path not in positions:
            positions[path] = positions[at]
            if at in files:
                files[path] = files[at]
        for sub in _subpaths(_get(data, path), path):
            positions[sub] = positions[path]
            if path in files:
                files[sub] = files[path]
        written[".".join(str(p) for p in path)] = ov
    if issues:
        raise SpecError(issues)
    return LoadedYAML(data=data, file=doc.file, positions=positions, files=files), written


def label_issues(issues: Sequence[SpecIssue], written: dict[str, Override]) -> list[SpecIssue]:
    """Name the override that wrote the setting of each issue (the latest, innermost one)."""
    out = []
    for issue in issues:
        best = None
        for path, ov in written.items():
            if issue.path == path or issue.path.startswith(path + "."):
                if best is None or len(path) > len(best[0]) or (len(path) == len(best[0]) and ov.index > best[1].index):
                    best = (path, ov)
        if best is None:
            out.append(issue)
        else:
            shown = f"{issue.path}: {issue.message}" if issue.path else issue.message
            out.append(SpecIssue(issue.file, issue.line, best[1].label, shown))
    return out


# ----------------------------------------------------------------- helpers


class _PathError(Exception):
    def __init__(self, at: tuple, message: str) -> None:
        super().__init__(message)
        self.at = at
        self.message = message


def _place(data: dict[str, Any], ov: Override) -> tuple:
    """Write ``ov.value`` into ``data``; return the path (keys and indices) it wrote."""
    parts = ov.key.split(".")
    if parts[0] == "extends":
        raise _PathError((), "extends cannot be overridden (overrides apply to the resolved study)")
    node: Any = data
    path: tuple = ()
    i = 0
    while True:
        if isinstance(node, dict):
            if path in _PATH_KEYED:
                key, step = ".".join(parts[i:]), len(parts) - i
            else:
                key, step = parts[i], 1
                for k in range(len(parts) - i, 1, -1):  # a key holding dots, where the file has one
                    if ".".join(parts[i : i + k]) in node:
                        key, step = ".".join(parts[i : i + k]), k
                        break
            i += step
            if i >= len(parts):
                node[key] = copy.deepcopy(ov.value)
                return path + (key,)
            if key not in node or node[key] is None:
                node[key] = {}
            node, path = node[key], path + (key,)
        elif isinstance(node, list):
            part = parts[i]
            if not part.isdigit() or int(part) >= len(node):
                raise _PathError(
                    path, f"{'.'.join(map(str, path))} is a list of {len(node)}: {part!r} is not one of its indices"
                )
            i += 1
            if i >= len(parts):
                node[int(part)] = copy.deepcopy(ov.value)
                return path + (int(part),)
            node, path = node[int(part)], path + (int(part),)
        else:
            shown = ".".join(map(str, path))
            raise _PathError(path, f"{shown} is a single value ({node!r}), not a mapping or list")


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _subpaths(node: Any, path: tuple):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield path + (key,)
        yield from _subpaths(value, path + (key,))
