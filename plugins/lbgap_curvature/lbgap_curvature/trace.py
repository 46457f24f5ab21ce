"""Hutchinson's estimator of the Hessian trace, with its standard error.

``tr(H) = E[zᵀ H z]`` for Rademacher ``z`` (entries ±1 with probability ½).
The estimate is the mean of ``num_probes`` samples ``zᵢᵀ H zᵢ``; its standard
error is the sample standard deviation over ``√num_probes``. With
``target_rel_stderr`` set, probing stops once ``stderr ≤ target · |mean|``
(after at least ``min_probes`` samples) — a stopping rule on the estimated
error, not on the change of the running mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .lanczos import Operator

__all__ = ["TraceResult", "hutchinson_trace", "rademacher"]


@dataclass
class TraceResult:
    """Estimate, standard error, the samples and the number of products."""

    estimate: float
    stderr: float
    samples: np.ndarray
    n_matvec: int

    @property
    def ci95(self) -> tuple[float, float]:
        """Normal 95% confidence interval."""
        return self.estimate - 1.96 * self.stderr, self.estimate + 1.96 * self.stderr


def rademacher(n: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A vector of ±1 drawn from ``generator`` (on the CPU, then moved: device-independent)."""
    z = torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8)
    return (2 * z - 1).to(device=device, dtype=dtype)


def hutchinson_trace(
    op: Operator,
    num_probes: int = 100,
    *,
    generator: Optional[torch.Generator] = None,
    target_rel_stderr: Optional[float] = None,
    min_probes: int = 10,
) -> TraceResult:
    """Hutchinson estimate of ``tr(op)`` from at most ``num_probes`` Rademacher probes."""
    if num_probes < 2:
        raise ValueError("num_probes must be at least 2 (for a standard error)")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    samples: list[float] = []
    for i in range(num_probes):
        z = rademacher(op.size, gen, op.dtype, op.device)
        samples.append(float(torch.dot(z.double(), op.matvec(z).double())))
        if target_rel_stderr is not None and i + 1 >= max(min_probes, 2):
            arr = np.asarray(samples)
            se = arr.std(ddof=1) / math.sqrt(len(arr))
            if se <= target_rel_stderr * abs(arr.mean()):
                break
    arr = np.asarray(samples)
    return TraceResult(float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr))), arr, len(arr))
