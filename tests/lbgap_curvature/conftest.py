"""Curvature tests: shared helpers importable, one thread (the machine is shared)."""

import sys
from pathlib import Path

import pytest
import torch

# with --import-mode=importlib test folders are not on sys.path; the helpers
# module has a name unique to this folder
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
