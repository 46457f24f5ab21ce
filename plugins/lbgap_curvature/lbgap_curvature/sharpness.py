"""Keskar et al.'s ε-sharpness (Metric 2.1).

With ``x`` the parameters, ``f`` the full training loss, ``A ∈ R^{n×p}`` and
``A⁺`` its pseudo-inverse::

    C_ε = { z ∈ R^p : −ε(|(A⁺x)_i| + 1) ≤ z_i ≤ ε(|(A⁺x)_i| + 1) }
    φ_{x,f}(ε, A) = (max_{y ∈ C_ε} f(x + A y) − f(x)) / (1 + f(x)) × 100

``A = I`` (full space, box ``|δ_i| ≤ ε(|x_i| + 1)``) or a random ``n × p``
matrix (``p = 100`` in the paper), held factored as a
:class:`~lbgap_curvature.subspace.Subspace` so that ``A⁺x`` is exact and no
dense pseudo-inverse is ever formed. The paper does not say how ``A`` is
drawn; :func:`~lbgap_curvature.subspace.random_subspace` offers orthonormal
columns, i.i.d. Gaussian entries and SmoothOut's construction. The inner
maximum is solved inexactly, as in the paper, by SciPy's L-BFGS-B (10 iterations) minimising
``−f(x + A y)`` with gradient ``−Aᵀ∇f`` (both signs negated: a public port
negates only the value). The largest ``f`` seen during the search is used,
so ``φ ≥ 0``.

The solver's own stopping tests (``pgtol``, ``ftol``) are off by default:
near a minimum the gradient is small enough to end the search at once, which
reports a sharpness of 0 for the wrong reason; only the iteration budget ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional, Union

import numpy as np
import scipy.optimize
import torch

from .subspace import Subspace, random_orthonormal_subspace

__all__ = [
    "KeskarResult",
    "keskar_sharpness",
    "random_orthonormal_subspace",
    "as_subspace",
    "keskar_box",
    "negated_objective",
]

ValueAndGrad = Callable[[torch.Tensor], tuple[float, torch.Tensor]]
#: ``A``: None (the identity), a factored :class:`Subspace`, or a dense full-column-rank ``n × p`` tensor
Matrix = Union[None, Subspace, torch.Tensor]


def as_subspace(A: Matrix) -> Optional[Subspace]:
    """None stays None; a dense tensor is factored (QR) so that its pseudo-inverse is exact."""
    if A is None or isinstance(A, Subspace):
        return A
    return Subspace.from_matrix(A)


@dataclass
class KeskarResult:
    """One evaluation of Metric 2.1.

    Attributes
    ----------
    sharpness:
        φ (a percentage).
    base_loss, max_loss:
        ``f(x)`` and the largest ``f(x + A y)`` found.
    y_best:
        The maximiser found (box coordinates, float64).
    nfev, nit:
        Function evaluations (each a full-data loss and gradient) and L-BFGS-B iterations.
    message:
        The solver's termination message.
    """

    sharpness: float
    base_loss: float
    max_loss: float
    y_best: np.ndarray
    nfev: int
    nit: int
    message: str


def keskar_box(x0: torch.Tensor, eps: float, A: Matrix = None) -> np.ndarray:
    """Half-widths ``ε(|A⁺x| + 1)`` of the box (``A = I`` when None)."""
    S = as_subspace(A)
    coord = x0.double() if S is None else S.pinv_apply(x0)
    return (eps * (coord.abs() + 1.0)).cpu().numpy()


def negated_objective(
    value_and_grad: ValueAndGrad,
    x0: torch.Tensor,
    A: Matrix,
    record: Callable[[float, np.ndarray], None] | None = None,
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``y ↦ (−f(x0 + A y), −Aᵀ∇f(x0 + A y))`` in float64, what L-BFGS-B minimises."""
    x0d = x0.detach().double()
    S = as_subspace(A)

    def fun(y: np.ndarray) -> tuple[float, np.ndarray]:
        yt = torch.as_tensor(y, dtype=torch.float64, device=x0.device)
        step = yt if S is None else S.apply(yt).double()
        x = (x0d + step).to(x0.dtype)
        f, g = value_and_grad(x)
        gy = g.double() if S is None else S.adjoint(g)
        if record is not None:
            record(f, y)
        return -float(f), -gy.cpu().numpy()

    return fun


def keskar_sharpness(
    value_and_grad: ValueAndGrad,
    x0: torch.Tensor,
    eps: float,
    *,
    A: Matrix = None,
    maxiter: int = 10,
    maxfun: Optional[int] = None,
    pgtol: float = 0.0,
    ftol: float = 0.0,
    start: Literal["center", "random"] = "center",
    generator: Optional[torch.Generator] = None,
    base_loss: Optional[float] = None,
) -> KeskarResult:
    """Metric 2.1 of Keskar et al. for the loss ``value_and_grad`` at ``x0``.

    Parameters
    ----------
    value_and_grad:
        ``x ↦ (f(x), ∇f(x))`` for a flat parameter vector ``x``.
    x0:
        The point (flat parameters).
    eps:
        Box size ε.
    A:
        The ``n × p`` matrix of the random subspace (a :class:`Subspace`, or a
        dense full-column-rank tensor, factored here), or None for the full space.
    maxiter:
        L-BFGS-B iterations (the paper: 10).
    maxfun:
        Cap on function evaluations (default: L-BFGS-B's, 15000).
    pgtol, ftol:
        L-BFGS-B's projected-gradient and relative-reduction stopping tests
        (0: off, only ``maxiter``/``maxfun`` stop the search).
    start:
        ``"center"`` (y = 0, i.e. x itself) or ``"random"`` (uniform in the
        box, drawn from ``generator``).
    base_loss:
        ``f(x0)`` if already known (saves one evaluation with a random start).
    """
    if eps <= 0:
        raise ValueError("eps must be positive")
    A = as_subspace(A)
    bound = keskar_box(x0, eps, A)
    best = {"f": -np.inf, "y": np.zeros_like(bound), "f0": base_loss}

    def record(f: float, y: np.ndarray) -> None:
        if best["f0"] is None and not np.any(y):
            best["f0"] = f
        if f > best["f"]:
            best["f"], best["y"] = f, y.copy()

    fun = negated_objective(value_and_grad, x0, A, record)
    if start == "center":
        y0 = np.zeros_like(bound)
    elif start == "random":
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        u = torch.rand(len(bound), generator=gen, dtype=torch.float64).numpy()
        y0 = (2 * u - 1) * bound
    else:
        raise ValueError(f"start must be 'center' or 'random', not {start!r}")
    if best["f0"] is None and start != "center":
        fun(np.zeros_like(bound))
    options = {"maxiter": maxiter, "gtol": pgtol, "ftol": ftol}
    if maxfun is not None:
        options["maxfun"] = maxfun
    res = scipy.optimize.minimize(
        fun,
        y0,
        jac=True,
        method="L-BFGS-B",
        bounds=scipy.optimize.Bounds(-bound, bound),
        options=options,
    )
    f0 = float(best["f0"])
    f_max = max(float(best["f"]), f0)
    return KeskarResult(
        sharpness=100.0 * (f_max - f0) / (1.0 + f0),
        base_loss=f0,
        max_loss=f_max,
        y_best=best["y"],
        nfev=int(res.nfev),
        nit=int(res.nit),
        message=str(res.message),
    )
