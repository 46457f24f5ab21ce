"""The ``mnist``, ``cifar10`` and ``cifar100`` dataset plugins (files read through torchvision).

The files are never downloaded unless ``download: true``. Where they are
missing, the build fails with :class:`~lbgap_datasets.common.DatasetFilesMissing`
naming the files and the folder they belong in. Inputs are ``float32``
``[N, C, H, W]`` (MNIST ``[N, 1, 28, 28]``, CIFAR ``[N, 3, 32, 32]``), converted
from ``uint8`` and normalised once per build on the device.
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from lbgap.api import InMemoryData

from .common import SubsetConfig, data_root, describe_subset, resolve_seed, subset_indices
from .configs import (
    CIFAR10_MEAN,
    CIFAR10_PRESETS,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_PRESETS,
    CIFAR100_STD,
    CIFAR10Config,
    CIFAR100Config,
    FileOptions,
    MNISTConfig,
    _CIFAROptions,
)
from .image_options import ImageOptions, augmentation_transform, images_to_float
from .torchvision_files import CIFAR_INFO, RawSplit, load_cifar_split, load_mnist_split

__all__ = [
    "MNISTConfig",
    "CIFAR10Config",
    "CIFAR100Config",
    "build_mnist",
    "build_cifar10",
    "build_cifar100",
    "MNIST_OFFICIAL_TRAIN",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR10_PRESETS",
    "CIFAR100_PRESETS",
    "FileOptions",
    "to_in_memory",
]

log = logging.getLogger(__name__)

#: Size of the official MNIST training set; fewer images in the files means a partial copy.
MNIST_OFFICIAL_TRAIN = 60000


def _take(split: RawSplit, cfg: SubsetConfig, n: Optional[int], seed: int, name: str) -> tuple[RawSplit, str]:
    idx = subset_indices(len(split.labels), n, cfg.subset, seed, split=name)
    if idx is None:
        return split, describe_subset(len(split.labels), len(split.labels), cfg.subset, seed)
    kept = RawSplit(images=split.images[idx], labels=split.labels[idx], source=split.source)
    return kept, describe_subset(len(idx), len(split.labels), cfg.subset, seed)


def to_in_memory(
    train: RawSplit,
    test: RawSplit,
    cfg: FileOptions,
    *,
    seed: int,
    device: torch.device,
    num_classes: int,
    title: str,
    note: str = "",
) -> InMemoryData:
    """Subset, convert and normalise two raw splits into an :class:`InMemoryData` on ``device``."""
    assert isinstance(cfg, ImageOptions)
    subset_seed = resolve_seed(cfg.subset_seed, seed)
    train, train_desc = _take(train, cfg, cfg.n_train, subset_seed, "train")
    test, test_desc = _take(test, cfg, cfg.n_test, subset_seed, "test")
    description = f"{title} from {train.source}: train {train_desc}{note}; test {test_desc}; {cfg.describe_preprocessing()}"
    return InMemoryData(
        train_x=images_to_float(train.images, cfg, device),
        train_y=train.labels.to(device),
        test_x=images_to_float(test.images, cfg, device),
        test_y=test.labels.to(device),
        num_classes=num_classes,
        train_transform=augmentation_transform(cfg),
        eval_transform=None,
        description=description,
    )


def build_mnist(cfg: MNISTConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``mnist`` data set (see :class:`MNISTConfig`)."""
    root = str(data_root(cfg.root))
    train = load_mnist_split(root, True, cfg.download)
    test = load_mnist_split(root, False, cfg.download)
    note = ""
    if len(train.labels) < MNIST_OFFICIAL_TRAIN:
        note = (
            f" [the files hold only {len(train.labels)} of the official {MNIST_OFFICIAL_TRAIN} MNIST "
            "training images: a partial training set]"
        )
        log.warning(
            "MNIST at %s: training files hold %d of %d images", root, len(train.labels), MNIST_OFFICIAL_TRAIN
        )
    return to_in_memory(train, test, cfg, seed=seed, device=device, num_classes=10, title="MNIST", note=note)


def build_cifar(which: str, cfg: _CIFAROptions, *, seed: int, device: torch.device) -> InMemoryData:
    """Build ``cifar10`` or ``cifar100`` (see :class:`CIFAR10Config`)."""
    _, _, display, num_classes = CIFAR_INFO[which]
    root = str(data_root(cfg.root))
    train = load_cifar_split(which, root, True, cfg.download, cfg.verify_md5)
    test = load_cifar_split(which, root, False, cfg.download, cfg.verify_md5)
    note = "" if cfg.verify_md5 else " (md5 not verified)"
    return to_in_memory(
        train, test, cfg, seed=seed, device=device, num_classes=num_classes, title=display, note=note
    )


def build_cifar10(cfg: CIFAR10Config, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``cifar10`` data set."""
    return build_cifar("cifar10", cfg, seed=seed, device=device)


def build_cifar100(cfg: CIFAR100Config, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``cifar100`` data set."""
    return build_cifar("cifar100", cfg, seed=seed, device=device)
