"""Non-finite models and measurements: NaN values with a reason, never an exception.

A diverged trial's model may hold NaN or infinite parameters, or finite ones
whose loss overflows. Every metric of this package then returns its usual
variables filled with NaN, logs why, and records the reason in the variables'
``comment`` attribute, instead of raising from deep inside an eigensolver:

* :func:`nonfinite_tensors` names the first parameter or floating buffer
  holding a NaN or an infinity (checked before any measurement);
* :func:`require_finite` turns a non-finite loss at the measured point into
  :class:`NonFiniteMeasurement`;
* :class:`FiniteOperator` does the same for a Hessian-vector product.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
import xarray as xr
from torch import nn

__all__ = [
    "NonFiniteMeasurement",
    "nonfinite_tensors",
    "require_finite",
    "FiniteOperator",
    "nan_like",
]


class NonFiniteMeasurement(ArithmeticError):
    """A measurement met a NaN or an infinity; ``str(err)`` says where."""


def _count_nonfinite(t: torch.Tensor) -> int:
    return int((~torch.isfinite(t.detach())).sum())


def nonfinite_tensors(model: nn.Module) -> Optional[str]:
    """Why ``model`` cannot be measured (its first parameter or floating buffer with NaN/inf), or None."""
    tensors = [("parameter", n, p) for n, p in model.named_parameters()]
    tensors += [("buffer", n, b) for n, b in model.named_buffers() if b is not None and b.is_floating_point()]
    for kind, name, t in tensors:
        bad = _count_nonfinite(t)
        if bad:
            return f"{kind} {name!r} has {bad} non-finite value(s) of {t.numel()}"
    return None


def require_finite(value: float, what: str) -> float:
    """``value``, or :class:`NonFiniteMeasurement` naming ``what`` when it is NaN or infinite."""
    if not math.isfinite(value):
        raise NonFiniteMeasurement(f"{what} is {value}")
    return value


class FiniteOperator:
    """An operator (``size``, ``dtype``, ``device``, ``matvec``) whose products must be finite."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.size = op.size
        self.dtype = op.dtype
        self.device = op.device

    @property
    def n_matvec(self) -> int:
        return self.op.n_matvec

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        w = self.op.matvec(v)
        bad = _count_nonfinite(w)
        if bad:
            raise NonFiniteMeasurement(f"a Hessian-vector product has {bad} non-finite value(s)")
        return w


def nan_like(value: Any) -> Any:
    """A float or DataArray of the same shape, dimensions and attributes, all NaN."""
    if isinstance(value, xr.DataArray):
        return value.copy(data=np.full(value.shape, np.nan))
    return math.nan
