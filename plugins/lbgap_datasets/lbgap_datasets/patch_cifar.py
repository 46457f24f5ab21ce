"""The ``patch_cifar10`` dataset plugin: Li, Wei & Ma (2019)'s CIFAR-10 with 7×7 class patches.

This reproduces the authors' data code (``cwein3/large-lr-code``:
``data_util.py`` with the defaults of ``train_patches.py``):

* **Patterns**, drawn once: a shared ``z = z_scale · randn(3, 7, 7)`` and per
  class ``ζ[c, j] ~ U[-patch_sep, patch_sep]^(3×7×7)`` for ``j <
  num_patterns``. With ``data_seed: 2`` these are the draws of the authors'
  ``torch.manual_seed(2)`` followed by their ``pm_sym_pattern`` calls (CPU
  generator of the installed torch).
* **Which images carry a patch** is fixed once: image ``i`` iff ``u_i <
  prop_augment`` with ``u = numpy.random.random(N)`` after
  ``numpy.random.seed(data_seed)``, the train set first and then the test set,
  as ``FixedAugmentDataset`` does (80% of each).
* **At every load** of a patched image (every epoch; ``PatchAugmentFixed``
  runs inside ``__getitem__``) a pattern index ``j``, a sign ``s = ±1`` and
  the kind are drawn afresh: with probability ``1 - patch_only_prob`` (0.8)
  the patch **overwrites** the image pixels, ``img[:, 12:19, 12:19] = z +
  s·ζ[y, j]``; otherwise (0.2) the image is zeroed and ``img[:, 12:19, 12:19]
  = z + s·patch_only_scale·U(0, 1)·ζ[y, j]``. Overall: 20% clean, 16%
  patch-only, 64% image + patch.
* The patch is written **after** normalisation (``ToTensor`` and
  ``Normalize`` with (125.3, 123.0, 113.9)/255 and (63.0, 62.1, 66.7)/255), so
  z and ζ are in normalised units and "0" is the mean colour. No other
  augmentation (``load_data(..., augment=False)``).
* Location: ``start = int(16 - patch_size / 2)`` (12 for 7×7, rows and
  columns 12..18) for ``center``; 0 for ``corner``.

**How the per-load draws run here.** lbgap's batch transforms see only the
inputs ``x`` (not labels or indices), so every stored image that is to be
patched at load time holds a *marker* in its patch area: ``z + κ·ζ[y, 0]``
with ``κ = patch_only_scale + 2``, a value no draw produces (draws have
coefficients ``±1`` or ``|c| < patch_only_scale``). The
:class:`PatchTransform` finds the marked rows of a batch by exact comparison
with the ten markers (a clean image or an already drawn patch never equals
one), reads the class from the marker, and writes fresh draws from the trial
generator, on the device and without a per-sample loop. Code that reads
``train_x`` without the transform (a metric, say) sees the markers.

**Evaluation sets** (one test tensor, with named groups; the engine records
``test_accuracy_<group>``):

* ``clean``: the CIFAR-10 test images (the authors' ``val_clean``);
* ``mixed``: a second copy of them in which the fixed 80% carry a patch (the
  authors' ``val_aug``, which chose their best checkpoint);
* ``patched``: the rows of ``mixed`` that carry a patch;
* ``patch_only``: ``patch_probe_size`` all-zero images run through the patch
  process (the authors' ``TransformOnlyDataset`` behind ``patch_acc``: 80%
  zero + patch, 20% scaled patch only). Their labels are drawn once here (the
  authors redraw them at each load, which does not change the distribution).

The pooled ``test_accuracy`` over all rows mixes these sets; read the groups.
With ``resample_test: true`` (the authors' way) the ``mixed`` and
``patch_only`` rows hold markers and are redrawn at every evaluation through
the ``eval_transform``; with ``false`` they are drawn once at build and the
test set is fixed. Likewise ``resample_train: false`` draws the training
patches once at build (no markers, no train transform). The
``eval_transform`` is the same :class:`PatchTransform`, set whenever any split
holds markers: it redraws marked rows and leaves all others untouched (so a
training-split evaluation with ``resample_train: true`` sees fresh draws, as
training does). ``train_groups`` ``patched``/``clean`` split the training set
by the fixed mask.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from lbgap.api import InMemoryData

from .common import data_root, describe_subset, resolve_seed, subset_indices
from .configs import IMAGE_SIZE, PatchCIFAR10Config, patch_start
from .image_options import images_to_float
from .torchvision_files import load_cifar_split

__all__ = [
    "PatchCIFAR10Config",
    "PatchPatterns",
    "PatchTransform",
    "build_patch_cifar10",
    "draw_patterns",
    "patched_masks",
    "patch_start",
]

log = logging.getLogger(__name__)

NUM_CLASSES = 10


class PatchPatterns:
    """The drawn patterns: ``z`` ``[3, p, p]`` and ``zeta`` ``[classes, num_patterns, 3, p, p]``."""

    def __init__(self, z: torch.Tensor, zeta: torch.Tensor) -> None:
        self.z = z
        self.zeta = zeta

    def markers(self, coefficient: float) -> torch.Tensor:
        """``z + coefficient · ζ[c, 0]`` per class ``[classes, 3, p, p]``."""
        return self.z + coefficient * self.zeta[:, 0]


def draw_patterns(
    gen: torch.Generator,
    patch_size: int,
    num_patterns: int,
    z_scale: float,
    patch_sep: float,
    num_classes: int = NUM_CLASSES,
) -> PatchPatterns:
    """Draw ``z`` and ``ζ`` from the CPU generator ``gen`` with the calls of the authors' ``pm_sym_pattern``.

    With ``gen`` freshly seeded by ``s`` this equals the authors' draws after ``torch.manual_seed(s)``.
    """
    z = z_scale * torch.randn(3, patch_size, patch_size, generator=gen)
    zeta = torch.zeros(num_classes, num_patterns, 3, patch_size, patch_size)
    zeta.uniform_(-patch_sep, patch_sep, generator=gen)
    return PatchPatterns(z, zeta)


def patched_masks(seed: int, n_train: int, n_test: int, prop: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed patched sets: ``numpy.random.seed(seed)``, then ``random(n_train) < prop``, then ``random(n_test) < prop``."""
    rs = np.random.RandomState(int(seed))
    train = rs.random_sample((n_train,)) < prop
    test = rs.random_sample((n_test,)) < prop
    return torch.from_numpy(train), torch.from_numpy(test)


class PatchTransform:
    """Redraw the patch of every marked image in a batch (see the module docstring).

    Draws per call, in this order, ``B`` each: pattern index (uniform integer),
    sign (``-1`` where ``U > 0.5``, as the authors' code), kind (image + patch
    where ``U > patch_only_prob``), patch-only scale ``U``.
    """

    def __init__(
        self, patterns: PatchPatterns, start: int, patch_only_prob: float, patch_only_scale: float
    ) -> None:
        self.patterns = patterns
        self.start = start
        self.size = patterns.z.shape[-1]
        self.patch_only_prob = float(patch_only_prob)
        self.patch_only_scale = float(patch_only_scale)
        #: marker coefficient: outside {-1, +1} and outside (-patch_only_scale, patch_only_scale)
        self.marker_coefficient = self.patch_only_scale + 2.0
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _on(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (x.device, x.dtype)
        if key not in self._cache:
            p = self.patterns
            self._cache[key] = (
                p.z.to(device=x.device, dtype=x.dtype),
                p.zeta.to(device=x.device, dtype=x.dtype),
                p.markers(self.marker_coefficient).to(device=x.device, dtype=x.dtype),
            )
        return self._cache[key]

    def area(self, x: torch.Tensor) -> torch.Tensor:
        s, e = self.start, self.start + self.size
        return x[:, :, s:e, s:e]

    def mark(self, x: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """A copy of ``x`` whose ``rows`` (bool mask) hold the marker of their label."""
        _, _, markers = self._on(x)
        out = x.clone()
        area = self.area(out)
        area.copy_(torch.where(rows.view(-1, 1, 1, 1), markers[labels], area))
        return out

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labels, marked)``: the class read from each row's marker and whether it has one."""
        _, _, markers = self._on(x)
        area = self.area(x)
        equal = (area.unsqueeze(1) == markers.unsqueeze(0)).flatten(2).all(dim=2)  # [B, classes]
        return equal.to(torch.float32).argmax(dim=1), equal.any(dim=1)

    def draw(
        self, x: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """A copy of ``x`` with fresh patch draws written into ``rows`` (bool mask), class ``labels``."""
        z, zeta, _ = self._on(x)
        b, dev = x.shape[0], x.device
        pattern = torch.randint(0, zeta.shape[1], (b,), generator=generator, device=dev)
        sign = torch.where(torch.rand(b, generator=generator, device=dev) > 0.5, -1.0, 1.0)
        with_image = torch.rand(b, generator=generator, device=dev) > self.patch_only_prob
        scale = self.patch_only_scale * torch.rand(b, generator=generator, device=dev)
        coef = (sign * torch.where(with_image, 1.0, scale)).to(x.dtype).view(b, 1, 1, 1)
        patch = z + coef * zeta[labels, pattern]
        zero_out = (rows & ~with_image).view(b, 1, 1, 1)
        out = torch.where(zero_out, torch.zeros((), dtype=x.dtype, device=dev), x)
        area = self.area(out)
        area.copy_(torch.where(rows.view(b, 1, 1, 1), patch, area))
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels, marked = self.decode(x)
        return self.draw(x, labels, marked, generator)

    def __repr__(self) -> str:
        return (
            f"PatchTransform(size={self.size}, start={self.start}, patch_only_prob={self.patch_only_prob}, "
            f"patch_only_scale={self.patch_only_scale})"
        )


def build_patch_cifar10(cfg: PatchCIFAR10Config, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``patch_cifar10`` data set (see the module docstring)."""
    root = str(data_root(cfg.root))
    train_raw = load_cifar_split("cifar10", root, True, cfg.download, cfg.verify_md5)
    test_raw = load_cifar_split("cifar10", root, False, cfg.download, cfg.verify_md5)
    data_seed = resolve_seed(cfg.data_seed, seed)
    subset_seed = resolve_seed(cfg.subset_seed, seed)

    # the patterns, then seeds of two CPU streams for the build-time draws: one for the training
    # split, one for the test split (probe labels first), so that each split's draws do not depend
    # on whether the other split is drawn at build
    build_gen = torch.Generator().manual_seed(int(data_seed))
    patterns = draw_patterns(build_gen, cfg.patch_size, cfg.num_patterns, cfg.z_scale, cfg.patch_sep)
    train_mask, test_mask = patched_masks(
        data_seed, len(train_raw.labels), len(test_raw.labels), cfg.prop_augment
    )
    writer = PatchTransform(
        patterns, patch_start(cfg.patch_loc, cfg.patch_size), cfg.patch_only_prob, cfg.patch_only_scale
    )

    tr_idx = subset_indices(len(train_raw.labels), cfg.n_train, cfg.subset, subset_seed, split="train")
    te_idx = subset_indices(len(test_raw.labels), cfg.n_test, cfg.subset, subset_seed, split="test")
    cpu = torch.device("cpu")

    def take(raw, mask, idx):
        if idx is None:
            return raw.images, raw.labels, mask
        return raw.images[idx], raw.labels[idx], mask[idx]

    tr_img, train_y, train_mask = take(train_raw, train_mask, tr_idx)
    te_img, test_y, test_mask = take(test_raw, test_mask, te_idx)
    train_x = images_to_float(tr_img, cfg, cpu)
    clean_x = images_to_float(te_img, cfg, cpu)

    train_seed, test_seed = torch.randint(0, 2**62, (2,), generator=build_gen).tolist()
    train_gen = torch.Generator().manual_seed(train_seed)
    test_gen = torch.Generator().manual_seed(test_seed)
    probe_y = torch.randint(0, NUM_CLASSES, (cfg.patch_probe_size,), generator=test_gen)
    probe_x = torch.zeros(cfg.patch_probe_size, 3, IMAGE_SIZE, IMAGE_SIZE)
    probe_rows = torch.ones(cfg.patch_probe_size, dtype=torch.bool)

    if cfg.resample_train:
        train_x = writer.mark(train_x, train_y, train_mask)
    else:
        train_x = writer.draw(train_x, train_y, train_mask, train_gen)
    if cfg.resample_test:
        mixed_x = writer.mark(clean_x, test_y, test_mask)
        probe_x = writer.mark(probe_x, probe_y, probe_rows)
    else:
        mixed_x = writer.draw(clean_x, test_y, test_mask, test_gen)
        probe_x = writer.draw(probe_x, probe_y, probe_rows, test_gen)

    n_clean, n_probe = len(test_y), cfg.patch_probe_size
    test_x = torch.cat([clean_x, mixed_x, probe_x])
    test_labels = torch.cat([test_y, test_y, probe_y])
    group_id = torch.cat(
        [
            torch.zeros(n_clean, dtype=torch.long),
            torch.ones(n_clean, dtype=torch.long),
            torch.full((n_probe,), 2),
        ]
    )
    patched_rows = torch.cat(
        [torch.zeros(n_clean, dtype=torch.bool), test_mask, torch.zeros(n_probe, dtype=torch.bool)]
    )
    test_groups = {"clean": group_id == 0, "mixed": group_id == 1, "patched": patched_rows}
    if n_probe:
        test_groups["patch_only"] = group_id == 2

    description = (
        f"patch CIFAR-10 (Li, Wei & Ma 2019) from {train_raw.source}: train "
        f"{describe_subset(len(train_y), len(train_raw.labels), cfg.subset, subset_seed)} "
        f"({int(train_mask.sum())} patched, fixed; draws {'per load' if cfg.resample_train else 'fixed at build'}); "
        f"test rows = clean {n_clean} | mixed {n_clean} ({int(test_mask.sum())} patched) | patch-only probe {n_probe}"
        f" (draws {'per evaluation' if cfg.resample_test else 'fixed at build'}); {cfg.patch_size}x{cfg.patch_size} "
        f"{cfg.patch_loc} patch, z_scale {cfg.z_scale}, patch_sep {cfg.patch_sep}, patch_only_prob "
        f"{cfg.patch_only_prob}, patch_only_scale {cfg.patch_only_scale}, prop_augment {cfg.prop_augment}, "
        f"data_seed {data_seed}; {cfg.describe_normalization()}"
    )
    uses_markers = cfg.resample_train or cfg.resample_test
    return InMemoryData(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_labels,
        num_classes=NUM_CLASSES,
        train_transform=writer if cfg.resample_train else None,
        eval_transform=writer if uses_markers else None,
        test_groups=test_groups,
        train_groups={"patched": train_mask.clone(), "clean": ~train_mask},
        description=description,
    ).to(device)
