"""JSON Schema of study files for editors and generic validators (``lbgap schema``).

Put ``# yaml-language-server: $schema=./.lbgap/schema.json`` on the first
line of a study to get completion and checking in editors that use the YAML
language server.

The schema (JSON Schema draft 2020-12) accepts what ``lbgap study validate``
accepts, as far as JSON Schema can say it:

- each plugin section is selected by its ``name``: an ``enum`` of the
  installed plugins, then one ``if``/``then`` per plugin (``if`` the name is
  this ``const``, ``then`` this plugin's settings), so that a generic
  validator reports a wrong setting against the plugin the section names;
- a variant overrides ``base``: a plugin section that leaves out ``name``, or
  names the plugin ``base`` uses, is a partial configuration of that plugin
  (rules at the top level compare the variant's section with ``base``'s); a
  section naming another plugin replaces ``base``'s and needs its required
  settings;
- numbers are finite, integers fit in 64 bits, names that become paths match
  their pattern, seeds are distinct, grid and search paths are dotted names;
- a file with ``extends`` overrides another study file: its ``base`` is
  partial, like a variant, and nothing is required of it.

What it cannot say, ``lbgap study validate`` still checks: a plugin's checks
across its settings (``nesterov`` needs ``momentum``), a grid or search path
naming an existing setting and its values fitting it, a warm start naming a
declared variant, ``low < high`` in a search, a grid dimension that is also
searched, a steps-to-target objective without a ``target``, and ``.nan`` (JSON
has no NaN).
"""

from __future__ import annotations

import copy
import sys
from typing import Any, Optional

from pydantic import create_model

from ..registry import Registry
from .model import _KIND_FIELDS, MAX_SEED, SAFE_NAME, SearchConfig, StudyHeader, trial_config_model

__all__ = ["study_json_schema", "DRAFT", "GRID_PATH", "SEARCH_PATH"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

_SEGMENT = r"(?:[A-Za-z_][A-Za-z0-9_]{0,99}|[0-9]{1,6})"
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,99}"
#: a grid path: setting names and list indices joined by dots, ending in a name that is not a
#: reserved results dimension
GRID_PATH = rf"^(?:{_SEGMENT}\.)*(?!(?:variant|seed|epoch|trial)$){_NAME}$"
#: a search path: the same, any last name
SEARCH_PATH = rf"^(?:{_SEGMENT}\.)*{_NAME}$"

_FLOAT_MAX = sys.float_info.max
_INT64 = 2**63


def study_json_schema(reg: Registry) -> dict[str, Any]:
    """The JSON Schema of a study file with the plugins of ``reg``."""
    trial = trial_config_model(reg)
    model = create_model(
        "Study",
        __base__=StudyHeader,
        base=(trial, ...),
        variants=(dict[str, Optional[dict[str, Any]]], {}),
        search=(Optional[SearchConfig], None),
    )
    schema = model.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    schema = _select_by_name(schema)
    defs = schema["$defs"]
    _finite_numbers(schema)

    trial_name = schema["properties"]["base"]["$ref"].split("/")[-1]
    trial_def = defs[trial_name]
    # one definition per plugin kind: the installed plugins, selected by name
    kinds: dict[str, dict[str, str]] = {}  # field → {plugin name → definition name}
    for field_name, (kind, is_list, _doc) in _KIND_FIELDS.items():
        prop = trial_def["properties"].get(field_name)
        if prop is None:
            continue
        node = prop["items"] if is_list else prop
        plugins = _plugins(node, defs)
        if not plugins:
            continue
        kinds[field_name] = plugins
        def_name = f"{kind}_plugin"
        defs[def_name] = _by_name(plugins, f"a {kind} plugin: `name` selects it")
        ref = {"$ref": f"#/$defs/{def_name}"}
        keep = {k: v for k, v in prop.items() if k in ("description", "default", "title")}
        if is_list:
            trial_def["properties"][field_name] = {**keep, "type": "array", "items": ref}
        else:
            trial_def["properties"][field_name] = {**keep, **ref}

    # a variant: the trial's settings, none required; single plugin sections are checked against
    # base's section by the rules at the top level
    variant = copy.deepcopy(trial_def)
    variant.pop("required", None)
    variant["title"] = "Variant (overrides of base)"
    rules: list[dict[str, Any]] = []
    for field_name, plugins in kinds.items():
        kind, is_list, doc = _KIND_FIELDS[field_name]
        if is_list:
            continue  # lists are replaced whole
        full = {"$ref": f"#/$defs/{kind}_plugin"}
        partials = []
        for def_name in sorted(plugins.values()):
            partial_name = f"{def_name}_override"
            partial = copy.deepcopy(defs[def_name])
            partial.pop("required", None)
            partial["title"] = f"{partial.get('title', def_name)} (override)"
            defs[partial_name] = partial
            partials.append({"$ref": f"#/$defs/{partial_name}"})
        # on its own (a study that extends another), a section is the overrides of some plugin of
        # its kind; the rules below pin the plugin that base names
        variant["properties"][field_name] = {
            "description": doc + " Without `name`, or with base's, it overrides base's settings.",
            "type": "object",
            "properties": {"name": {"enum": sorted(plugins)}},
            "anyOf": partials,
        }
        for plugin, def_name in sorted(plugins.items()):
            partial_name = f"{def_name}_override"
            same = {"required": ["name"], "properties": {"name": {"const": plugin}}}
            rules.append(
                {
                    "if": {"required": ["base"], "properties": {"base": {"required": [field_name], "properties": {field_name: same}}}},
                    "then": _each_variant(
                        field_name,
                        {
                            "if": {"anyOf": [{"not": {"required": ["name"]}}, same]},
                            "then": {"$ref": f"#/$defs/{partial_name}"},
                            "else": full,
                        },
                    ),
                }
            )
        rules.append(
            {
                "if": {"required": ["base"], "properties": {"base": {"not": {"required": [field_name]}}}},
                "then": _each_variant(field_name, full),
            }
        )
    defs["Variant"] = variant

    props = schema["properties"]
    props["variants"] = {
        "description": props["variants"].get("description", ""),
        "type": "object",
        "propertyNames": {"pattern": SAFE_NAME},
        "additionalProperties": {"anyOf": [{"$ref": "#/$defs/Variant"}, {"type": "null"}]},
        "default": {},
    }
    props["grid"] = {
        "description": props["grid"].get("description", ""),
        "type": "object",
        "propertyNames": {"pattern": GRID_PATH},
        "additionalProperties": {"type": "array", "minItems": 1, "uniqueItems": True},
        "default": {},
    }
    props["seeds"]["uniqueItems"] = True
    props["seeds"]["items"] = {"type": "integer", "minimum": 0, "maximum": MAX_SEED}
    search = defs["SearchConfig"]
    search["properties"]["params"]["propertyNames"] = {"pattern": SEARCH_PATH}
    rules += [
        {  # a search runs on one configuration
            "if": {"required": ["search"], "properties": {"search": {"type": "object"}}},
            "then": {"properties": {"variants": {"maxProperties": 1}}},
        },
    ]
    # a file that extends another overrides it: its base is partial (like a variant), nothing is
    # required, and the rules that compare variants with base wait for the resolved study
    required = schema.pop("required", [])
    trial_ref = props["base"]
    props["base"] = {k: v for k, v in trial_ref.items() if k != "$ref"}
    props["base"]["type"] = "object"
    schema["allOf"] = [
        {
            "if": {"required": ["extends"], "properties": {"extends": {"type": "string"}}},
            "then": {"properties": {"base": {"$ref": "#/$defs/Variant"}}},
            "else": {"required": required, "properties": {"base": trial_ref}, "allOf": rules},
        }
    ]
    schema["$schema"] = DRAFT
    schema["title"] = "lbgap study"
    return schema


# ----------------------------------------------------------------- helpers


def _each_variant(field_name: str, section: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {"variants": {"additionalProperties": {"properties": {field_name: section}}}}}


def _by_name(plugins: dict[str, str], description: str) -> dict[str, Any]:
    """A plugin section: ``name`` one of ``plugins``, then that plugin's settings."""
    return {
        "description": description,
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"enum": sorted(plugins)}},
        "allOf": [
            {
                "if": {"required": ["name"], "properties": {"name": {"const": name}}},
                "then": {"$ref": f"#/$defs/{def_name}"},
            }
            for name, def_name in sorted(plugins.items())
        ],
    }


def _plugins(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, str]:
    """``{plugin name: definition name}`` of a (converted) plugin section schema."""
    if "allOf" in node and node.get("required") == ["name"]:
        return {
            rule["if"]["properties"]["name"]["const"]: rule["then"]["$ref"].split("/")[-1]
            for rule in node["allOf"]
        }
    ref = node.get("$ref")
    if ref:
        def_name = ref.split("/")[-1]
        name = defs.get(def_name, {}).get("properties", {}).get("name", {}).get("const")
        if name is not None:
            return {name: def_name}
    return {}


def _select_by_name(node: Any) -> Any:
    """Replace pydantic's ``oneOf`` + ``discriminator`` (which generic validators ignore) by an
    ``enum`` of names and one ``if``/``then`` per plugin."""
    if isinstance(node, list):
        return [_select_by_name(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _select_by_name(value) for key, value in node.items()}
    disc = node.get("discriminator")
    if isinstance(disc, dict) and disc.get("propertyName") == "name" and "oneOf" in node:
        plugins = {name: ref.split("/")[-1] for name, ref in disc["mapping"].items()}
        keep = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf")}
        return {**keep, **_by_name(plugins, keep.get("description", "a plugin: `name` selects it"))}
    return node


def _finite_numbers(node: Any) -> None:
    """Bounds on every number (so ``.inf`` is out of range) and integer (64 bits)."""
    if isinstance(node, list):
        for item in node:
            _finite_numbers(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _finite_numbers(value)
    typ = node.get("type")
    types = typ if isinstance(typ, list) else [typ]
    if "number" in types:
        node.setdefault("minimum", -_FLOAT_MAX)
        node.setdefault("maximum", _FLOAT_MAX)
    elif "integer" in types:
        node.setdefault("minimum", -_INT64)
        node.setdefault("maximum", _INT64 - 1)
