"""JSON Schema of study files for editors (``lbgap schema``).

Put ``# yaml-language-server: $schema=./.lbgap/schema.json`` on the first
line of a study to get completion and checking in editors that use the YAML
language server (draft-07 is declared for its sake).
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from pydantic import create_model

from ..registry import Registry
from .model import SearchConfig, StudyHeader, trial_config_model

__all__ = ["study_json_schema"]


def study_json_schema(reg: Registry) -> dict[str, Any]:
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
    # a variant is a partial trial configuration: the same keys, none required
    trial_ref = schema["properties"]["base"]
    trial_name = trial_ref.get("$ref", "").split("/")[-1]
    if trial_name in defs:
        partial = copy.deepcopy(defs[trial_name])
        partial.pop("required", None)
        partial["title"] = "Variant (overrides of base)"
        defs["Variant"] = partial
        schema["properties"]["variants"] = {
            "type": "object",
            "additionalProperties": {"anyOf": [{"$ref": "#/$defs/Variant"}, {"type": "null"}]},
            "description": schema["properties"]["variants"].get("description", ""),
        }
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "lbgap study"
    return schema
