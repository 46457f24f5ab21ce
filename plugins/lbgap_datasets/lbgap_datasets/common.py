"""Pieces shared by the dataset plugins: data root, seeds, subsets, the missing-files error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, Union

from pydantic import Field, PositiveInt

from lbgap.api import PluginConfig

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATA_ENV_VAR",
    "DEFAULT_DATA_ROOT",
    "DataSeed",
    "DatasetFilesMissing",
    "SubsetConfig",
    "data_root",
    "resolve_seed",
    "subset_indices",
    "describe_subset",
]

#: Environment variable naming the default data folder.
DATA_ENV_VAR = "LBGAP_DATA"
#: Data folder used when neither ``root`` nor ``$LBGAP_DATA`` is set.
DEFAULT_DATA_ROOT = "~/.cache/lbgap/data"

#: A fixed seed, or ``"trial"`` to use the trial's seed (a different data set per trial seed).
DataSeed = Union[int, Literal["trial"]]


class DatasetFilesMissing(FileNotFoundError):
    """The files a data set is read from are not where they were looked for.

    The message says which files to put where.
    """


def data_root(root: Optional[str]) -> Path:
    """The data folder: ``root`` if given, else ``$LBGAP_DATA``, else ``~/.cache/lbgap/data``."""
    chosen = root if root is not None else os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_ROOT
    return Path(chosen).expanduser().resolve()


def resolve_seed(value: DataSeed, trial_seed: int) -> int:
    """``value`` itself, or the trial seed where ``value == "trial"``."""
    return int(trial_seed) if value == "trial" else int(value)


class SubsetConfig(PluginConfig):
    """Fields choosing a subset of the train and test splits (mixed into dataset configs)."""

    n_train: Optional[PositiveInt] = None
    """Number of training samples to keep; ``null`` keeps the whole training split. Asking for more
    samples than the split holds is an error."""
    n_test: Optional[PositiveInt] = None
    """Number of test samples to keep; ``null`` keeps the whole test split."""
    subset: Literal["first", "random"] = "first"
    """How ``n_train``/``n_test`` samples are chosen: the first ones in file order, or a uniformly
    random subset (kept in file order) drawn with ``subset_seed``."""
    subset_seed: DataSeed = Field(default=0)
    """Seed of the random subset (``subset: random``); ``"trial"`` draws a different subset per
    trial seed. The default fixed seed keeps the data the same across trial seeds."""


def subset_indices(
    n_total: int, n: Optional[int], how: str, seed: int, *, split: str
) -> Optional[torch.Tensor]:
    """Indices (sorted, CPU ``long``) of the kept samples, or ``None`` to keep all ``n_total``.

    Raises
    ------
    ValueError
        If ``n > n_total``.
    """
    import torch  # imported when a data set is built, not when a study is validated

    if n is None:
        return None
    if n > n_total:
        raise ValueError(f"{split}: asked for {n} samples but the split holds only {n_total}")
    if how == "first":
        return None if n == n_total else torch.arange(n)
    if how == "random":
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randperm(n_total, generator=gen)[:n].sort().values
    raise ValueError(f"unknown subset rule {how!r}")


def describe_subset(n_kept: int, n_total: int, how: str, seed: int) -> str:
    """``"all 10000"`` or ``"first 1000 of 10000"`` / ``"random 1000 of 10000 (subset_seed 0)"``."""
    if n_kept == n_total:
        return f"all {n_total}"
    if how == "random":
        return f"random {n_kept} of {n_total} (subset_seed {seed})"
    return f"first {n_kept} of {n_total}"
