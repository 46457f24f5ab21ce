"""The scripts of ``studies/tools/`` (the ones that print the documented tables), loaded as modules by
their file name without ``.py``: the claims tests assert from the same functions the tables come from.
``tests/conftest.py`` registers this module as ``study_tools`` (tests/ is not on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "studies" / "tools"


def import_as(name: str, path: Path) -> ModuleType:
    """Import the file ``path`` as module ``name``, once."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def load(name: str) -> ModuleType:
    """``studies/tools/<name>.py`` as module ``name``."""
    return import_as(name, TOOLS / f"{name}.py")
