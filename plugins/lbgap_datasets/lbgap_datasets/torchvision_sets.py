"""The ``mnist``, ``cifar10`` and ``cifar100`` dataset plugins (files read through torchvision).

The files are never downloaded unless ``download: true``. Where they are
missing, the build fails with :class:`~lbgap_datasets.common.DatasetFilesMissing`
naming the files and the folder they belong in. Inputs are ``float32``
``[N, C, H, W]`` (MNIST ``[N, 1, 28, 28]``, CIFAR ``[N, 3, 32, 32]``), converted
from ``uint8`` and normalised once per build on the device.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal, Optional

import torch

from lbgap.api import InMemoryData

from .common import SubsetConfig, data_root, describe_subset, resolve_seed, subset_indices
from .image_options import IMAGENET_MEAN, IMAGENET_STD, ImageOptions, augmentation_transform, images_to_float
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
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
#: CIFAR-10 per-channel statistics of the training images, (125.3, 123.0, 113.9)/255 and
#: (63.0, 62.1, 66.7)/255: the constants of Li, Wei & Ma's code (and Zagoruyko's WRN code).
CIFAR10_MEAN = tuple(v / 255.0 for v in (125.3, 123.0, 113.9))
CIFAR10_STD = tuple(v / 255.0 for v in (63.0, 62.1, 66.7))
#: CIFAR-100 per-channel statistics of the training images, (129.3, 124.1, 112.4)/255 and
#: (68.2, 65.4, 70.4)/255 (Zagoruyko's WRN code).
CIFAR100_MEAN = tuple(v / 255.0 for v in (129.3, 124.1, 112.4))
CIFAR100_STD = tuple(v / 255.0 for v in (68.2, 65.4, 70.4))
#: Normalisation presets of the CIFAR sets: name → (mean, std) or None.
CIFAR10_PRESETS: dict = {
    "dataset": (CIFAR10_MEAN, CIFAR10_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "half": ((0.5,) * 3, (0.5,) * 3),
    "none": None,
}
CIFAR100_PRESETS: dict = {**CIFAR10_PRESETS, "dataset": (CIFAR100_MEAN, CIFAR100_STD)}


class FileOptions(SubsetConfig):
    """Where the files are and whether to download them (mixed into the file-based configs)."""

    root: Optional[str] = None
    """Data folder (``~`` expanded); ``null`` uses ``$LBGAP_DATA`` or else ``~/.cache/lbgap/data``."""
    download: bool = False
    """Download the files with torchvision when they are missing (needs a network connection)."""


class MNISTConfig(FileOptions, ImageOptions):
    """MNIST digits from torchvision's file layout (<root>/MNIST/raw/*[.gz]), inputs [1, 28, 28].

    Normalisation presets: ``dataset`` (0.1307, 0.3081), the usual statistics of the 60,000
    training images; ``half`` (0.5, 0.5) as Hoffer et al.'s code; ``none`` (pixels in [0, 1], as
    Keskar et al. "without any pre-processing"); ``custom`` (``mean``/``std``). Hoffer et al.'s
    training augmentation is ``pad_crop: 2, hflip: true``. The description says when the files hold
    fewer than the official 60,000 training images.
    """

    PRESETS: ClassVar = {"dataset": (MNIST_MEAN, MNIST_STD), "half": ((0.5,), (0.5,)), "none": None}
    CHANNELS: ClassVar[int] = 1

    normalization: Literal["dataset", "half", "none", "custom"] = "dataset"
    """Normalisation constants: ``dataset`` (0.1307, 0.3081), ``half`` (0.5, 0.5; Hoffer et al.),
    ``none``, or ``custom`` (``mean``/``std``)."""


class _CIFAROptions(FileOptions, ImageOptions):
    CHANNELS: ClassVar[int] = 3

    normalization: Literal["dataset", "imagenet", "half", "none", "custom"] = "dataset"
    """Normalisation constants: ``dataset`` (this data set's per-channel training statistics),
    ``imagenet`` ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225); Hoffer et al.'s code), ``half``
    (0.5 for every channel), ``none`` (pixels in [0, 1]; Keskar et al.), or ``custom``."""
    verify_md5: bool = True
    """Check the batch files against torchvision's md5 sums (the official files pass). Turn off only
    for re-packed files in the same format."""


class CIFAR10Config(_CIFAROptions):
    """CIFAR-10 from torchvision's file layout (<root>/cifar-10-batches-py/), inputs [3, 32, 32].

    ``normalization: dataset`` uses (125.3, 123.0, 113.9)/255 and (63.0, 62.1, 66.7)/255 (Li, Wei &
    Ma's constants). Hoffer et al.'s preprocessing is ``normalization: imagenet, pad_crop: 4,
    pad_fill: 0.4980392156862745, hflip: true``.
    """

    PRESETS: ClassVar = CIFAR10_PRESETS


class CIFAR100Config(_CIFAROptions):
    """CIFAR-100 (100 fine labels) from torchvision's file layout (<root>/cifar-100-python/), inputs [3, 32, 32].

    ``normalization: dataset`` uses (129.3, 124.1, 112.4)/255 and (68.2, 65.4, 70.4)/255. Hoffer et
    al.'s preprocessing is ``normalization: imagenet, pad_crop: 4, pad_fill: 0.4980392156862745,
    hflip: true``.
    """

    PRESETS: ClassVar = CIFAR100_PRESETS


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
