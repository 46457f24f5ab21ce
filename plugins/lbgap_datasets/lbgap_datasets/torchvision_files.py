"""Reading MNIST and CIFAR-10/100 files through torchvision's dataset classes.

Each split is read once per process and kept as ``uint8`` tensors (the smallest
form; the plugins convert to ``float`` once per build, on the device). The
cache is keyed on ``(dataset, root, train, verify_md5)``; callers must not
modify the returned tensors in place.

Two deviations from plain torchvision, both by subclassing its classes:

* :class:`GzipMNIST` accepts the four published ``.gz`` files in
  ``<root>/MNIST/raw/`` without their extracted copies (torchvision's MNIST
  only checks for the extracted files and would otherwise try to download).
  The ``.gz`` files are decompressed with torchvision's own ``extract_archive``
  into a temporary folder and read with torchvision's ``read_image_file`` /
  ``read_label_file``; nothing is written next to the data, so a read-only
  data folder works.
* :class:`CIFAR10Unverified` / :class:`CIFAR100Unverified` skip the md5
  check of the batch files (torchvision's ``check_integrity`` with ``md5=None``
  only checks that the file exists). The official files pass the check, so the
  plugins verify by default (``verify_md5: true``); the unverified classes are
  for re-packed files and for tests that write small files in the same format.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100, MNIST
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import check_integrity, extract_archive

from .common import DATA_ENV_VAR, DatasetFilesMissing

__all__ = [
    "RawSplit",
    "GzipMNIST",
    "CIFAR10Unverified",
    "CIFAR100Unverified",
    "MNIST_FILES",
    "CIFAR_INFO",
    "load_mnist_split",
    "mnist_missing_files",
    "load_cifar_split",
    "clear_cache",
]

log = logging.getLogger(__name__)

#: The published MNIST file names (as in ``torchvision.datasets.MNIST.resources``).
MNIST_FILES: tuple[str, ...] = tuple(name for name, _ in MNIST.resources)


@dataclass(frozen=True)
class RawSplit:
    """One split as read from disk.

    Attributes
    ----------
    images:
        ``uint8`` images ``[N, C, H, W]`` (CPU).
    labels:
        ``long`` labels ``[N]`` (CPU).
    source:
        Where the files were read from.
    """

    images: torch.Tensor
    labels: torch.Tensor
    source: str


# ------------------------------------------------------------------- MNIST


class GzipMNIST(MNIST):
    """torchvision's MNIST that also reads the published ``.gz`` files when they are not extracted.

    Files are looked for in ``<root>/MNIST/raw/`` exactly as for
    ``torchvision.datasets.MNIST`` (the folder name stays ``MNIST`` although the
    class name differs). For each of the four files either the extracted form
    (``train-images-idx3-ubyte``) or the published ``.gz`` is accepted; the
    extracted form wins where both exist.
    """

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, "MNIST", "raw")

    @property
    def processed_folder(self) -> str:
        return os.path.join(self.root, "MNIST", "processed")

    def _check_exists(self) -> bool:
        return not mnist_missing_files(self.raw_folder)

    def _load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        prefix = "train" if self.train else "t10k"
        names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        if all(check_integrity(os.path.join(self.raw_folder, n)) for n in names):
            return super()._load_data()
        with tempfile.TemporaryDirectory(prefix="lbgap-mnist-") as tmp:
            paths = []
            for name in names:
                plain = os.path.join(self.raw_folder, name)
                if check_integrity(plain):
                    paths.append(plain)
                else:
                    extract_archive(os.path.join(self.raw_folder, name + ".gz"), tmp)
                    paths.append(os.path.join(tmp, name))
            return read_image_file(paths[0]), read_label_file(paths[1])


def mnist_missing_files(raw_folder: str | os.PathLike) -> list[str]:
    """Published names (``*.gz``) of the MNIST files found in ``raw_folder`` in neither form."""
    missing = []
    for gz_name in MNIST_FILES:
        plain = os.path.join(raw_folder, os.path.splitext(gz_name)[0])
        if not (check_integrity(plain) or check_integrity(os.path.join(raw_folder, gz_name))):
            missing.append(gz_name)
    return missing


def _mnist_missing_message(root: Path, missing: list[str]) -> str:
    raw = root / "MNIST" / "raw"
    return (
        f"MNIST files not found: {raw} lacks {', '.join(missing)} (neither the .gz file nor its "
        f"extracted form). Put the four files {', '.join(MNIST_FILES)} (as published, .gz or extracted) "
        f"in {raw}/, or point `root:` (or ${DATA_ENV_VAR}) at the folder that holds MNIST/raw/, "
        "or set `download: true` when the machine is online."
    )


@functools.lru_cache(maxsize=8)
def load_mnist_split(root: str, train: bool, download: bool = False) -> RawSplit:
    """Read one MNIST split through :class:`GzipMNIST` (cached per process).

    Raises
    ------
    DatasetFilesMissing
        When files are missing and ``download`` is false.
    """
    root_path = Path(root)
    missing = mnist_missing_files(root_path / "MNIST" / "raw")
    if missing and not download:
        raise DatasetFilesMissing(_mnist_missing_message(root_path, missing))
    ds = GzipMNIST(os.fspath(root_path), train=train, download=download)
    images = ds.data.unsqueeze(1).contiguous()
    labels = ds.targets.long()
    log.info(
        "read MNIST %s split from %s: %d images", "train" if train else "test", ds.raw_folder, len(labels)
    )
    return RawSplit(images=images, labels=labels, source=ds.raw_folder)


# ------------------------------------------------------------------- CIFAR


def _unverified(cls: type[CIFAR10]) -> dict:
    return {
        "train_list": [[name, None] for name, _ in cls.train_list],
        "test_list": [[name, None] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    }


class CIFAR10Unverified(CIFAR10):
    """torchvision's CIFAR10 with the md5 check of the batch files turned off (existence only)."""

    train_list = _unverified(CIFAR10)["train_list"]
    test_list = _unverified(CIFAR10)["test_list"]
    meta = _unverified(CIFAR10)["meta"]


class CIFAR100Unverified(CIFAR100):
    """torchvision's CIFAR100 with the md5 check of the batch files turned off (existence only)."""

    train_list = _unverified(CIFAR100)["train_list"]
    test_list = _unverified(CIFAR100)["test_list"]
    meta = _unverified(CIFAR100)["meta"]


#: name → (verified class, unverified class, display name, number of classes)
CIFAR_INFO: dict[str, tuple[type[CIFAR10], type[CIFAR10], str, int]] = {
    "cifar10": (CIFAR10, CIFAR10Unverified, "CIFAR-10", 10),
    "cifar100": (CIFAR100, CIFAR100Unverified, "CIFAR-100", 100),
}


def _cifar_files(cls: type[CIFAR10]) -> list[tuple[str, str]]:
    return [(name, md5) for name, md5 in cls.train_list + cls.test_list] + [
        (cls.meta["filename"], cls.meta["md5"])
    ]


def _check_cifar_files(which: str, root: Path, verify_md5: bool) -> None:
    cls, _, display, _ = CIFAR_INFO[which]
    folder = root / cls.base_folder
    files = _cifar_files(cls)
    missing = [name for name, _ in files if not check_integrity(folder / name)]
    if missing:
        raise DatasetFilesMissing(
            f"{display} files not found: {folder} lacks {', '.join(missing)}. Extract {cls.filename} "
            f"({cls.url}) into {root}/ so that {folder}/ holds {', '.join(n for n, _ in files)}; or point "
            f"`root:` (or ${DATA_ENV_VAR}) at the folder that holds {cls.base_folder}/, or set "
            "`download: true` when the machine is online."
        )
    if verify_md5:
        bad = [name for name, md5 in files if not check_integrity(folder / name, md5)]
        if bad:
            raise ValueError(
                f"{display} files in {folder} fail torchvision's md5 check: {', '.join(bad)}. "
                "Replace them with the official files, or set `verify_md5: false` to accept re-packed files."
            )


@functools.lru_cache(maxsize=8)
def load_cifar_split(
    which: str, root: str, train: bool, download: bool = False, verify_md5: bool = True
) -> RawSplit:
    """Read one CIFAR-10 (``which="cifar10"``) or CIFAR-100 split through torchvision (cached per process).

    CIFAR-100 labels are the 100 fine labels (torchvision's choice).

    Raises
    ------
    DatasetFilesMissing
        When files are missing and ``download`` is false.
    ValueError
        When ``verify_md5`` is true and a file fails its md5 check.
    """
    verified_cls, unverified_cls, display, _ = CIFAR_INFO[which]
    cls = verified_cls if verify_md5 else unverified_cls
    root_path = Path(root)
    if download:
        # torchvision's own download (it verifies the archive's md5 and extracts it)
        cls(os.fspath(root_path), train=train, download=True)
    _check_cifar_files(which, root_path, verify_md5)
    ds = cls(os.fspath(root_path), train=train, download=False)
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    log.info(
        "read %s %s split from %s: %d images", display, "train" if train else "test", root_path, len(labels)
    )
    return RawSplit(images=images, labels=labels, source=os.fspath(root_path / cls.base_folder))


def clear_cache() -> None:
    """Forget every split read so far (the next build reads the files again)."""
    load_mnist_split.cache_clear()
    load_cifar_split.cache_clear()
