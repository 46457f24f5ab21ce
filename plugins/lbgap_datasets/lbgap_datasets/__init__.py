"""First-party dataset plugins of lbgap.

=================  ==========================================================
name               data
=================  ==========================================================
``mnist1d``        MNIST-1D generated offline by the ``mnist1d`` package
``mnist``          MNIST from torchvision's file layout (``.gz`` files suffice)
``cifar10``        CIFAR-10 from torchvision's file layout
``cifar100``       CIFAR-100 (fine labels) from torchvision's file layout
``patch_cifar10``  Li, Wei & Ma (2019)'s CIFAR-10 with 7×7 class patches
``digits``         scikit-learn's bundled 8×8 digits (no files needed)
``timit_frames``   user-provided TIMIT frame features in a ``.npz`` file
=================  ==========================================================

Every data set is the same across trial seeds unless a seed field is set to
``"trial"``. Files are read once per process and cached; nothing is
downloaded unless ``download: true``. On-device batch transforms live in
:mod:`lbgap_datasets.transforms`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from lbgap.api import DatasetPlugin, hookimpl

from .configs import (
    CIFAR10Config,
    CIFAR100Config,
    DigitsConfig,
    MNIST1DConfig,
    MNISTConfig,
    PatchCIFAR10Config,
    TimitFramesConfig,
)

__all__ = ["lbgap_register_datasets", "dataset_plugins"]


class _Deferred:
    # A build function of one of this package's modules, imported on its first call: registering
    # the plugins and validating a study import only the configuration models (.configs), and
    # torch and torchvision load when a data set is built. ``__doc__`` is the function's, for
    # `lbgap plugins show`.

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def resolve(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return self.resolve().__doc__

    def __repr__(self) -> str:
        return f"<build {__name__}.{self.module}.{self.name}>"


def dataset_plugins() -> list[DatasetPlugin]:
    """Every dataset plugin of this package."""
    return [
        DatasetPlugin(name="mnist1d", config=MNIST1DConfig, build=_Deferred("mnist1d", "build_mnist1d")),
        DatasetPlugin(name="mnist", config=MNISTConfig, build=_Deferred("torchvision_sets", "build_mnist")),
        DatasetPlugin(name="cifar10", config=CIFAR10Config, build=_Deferred("torchvision_sets", "build_cifar10")),
        DatasetPlugin(name="cifar100", config=CIFAR100Config, build=_Deferred("torchvision_sets", "build_cifar100")),
        DatasetPlugin(
            name="patch_cifar10", config=PatchCIFAR10Config, build=_Deferred("patch_cifar", "build_patch_cifar10")
        ),
        DatasetPlugin(name="digits", config=DigitsConfig, build=_Deferred("digits", "build_digits")),
        DatasetPlugin(name="timit_frames", config=TimitFramesConfig, build=_Deferred("timit", "build_timit_frames")),
    ]


@hookimpl
def lbgap_register_datasets() -> list[DatasetPlugin]:
    """Register the first-party dataset plugins."""
    return dataset_plugins()
