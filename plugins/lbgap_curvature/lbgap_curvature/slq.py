"""Spectral density by stochastic Lanczos quadrature (SLQ).

For a probe ``v`` of unit norm, ``m`` Lanczos steps give a tridiagonal ``T``
with eigenvalues ``θ_k`` (nodes) and eigenvectors ``s_k``; ``τ_k = (s_k)_1²``
(weights, summing to 1) form the Gauss quadrature rule with
``Σ_k τ_k θ_k^j = vᵀ H^j v`` exactly for ``j ≤ 2m − 1``. Averaged over
Gaussian probes it estimates the spectral measure ``(1/n) Σ_i δ(λ − λ_i)``
(Ubaru et al. 2017; Ghorbani et al. 2019). A smooth density is drawn by
putting a Gaussian kernel of width ``σ`` on every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from .lanczos import Operator, lanczos_tridiagonal

__all__ = ["SpectrumResult", "slq_spectrum", "gauss_quadrature", "smoothed_density"]


@dataclass
class SpectrumResult:
    """Quadrature nodes and weights per probe (NaN-padded to ``steps``)."""

    nodes: np.ndarray
    weights: np.ndarray
    n_matvec: int

    @property
    def support(self) -> tuple[float, float]:
        return float(np.nanmin(self.nodes)), float(np.nanmax(self.nodes))


def gauss_quadrature(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the tridiagonal ``(α, β)``: eigenvalues and squared first components."""
    if len(alphas) == 1:
        return alphas.copy(), np.ones(1)
    theta, S = eigh_tridiagonal(alphas, betas)
    return theta, S[0, :] ** 2


def slq_spectrum(
    op: Operator,
    *,
    num_probes: int = 1,
    steps: int = 80,
    generator: Optional[torch.Generator] = None,
) -> SpectrumResult:
    """Run ``steps`` Lanczos steps from each of ``num_probes`` Gaussian probes."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    steps = min(steps, op.size)
    nodes = np.full((num_probes, steps), np.nan)
    weights = np.full((num_probes, steps), np.nan)
    n_mv = 0

    def mv(v: torch.Tensor) -> torch.Tensor:
        nonlocal n_mv
        n_mv += 1
        return op.matvec(v)

    for i in range(num_probes):
        v = torch.randn(op.size, generator=gen, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
        a, b = lanczos_tridiagonal(mv, v, steps)
        theta, tau = gauss_quadrature(a, b)
        nodes[i, : len(theta)] = theta
        weights[i, : len(tau)] = tau
    return SpectrumResult(nodes, weights, n_mv)


def smoothed_density(
    result: SpectrumResult,
    grid: np.ndarray,
    sigma: float,
) -> np.ndarray:
    """Average over probes of ``Σ_k τ_k N(λ; θ_k, σ²)`` on ``grid``."""
    if sigma <= 0:
        raise ValueError("sigma must be positive")
    dens = np.zeros_like(grid, dtype=float)
    for theta, tau in zip(result.nodes, result.weights, strict=True):
        ok = ~np.isnan(theta)
        z = (grid[:, None] - theta[None, ok]) / sigma
        dens += (np.exp(-0.5 * z**2) * tau[None, ok]).sum(axis=1) / (sigma * np.sqrt(2 * np.pi))
    return dens / len(result.nodes)
