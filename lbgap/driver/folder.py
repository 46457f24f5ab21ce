"""The study's output folder: claimed for one study and spec (study.json, spec.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..plugin_sources import plugin_names
from ..results.trialfile import write_text_atomic
from ..spec.load import Study

__all__ = ["StudyFolderError", "prepare_folder"]


class StudyFolderError(Exception):
    """The output folder belongs to another study or spec."""


def prepare_folder(study: Study, out_dir: Path, storage_url: Optional[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "study.json"
    meta = {
        "study": study.name, "spec_sha256": study.spec_hash, "storage": storage_url,
        # which package provided each plugin the spec names: a later load of the folder's spec.yaml
        # on a machine without one of them names the package to install
        "plugin_sources": study.registry.provenance(plugin_names(json.loads(study.to_json()))),
    }
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("spec_sha256") != study.spec_hash:
            raise StudyFolderError(
                f"{out_dir} holds results of another version of the study (spec hash {old.get('spec_sha256', '?')[:12]} "
                f"≠ {study.spec_hash[:12]}); choose another --out or delete the folder"
            )
    else:
        write_text_atomic(meta_path, json.dumps(meta, indent=2))
    spec_copy = out_dir / "spec.yaml"
    if not spec_copy.exists():
        write_text_atomic(spec_copy, study.text or Path(study.file).read_text())

