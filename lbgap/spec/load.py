"""Load a study file into a validated :class:`Study`.

Every problem is collected (not just the first) and raised as one
:class:`~lbgap.spec.errors.SpecError` whose lines read
``file:line: field.path: message``.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from ..plugin import nested_fields
from ..registry import Registry, get_registry
from .errors import SpecError, SpecIssue
from .merge import deep_merge, set_path, split_path
from .model import (
    _KIND_FIELDS,
    EvalConfig,
    SearchConfig,
    StudyHeader,
    TrialConfigBase,
    WarmStart,
    trial_config_model,
)
from .yamlio import LoadedYAML, YAMLSyntaxError, load_yaml

__all__ = ["Study", "Cell", "load_study", "load_study_text", "RESERVED_DIMS"]

RESERVED_DIMS = ("variant", "seed", "epoch", "trial")


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


def load_study(path: str | Path, registry: Optional[Registry] = None) -> Study:
    """Read and validate a study file. Raises :class:`SpecError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(str(path), 1, "", "no such file")]) from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise SpecError([SpecIssue(str(path), 1, "", f"cannot read the file: {exc}")]) from None
    return load_study_text(text, str(path), registry)


def load_study_text(text: str, file: str = "<string>", registry: Optional[Registry] = None) -> Study:
    reg = registry or get_registry()
    try:
        doc = load_yaml(file, text)
    except YAMLSyntaxError as exc:
        raise SpecError([SpecIssue(exc.file, exc.line, exc.path, exc.message)]) from None
    return _Validator(doc, reg).run(text)


class _Validator:
    def __init__(self, doc: LoadedYAML, reg: Registry) -> None:
        self.doc = doc
        self.reg = reg
        self.issues: list[SpecIssue] = []
        self.model = trial_config_model(reg)

    # ---------------------------------------------------------- reporting

    def add(self, yaml_path: tuple, message: str, *, display: Optional[tuple] = None) -> None:
        shown = display if display is not None else yaml_path
        self.issues.append(
            SpecIssue(self.doc.file, self.doc.line_of(yaml_path), ".".join(str(p) for p in shown), message)
        )

    def add_pydantic(self, exc: ValidationError, prefix: tuple, data: Any, *, fallback: tuple = ()) -> None:
        """Map pydantic errors under ``prefix`` (a yaml path) onto the file.

        ``fallback``: another yaml prefix tried when the path is absent under
        ``prefix`` (a variant's error whose key comes from ``base``).
        """
        for err in exc.errors(include_url=False):
            loc = clean_loc(err["loc"], data)
            msg = _message(err, loc, data, self)
            path = prefix + loc
            if err["type"] == "missing":
                where = prefix + loc[:-1]
            else:
                where = path
            if (
                fallback
                and not self.doc.has(where)
                and self.doc.has(fallback + loc[: len(where) - len(prefix)])
            ):
                where = fallback + loc[: len(where) - len(prefix)]
                path = fallback + loc
            self.add(where, msg, display=path)

    # -------------------------------------------------------------- steps

    def run(self, text: str) -> Study:
        data = self.doc.data
        try:
            header = StudyHeader.model_validate(data)
        except ValidationError as exc:
            self.add_pydantic(exc, (), data)
            raise SpecError(self.issues) from None

        base = header.base
        for name in header.variants:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)):
                self.add(("variants", name), f"variant name {name!r} may hold only letters, digits and _.-")
        for path, values in header.grid.items():
            if not values:
                self.add(("grid", path), "needs at least one value")
            elif len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
                self.add(("grid", path), "repeated values")
        if self.issues:
            raise SpecError(self.issues)
        self._check_plugin_names(base, ("base",))
        base_cfg = None
        if not self.issues:
            try:
                base_cfg = self.model.model_validate(base)
            except ValidationError as exc:
                self.add_pydantic(exc, ("base",), base)

        variant_dicts: dict[str, dict[str, Any]] = {}
        variants: dict[str, Any] = {}
        names = list(header.variants) or ["base"]
        for name in names:
            override = header.variants.get(name) or {}
            merged = deep_merge(base, override)
            variant_dicts[name] = merged
            before = len(self.issues)
            self._check_plugin_names(override, ("variants", name))
            if len(self.issues) > before or base_cfg is None:
                continue
            try:
                variants[name] = self.model.model_validate(merged)
            except ValidationError as exc:
                self.add_pydantic(exc, ("variants", name), merged, fallback=("base",))

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
        )

    def _check_plugin_names(self, cfg: dict[str, Any], prefix: tuple) -> None:
        """Unknown plugin names, with the installed ones and a suggestion."""
        for field_name, (kind, is_list, _doc) in _KIND_FIELDS.items():
            if field_name in cfg:
                self._check_section(cfg[field_name], kind, is_list, prefix + (field_name,), nested=False)

    def _check_section(self, value: Any, kind: str, is_list: bool, path: tuple, *, nested: bool) -> None:
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
            elif not isinstance(name, str) or name not in installed:
                hint = difflib.get_close_matches(str(name), installed, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.add(
                    where + ("name",),
                    f"unknown {kind} plugin {name!r}{extra}; installed: {', '.join(installed) or 'none'}",
                )
            else:
                inner = nested_fields(self.reg.get(kind, name).config)
                if inner and nested:
                    self.add(
                        where + ("name",), f"{kind} plugin {name!r} holds other plugins and cannot be nested"
                    )
                    continue
                for field_name, sub_kind in inner.items():
                    if field_name in item:
                        self._check_section(
                            item[field_name], sub_kind, True, where + (field_name,), nested=True
                        )

    def _check_grid(self, header: StudyHeader, variant_dicts, variants) -> tuple[dict, dict]:
        grid_paths: dict[str, str] = {}
        grid_values: dict[str, list[Any]] = {}
        for path, values in header.grid.items():
            ypath = ("grid", path)
            try:
                parts = split_path(path)
            except ValueError as exc:
                self.add(ypath, str(exc))
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
                        self.model.model_validate(cfg)
                    except ValidationError as exc:
                        for err in exc.errors(include_url=False):
                            loc = ".".join(str(p) for p in clean_loc(err["loc"], cfg))
                            self.add(
                                ypath + (i,),
                                f"{_message(err, clean_loc(err['loc'], cfg), cfg, self)} (at {loc})",
                            )
                        break
                else:
                    continue
                break  # one report per grid path, not one per variant
        return grid_paths, grid_values

    def _check_search(self, header: StudyHeader, variant_dicts, variants, grid_paths) -> None:
        assert header.search is not None
        if header.grid:
            self.add(("search",), "a study has either a grid or a search, not both")
        if len(variant_dicts) > 1:
            self.add(
                ("search",), "a search runs on one configuration: give base (and no variants) or one variant"
            )
        for path, param in header.search.params.items():
            ypath = ("search", "params", path)
            if param.type == "categorical":
                samples = list(param.choices or [])
            elif param.type == "pow2":
                samples = [int(param.low), int(param.high)]
            elif param.type == "int":
                samples = [int(param.low), int(param.high)]
            else:
                samples = [param.low, param.high]
            for name, merged in variant_dicts.items():
                if name not in variants:
                    continue
                for value in samples:
                    try:
                        self.model.model_validate(set_path(merged, path, value))
                    except KeyError as exc:
                        self.add(ypath, f"no such setting: {exc.args[0]}")
                        return
                    except ValidationError as exc:
                        err = exc.errors(include_url=False)[0]
                        loc = clean_loc(err["loc"], set_path(merged, path, value))
                        self.add(
                            ypath,
                            f"value {value!r} is not valid here: {_message(err, loc, merged, self)} (at {'.'.join(map(str, loc))})",
                        )
                        return

    def _check_warm_starts(self, header: StudyHeader, variants: dict[str, Any]) -> None:
        for name, cfg in variants.items():
            ws: Optional[WarmStart] = cfg.warm_start
            if ws is None:
                continue
            where = ("variants", name, "warm_start") if name in header.variants else ("base", "warm_start")
            if ws.variant not in variants:
                self.add(
                    where + ("variant",),
                    f"warm start from unknown variant {ws.variant!r}; variants: {', '.join(variants)}",
                )
                continue
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
    if "input" in err and typ not in ("union_tag_invalid", "union_tag_not_found"):
        shown = err["input"]
        if isinstance(shown, (dict, list)):
            return msg
        return f"{msg} (got {shown!r})"
    return msg


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
