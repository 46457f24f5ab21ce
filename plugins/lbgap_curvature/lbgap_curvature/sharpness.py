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
Even so, at (or very near) a critical point the first step is ``∇f`` itself
(about 1e-10), which changes nothing in floating point, and L-BFGS-B stops
with no increase found. Such a *stall* — no increase beyond
:data:`STALL_ULPS` units in the last place of ``f(x)`` — is detected and the
search is repeated from a uniform random point of the box (seeded); the
result says so (``stalled``). Precision is the caller's choice:
``value_and_grad`` is evaluated in the dtype of ``x0`` (the metric plugin
measures small values again on a float64 copy, see ``docs/metrics.md``).
"""

from __future__ import annotations

import dataclasses
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
    "float64_subspace",
    "stall_tolerance",
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
        The solver's termination message (both, separated by ``;``, after a restart).
    stalled:
        The search from the start point found no increase beyond rounding
        (:func:`stall_tolerance`); with ``restart_on_stall`` the values come
        from the better of it and a search from a random point of the box.
    """

    sharpness: float
    base_loss: float
    max_loss: float
    y_best: np.ndarray
    nfev: int
    nit: int
    message: str
    stalled: bool = False

    @classmethod
    def nan(cls) -> KeskarResult:
        """A result for a point that could not be measured."""
        nan = float("nan")
        return cls(nan, nan, nan, np.empty(0), 0, 0, "not measured")


def float64_subspace(A: Optional[Subspace]) -> Optional[Subspace]:
    """The same ``A`` with a float64 basis (for a float64 copy of the model)."""
    if A is None:
        return None
    return dataclasses.replace(A, basis=A.basis.double())


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


#: a loss increase of at most this many units in the last place of ``f(x)`` (in the dtype of ``x``) is rounding
STALL_ULPS = 16


def stall_tolerance(base_loss: float, dtype: torch.dtype) -> float:
    """The largest increase ``f(x + Ay) − f(x)`` that rounding alone can explain (:data:`STALL_ULPS` ulps)."""
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps
    return STALL_ULPS * eps * abs(base_loss)


class _Best:
    """The base loss ``f(x)`` (first evaluation at y = 0) and the largest loss seen, with its ``y``."""

    def __init__(self, size: int, base_loss: Optional[float]) -> None:
        self.f0 = base_loss
        self.f = -np.inf
        self.y = np.zeros(size)

    def record(self, f: float, y: np.ndarray) -> None:
        if self.f0 is None and not np.any(y):
            self.f0 = f
        if f > self.f:
            self.f, self.y = f, y.copy()

    def increase(self) -> float:
        return max(float(self.f), float(self.f0)) - float(self.f0)


def start_point(
    start: Literal["center", "random"], bound: np.ndarray, generator: torch.Generator
) -> np.ndarray:
    """``y = 0`` (``"center"``) or a uniform point of the box drawn from ``generator`` (``"random"``)."""
    if start == "center":
        return np.zeros_like(bound)
    if start == "random":
        u = torch.rand(len(bound), generator=generator, dtype=torch.float64).numpy()
        return (2 * u - 1) * bound
    raise ValueError(f"start must be 'center' or 'random', not {start!r}")


def _maximise(fun, y0: np.ndarray, bound: np.ndarray, options: dict) -> scipy.optimize.OptimizeResult:
    return scipy.optimize.minimize(
        fun, y0, jac=True, method="L-BFGS-B", bounds=scipy.optimize.Bounds(-bound, bound), options=options
    )


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
    restart_on_stall: bool = True,
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
    restart_on_stall:
        When the search finds no increase beyond rounding
        (:func:`stall_tolerance`), search again from a uniform point of the
        box drawn from ``generator`` and report the larger maximum, with
        ``stalled`` set. At (or very near) a critical point the search from
        ``y = 0`` ends after one step that changes nothing in floating point.
    """
    if eps <= 0:
        raise ValueError("eps must be positive")
    A = as_subspace(A)
    bound = keskar_box(x0, eps, A)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    best = _Best(len(bound), base_loss)
    fun = negated_objective(value_and_grad, x0, A, best.record)
    y0 = start_point(start, bound, gen)
    if best.f0 is None and start != "center":
        fun(np.zeros_like(bound))
    options = {"maxiter": maxiter, "gtol": pgtol, "ftol": ftol}
    if maxfun is not None:
        options["maxfun"] = maxfun
    runs = [_maximise(fun, y0, bound, options)]
    stalled = best.increase() <= stall_tolerance(float(best.f0), x0.dtype)
    if stalled and restart_on_stall:
        runs.append(_maximise(fun, start_point("random", bound, gen), bound, options))
    f0 = float(best.f0)
    return KeskarResult(
        sharpness=100.0 * best.increase() / (1.0 + f0),
        base_loss=f0,
        max_loss=f0 + best.increase(),
        y_best=best.y,
        nfev=sum(int(r.nfev) for r in runs),
        nit=sum(int(r.nit) for r in runs),
        message="; ".join(str(r.message) for r in runs),
        stalled=bool(stalled),
    )
