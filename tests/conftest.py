from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
# one thread: the small networks of the tests run fastest so, and a shared
# machine does not turn OpenMP's waiting threads into a slowdown
import torch  # noqa: E402

torch.set_num_threads(1)


def _study_tools():
    """tests/study_tools.py as ``study_tools``, without putting tests/ on sys.path (test folders are
    named like the plugin packages they test); its ``import_as`` loads the other helper modules."""
    if "study_tools" not in sys.modules:
        spec = importlib.util.spec_from_file_location("study_tools", ROOT / "tests" / "study_tools.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["study_tools"] = module
        spec.loader.exec_module(module)
    return sys.modules["study_tools"]


study_tools = _study_tools()


def _load_toy_plugins():
    """tests/toy_plugins.py as ``toy_plugins``."""
    return study_tools.import_as("toy_plugins", ROOT / "tests" / "toy_plugins.py")


_load_toy_plugins()


@pytest.fixture(scope="session")
def toy_registry():
    """A registry of the built-in training plugins plus the toy data and model."""
    import lbgap_training

    toy_plugins = _load_toy_plugins()

    from lbgap.registry import Registry

    return Registry.from_plugins(
        [("training", lbgap_training, "lbgap", "0"), ("toy", toy_plugins, "tests", "0")]
    )


TOY_SPEC = """\
study: toy
description: toy study for tests
base:
  dataset: {name: blobs}
  model: {name: tiny_mlp}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  schedule: {name: multistep, milestones: [2], gamma: 0.1}
  batch_size: 32
  epochs: 3
variants:
  small: {}
  large:
    batch_size: 128
    regime:
      - {name: lr_scaling, rule: sqrt, reference_batch: 32}
seeds: [0, 1]
"""


@pytest.fixture(scope="session")
def study_tool():
    """Load a script of ``studies/tools/`` (the scripts that print the documented tables) as a module,
    by its file name without ``.py`` (``tests/study_tools.py``)."""
    return study_tools.load


@pytest.fixture
def toy_spec_text() -> str:
    return TOY_SPEC


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server started for the test session (skips if the binaries are absent)."""
    spec = importlib.util.spec_from_file_location("postgres_server", ROOT / "tests" / "postgres_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.find_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    gen = module.run_server()
    url = next(gen)
    yield url
    try:
        next(gen)
    except StopIteration:
        pass
