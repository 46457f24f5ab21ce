"""The ``timit_frames`` dataset plugin: user-provided TIMIT frame features (Keskar et al.'s F2 task).

TIMIT is licensed by the LDC, so lbgap neither ships nor downloads it. Keskar
et al. (2017, Table 5) train F2 on 721,329 training and 310,621 test frames
of 360 Kaldi features each, labelled with 1,973 classes (context-dependent
HMM states). Build such features with your own TIMIT copy and save them as

``.npz`` layout (``numpy.savez(path, train_x=..., train_y=..., test_x=..., test_y=...)``)
    ``train_x``  float array ``[N_train, num_features]``
    ``train_y``  integer array ``[N_train]``, class indices in ``[0, num_classes)``
    ``test_x``   float array ``[N_test, num_features]``
    ``test_y``   integer array ``[N_test]``

Any other arrays in the file are ignored. By default the file is
``<data folder>/timit/timit_frames.npz`` (data folder: ``root``, else
``$LBGAP_DATA``, else ``~/.cache/lbgap/data``).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import torch

from lbgap.api import InMemoryData

from .common import (
    DATA_ENV_VAR,
    DatasetFilesMissing,
    data_root,
    describe_subset,
    resolve_seed,
    subset_indices,
)
from .configs import TimitFramesConfig

__all__ = ["TimitFramesConfig", "build_timit_frames", "load_timit_frames", "TIMIT_KEYS"]

log = logging.getLogger(__name__)

#: The arrays the ``.npz`` file must hold.
TIMIT_KEYS = ("train_x", "train_y", "test_x", "test_y")


def _missing_message(path: Path) -> str:
    return (
        f"TIMIT frame file not found: {path}. TIMIT is licensed by the LDC and is not downloaded. "
        "Save your frame features with numpy.savez(path, train_x=[N,360] floats, train_y=[N] ints, "
        "test_x=[M,360] floats, test_y=[M] ints) at that path, or set `path:` (absolute, or relative "
        f"to `root:` / ${DATA_ENV_VAR})."
    )


@functools.lru_cache(maxsize=2)
def load_timit_frames(path: str, num_features: int, num_classes: int) -> dict[str, torch.Tensor]:
    """Read and check the ``.npz`` file (cached per process): float32 features, long labels (CPU).

    Raises
    ------
    DatasetFilesMissing
        If the file does not exist.
    ValueError
        If arrays are missing or have the wrong shape, type or label range.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetFilesMissing(_missing_message(file))
    with np.load(file, allow_pickle=False) as npz:
        missing = [k for k in TIMIT_KEYS if k not in npz.files]
        if missing:
            raise ValueError(
                f"{file} lacks the arrays {missing} (has {sorted(npz.files)}); expected {list(TIMIT_KEYS)}"
            )
        arrays = {k: npz[k] for k in TIMIT_KEYS}
    out: dict[str, torch.Tensor] = {}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 2 or x.shape[1] != num_features:
            raise ValueError(f"{file}: {split}_x has shape {x.shape}, expected [N, {num_features}]")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"{file}: {split}_y has shape {y.shape}, expected [{len(x)}]")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{file}: {split}_y must hold integers, not {y.dtype}")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"{file}: {split}_y has labels in [{y.min()}, {y.max()}], outside [0, {num_classes})"
            )
        out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        out[f"{split}_y"] = torch.from_numpy(y.astype(np.int64))
    log.info("read TIMIT frames from %s: %d train, %d test", file, len(out["train_y"]), len(out["test_y"]))
    return out


def build_timit_frames(cfg: TimitFramesConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``timit_frames`` data set (see :class:`TimitFramesConfig`)."""
    path = Path(os.path.expanduser(cfg.path))
    if not path.is_absolute():
        path = data_root(cfg.root) / path
    data = load_timit_frames(str(path), cfg.num_features, cfg.num_classes)
    subset_seed = resolve_seed(cfg.subset_seed, seed)
    parts: dict[str, torch.Tensor] = {}
    descs = []
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        idx = subset_indices(len(y), n, cfg.subset, subset_seed, split=split)
        if idx is not None:
            x, y = x[idx], y[idx]
        descs.append(f"{split} {describe_subset(len(y), len(data[f'{split}_y']), cfg.subset, subset_seed)}")
        parts[f"{split}_x"] = x.to(device=device, copy=True)
        parts[f"{split}_y"] = y.to(device)
    if cfg.standardize:
        mean = parts["train_x"].mean(0, keepdim=True)
        std = parts["train_x"].std(0, keepdim=True).clamp_min(1e-12)
        parts["train_x"] = (parts["train_x"] - mean) / std
        parts["test_x"] = (parts["test_x"] - mean) / std
    return InMemoryData(
        **parts,
        num_classes=cfg.num_classes,
        description=(
            f"TIMIT frames from {path} ({cfg.num_features} features, {cfg.num_classes} classes): "
            + "; ".join(descs)
            + ("; standardised per feature with train statistics" if cfg.standardize else "")
        ),
    )
