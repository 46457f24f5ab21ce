"""Adaptive (reparameterization-invariant) sharpness.

Kwon et al. (2021, ASAM) and Andriushchenko et al. (2023) measure sharpness
in a neighbourhood scaled elementwise by the weights, ``T_w = |w| + η``::

    worst case:    S_max = max_{‖T_w⁻¹ δ‖_p ≤ ρ} f(w + δ) − f(w)
    average case:  S_avg = E_δ[f(w + δ)] − f(w),  δ = T_w ⊙ u,
                   u ~ N(0, ρ² I) ("l2") or U[−ρ, ρ]ⁿ ("linf")

Both are computed in the scaled coordinates ``u = T_w⁻¹ δ``. If a
reparameterization multiplies each weight by a positive factor (Dinh et al.'s
α-scale, or scaling the weights in front of a BatchNorm layer) and ``η = 0``,
then ``f'(w' + T_{w'} u) = f(w + T_w u)`` for every ``u``: the objective in
``u`` is the same function, so with the same random stream the computed value
is the same (up to rounding) — the invariance Dinh et al. ask for.

The worst case is found by projected ascent on ``u`` in the style of
Andriushchenko et al.'s Auto-PGD: normalised (``l2``) or sign (``linf``)
gradient steps of initial size ``2ρ``, momentum 0.75, step halved at
checkpoints without improvement, best point kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional

import torch

__all__ = ["AdaptiveSharpnessResult", "adaptive_worst_case", "adaptive_average_case", "adaptive_scale"]

Norm = Literal["l2", "linf"]
ValueAndGrad = Callable[[torch.Tensor], tuple[float, torch.Tensor]]


@dataclass
class AdaptiveSharpnessResult:
    """Sharpness ``f(w + δ) − f(w)`` (worst or mean), with the losses and the evaluation count."""

    sharpness: float
    base_loss: float
    perturbed_loss: float
    stderr: float
    n_evals: int


def adaptive_scale(x0: torch.Tensor, eta: float = 0.0) -> torch.Tensor:
    """``T_w = |w| + η``, elementwise."""
    return x0.abs() + eta


def _project(u: torch.Tensor, rho: float, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return u.clamp(-rho, rho)
    n = torch.linalg.vector_norm(u)
    return u if n <= rho else u * (rho / n)


def _direction(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return torch.sign(g)
    n = torch.linalg.vector_norm(g)
    return g / n if n > 0 else g


def adaptive_worst_case(
    value_and_grad: ValueAndGrad,
    x0: torch.Tensor,
    rho: float,
    *,
    norm: Norm = "l2",
    eta: float = 0.0,
    steps: int = 20,
    generator: Optional[torch.Generator] = None,
    init: Literal["random", "zero"] = "random",
    base_loss: Optional[float] = None,
) -> AdaptiveSharpnessResult:
    """Worst-case adaptive sharpness by ``steps`` ascent steps.

    ``init="random"`` starts from a random point at half the radius (needed at
    an exact critical point, where the gradient vanishes).
    """
    if rho <= 0:
        raise ValueError("rho must be positive")
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm must be 'l2' or 'linf', not {norm!r}")
    scale = adaptive_scale(x0, eta)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n_evals = 0

    def at(u: torch.Tensor) -> tuple[float, torch.Tensor]:
        nonlocal n_evals
        n_evals += 1
        f, g = value_and_grad(x0 + scale * u)
        return f, scale * g

    g0 = None
    if base_loss is None:
        base_loss, g0 = at(torch.zeros_like(x0))
    if init == "random":
        r = torch.randn(x0.numel(), generator=gen, dtype=torch.float64).to(x0)
        if norm == "l2":
            u = r * (0.5 * rho / torch.linalg.vector_norm(r))
        else:
            u = torch.sign(r) * (0.5 * rho)
        f, g = at(u)
    elif init == "zero":
        u = torch.zeros_like(x0)
        f, g = (base_loss, g0) if g0 is not None else at(u)
    else:
        raise ValueError(f"init must be 'random' or 'zero', not {init!r}")
    best_f, best_u = f, u
    step = 2.0 * rho
    u_prev = u
    checkpoint, last_best = max(2, steps // 5), best_f
    for t in range(steps):
        z = _project(u + step * _direction(g, norm), rho, norm)
        u_new = z if t == 0 else _project(u + 0.75 * (z - u) + 0.25 * (u - u_prev), rho, norm)
        u_prev, u = u, u_new
        f, g = at(u)
        if f > best_f:
            best_f, best_u = f, u
        if (t + 1) % checkpoint == 0:
            if best_f <= last_best:
                step /= 2
                u, u_prev = best_u, best_u
                f, g = at(u)
            last_best = best_f
    best_f = max(best_f, base_loss)
    return AdaptiveSharpnessResult(best_f - base_loss, base_loss, best_f, 0.0, n_evals)


def adaptive_average_case(
    value: Callable[[torch.Tensor], float],
    x0: torch.Tensor,
    rho: float,
    *,
    norm: Norm = "l2",
    eta: float = 0.0,
    samples: int = 20,
    generator: Optional[torch.Generator] = None,
    base_loss: Optional[float] = None,
) -> AdaptiveSharpnessResult:
    """Average-case adaptive sharpness from ``samples`` random perturbations (with its standard error)."""
    if rho <= 0:
        raise ValueError("rho must be positive")
    if samples < 2:
        raise ValueError("samples must be at least 2")
    scale = adaptive_scale(x0, eta)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    f0 = value(x0) if base_loss is None else base_loss
    diffs = []
    for _ in range(samples):
        if norm == "l2":
            u = rho * torch.randn(x0.numel(), generator=gen, dtype=torch.float64)
        elif norm == "linf":
            u = rho * (2 * torch.rand(x0.numel(), generator=gen, dtype=torch.float64) - 1)
        else:
            raise ValueError(f"norm must be 'l2' or 'linf', not {norm!r}")
        diffs.append(value(x0 + scale * u.to(x0)) - f0)
    t = torch.tensor(diffs, dtype=torch.float64)
    mean = float(t.mean())
    return AdaptiveSharpnessResult(
        mean, f0, mean + f0, float(t.std() / math.sqrt(samples)), samples + (base_loss is None)
    )
