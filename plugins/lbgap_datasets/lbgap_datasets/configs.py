"""The configuration models of this package's data sets, and the constants they use.

They import no torch (nor torchvision), so a study file is validated without loading it; the
modules named in :func:`lbgap_datasets.dataset_plugins` load the data and are imported when a
data set is built.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from lbgap.api import PluginConfig

from .common import DataSeed, SubsetConfig
from .image_options import IMAGENET_MEAN, IMAGENET_STD, ImageOptions, NormalizationOptions

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR10_PRESETS",
    "CIFAR100_PRESETS",
    "IMAGE_SIZE",
    "FileOptions",
    "MNISTConfig",
    "CIFAR10Config",
    "CIFAR100Config",
    "PatchCIFAR10Config",
    "patch_start",
    "DigitsConfig",
    "MNIST1DConfig",
    "TimitFramesConfig",
]


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


IMAGE_SIZE = 32


class PatchCIFAR10Config(FileOptions, NormalizationOptions):
    """CIFAR-10 with Li, Wei & Ma (2019)'s 7x7 class patches (20% clean / 16% patch-only / 64% both).

    Every default is the value in the authors' ``train_patches.py``/``data_util.py``. Groups
    ``clean``, ``mixed``, ``patched``, ``patch_only`` give per-epoch test accuracies.
    """

    PRESETS: ClassVar = CIFAR10_PRESETS
    CHANNELS: ClassVar[int] = 3

    normalization: Literal["dataset", "imagenet", "half", "none", "custom"] = "dataset"
    """Normalisation applied before the patch is written; ``dataset`` is the authors'
    (125.3, 123.0, 113.9)/255 and (63.0, 62.1, 66.7)/255."""
    verify_md5: bool = True
    """Check the CIFAR-10 batch files against torchvision's md5 sums (the official files pass)."""
    patch_size: PositiveInt = Field(default=7, le=IMAGE_SIZE)
    """Side of the square patch in pixels (authors: 7)."""
    z_scale: float = Field(default=1.25, ge=0.0)
    """Scale of the shared pattern ``z = z_scale · randn(3, p, p)`` (authors: 1.25)."""
    patch_sep: float = Field(default=0.1, gt=0.0)
    """Half-width of the class patterns ``ζ ~ U[-patch_sep, patch_sep]`` (authors: 0.1)."""
    num_patterns: PositiveInt = 1
    """Patterns per class; one is chosen uniformly at each load (authors: 1)."""
    patch_only_prob: float = Field(default=0.2, ge=0.0, le=1.0)
    """Probability that a patched image is replaced by the patch alone (authors: 0.2)."""
    patch_only_scale: float = Field(default=1.75, ge=0.0)
    """Patch-only images use ``z + s · patch_only_scale · U(0,1) · ζ`` (authors: 1.75)."""
    patch_loc: Literal["center", "corner"] = "center"
    """Patch location: ``center`` starts at ``int(16 - patch_size/2)`` (12), ``corner`` at 0
    (authors: center)."""
    prop_augment: float = Field(default=0.8, ge=0.0, le=1.0)
    """Fraction of train (and test) images that carry a patch; the set is fixed (authors: 0.8)."""
    data_seed: DataSeed = 2
    """Seed of the patterns, of the fixed patched sets, of the probe labels and of any draws made at
    build (authors: ``--seed 2``). Independent of the trial seed unless ``"trial"``; the per-load
    draws of training come from the trial's generator."""
    resample_train: bool = True
    """Redraw sign, pattern and kind of every patched training image at each load (the authors'
    per-epoch draws). ``false`` draws them once at build."""
    resample_test: bool = True
    """Redraw the ``mixed`` and ``patch_only`` test draws at each evaluation (authors). ``false``
    draws them once at build (a fixed test set)."""
    patch_probe_size: NonNegativeInt = 1000
    """Number of all-zero probe images in the ``patch_only`` group (authors: 1000); 0 drops the group."""

    @model_validator(mode="after")
    def _check_patch(self) -> PatchCIFAR10Config:
        start = patch_start(self.patch_loc, self.patch_size)
        if start < 0 or start + self.patch_size > IMAGE_SIZE:
            raise ValueError(
                f"a {self.patch_size}-pixel patch at {self.patch_loc!r} does not fit a 32x32 image"
            )
        return self


def patch_start(patch_loc: str, patch_size: int) -> int:
    """First row/column of the patch (the authors' ``get_start_for_patch_loc``)."""
    if patch_loc == "corner":
        return 0
    if patch_loc == "center":
        return int(IMAGE_SIZE / 2 - patch_size / 2)
    raise ValueError(f"unknown patch location {patch_loc!r}")


class DigitsConfig(PluginConfig):
    """scikit-learn's 8×8 digits (1,797 images, 10 classes), seeded train/test split; inputs [64] or [1, 8, 8]."""

    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Fraction of the images held out as the test split."""
    split_seed: DataSeed = 0
    """Seed of the train/test split; ``"trial"`` draws a different split per trial seed. The
    default fixed seed keeps the data the same across trial seeds."""
    stratify: bool = True
    """Keep the class proportions equal in both splits (scikit-learn's ``stratify=y``)."""
    shape: Literal["flat", "image"] = "flat"
    """Input shape: ``flat`` [64] for MLPs or ``image`` [1, 8, 8] for convolutions."""


class MNIST1DConfig(PluginConfig):
    """MNIST-1D (Greydanus 2020), generated offline by the mnist1d package; inputs [40] (or [1, 40]).

    Defaults are ``mnist1d.data.get_dataset_args()``: 5000 samples, 80% train (4000 train /
    1000 test), seed 42.
    """

    num_samples: PositiveInt = 5000
    """Samples generated in total (train + test); ``num_samples // 10`` per class are made, so the
    total is rounded down to a multiple of 10. Package default 5000."""
    train_split: float = Field(default=0.8, gt=0.0, lt=1.0)
    """Fraction of the samples in the training split (package default 0.8)."""
    data_seed: DataSeed = 42
    """Seed of the generator (package default 42). Independent of the trial seed: the data set is
    the same across trial seeds unless set to ``"trial"``."""
    template_len: PositiveInt = 12
    """Dilation length term: a padded template is resampled to ``template_len + padding[1]`` points
    (package default 12, the length of the package's templates)."""
    padding: tuple[NonNegativeInt, NonNegativeInt] = (36, 60)
    """Range of zero padding appended to a template before dilation (package default [36, 60])."""
    scale_coeff: float = Field(default=0.4, ge=0.0)
    """Amplitude scaling: multiply by ``1 + scale_coeff * (U - 0.5)`` (package default 0.4)."""
    max_translation: PositiveInt = 48
    """Circular translation by up to this many steps (package default 48)."""
    corr_noise_scale: float = Field(default=0.25, ge=0.0)
    """Scale of the correlated (Gaussian-filtered) background noise (package default 0.25)."""
    iid_noise_scale: float = Field(default=2e-2, ge=0.0)
    """Scale of the i.i.d. Gaussian noise (package default 0.02)."""
    shear_scale: float = Field(default=0.75, ge=0.0)
    """Scale of the random linear shear (package default 0.75)."""
    shuffle_seq: bool = False
    """Permute the 40 positions with one fixed random permutation (package default false)."""
    final_seq_length: PositiveInt = 40
    """Length of each generated signal (package default 40)."""
    standardize: bool = False
    """Additionally standardise every position with the training split's mean and standard
    deviation. (The package already centres and scales the whole array to mean 0, std 1.)"""
    shape: Literal["flat", "channel"] = "flat"
    """Input shape: ``flat`` [40] for MLPs, ``channel`` [1, 40] for 1-D convolutions."""

    @model_validator(mode="after")
    def _check(self) -> MNIST1DConfig:
        if self.padding[0] > self.padding[1]:
            raise ValueError("padding must be (low, high) with low <= high")
        if self.num_samples < 10:
            raise ValueError("num_samples must be at least 10 (one per class)")
        n_train = int((self.num_samples // 10) * 10 * self.train_split)
        if n_train == 0 or n_train == (self.num_samples // 10) * 10:
            raise ValueError("train_split leaves an empty train or test split")
        return self


class TimitFramesConfig(SubsetConfig):
    """TIMIT frame features from a user-provided .npz (train_x/train_y/test_x/test_y); Keskar et al.'s F2 data.

    Defaults follow Keskar et al. (2017): 360 features per frame, 1,973 classes.
    """

    path: str = "timit/timit_frames.npz"
    """The ``.npz`` file; a relative path is taken relative to the data folder (``root``, else
    ``$LBGAP_DATA``, else ``~/.cache/lbgap/data``)."""
    root: Optional[str] = None
    """Data folder for a relative ``path``; ``null`` uses ``$LBGAP_DATA`` or ``~/.cache/lbgap/data``."""
    num_features: PositiveInt = 360
    """Features per frame; the file must match (Keskar et al.: 360)."""
    num_classes: PositiveInt = 1973
    """Number of classes; every label must lie in ``[0, num_classes)`` (Keskar et al.: 1,973)."""
    standardize: bool = False
    """Standardise every feature with the training split's mean and standard deviation. Off by
    default: Keskar et al. used the Kaldi features as they were."""
