"""McCandlish et al.'s simple gradient noise scale ``B_simple = tr(Σ) / |G|²``.

``G`` is the full-batch gradient and ``Σ`` the per-example gradient
covariance, both over the evaluated data set taken as the population
(``Σ = (1/N) Σ_i (g_i − G)(g_i − G)ᵀ``). From gradients ``g_b`` of disjoint
batches of size ``b`` drawn without replacement (a random permutation cut into
batches), ``E‖g_b − G‖² = tr(Σ)/b · (N − b)/(N − 1)``, so

    tr(Σ) ≈ b (N − 1)/(N − b) · mean_b ‖g_b − G‖²

is unbiased; for ``b = 1`` it is exact. ``G`` is the size-weighted mean of all
batch gradients (a smaller last batch counts in ``G`` but not in the spread).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

__all__ = ["NoiseScaleResult", "simple_noise_scale"]


@dataclass
class NoiseScaleResult:
    """``B_simple``, its numerator and denominator, and what they were computed from."""

    noise_scale: float
    trace_covariance: float
    grad_sq_norm: float
    batch_size: int
    num_batches: int


def simple_noise_scale(batch_grads: Iterable[tuple[torch.Tensor, int]], n_total: int) -> NoiseScaleResult:
    """``B_simple`` from ``(gradient of a batch's mean loss, batch size)`` pairs covering ``n_total`` samples.

    All full batches must have one size ``b < n_total``; at most one (the last)
    may be smaller.
    """
    sizes: list[int] = []
    sum_g = None
    sum_sq = 0.0  # Σ_full ‖g_b‖²
    sum_full = None  # Σ_full g_b
    count = 0
    grads: list[tuple[torch.Tensor, int]] = list(batch_grads)
    if not grads:
        raise ValueError("no batch gradients")
    b = grads[0][1]
    for i, (g, nb) in enumerate(grads):
        g = g.detach().double()
        sum_g = g * nb if sum_g is None else sum_g + g * nb
        sizes.append(nb)
        if nb == b:
            sum_sq += float(torch.dot(g, g))
            sum_full = g.clone() if sum_full is None else sum_full + g
            count += 1
        elif i != len(grads) - 1 or nb > b:
            raise ValueError("only the last batch may differ in size, and only be smaller")
    if sum(sizes) != n_total:
        raise ValueError(f"batches cover {sum(sizes)} samples, expected {n_total}")
    if b >= n_total:
        raise ValueError("the batch size must be smaller than the number of samples")
    G = sum_g / n_total
    g2 = float(torch.dot(G, G))
    spread = sum_sq / count - 2.0 * float(torch.dot(G, sum_full)) / count + g2
    trace = b * (n_total - 1) / (n_total - b) * spread
    return NoiseScaleResult(trace / g2 if g2 > 0 else float("inf"), trace, g2, b, count)
