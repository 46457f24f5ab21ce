"""The ``mnist1d`` dataset plugin: Greydanus's MNIST-1D, generated offline by the ``mnist1d`` package.

The data come from ``mnist1d.data.make_dataset`` with ``get_dataset_args()``
overridden by the configuration (nothing is downloaded). The package's
generator seeds numpy's and Python's global random state; this module saves
and restores both around the call, so building the data set does not change
the random streams of anything else in the process.

The data set depends only on the configuration, not on the trial seed, unless
``data_seed: trial``: every trial of a study sees the same samples by default.
Generation takes about a second, so results are cached in-process per
configuration.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch

from lbgap.api import InMemoryData

from .common import resolve_seed
from .configs import MNIST1DConfig

__all__ = ["MNIST1DConfig", "build_mnist1d", "generate_mnist1d"]


@functools.lru_cache(maxsize=16)
def generate_mnist1d(args: tuple[tuple[str, object], ...]) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` with ``get_dataset_args()`` updated by ``args`` (cached).

    Numpy's and Python's global random states are restored afterwards.
    """
    from mnist1d.data import get_dataset_args, make_dataset
    from mnist1d.utils import ObjectView

    settings = get_dataset_args(as_dict=True)
    unknown = set(dict(args)) - set(settings)
    if unknown:
        raise ValueError(f"mnist1d has no settings {sorted(unknown)}")
    settings.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in args})
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        data = make_dataset(ObjectView(settings))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    out = {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}
    for v in out.values():
        v.setflags(write=False)
    return out


def _generator_args(cfg: MNIST1DConfig, seed: int) -> tuple[tuple[str, object], ...]:
    return (
        ("num_samples", cfg.num_samples),
        ("train_split", cfg.train_split),
        ("template_len", cfg.template_len),
        ("padding", tuple(cfg.padding)),
        ("scale_coeff", cfg.scale_coeff),
        ("max_translation", cfg.max_translation),
        ("corr_noise_scale", cfg.corr_noise_scale),
        ("iid_noise_scale", cfg.iid_noise_scale),
        ("shear_scale", cfg.shear_scale),
        ("shuffle_seq", cfg.shuffle_seq),
        ("final_seq_length", cfg.final_seq_length),
        ("seed", seed),
    )


def build_mnist1d(cfg: MNIST1DConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the ``mnist1d`` data set (see :class:`MNIST1DConfig`)."""
    data_seed = resolve_seed(cfg.data_seed, seed)
    data = generate_mnist1d(_generator_args(cfg, data_seed))
    train_x = torch.tensor(data["x"], dtype=torch.float32, device=device)
    test_x = torch.tensor(data["x_test"], dtype=torch.float32, device=device)
    if cfg.standardize:
        mean = train_x.mean(0, keepdim=True)
        std = train_x.std(0, keepdim=True).clamp_min(1e-12)
        train_x = (train_x - mean) / std
        test_x = (test_x - mean) / std
    if cfg.shape == "channel":
        train_x, test_x = train_x.unsqueeze(1), test_x.unsqueeze(1)
    description = (
        f"MNIST-1D from mnist1d.make_dataset (seed {data_seed}, {cfg.num_samples} samples, "
        f"train_split {cfg.train_split}): train {len(train_x)}, test {len(test_x)}"
        + ("; standardised per position with train statistics" if cfg.standardize else "")
    )
    return InMemoryData(
        train_x=train_x,
        train_y=torch.tensor(data["y"], dtype=torch.long, device=device),
        test_x=test_x,
        test_y=torch.tensor(data["y_test"], dtype=torch.long, device=device),
        num_classes=10,
        description=description,
    )
