"""The ``digits`` dataset plugin: scikit-learn's bundled 8×8 handwritten digits (1,797 images).

No files or downloads are needed (the data ship with scikit-learn), which makes
it the data set for quick tests and examples. Pixel values 0..16 are divided by
16 so inputs lie in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from lbgap.api import InMemoryData

from .common import resolve_seed
from .configs import DigitsConfig

__all__ = ["DigitsConfig", "build_digits", "split_digits"]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def split_digits(test_fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of the digits (scikit-learn's ``train_test_split``)."""
    from sklearn.model_selection import train_test_split

    _, y = _load()
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
    )
    return np.sort(train_idx), np.sort(test_idx)


def build_digits(cfg: DigitsConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``digits`` data set (see :class:`DigitsConfig`)."""
    x, y = _load()
    split_seed = resolve_seed(cfg.split_seed, seed)
    train_idx, test_idx = split_digits(cfg.test_fraction, split_seed, cfg.stratify)
    shape = (-1, 1, 8, 8) if cfg.shape == "image" else (-1, 64)
    return InMemoryData(
        train_x=torch.tensor(x[train_idx], device=device).reshape(shape),
        train_y=torch.tensor(y[train_idx], device=device),
        test_x=torch.tensor(x[test_idx], device=device).reshape(shape),
        test_y=torch.tensor(y[test_idx], device=device),
        num_classes=10,
        description=(
            f"scikit-learn 8x8 digits, pixels/16: train {len(train_idx)}, test {len(test_idx)} "
            f"(split_seed {split_seed}{', stratified' if cfg.stratify else ''})"
        ),
    )
