"""Flat views of a model's parameters.

Curvature algorithms work on one vector of all (selected) parameters. A
:class:`ParamLayout` records names, shapes and order, flattens a set of
tensors into one vector and splits a vector back into named views, so that a
model can be evaluated at any point with :func:`torch.func.functional_call`
without writing into its parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ParamLayout"]


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and order of the parameters a metric differentiates.

    Attributes
    ----------
    names:
        Parameter names as in ``model.named_parameters()``.
    shapes:
        Their shapes.
    dtype, device:
        Common dtype and device of the parameters.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def from_model(cls, model: nn.Module, names: Sequence[str] | None = None) -> ParamLayout:
        """Layout of ``model``'s trainable parameters (``requires_grad``), or of ``names``."""
        params = dict(model.named_parameters())
        if names is None:
            names = [n for n, p in params.items() if p.requires_grad]
        if not names:
            raise ValueError("the model has no trainable parameters")
        tensors = [params[n] for n in names]
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1:
            raise ValueError(f"parameters have mixed dtypes {sorted(map(str, dtypes))}")
        return cls(tuple(names), tuple(t.shape for t in tensors), tensors[0].dtype, tensors[0].device)

    @property
    def numels(self) -> tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def size(self) -> int:
        """Total number of scalar parameters."""
        return sum(self.numels)

    def flatten(self, tensors: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> torch.Tensor:
        """Concatenate named (or ordered) tensors into one vector, in layout order."""
        if isinstance(tensors, Mapping):
            tensors = [tensors[n] for n in self.names]
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``flat`` into named views with the parameters' shapes (keeps autograd links)."""
        if flat.shape != (self.size,):
            raise ValueError(f"expected a vector of {self.size} entries, got shape {tuple(flat.shape)}")
        parts = torch.split(flat, self.numels)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}

    def current(self, model: nn.Module) -> torch.Tensor:
        """The model's current parameter values as one new vector."""
        return self.flatten(dict(model.named_parameters()))
