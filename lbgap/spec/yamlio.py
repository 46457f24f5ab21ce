"""YAML 1.2 loading with source positions.

Study files are read with ruamel.yaml's round-trip loader in YAML 1.2 mode
(``lr: 1e-3`` is a float, ``no`` is a string) and converted to plain Python
containers. Positions are kept in a map from the key path (a tuple of keys and
list indices) to the 1-based line and column where that node starts, so that
validation errors can point at the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = ["LoadedYAML", "load_yaml", "YAMLSyntaxError"]

Path_ = tuple[Any, ...]


class YAMLSyntaxError(Exception):
    """A file that is not valid YAML (or not a mapping at the top)."""

    def __init__(self, file: str, line: int, message: str, path: str = "") -> None:
        super().__init__(f"{file}:{line}: {path + ': ' if path else ''}{message}")
        self.file = file
        self.line = line
        self.message = message
        self.path = path


@dataclass
class LoadedYAML:
    """Plain data plus where each node came from."""

    data: Any
    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Line of the deepest existing prefix of ``path`` (1 if none)."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path][0]
            path = path[:-1]
        return self.positions.get((), (1, 1))[0]

    def has(self, path: Path_) -> bool:
        return tuple(path) in self.positions


class _TagError(Exception):
    def __init__(self, path: Path_, tag: str) -> None:
        super().__init__(tag)
        self.path = path
        self.tag = tag


def _explicit_tag(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None) if tag is not None else None
    return value if value else None


def _plain(node: Any, path: Path_, positions: dict[Path_, tuple[int, int]]) -> Any:
    tag = _explicit_tag(node)
    if tag is not None or isinstance(node, TaggedScalar):
        raise _TagError(path, tag or "?")
    if isinstance(node, CommentedMap):
        out = {}
        for key in node:
            try:
                line, col = node.lc.key(key)
            except Exception:  # pragma: no cover - merged keys have no position
                line, col = node.lc.line, node.lc.col
            positions[path + (key,)] = (line + 1, col + 1)
            out[key] = _plain(node[key], path + (key,), positions)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, item in enumerate(node):
            try:
                line, col = node.lc.item(i)
            except Exception:  # pragma: no cover
                line, col = node.lc.line, node.lc.col
            positions[path + (i,)] = (line + 1, col + 1)
            out_list.append(_plain(item, path + (i,), positions))
        return out_list
    # scalars: ruamel's ScalarFloat etc. subclass the builtins; normalise
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def load_yaml(source: str | Path, text: str | None = None) -> LoadedYAML:
    """Load a YAML 1.2 document (safe: no Python tags) keeping positions.

    Raises
    ------
    YAMLSyntaxError
        On a syntax error, a duplicate key, or a top level that is not a mapping.
    FileNotFoundError
        If ``source`` does not exist and ``text`` is not given.
    """
    file = str(source)
    if text is None:
        text = Path(source).read_text(encoding="utf-8")
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise YAMLSyntaxError(file, line, f"YAML syntax error: {problem}") from None
    except YAMLError as exc:
        raise YAMLSyntaxError(file, 1, f"YAML error: {exc}") from None
    if doc is None:
        raise YAMLSyntaxError(file, 1, "the file is empty: a study is a YAML mapping")
    if not isinstance(doc, CommentedMap):
        raise YAMLSyntaxError(file, 1, "the top level of a study must be a mapping (key: value)")
    positions: dict[Path_, tuple[int, int]] = {(): (1, 1)}
    try:
        data = _plain(doc, (), positions)
    except _TagError as exc:
        line = LoadedYAML(None, file, positions).line_of(exc.path)
        where = ".".join(str(p) for p in exc.path) or "document"
        raise YAMLSyntaxError(
            file, line, f"YAML tags ({exc.tag}) are not allowed in a study file", path=where
        ) from None
    return LoadedYAML(data=data, file=file, positions=positions)
