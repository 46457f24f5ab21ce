"""YAML 1.2 loading with source positions.

Study files are read with ruamel.yaml's round-trip loader in YAML 1.2 mode
(``lr: 1e-3`` is a float, ``no`` is a string) and converted to plain Python
containers. Positions are kept in a map from the key path (a tuple of keys and
list indices) to the 1-based line and column where that node starts, so that
validation errors can point at the file.

A study file is small; hostile or broken input is refused early with a
:class:`YAMLSyntaxError`: a file over :data:`MAX_FILE_BYTES`, more than
:data:`MAX_ALIASES` aliases, a document whose aliases expand to more than
:data:`MAX_NODES` values (the "billion laughs"), nesting deeper than
:data:`MAX_DEPTH`, mapping keys that are not strings, and values of YAML
types other than null, booleans, numbers, strings, lists and mappings. The
limits are checked on the parser's event stream, before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    ScalarEvent,
)

__all__ = [
    "LoadedYAML",
    "load_yaml",
    "YAMLSyntaxError",
    "MAX_FILE_BYTES",
    "MAX_ALIASES",
    "MAX_NODES",
    "MAX_DEPTH",
]

#: largest study file read (bytes)
MAX_FILE_BYTES = 1024 * 1024
#: most aliases (``*name``) in one file
MAX_ALIASES = 100
#: most values (scalars, lists and mappings) a document may hold once its aliases are expanded
MAX_NODES = 100_000
#: deepest nesting of lists and mappings
MAX_DEPTH = 32

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
    #: the file each node came from, where it is not ``file`` (a study that extends another)
    files: dict[Path_, str] = field(default_factory=dict)

    def _deepest(self, path: Path_) -> Path_:
        path = tuple(path)
        while path and path not in self.positions:
            path = path[:-1]
        return path

    def line_of(self, path: Path_) -> int:
        """Line of the deepest existing prefix of ``path`` (1 if none)."""
        return self.positions.get(self._deepest(path), (1, 1))[0]

    def file_of(self, path: Path_) -> str:
        """File of the deepest existing prefix of ``path``."""
        return self.files.get(self._deepest(path), self.file)

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
            if not isinstance(key, str):
                hint = f" (quote the key: '{key}')" if not isinstance(key, (tuple, list, dict)) else ""
                raise _ValueError(path, f"mapping keys must be strings, not {_yaml_type(key)}{hint}")
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
    raise _ValueError(
        path, f"{_yaml_type(node)} values are not allowed in a study file (quote it to make a string)"
    )


class _ValueError(Exception):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return {"date": "date", "datetime": "timestamp", "bytes": "binary"}.get(type(value).__name__, "such")


def _show_path(path: Path_) -> str:
    shown = ".".join(str(p) for p in path[:12])
    return shown + (f"…[+{len(path) - 12}]" if len(path) > 12 else "")


def _check_events(yaml: YAML, text: str, file: str) -> None:
    """Refuse aliases, expansion and nesting beyond the limits, from the event
    stream alone (nothing is built, so a hostile file costs one parse)."""
    # a frame per open collection: [is_mapping, items seen, key of the next value, path,
    #                               anchor, expanded count at its start]
    stack: list[list[Any]] = []
    sizes: dict[str, int] = {}  # anchor → values its node expands to
    expanded = 0
    aliases = 0

    def node_path() -> Path_:
        if not stack:
            return ()
        frame = stack[-1]
        if frame[0]:
            return frame[3] + ((frame[2],) if frame[1] % 2 else ())
        return frame[3] + (frame[1],)

    def fail(event: Any, path: Path_, message: str) -> None:
        raise YAMLSyntaxError(file, event.start_mark.line + 1, message, path=_show_path(path))

    for event in yaml.parse(text):
        if isinstance(event, (ScalarEvent, AliasEvent, CollectionStartEvent)):
            path = node_path()
            if isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    fail(event, path, f"more than {MAX_ALIASES} aliases (*name) in one study file")
                if any(frame[4] == event.anchor for frame in stack):
                    fail(event, path, f"alias *{event.anchor} refers to a node that holds it (a cycle)")
                expanded += sizes.get(event.anchor, 1)
            else:
                expanded += 1
            if expanded > MAX_NODES:
                fail(
                    event,
                    path,
                    f"the document holds more than {MAX_NODES} values (counting what each alias expands to)",
                )
            if stack:
                frame = stack[-1]
                if frame[0] and frame[1] % 2 == 0:  # a mapping key
                    frame[2] = event.value if isinstance(event, ScalarEvent) else "?"
                frame[1] += 1
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    fail(event, path, f"lists and mappings nested more than {MAX_DEPTH} deep")
                stack.append(
                    [isinstance(event, MappingStartEvent), 0, None, path, event.anchor, expanded - 1]
                )
            elif isinstance(event, ScalarEvent) and event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, CollectionEndEvent) and stack:
            frame = stack.pop()
            if frame[4] is not None:
                sizes[frame[4]] = expanded - frame[5]


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
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YAMLSyntaxError(file, 1, too_large_message(len(text.encode("utf-8", "surrogatepass"))))
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    try:
        _check_events(yaml, text, file)
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise YAMLSyntaxError(file, line, f"YAML syntax error: {problem}") from None
    except YAMLError as exc:
        raise YAMLSyntaxError(file, 1, f"YAML error: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a scalar ruamel cannot build
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
    except _ValueError as exc:
        line = LoadedYAML(None, file, positions).line_of(exc.path)
        raise YAMLSyntaxError(file, line, exc.message, path=_show_path(exc.path)) from None
    return LoadedYAML(data=data, file=file, positions=positions)


def too_large_message(size: int | None) -> str:
    """What is said of a file over :data:`MAX_FILE_BYTES` (``size``: its size, if known)."""
    what = f"{size} bytes" if size is not None else f"more than {MAX_FILE_BYTES} bytes"
    return f"the file is {what}; a study file may hold at most {MAX_FILE_BYTES} bytes ({MAX_FILE_BYTES // 1024} KiB)"
