"""In-memory data sets: the contract between dataset plugins and the engine.

A dataset plugin returns an :class:`InMemoryData`: whole splits as tensors on
the training device. The engine batches them by index gathers (no per-sample
``DataLoader``), and applies the optional batch transforms on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import torch

__all__ = ["DataInfo", "InMemoryData", "BatchTransform"]

#: ``transform(x, generator) -> x``: a batched, on-device transform. The
#: generator is the trial's data generator, so augmentation is reproducible.
BatchTransform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data."""

    input_shape: tuple[int, ...]
    num_classes: int


@dataclass
class InMemoryData:
    """Train and test splits held as tensors.

    Attributes
    ----------
    train_x, train_y, test_x, test_y:
        Inputs (``float``) and integer class labels (``long``), first dimension
        the sample index.
    num_classes:
        Number of classes.
    train_transform:
        Applied to every training batch (augmentation, normalisation), or None.
    eval_transform:
        Applied to every evaluation batch (normalisation), or None.
    test_groups:
        Named boolean masks over the test set; the engine records
        ``test_accuracy_<group>`` and ``test_loss_<group>`` per epoch for each.
    train_groups:
        The same over the training set (``train_accuracy_<group>``).
    description:
        One line stored in the results (what the data is, e.g. a subset).
    task:
        ``"classification"`` (cross-entropy loss, accuracy recorded) or
        ``"regression"`` (mean squared error, accuracy is NaN; ``train_y`` and
        ``test_y`` are float targets).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    train_transform: Optional[BatchTransform] = None
    eval_transform: Optional[BatchTransform] = None
    test_groups: dict[str, torch.Tensor] = field(default_factory=dict)
    train_groups: dict[str, torch.Tensor] = field(default_factory=dict)
    description: str = ""
    task: str = "classification"
    #: a validation split held out of the training set (see :meth:`hold_out`), or None
    val_x: Optional[torch.Tensor] = None
    val_y: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', not {self.task!r}")
        if len(self.train_x) != len(self.train_y):
            raise ValueError("train_x and train_y differ in length")
        if len(self.test_x) != len(self.test_y):
            raise ValueError("test_x and test_y differ in length")
        for name, mask in {**self.test_groups}.items():
            if mask.dtype != torch.bool or mask.shape != (len(self.test_y),):
                raise ValueError(f"test group {name!r} must be a bool mask over the test set")
        for name, mask in {**self.train_groups}.items():
            if mask.dtype != torch.bool or mask.shape != (len(self.train_y),):
                raise ValueError(f"train group {name!r} must be a bool mask over the train set")

    @property
    def info(self) -> DataInfo:
        return DataInfo(tuple(self.train_x.shape[1:]), self.num_classes)

    @property
    def n_train(self) -> int:
        return len(self.train_y)

    def to(self, device: torch.device) -> InMemoryData:
        """Move every tensor to ``device`` (in place) and return self."""
        self.train_x = self.train_x.to(device)
        self.train_y = self.train_y.to(device)
        self.test_x = self.test_x.to(device)
        self.test_y = self.test_y.to(device)
        self.test_groups = {k: v.to(device) for k, v in self.test_groups.items()}
        self.train_groups = {k: v.to(device) for k, v in self.train_groups.items()}
        if self.val_x is not None:
            self.val_x, self.val_y = self.val_x.to(device), self.val_y.to(device)
        return self

    def hold_out(self, fraction: float, seed: int) -> InMemoryData:
        """Move a seeded random ``fraction`` of the training examples to ``val_x``/``val_y`` (in
        place; the remaining training examples keep their order) and return self."""
        n = self.n_train
        n_val = max(1, min(n - 1, round(fraction * n)))
        gen = torch.Generator().manual_seed(int(seed))
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[torch.randperm(n, generator=gen)[:n_val]] = True
        chosen = chosen.to(self.train_y.device)
        self.val_x, self.val_y = self.train_x[chosen], self.train_y[chosen]
        keep = ~chosen
        self.train_x, self.train_y = self.train_x[keep], self.train_y[keep]
        self.train_groups = {k: v[keep] for k, v in self.train_groups.items()}
        return self
