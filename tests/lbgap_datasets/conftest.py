from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MNIST_SUBSET_ENV = "LBGAP_MNIST_SUBSET"


def _load_fake_vision_files() -> None:
    """Import this folder's ``fake_vision_files.py`` as ``fake_vision_files`` (no sys.path change)."""
    if "fake_vision_files" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fake_vision_files", HERE / "fake_vision_files.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["fake_vision_files"] = module
        spec.loader.exec_module(module)


_load_fake_vision_files()
import fake_vision_files  # noqa: E402


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture(scope="session")
def mnist_subset_root() -> Path:
    """The real partial MNIST copy (22,699 train images), or a skip saying where it was looked for."""
    candidates = [Path(os.environ[MNIST_SUBSET_ENV])] if os.environ.get(MNIST_SUBSET_ENV) else []
    candidates.append(REPO.parent / "shared" / "data" / "mnist-subset")
    for root in candidates:
        if (root / "MNIST" / "raw").is_dir():
            return root
    pytest.skip(
        "real MNIST subset not found (looked in "
        + ", ".join(str(c / "MNIST" / "raw") for c in candidates)
        + f"); set ${MNIST_SUBSET_ENV} to the folder holding MNIST/raw/"
    )


@pytest.fixture(scope="session")
def fake_cifar10(tmp_path_factory) -> tuple[Path, dict]:
    """Small CIFAR-10 files (5 x 60 train, 50 test images) in the exact on-disk layout."""
    root = tmp_path_factory.mktemp("cifar10")
    return root, fake_vision_files.write_cifar10(root, per_batch=60, n_test=50, seed=1)


@pytest.fixture(scope="session")
def fake_patch_cifar10(tmp_path_factory) -> tuple[Path, dict]:
    """CIFAR-10 files large enough for the patch statistics (5 x 200 train, 400 test images)."""
    root = tmp_path_factory.mktemp("patch_cifar10")
    return root, fake_vision_files.write_cifar10(root, per_batch=200, n_test=400, seed=2)
