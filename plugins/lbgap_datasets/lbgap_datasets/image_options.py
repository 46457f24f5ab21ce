"""Normalisation and augmentation settings of the image data sets, and the tensors they give.

Images are converted to ``float`` in ``[0, 1]`` (``ToTensor``'s ``/255``) and
normalised **once**, when the data set is built, on the device. The optional
augmentation (pad-and-random-crop, horizontal flip) then runs as an on-device
train transform on the normalised tensors; a constant pad fill given in pixel
units is converted to normalised units per channel, which equals padding
before normalising as torchvision pipelines do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, Optional

from pydantic import Field, NonNegativeInt, model_validator

from lbgap.api import PluginConfig

if TYPE_CHECKING:
    import torch

    from lbgap.api import BatchTransform

__all__ = [
    "NormalizationOptions",
    "ImageOptions",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "images_to_float",
    "augmentation_transform",
]

#: ImageNet statistics (Hoffer et al.'s CIFAR code normalises with these).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizationOptions(PluginConfig):
    """Normalisation fields shared by the image data sets.

    A subclass declares ``normalization`` (a ``Literal`` of its presets and
    ``"custom"``) and sets ``PRESETS`` (preset name → ``(mean, std)``, or
    ``None`` for no normalisation) and ``CHANNELS``.
    """

    PRESETS: ClassVar[dict[str, Optional[tuple[tuple[float, ...], tuple[float, ...]]]]] = {}
    CHANNELS: ClassVar[int] = 1

    mean: Optional[tuple[float, ...]] = None
    """Per-channel mean for ``normalization: custom`` (pixel units, [0, 1]); must be unset otherwise."""
    std: Optional[tuple[float, ...]] = None
    """Per-channel standard deviation for ``normalization: custom``; must be unset otherwise."""

    @model_validator(mode="after")
    def _check_normalization(self) -> NormalizationOptions:
        preset = getattr(self, "normalization", "custom")
        if preset == "custom":
            if self.mean is None or self.std is None:
                raise ValueError("normalization 'custom' needs both `mean` and `std`")
            for key, values in (("mean", self.mean), ("std", self.std)):
                if len(values) not in (1, self.CHANNELS):
                    raise ValueError(f"`{key}` needs 1 or {self.CHANNELS} values, got {len(values)}")
            if any(v <= 0 for v in self.std):
                raise ValueError("`std` values must be positive")
        elif self.mean is not None or self.std is not None:
            raise ValueError(f"`mean`/`std` are only used with normalization 'custom', not {preset!r}")
        return self

    def mean_std(self) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
        """The normalisation constants in force, one value per channel, or ``None`` for none."""
        preset = getattr(self, "normalization", "custom")
        if preset == "custom":
            assert self.mean is not None and self.std is not None
            mean, std = self.mean, self.std
        else:
            stats = self.PRESETS[preset]
            if stats is None:
                return None
            mean, std = stats
        c = self.CHANNELS
        return (tuple(mean) * c if len(mean) == 1 else tuple(mean)), (
            tuple(std) * c if len(std) == 1 else tuple(std)
        )

    def describe_normalization(self) -> str:
        """A short description of the normalisation for the data description."""
        stats = self.mean_std()
        if stats is None:
            return "pixels in [0,1], not normalised"
        mean, std = stats
        preset = getattr(self, "normalization", "custom")
        return (
            f"normalised ({preset}: mean {','.join(f'{v:.4g}' for v in mean)}, "
            f"std {','.join(f'{v:.4g}' for v in std)})"
        )


class ImageOptions(NormalizationOptions):
    """Normalisation and augmentation fields shared by the image data sets."""

    pad_crop: NonNegativeInt = 0
    """Training augmentation: pad each image by this many pixels and crop a random window of the
    original size (torchvision ``RandomCrop(size, padding)``); 0 turns it off (the default).
    Hoffer et al.'s code: 4 on CIFAR, 2 on MNIST."""
    pad_mode: Literal["constant", "reflect"] = "constant"
    """Padding for ``pad_crop``: ``constant`` (``pad_fill``, Hoffer et al.) or ``reflect`` (Li, Wei & Ma)."""
    pad_fill: float = Field(default=0.0, ge=0.0, le=1.0)
    """Value of the padded pixels for ``pad_mode: constant``, in pixel units [0, 1] before
    normalisation. 0.0 is torchvision's ``RandomCrop`` default (black); Hoffer et al.'s CIFAR code
    pads the uint8 image with 127, i.e. 127/255 = 0.4980392156862745."""
    hflip: bool = False
    """Training augmentation: mirror images left-right at random (off by default). Hoffer et al.'s
    code flips on CIFAR and, oddly for digits, on MNIST too."""
    hflip_prob: float = Field(default=0.5, ge=0.0, le=1.0)
    """Probability of mirroring an image when ``hflip`` is on."""

    def describe_preprocessing(self) -> str:
        """A short description of normalisation and augmentation for the data description."""
        aug = []
        if self.pad_crop:
            how = f"fill {self.pad_fill:.4g}" if self.pad_mode == "constant" else "reflect"
            aug.append(f"pad {self.pad_crop} ({how}) + random crop")
        if self.hflip:
            aug.append(f"hflip p={self.hflip_prob:g}")
        return f"{self.describe_normalization()}; train augmentation: " + (", ".join(aug) if aug else "none")


def images_to_float(
    images: torch.Tensor, options: NormalizationOptions, device: torch.device
) -> torch.Tensor:
    """``uint8`` images ``[N, C, H, W]`` → normalised ``float32`` on ``device`` (one conversion)."""
    import torch  # this and the transforms load when a data set is built, not when a study is validated

    from .transforms import channel_view

    x = images.to(device).to(torch.float32).div_(255.0)
    stats = options.mean_std()
    if stats is None:
        return x
    mean, std = (torch.tensor(v, dtype=torch.float64) for v in stats)
    # in place on the fresh tensor: the same arithmetic as transforms.normalize, no temporaries
    return x.sub_(channel_view(mean, x)).div_(channel_view(std, x))


def augmentation_transform(options: ImageOptions) -> Optional[BatchTransform]:
    """The train transform for the augmentation settings (on normalised images), or ``None``."""
    from .transforms import Compose, RandomHorizontalFlip, RandomPadCrop

    steps: list[BatchTransform] = []
    if options.pad_crop:
        stats = options.mean_std()
        fill: float | tuple[float, ...]
        if stats is None:
            fill = options.pad_fill
        else:
            mean, std = stats
            fill = tuple((options.pad_fill - m) / s for m, s in zip(mean, std, strict=True))
        steps.append(RandomPadCrop(options.pad_crop, fill=fill, mode=options.pad_mode))
    if options.hflip and options.hflip_prob > 0:
        steps.append(RandomHorizontalFlip(options.hflip_prob))
    return Compose.of(steps)
