"""On-device batch transforms: normalisation, pad-and-random-crop, horizontal flip.

Every transform is a callable ``transform(x, generator) -> x`` acting on a
whole batch ``x`` of shape ``[B, C, ...]`` (images ``[B, C, H, W]``) on the
device where ``x`` lives. Random choices come from the ``generator`` passed in
(the trial's data generator, on the same device), so augmentation is
reproducible. No transform loops over samples in Python: padding is done once
for the batch, crops are gathered from an ``unfold`` view by one advanced
index, flips are selected with a mask.

Random draws per call, in this order (the stream a generator sees):

* :class:`RandomPadCrop`: ``B`` row offsets, then ``B`` column offsets, each
  uniform on ``{0, ..., 2 * padding}`` (torchvision's ``RandomCrop`` after
  ``Pad``: offset ``padding`` is the uncropped image).
* :class:`RandomHorizontalFlip`: ``B`` uniform numbers; sample ``b`` is flipped
  iff its number is ``< p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from lbgap.api import BatchTransform

__all__ = [
    "Compose",
    "Normalize",
    "RandomPadCrop",
    "RandomHorizontalFlip",
    "channel_view",
    "normalize",
]


def channel_view(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-channel ``values`` ``[C]`` to broadcast over ``x`` ``[B, C, ...]``."""
    return values.to(device=x.device, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 2)))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel (dimension 1); returns a new tensor.

    ``mean`` and ``std`` have one entry per channel, or a single entry used for
    every channel.
    """
    if x.dim() < 2:
        raise ValueError(f"expected a batch [B, C, ...], got shape {tuple(x.shape)}")
    channels = x.shape[1]
    m = torch.as_tensor(list(mean), dtype=torch.float64)
    s = torch.as_tensor(list(std), dtype=torch.float64)
    if m.numel() == 1:
        m = m.expand(channels)
    if s.numel() == 1:
        s = s.expand(channels)
    if m.numel() != channels or s.numel() != channels:
        raise ValueError(f"mean/std have {m.numel()}/{s.numel()} entries for {channels} channels")
    if bool((s <= 0).any()):
        raise ValueError("std must be positive")
    return (x - channel_view(m, x)) / channel_view(s, x)


class Normalize:
    """Per-channel ``(x - mean) / std``; deterministic (the generator is unused).

    Parameters
    ----------
    mean, std:
        One value per channel, or one value for all channels.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if any(v <= 0 for v in self.std):
            raise ValueError("std must be positive")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return normalize(x, self.mean, self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomPadCrop:
    """Pad every image by ``padding`` pixels, then crop a random window of the original size.

    The batched equivalent of torchvision's ``RandomCrop(size, padding=p,
    fill=f, padding_mode=mode)`` (equivalently ``Pad(p, fill=f)`` followed by
    ``RandomCrop(size)``), with an independent offset for every sample.

    Parameters
    ----------
    padding:
        Pixels added on each side (> 0).
    fill:
        Value of the padded pixels for ``mode="constant"``, in the units of the
        tensor the transform sees: one value, or one per channel. A loader that
        normalises its images at load time converts a fill given in pixel units
        with ``(fill - mean) / std`` per channel, which is what padding before
        normalising gives (Hoffer et al.'s CIFAR code pads the uint8 image with
        127, i.e. 127/255 ≈ 0.498 after ``ToTensor``).
    mode:
        ``"constant"`` (fill value) or ``"reflect"`` (mirror without repeating
        the edge, as ``torch.nn.functional.pad``; Li, Wei & Ma's CIFAR code).
    """

    def __init__(
        self,
        padding: int,
        fill: float | Sequence[float] = 0.0,
        mode: Literal["constant", "reflect"] = "constant",
    ) -> None:
        if padding <= 0:
            raise ValueError("padding must be positive")
        if mode not in ("constant", "reflect"):
            raise ValueError(f"mode must be 'constant' or 'reflect', not {mode!r}")
        self.padding = int(padding)
        self.fill = (float(fill),) if isinstance(fill, (int, float)) else tuple(float(v) for v in fill)
        self.mode = mode
        self._fill_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def sample_offsets(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column offsets into the padded image, each ``[batch]`` in ``[0, 2 * padding]``."""
        high = 2 * self.padding + 1
        rows = torch.randint(0, high, (batch,), generator=generator, device=device)
        cols = torch.randint(0, high, (batch,), generator=generator, device=device)
        return rows, cols

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """The padded batch ``[B, C, H + 2p, W + 2p]``."""
        p = self.padding
        if self.mode == "reflect":
            return F.pad(x, (p, p, p, p), mode="reflect")
        if len(self.fill) == 1:
            return F.pad(x, (p, p, p, p), mode="constant", value=self.fill[0])
        if len(self.fill) != x.shape[1]:
            raise ValueError(f"{len(self.fill)} fill values for {x.shape[1]} channels")
        b, c, h, w = x.shape
        key = (x.device, x.dtype)
        fill = self._fill_cache.get(key)
        if fill is None:
            fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
            self._fill_cache[key] = fill
        out = fill.expand(b, c, h + 2 * p, w + 2 * p).contiguous()
        out[:, :, p : p + h, p : p + w] = x
        return out

    def crop(
        self, padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Gather the window ``[rows_b : rows_b + H, cols_b : cols_b + W]`` of every sample.

        ``unfold`` views every window position without copying (``[B, 2p+1, 2p+1, C, H, W]``
        after the permute); one advanced index on (sample, row offset, column offset) copies the
        chosen windows.
        """
        h, w = size
        windows = padded.unfold(2, h, 1).unfold(3, w, 1).permute(0, 2, 3, 1, 4, 5)
        batch = torch.arange(padded.shape[0], device=padded.device)
        return windows[batch, rows, cols]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"RandomPadCrop expects images [B, C, H, W], got shape {tuple(x.shape)}")
        rows, cols = self.sample_offsets(x.shape[0], generator, x.device)
        return self.crop(self.pad(x), rows, cols, (x.shape[2], x.shape[3]))

    def __repr__(self) -> str:
        return f"RandomPadCrop(padding={self.padding}, fill={self.fill}, mode={self.mode!r})"


class RandomHorizontalFlip:
    """Mirror each image left-right (last dimension) with probability ``p``.

    Parameters
    ----------
    p:
        Flip probability, in ``[0, 1]``.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be in [0, 1]")
        self.p = float(p)

    def sample_mask(self, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Which samples are flipped, a bool tensor ``[batch]``."""
        return torch.rand(batch, generator=generator, device=device) < self.p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mask = self.sample_mask(x.shape[0], generator, x.device)
        # one gather along the last dimension: reversed column order for the flipped samples
        w = x.shape[-1]
        cols = torch.arange(w, device=x.device)
        index = torch.where(mask.view(-1, 1), (w - 1) - cols, cols)
        index = index.view(x.shape[0], *([1] * (x.dim() - 2)), w).expand(x.shape)
        return torch.gather(x, -1, index)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Compose:
    """Apply batch transforms in order: ``Compose([a, b])(x, g) == b(a(x, g), g)``."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"

    @staticmethod
    def of(transforms: Sequence[BatchTransform]) -> BatchTransform | None:
        """``None`` for no transform, the transform itself for one, else a :class:`Compose`."""
        ts = [t for t in transforms if t is not None]
        if not ts:
            return None
        return ts[0] if len(ts) == 1 else Compose(ts)
