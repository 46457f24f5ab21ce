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

from lbgap.api import DatasetPlugin, Deferred, hookimpl

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


def dataset_plugins() -> list[DatasetPlugin]:
    """Every dataset plugin of this package."""
    return [
        DatasetPlugin(name="mnist1d", config=MNIST1DConfig, build=Deferred(".mnist1d", "build_mnist1d", __name__)),
        DatasetPlugin(name="mnist", config=MNISTConfig, build=Deferred(".torchvision_sets", "build_mnist", __name__)),
        DatasetPlugin(name="cifar10", config=CIFAR10Config, build=Deferred(".torchvision_sets", "build_cifar10", __name__)),
        DatasetPlugin(name="cifar100", config=CIFAR100Config, build=Deferred(".torchvision_sets", "build_cifar100", __name__)),
        DatasetPlugin(
            name="patch_cifar10", config=PatchCIFAR10Config, build=Deferred(".patch_cifar", "build_patch_cifar10", __name__)
        ),
        DatasetPlugin(name="digits", config=DigitsConfig, build=Deferred(".digits", "build_digits", __name__)),
        DatasetPlugin(name="timit_frames", config=TimitFramesConfig, build=Deferred(".timit", "build_timit_frames", __name__)),
    ]


@hookimpl
def lbgap_register_datasets() -> list[DatasetPlugin]:
    """Register the first-party dataset plugins."""
    return dataset_plugins()
