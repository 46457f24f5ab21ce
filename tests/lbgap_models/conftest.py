"""Fixtures of the lbgap_models tests.

``tests/`` is on ``sys.path`` during the test session (pytest puts the
directory of ``tests/conftest.py`` there), so the test folder
``tests/lbgap_models/`` (no ``__init__.py``) would be imported as a namespace
package in place of the editable-installed ``lbgap_models``: the editable
finder sits after the path finder. Putting the package's own source root first
on ``sys.path`` makes ``import lbgap_models`` find the real package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_SOURCE_ROOT = str(Path(__file__).resolve().parents[2] / "plugins" / "lbgap_models")
if _SOURCE_ROOT not in sys.path:
    sys.path.insert(0, _SOURCE_ROOT)
_loaded = sys.modules.get("lbgap_models")
if _loaded is not None and getattr(_loaded, "__file__", None) is None:  # a namespace package stand-in
    del sys.modules["lbgap_models"]


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global torch seed (model initialisation draws from it)."""
    torch.manual_seed(0)
    yield
