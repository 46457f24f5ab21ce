"""Load a study file into a validated :class:`Study`.

Every problem is collected (not just the first) and raised as one
:class:`~lbgap.spec.errors.SpecError` whose lines read
``file:line: field.path: message``.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import itertools
import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML

from ..plugin import nested_fields
from ..plugin_sources import missing_plugin_hint, recorded_plugin_sources
from ..registry import Registry, get_registry
from .errors import SpecError, SpecIssue
from .merge import deep_merge, set_path, split_path
from .model import (
    _KIND_FIELDS,
    SAFE_NAME,
    EvalConfig,
    SearchConfig,
    StudyHeader,
    TrialConfigBase,
    WarmStart,
    is_safe_name,
    trial_config_model,
)
from .overrides import apply_overrides, label_issues
from .yamlio import MAX_FILE_BYTES, LoadedYAML, YAMLSyntaxError, load_yaml, too_large_message

__all__ = ["Study", "Cell", "load_study", "load_study_text", "RESERVED_DIMS"]

RESERVED_DIMS = ("variant", "seed", "epoch", "trial")

#: a segment of a grid or search path: a setting's name or a list index
_PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}|[0-9]{1,6}")
#: integers in a study file fit in 64 bits
_INT64 = 2**63
#: longest chain of study files extending one another
MAX_EXTENDS = 8


@dataclass(frozen=True)
class Cell:
    """One trial of a grid study: a variant, a grid point and a seed."""

    variant: str
    point: tuple[tuple[str, Any], ...]  # (dim name, value) in grid order
    seed: int
    config: Any  # the resolved TrialConfig

    @property
    def key(self) -> str:
        return cell_key(self.variant, self.point, self.seed)

    @property
    def group(self) -> str:
        """The key without the seed: cells that differ only by seed."""
        return cell_key(self.variant, self.point, None)


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        s = repr(v)
    elif isinstance(v, (int, str, bool)):
        s = str(v)
    else:
        s = hashlib.sha1(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9.+-]", "_", s)


def cell_key(variant: str, point: Iterable[tuple[str, Any]], seed: Optional[int]) -> str:
    parts = [variant] + [f"{dim}={_fmt_value(v)}" for dim, v in point]
    if seed is not None:
        parts.append(f"seed={seed}")
    return ",".join(parts)


@dataclass
class Study:
    """A validated study: header, resolved variants, grid and seeds."""

    file: str
    header: StudyHeader
    trial_model: type[TrialConfigBase]
    variants: dict[str, Any]  # name → resolved TrialConfig (without grid values)
    variant_dicts: dict[str, dict[str, Any]]
    grid_paths: dict[str, str]  # dim name → dotted path
    grid_values: dict[str, list[Any]]  # dim name → values
    registry: Registry
    text: str = ""
    """The study file's text; for a study that extends another, the resolved study as YAML (a
    standalone study file that loads to the same study)."""
    sources: tuple[str, ...] = ()
    """The study file, then the files it extends, nearest first."""
    overrides: tuple[str, ...] = ()
    """The command-line overrides (``key=value``) applied to the file, in order."""

    @property
    def name(self) -> str:
        return self.header.study

    @property
    def seeds(self) -> list[int]:
        return list(self.header.seeds)

    @property
    def search(self) -> Optional[SearchConfig]:
        return self.header.search

    def to_json(self) -> str:
        """The resolved study as canonical JSON (stored in results)."""
        payload = {
            "header": self.header.model_dump(mode="json"),
            "variants": {k: v.model_dump(mode="json") for k, v in self.variants.items()},
            "grid": {d: {"path": self.grid_paths[d], "values": self.grid_values[d]} for d in self.grid_paths},
        }
        return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def resolve(self, variant: str, overrides: dict[str, Any]) -> Any:
        """The trial config of ``variant`` with dotted-path ``overrides``."""
        cfg = self.variant_dicts[variant]
        for path, value in overrides.items():
            cfg = set_path(cfg, path, value)
        return self.trial_model.model_validate(cfg)

    def cells(self) -> list[Cell]:
        """Every (variant, grid point, seed) trial, in a stable order."""
        dims = list(self.grid_paths)
        out = []
        for variant in self.variants:
            for values in itertools.product(*(self.grid_values[d] for d in dims)):
                point = tuple(zip(dims, values, strict=False))
                cfg = self.resolve(variant, {self.grid_paths[d]: v for d, v in point})
                for seed in self.seeds:
                    out.append(Cell(variant, point, seed, cfg))
        return out


# ------------------------------------------------------------------ loading


def load_study(
    path: str | Path, registry: Optional[Registry] = None, overrides: Sequence[str] = ()
) -> Study:
    """Read and validate a study file, with command-line ``overrides`` (``key=value``, see
    :mod:`lbgap.spec.overrides`). Raises :class:`SpecError`."""
    return load_study_text(read_study_file(path), str(path), registry, overrides)


def read_study_file(path: str | Path) -> str:
    """The text of a study file; its size is checked before it is read
    (:data:`~lbgap.spec.yamlio.MAX_FILE_BYTES`). Raises :class:`SpecError`."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError([SpecIssue(str(path), 1, "", too_large_message(size))])
        with p.open("rb") as fh:  # at most one byte more than allowed: a pipe or device may not say its size
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise SpecError([SpecIssue(str(path), 1, "", too_large_message(None))])
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(str(path), 1, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(str(path), 1, "", f"cannot read the file: {exc}")]) from None


def load_study_text(
    text: str, file: str = "<string>", registry: Optional[Registry] = None, overrides: Sequence[str] = ()
) -> Study:
    """Validate the text of a study file (``file`` names it in errors; a relative ``extends``
    is taken from its folder, or from the working folder for ``<string>``). With
    ``overrides``, :attr:`Study.text` is the resolved study with them applied."""
    reg = registry or get_registry()
    doc = _load_yaml(file, text)
    sources = [file]
    if isinstance(doc.data, dict) and "extends" in doc.data:
        doc = _resolve_extends(doc, [_identity(file)], sources)
        text = resolved_text(doc.data, sources)
    if not overrides:
        return _Validator(doc, reg).run(text, tuple(sources))
    doc, written = apply_overrides(doc, overrides)
    text = resolved_text(doc.data, sources, overrides)
    try:
        study = _Validator(doc, reg).run(text, tuple(sources))
    except SpecError as exc:
        raise SpecError(label_issues(exc.issues, written)) from None
    study.overrides = tuple(overrides)
    return study


def _load_yaml(file: str, text: str) -> LoadedYAML:
    try:
        return load_yaml(file, text)
    except YAMLSyntaxError as exc:
        raise SpecError([SpecIssue(exc.file, exc.line, exc.path, exc.message)]) from None


def _identity(file: str) -> str:
    if file == "<string>":
        return file
    try:
        return str(Path(file).resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, say
        return os.path.abspath(file)


def _resolve_extends(doc: LoadedYAML, chain: list[str], sources: list[str]) -> LoadedYAML:
    """``doc`` merged onto the study it extends (itself resolved first), with the same rules as a
    variant onto ``base``; each node keeps the file and line it came from."""
    ref = doc.data["extends"]
    line = doc.line_of(("extends",))
    here = doc.file_of(())

    def fail(message: str) -> SpecError:
        return SpecError([SpecIssue(here, line, "extends", message)])

    if not isinstance(ref, str) or not ref.strip() or "\x00" in ref:
        raise fail("must be the path of another study file, relative to this one")
    if Path(ref).is_absolute():
        raise fail(f"{ref!r} must be a path relative to this file's folder")
    folder = os.path.dirname(here) if here != "<string>" else ""
    parent_file = os.path.normpath(os.path.join(folder, ref))
    identity = _identity(parent_file)
    if identity in chain:
        cycle = " → ".join([*sources, parent_file])
        raise fail(f"a cycle of extends: {cycle}")
    if len(chain) > MAX_EXTENDS:
        raise fail(f"more than {MAX_EXTENDS} files extend one another")
    try:
        is_file = Path(parent_file).is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise fail(f"no such study file: {parent_file}")
    parent = _load_yaml(parent_file, read_study_file(parent_file))
    sources.append(parent_file)
    if "extends" in parent.data:
        parent = _resolve_extends(parent, [*chain, identity], sources)
    child = {k: v for k, v in doc.data.items() if k != "extends"}
    merged = deep_merge(parent.data, child)
    out = LoadedYAML(data=merged, file=doc.file, positions={(): (1, 1)})

    def place(node: Any, path: tuple) -> None:
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            sub = path + (key,)
            source = doc if doc.has(sub) else parent  # present in the child: the child's node
            if source.has(sub):
                out.positions[sub] = source.positions[sub]
                out.files[sub] = source.file_of(sub)
            if isinstance(value, (dict, list)):
                place(value, sub)

    place(merged, ())
    return out


def resolved_text(data: dict[str, Any], sources: list[str], overrides: Sequence[str] = ()) -> str:
    """A study with its ``extends`` and ``overrides`` resolved, as a standalone YAML 1.2 study file."""
    yaml = YAML(typ="rt")
    yaml.default_flow_style = None
    yaml.width = 110
    buf = io.StringIO()
    yaml.dump(data, buf)
    head = f"# resolved from {sources[0]}"
    if len(sources) > 1:
        head += ", which extends " + " → ".join(sources[1:])
    if overrides:
        head += "\n# with the overrides " + " ".join(shlex.quote(o) for o in overrides).replace("\n", " ")
    return head + "\n" + buf.getvalue()


class _Validator:
    def __init__(self, doc: LoadedYAML, reg: Registry) -> None:
        self.doc = doc
        self.reg = reg
        #: plugin sources recorded beside the file (a run folder's study.json), for unknown plugins
        self.recorded = recorded_plugin_sources(doc.file) if doc.file != "<string>" else {}
        self.issues: list[SpecIssue] = []
        self.model = trial_config_model(reg)
        self.out_of_range: set[tuple] = set()

    # ---------------------------------------------------------- reporting

    def add(self, yaml_path: tuple, message: str, *, display: Optional[tuple] = None) -> None:
        shown = display if display is not None else yaml_path
        if tuple(shown) in self.out_of_range and "out of range" not in message:
            return  # said once already
        self.issues.append(
            SpecIssue(
                self.doc.file_of(yaml_path),
                self.doc.line_of(yaml_path),
                ".".join(str(p) for p in shown),
                message,
            )
        )

    def add_pydantic(
        self,
        exc: ValidationError,
        prefix: tuple,
        data: Any,
        *,
        fallback: tuple = (),
        skip: set[tuple] = frozenset(),
        own_only: bool = False,
    ) -> None:
        """Map pydantic errors under ``prefix`` (a yaml path) onto the file.

        ``fallback``: another yaml prefix tried when the path is absent under
        ``prefix`` (a variant's error whose key comes from ``base``).
        ``skip``: sections (paths relative to ``prefix``) already reported.
        ``own_only``: report only errors inside what the file writes under ``prefix``.
        """
        for err in exc.errors(include_url=False):
            loc = clean_loc(err["loc"], data)
            if any(loc[: len(s)] == s for s in skip):
                continue
            msg = _message(err, loc, data, self)
            path = prefix + loc
            if err["type"] == "missing":
                where = prefix + loc[:-1]
            else:
                where = path
            if own_only and not (self.doc.has(where) and len(where) > len(prefix)):
                continue
            if (
                fallback
                and not self.doc.has(where)
                and self.doc.has(fallback + loc[: len(where) - len(prefix)])
            ):
                where = fallback + loc[: len(where) - len(prefix)]
                path = fallback + loc
            self.add(where, msg, display=path)

    def add_coerced(self, data: Any, validated: Any, prefix: tuple, *, fallback: tuple = ()) -> None:
        """Values pydantic accepted only by converting them (``true`` as 1, ``"32"`` as 32,
        ``1`` as true): the study file must say what it means, as its JSON Schema does."""
        for loc, message in coerced_values(data, validated):
            path = prefix + loc
            if fallback and not self.doc.has(path) and self.doc.has(fallback + loc):
                path = fallback + loc
            self.add(path, message)

    def _check_integers(self, node: Any, path: tuple) -> None:
        """Integers beyond 64 bits, anywhere in the file."""
        if isinstance(node, dict):
            for key, value in node.items():
                self._check_integers(value, path + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self._check_integers(value, path + (i,))
        elif isinstance(node, int) and not isinstance(node, bool) and not -_INT64 <= node < _INT64:
            self.add(path, f"integer out of range: it must lie in [-2**63, 2**63 - 1] (got {node})")
            self.out_of_range.add(path)

    # -------------------------------------------------------------- steps

    def run(self, text: str, sources: tuple[str, ...] = ()) -> Study:
        data = self.doc.data
        self._check_integers(data, ())
        header = self._header(data)
        base = header.base
        for name in header.variants:
            if not is_safe_name(name):
                self.add(
                    ("variants", name),
                    f"variant name {name!r} may hold only letters, digits and _.- (at most 100, "
                    "not starting with . or -)",
                )
        for path, values in header.grid.items():
            if not values:
                self.add(("grid", path), "needs at least one value")
            elif len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
                self.add(("grid", path), "repeated values")

        # unknown plugin names are reported with the installed ones; pydantic's own errors about
        # those sections are then left out, and every other error is still reported
        base_bad = self._check_plugin_names(base, ("base",))
        base_cfg = None
        try:
            base_cfg = self.model.model_validate(base)
        except ValidationError as exc:
            self.add_pydantic(exc, ("base",), base, skip=base_bad)
        else:
            self.add_coerced(base, base_cfg, ("base",))

        variant_dicts: dict[str, dict[str, Any]] = {}
        variants: dict[str, Any] = {}
        names = list(header.variants) or ["base"]
        for name in names:
            override = header.variants.get(name) or {}
            merged = deep_merge(base, override)
            variant_dicts[name] = merged
            if name not in header.variants:
                if base_cfg is not None:
                    variants[name] = base_cfg
                continue
            bad = self._check_plugin_names(override, ("variants", name))
            try:
                cfg = self.model.model_validate(merged)
            except ValidationError as exc:
                self.add_pydantic(
                    exc,
                    ("variants", name),
                    merged,
                    fallback=("base",),
                    skip=bad | base_bad,
                    # base's errors are reported at base, not once more for each variant
                    own_only=base_cfg is None,
                )
                continue
            self.add_coerced(merged, cfg, ("variants", name), fallback=("base",))
            if not bad and base_cfg is not None:
                variants[name] = cfg

        grid_paths, grid_values = self._check_grid(header, variant_dicts, variants)
        if header.search is not None:
            self._check_search(header, variant_dicts, variants, grid_paths)
        self._check_warm_starts(header, variants)
        if self.issues:
            raise SpecError(self.issues)
        return Study(
            file=self.doc.file,
            header=header,
            trial_model=self.model,
            variants=variants,
            variant_dicts=variant_dicts,
            grid_paths=grid_paths,
            grid_values=grid_values,
            registry=self.reg,
            text=text,
            sources=sources or (self.doc.file,),
        )

    def _header(self, data: dict[str, Any]) -> StudyHeader:
        """The validated header; on errors, those are reported and the header is built from the
        settings that are valid, so that the rest of the file is checked too."""
        try:
            header = StudyHeader.model_validate(data)
        except ValidationError as exc:
            self.add_pydantic(exc, (), data)
            bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
            partial = {k: v for k, v in data.items() if k not in bad and k in StudyHeader.model_fields}
            partial.setdefault("study", "study")
            try:
                return StudyHeader.model_validate(partial)
            except ValidationError:
                raise SpecError(self.issues) from None  # no base to check
        self.add_coerced(data, header, ())
        return header

    def _check_plugin_names(self, cfg: dict[str, Any], prefix: tuple) -> set[tuple]:
        """Unknown plugin names, with the installed ones and a suggestion. Returns the paths
        (relative to ``cfg``) of the sections whose plugin is unknown or not named."""
        bad: set[tuple] = set()
        for field_name, (kind, is_list, _doc) in _KIND_FIELDS.items():
            if field_name in cfg:
                self._check_section(
                    cfg[field_name], kind, is_list, prefix + (field_name,), nested=False, bad=bad
                )
        return {path[len(prefix) :] for path in bad}

    def _check_section(
        self, value: Any, kind: str, is_list: bool, path: tuple, *, nested: bool, bad: set[tuple]
    ) -> None:
        """The plugin names of one section (a mapping, or a list of them), and of the
        plugins nested in it."""
        items = list(enumerate(value)) if is_list and isinstance(value, list) else [(None, value)]
        installed = sorted(self.reg.of_kind(kind))
        for idx, item in items:
            where = path + ((idx,) if idx is not None else ())
            if not isinstance(item, dict):
                continue  # pydantic reports the type error
            name = item.get("name")
            if name is None:
                if where[0] == "variants" and not nested:
                    continue  # merged onto base's section
                self.add(
                    where, f"missing 'name': which {kind} plugin? installed: {', '.join(installed) or 'none'}"
                )
                bad.add(where)
            elif not isinstance(name, str) or name not in installed:
                hint = difflib.get_close_matches(str(name), installed, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                package = missing_plugin_hint(kind, str(name), self.recorded)
                self.add(
                    where + ("name",),
                    f"unknown {kind} plugin {name!r}{extra}; installed: {', '.join(installed) or 'none'}"
                    + (f"; {package}" if package else ""),
                )
                bad.add(where)
            else:
                inner = nested_fields(self.reg.get(kind, name).config)
                if inner and nested:
                    self.add(
                        where + ("name",), f"{kind} plugin {name!r} holds other plugins and cannot be nested"
                    )
                    bad.add(where)
                    continue
                for field_name, sub_kind in inner.items():
                    if field_name in item:
                        self._check_section(
                            item[field_name], sub_kind, True, where + (field_name,), nested=True, bad=bad
                        )

    def _check_grid(self, header: StudyHeader, variant_dicts, variants) -> tuple[dict, dict]:
        grid_paths: dict[str, str] = {}
        grid_values: dict[str, list[Any]] = {}
        for path, values in header.grid.items():
            ypath = ("grid", path)
            parts = self._split(ypath, path)
            if parts is None:
                continue
            dim = str(parts[-1])
            if dim in RESERVED_DIMS:
                self.add(ypath, f"dimension name {dim!r} is reserved ({', '.join(RESERVED_DIMS)})")
                continue
            if dim in grid_paths:
                self.add(
                    ypath,
                    f"two grid paths end in {dim!r} ({grid_paths[dim]} and {path}): dimension names must differ",
                )
                continue
            grid_paths[dim] = path
            grid_values[dim] = list(values)
            for name, merged in variant_dicts.items():
                if name not in variants:
                    continue
                for i, value in enumerate(values):
                    try:
                        cfg = set_path(merged, path, value)
                    except KeyError as exc:
                        self.add(ypath, f"no such setting: {exc.args[0]}")
                        break
                    try:
                        validated = self.model.model_validate(cfg)
                    except ValidationError as exc:
                        self._grid_errors(exc, ypath, parts, i, cfg)
                        break
                    coerced = coerced_values(value, _descend(validated, parts))
                    if coerced:
                        for loc, message in coerced:
                            self.add(ypath + (i,) + loc, message)
                        break
                else:
                    continue
                break  # one report per grid path, not one per variant
        return grid_paths, grid_values

    def _grid_errors(self, exc: ValidationError, ypath: tuple, parts: list, i: int, cfg: dict) -> None:
        """Errors of the configuration with value ``i`` of a grid path: a path that names no
        setting is reported at the path, a bad value at the value."""
        for err in exc.errors(include_url=False):
            loc = clean_loc(err["loc"], cfg)
            message = _message(err, loc, cfg, self)
            if err["type"] == "extra_forbidden" and tuple(parts[: len(loc)]) == loc:
                self.add(ypath, f"no such setting: {message}")
                return
            at = "" if tuple(loc) == tuple(parts) else f" (at {'.'.join(str(p) for p in loc)})"
            self.add(ypath + (i,), message + at)

    def _split(self, ypath: tuple, path: str) -> Optional[list[str | int]]:
        """The segments of a grid or search path, or None (reported) if it is not one."""
        segments = str(path).split(".")
        bad = [seg for seg in segments if not _PATH_SEGMENT.fullmatch(seg)]
        if bad:
            self.add(
                ypath,
                f"{path!r} is not a dotted path of setting names and list indices (bad segment {bad[0]!r})",
            )
            return None
        if segments[-1].isdigit():
            self.add(ypath, f"{path!r} must end in a setting's name: it names a results dimension")
            return None
        return split_path(path)

    def _check_search(self, header: StudyHeader, variant_dicts, variants, grid_paths) -> None:
        assert header.search is not None
        searched = {str(p).split(".")[-1] for p in header.search.params}
        for path in header.grid:  # a grid with a search: one search per grid point
            if str(path).split(".")[-1] in searched:
                self.add(
                    ("grid", path),
                    "a setting (or a results dimension's name) is either crossed by the grid or searched, not both",
                )
        if header.search.objective in ("steps_to_target", "examples_to_target"):
            for name, merged in variant_dicts.items():
                if name in variants and merged.get("target") is None:
                    self.add(
                        ("search", "objective"),
                        f"objective {header.search.objective} needs a target: set target "
                        "(metric, value) in base or the variant",
                    )
                    break
        if len(variant_dicts) > 1:
            self.add(
                ("search",), "a search runs on one configuration: give base (and no variants) or one variant"
            )
        for path, param in header.search.params.items():
            ypath = ("search", "params", path)
            if self._split(ypath, path) is None:
                continue
            samples = param.probe_values()
            for name, merged in variant_dicts.items():
                if name in variants and self._search_problem(ypath, path, param, merged, samples):
                    break  # one report per parameter; the other parameters are still checked

    def _search_problem(self, ypath: tuple, path: str, param: Any, merged: dict, samples: list) -> bool:
        """Report the first sample of a searched parameter that does not fit (True if one)."""
        parts = split_path(path)
        for value in samples:
            try:
                cfg = set_path(merged, path, value)
            except KeyError as exc:
                self.add(ypath, f"no such setting: {exc.args[0]}")
                return True
            try:
                validated = self.model.model_validate(cfg)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = clean_loc(err["loc"], cfg)
                message = _message(err, loc, cfg, self)
                if err["type"] == "extra_forbidden" and tuple(parts[: len(loc)]) == loc:
                    self.add(ypath, f"no such setting: {message}")
                else:
                    at = ".".join(map(str, loc))
                    self.add(ypath, f"value {value!r} is not valid here: {message} (at {at})")
                return True
            coerced = coerced_values(value, _descend(validated, parts))
            if coerced and param.type == "categorical":
                loc, message = coerced[0]
                at = ".".join(map(str, parts + list(loc)))
                self.add(ypath, f"value {value!r} is not valid here: {message} (at {at})")
                return True
        return False

    def _check_warm_starts(self, header: StudyHeader, variants: dict[str, Any]) -> None:
        for name, cfg in variants.items():
            ws: Optional[WarmStart] = cfg.warm_start
            if ws is None:
                continue
            where = ("variants", name, "warm_start") if name in header.variants else ("base", "warm_start")
            declared = list(header.variants) or ["base"]
            if ws.variant not in declared:
                self.add(
                    where + ("variant",),
                    f"warm start from unknown variant {ws.variant!r}; variants: {', '.join(declared)}",
                )
                continue
            if ws.variant not in variants:
                continue  # the source has errors of its own, reported there
            if ws.variant == name:
                self.add(where + ("variant",), "a variant cannot warm-start from itself")
                continue
            src = variants[ws.variant]
            if src.warm_start is not None:
                self.add(
                    where + ("variant",),
                    f"variant {ws.variant!r} is itself warm-started: chains are not supported",
                )
            if ws.epochs > src.epochs:
                self.add(where + ("epochs",), f"variant {ws.variant!r} trains only {src.epochs} epochs")


# ----------------------------------------------------------------- helpers

_MISSING = object()


def _child(node: Any, key: Any) -> Any:
    """``node[key]`` for a validated model, mapping or sequence; ``_MISSING`` if there is none."""
    if isinstance(node, BaseModel):
        fields = type(node).model_fields
        if key in fields:
            return getattr(node, key)
        for name, info in fields.items():
            if info.alias == key or info.validation_alias == key:
                return getattr(node, name)
        return _MISSING
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, (list, tuple)) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING


def _descend(node: Any, path: Iterable[Any]) -> Any:
    for key in path:
        node = _child(node, key)
        if node is _MISSING:
            break
    return node


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a valid integer"
    if isinstance(value, float):
        return "a valid number"
    return "a string"


def coerced_values(data: Any, validated: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """``(path, message)`` for each scalar of ``data`` whose validated value is of another
    kind: a boolean taken as a number (``batch_size: true`` as 1), a string taken as a
    number (``lr: "0.1"``), a number or string taken as a boolean (``shuffle: 1``)."""
    out: list[tuple[tuple, str]] = []
    if validated is _MISSING:
        return out
    if isinstance(data, dict):
        for key, value in data.items():
            out += coerced_values(value, _child(validated, key), path + (key,))
    elif isinstance(data, list):
        if isinstance(validated, (list, tuple)) and len(validated) == len(data):
            for i, value in enumerate(data):
                out += coerced_values(value, validated[i], path + (i,))
    elif isinstance(data, bool):
        if not isinstance(validated, bool):
            shown = "true" if data else "false"
            out.append((path, f"Input should be {_kind(validated)}, not a boolean (got {shown})"))
    elif isinstance(data, (int, float)):
        if isinstance(validated, (bool, str)):
            out.append((path, f"Input should be {_kind(validated)}, not a number (got {data!r})"))
    elif isinstance(data, str):
        if isinstance(validated, (bool, int, float)):
            out.append((path, f"Input should be {_kind(validated)}, not a string (got {data!r})"))
    return out



def clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's discriminator-tag and type segments from ``loc``."""
    out: list[Any] = []
    node = data
    for seg in loc:
        if isinstance(node, dict):
            if seg in node:
                out.append(seg)
                node = node[seg]
            elif isinstance(seg, str) and node.get("name") == seg:
                continue  # the union tag
            elif isinstance(seg, str) and ("[" in seg or seg.startswith("function-")):
                continue
            else:
                out.append(seg)
                node = None
        elif isinstance(node, list) and isinstance(seg, int):
            out.append(seg)
            node = node[seg] if seg < len(node) else None
        elif isinstance(seg, str) and ("[" in seg or seg.startswith("function-")):
            continue
        else:
            out.append(seg)
            node = None
    return tuple(out)


def _message(err: dict, loc: tuple, data: Any, v: _Validator) -> str:
    typ = err["type"]
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if typ == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data, v)
        key = loc[-1] if loc else "?"
        if allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            return f"unknown key {key!r}{extra}; allowed: {', '.join(sorted(allowed))}"
        return f"unknown key {key!r}"
    if typ == "missing":
        return f"required setting {loc[-1]!r} is missing" if loc else "required setting missing"
    if typ == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SAFE_NAME:
        return (
            "may hold only letters, digits and _.- (at most 100 characters, not starting with . or -) "
            f"(got {err.get('input')!r})"
        )
    if isinstance(err.get("input"), bool) and typ in _NUMBER_CHECKS:
        return f"Input should be a number, not a boolean (got {'true' if err['input'] else 'false'})"
    if "input" in err and typ not in ("union_tag_invalid", "union_tag_not_found"):
        shown = err["input"]
        if isinstance(shown, (dict, list)):
            return msg
        return f"{msg} (got {shown!r})"
    return msg


#: pydantic errors of a number's value (a boolean reaching them was taken as 0 or 1)
_NUMBER_CHECKS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number"}
)


def _section_kind(path: tuple, data: Any, reg: Registry) -> Optional[str]:
    """The plugin kind of the section at ``path`` of a trial configuration: a top-level
    plugin field (``metrics.0``) or a field nested in a plugin (``metrics.0.metrics.1``)."""
    fields = [i for i, seg in enumerate(path) if isinstance(seg, str)]
    if not fields:
        return None
    i = fields[-1]
    if not path[:i]:
        return _KIND_FIELDS.get(str(path[i]), (None,))[0]
    owner_kind = _section_kind(path[:i], data, reg)
    owner = data
    for seg in path[:i]:
        try:
            owner = owner[seg]
        except (KeyError, IndexError, TypeError):
            return None
    if owner_kind is None or not isinstance(owner, dict) or owner.get("name") not in reg.of_kind(owner_kind):
        return None
    return nested_fields(reg.get(owner_kind, owner["name"]).config).get(str(path[i]))


def _allowed_keys(parent: tuple, data: Any, v: _Validator) -> list[str]:
    node = data
    for seg in parent:
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            return []
    model: Optional[type[BaseModel]] = None
    if not parent:
        model = v.model if "base" not in (data or {}) else StudyHeader
    elif parent[-1] == "eval":
        model = EvalConfig
    elif parent[-1] == "warm_start":
        model = WarmStart
    elif isinstance(node, dict) and "name" in node:
        kind = _section_kind(parent, data, v.reg)
        if kind and node["name"] in v.reg.of_kind(kind):
            model = v.reg.get(kind, node["name"]).config
            return ["name", *model.model_fields]
    if model is None:
        return []
    return list(model.model_fields)
