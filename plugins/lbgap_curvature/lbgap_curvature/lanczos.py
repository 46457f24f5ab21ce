"""Extreme eigenvalues of a symmetric operator by restarted Lanczos.

:func:`top_eigenpairs` runs Lanczos with full re-orthogonalisation (two
classical Gram-Schmidt passes per step) and thick restarts (Wu & Simon 2000,
the symmetric case of Stewart's Krylov-Schur): when the basis reaches
``max_basis`` vectors, the wanted Ritz vectors are kept and the iteration
continues from the last residual direction. It stops as soon as each of the
``k`` wanted Ritz pairs has a residual ``‖A y − θ y‖ ≤ tol · |θ|``, so the
number of operator products adapts to the spectrum instead of being fixed in
advance. For a symmetric operator the eigenvalue error is at most the
residual, and at most ``residual² / gap`` once the pair is isolated.

:func:`eigsh_eigenpairs` does the same through SciPy's ARPACK ``eigsh`` on a
:class:`scipy.sparse.linalg.LinearOperator`, as an alternative solver.
:func:`lanczos_tridiagonal` is the plain (unrestarted) recurrence used by
stochastic Lanczos quadrature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Optional, Protocol

import numpy as np
import torch

__all__ = [
    "Operator",
    "MatrixOperator",
    "EigenResult",
    "top_eigenpairs",
    "eigsh_eigenpairs",
    "lanczos_tridiagonal",
    "Which",
]

log = logging.getLogger(__name__)

Which = Literal["LA", "LM"]


class Operator(Protocol):
    """A symmetric linear operator on vectors of length ``size``."""

    size: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


class MatrixOperator:
    """An explicit symmetric matrix as an :class:`Operator` (tests and oracles)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.size = matrix.shape[0]
        self.dtype = matrix.dtype
        self.device = matrix.device
        self.n_matvec = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.n_matvec += 1
        return self.matrix @ v.to(self.dtype)


@dataclass
class EigenResult:
    """Eigenvalues with the evidence that they are right.

    Attributes
    ----------
    eigenvalues:
        The ``k`` wanted eigenvalue estimates (Ritz values), in decreasing order
        of the selection criterion (algebraic value for ``"LA"``, magnitude for
        ``"LM"``).
    residuals:
        ``‖A y_i − θ_i y_i‖`` for each Ritz pair (``y_i`` of unit norm): from the
        Lanczos relation, or measured with one extra product each when
        ``verified``.
    converged:
        ``residual ≤ tol · |θ|`` for each pair.
    n_matvec:
        Operator products used (including verification products).
    eigenvectors:
        ``size × k`` Ritz vectors (when requested), else None.
    verified:
        Whether ``residuals`` were measured explicitly.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    n_matvec: int
    eigenvectors: Optional[torch.Tensor] = None
    restarts: int = 0
    verified: bool = False

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))


def _order(theta: np.ndarray, which: Which) -> np.ndarray:
    key = -theta if which == "LA" else -np.abs(theta)
    return np.argsort(key, kind="stable")


def _start_vector(op: Operator, generator: Optional[torch.Generator], v0: Optional[torch.Tensor]):
    if v0 is None:
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        v0 = torch.randn(op.size, generator=generator, dtype=torch.float64)
    v0 = v0.to(device=op.device, dtype=op.dtype)
    norm = torch.linalg.vector_norm(v0)
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("start vector has zero or non-finite norm")
    return v0 / norm


def _orthogonalize(V: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical Gram-Schmidt of ``w`` against the rows of ``V`` (orthonormal), repeated
    once when the first pass cancelled most of ``w`` ("twice is enough": Daniel, Gragg,
    Kaufman and Stewart 1976)."""
    before = torch.linalg.vector_norm(w)
    h = V @ w
    w = w - V.T @ h
    if torch.linalg.vector_norm(w) < 0.7071 * before:
        h2 = V @ w
        w = w - V.T @ h2
        h = h + h2
    return w, h


def _random_orthogonal(V: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    w = torch.randn(V.shape[1], generator=generator, dtype=torch.float64).to(V)
    w, _ = _orthogonalize(V, w)
    return w / torch.linalg.vector_norm(w)


def top_eigenpairs(
    op: Operator,
    k: int = 1,
    *,
    which: Which = "LA",
    tol: float = 1e-3,
    max_matvec: Optional[int] = None,
    max_basis: Optional[int] = None,
    v0: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    return_vectors: bool = False,
    verify: bool = False,
) -> EigenResult:
    """The ``k`` extreme eigenpairs of the symmetric operator ``op``.

    Parameters
    ----------
    op:
        The operator (``size``, ``dtype``, ``device``, ``matvec``).
    k:
        How many eigenvalues.
    which:
        ``"LA"``: largest algebraic (the usual "top" Hessian eigenvalues);
        ``"LM"``: largest magnitude.
    tol:
        Relative residual at which a Ritz pair counts as converged.
    max_matvec:
        Budget of operator products (default ``max(300, 30 k)``, at most
        what an exact solve of a small operator needs).
    max_basis:
        Basis size that triggers a thick restart (default ``max(2k + 10, 30)``,
        at most ``size``). Memory: ``max_basis + 1`` vectors of ``size``.
    v0, generator:
        Start vector, or the generator that draws a Gaussian one.
    return_vectors:
        Return the Ritz vectors.
    verify:
        Measure each residual with one extra product (``k`` more products).
    """
    n = op.size
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', not {which!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    m_max = min(n, max_basis if max_basis is not None else max(2 * k + 10, 30))
    if m_max < min(n, k + 2) and m_max < n:
        raise ValueError(f"max_basis must be at least k + 2 = {k + 2}")
    if max_matvec is None:
        max_matvec = max(300, 30 * k)
    # keep after a restart: the wanted pairs plus about half the free space
    keep = min(m_max - 1, k + max(1, (m_max - k) // 2))

    V = torch.empty(m_max + 1, n, dtype=op.dtype, device=op.device)  # basis vectors as rows
    H = np.zeros((m_max + 1, m_max + 1))
    V[0] = _start_vector(op, gen, v0)
    j = 0  # index of the vector whose image is computed next
    n_mv = 0
    restarts = 0
    while True:
        w = op.matvec(V[j]).to(op.dtype)
        n_mv += 1
        w, h = _orthogonalize(V[: j + 1], w)
        hc = h.double().cpu().numpy()
        H[: j + 1, j] = hc
        H[j, : j + 1] = hc
        beta = float(torch.linalg.vector_norm(w))
        m = j + 1
        theta, S = np.linalg.eigh(H[:m, :m])
        idx = _order(theta, which)
        wanted = idx[: min(k, m)]
        scale = max(float(np.max(np.abs(theta))), np.finfo(float).tiny)
        invariant = beta <= 1e-12 * scale * (1 if op.dtype == torch.float64 else 1e5)
        res = np.abs(beta * S[m - 1, wanted]) if not invariant else np.zeros(len(wanted))
        conv = res <= tol * np.abs(theta[wanted])
        done = (m >= k and bool(np.all(conv))) or m == n or n_mv >= max_matvec
        if done:
            break
        if invariant:
            # an invariant subspace: continue with a fresh direction, no coupling
            new_v = _random_orthogonal(V[:m], gen)
            beta = 0.0
        else:
            new_v = w / beta
        if m == m_max:  # thick restart
            sel = idx[:keep]
            Y = torch.as_tensor(S[:, sel].T, dtype=op.dtype, device=op.device) @ V[:m]
            V[:keep] = Y
            V[keep] = new_v
            H[:] = 0
            H[np.arange(keep), np.arange(keep)] = theta[sel]
            H[keep, :keep] = H[:keep, keep] = beta * S[m - 1, sel]
            j = keep
            restarts += 1
        else:
            V[m] = new_v
            H[m, m - 1] = H[m - 1, m] = beta
            j = m
    if m < k:
        raise RuntimeError("Lanczos ended before k Ritz values existed")
    vecs = (torch.as_tensor(S[:, wanted].T, dtype=op.dtype, device=op.device) @ V[:m]).T
    result = EigenResult(
        eigenvalues=theta[wanted].copy(),
        residuals=res.copy(),
        converged=conv.copy(),
        n_matvec=n_mv,
        eigenvectors=vecs if return_vectors or verify else None,
        restarts=restarts,
    )
    if verify:
        _verify(op, result)
        if not return_vectors:
            result.eigenvectors = None
    if not result.all_converged:
        log.warning(
            "Lanczos stopped after %d products with %d of %d eigenpairs unconverged (tol %.1e)",
            n_mv,
            int(np.sum(~result.converged)),
            k,
            tol,
        )
    return result


def _verify(op: Operator, result: EigenResult) -> None:
    """Replace the residual estimates by measured ones (one product per pair)."""
    vecs = result.eigenvectors
    assert vecs is not None
    res = []
    for i, lam in enumerate(result.eigenvalues):
        y = vecs[:, i]
        y = y / torch.linalg.vector_norm(y)
        r = op.matvec(y).to(op.dtype) - float(lam) * y
        res.append(float(torch.linalg.vector_norm(r)))
    result.n_matvec += len(res)
    result.residuals = np.asarray(res)
    result.verified = True


def eigsh_eigenpairs(
    op: Operator,
    k: int = 1,
    *,
    which: Which = "LA",
    tol: float = 1e-3,
    max_matvec: Optional[int] = None,
    ncv: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    return_vectors: bool = False,
) -> EigenResult:
    """The same as :func:`top_eigenpairs` through SciPy ARPACK ``eigsh`` (float64 iteration).

    ``tol`` is ARPACK's relative Ritz-residual tolerance; residuals are measured
    with ``k`` extra products.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    n = op.size
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    v0 = torch.randn(n, generator=gen, dtype=torch.float64).numpy()
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        t = torch.as_tensor(np.asarray(x).reshape(-1), dtype=op.dtype, device=op.device)
        return op.matvec(t).double().cpu().numpy()

    lin = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    budget = max_matvec if max_matvec is not None else max(300, 30 * k)
    try:
        vals, vecs = eigsh(lin, k=k, which=which, tol=tol, v0=v0, ncv=ncv, maxiter=max(1, budget))
        converged = True
    except ArpackNoConvergence as err:  # pragma: no cover - depends on the spectrum
        vals, vecs = err.eigenvalues, err.eigenvectors
        converged = False
    order = _order(vals, which)
    vals, vecs = vals[order], vecs[:, order]
    tvecs = torch.as_tensor(vecs, dtype=op.dtype, device=op.device)
    result = EigenResult(
        eigenvalues=vals,
        residuals=np.full(len(vals), np.nan),
        converged=np.full(len(vals), converged),
        n_matvec=count[0],
        eigenvectors=tvecs,
    )
    _verify(op, result)
    threshold = tol if tol > 0 else 1e3 * float(torch.finfo(op.dtype).eps)
    result.converged = result.residuals <= threshold * np.abs(vals)
    if not return_vectors:
        result.eigenvectors = None
    return result


def lanczos_tridiagonal(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    v0: torch.Tensor,
    steps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps with full re-orthogonalisation from ``v0``.

    Returns the diagonal ``α`` (length m) and off-diagonal ``β`` (length m − 1)
    of the tridiagonal matrix, m ≤ ``steps`` (fewer when an invariant subspace
    is reached).
    """
    n = v0.numel()
    steps = min(steps, n)
    V = torch.empty(steps, n, dtype=v0.dtype, device=v0.device)  # basis vectors as rows
    V[0] = v0 / torch.linalg.vector_norm(v0)
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(steps):
        w = matvec(V[j]).to(v0.dtype)
        w, h = _orthogonalize(V[: j + 1], w)
        alphas.append(float(h[j]))
        if j == steps - 1:
            break
        beta = float(torch.linalg.vector_norm(w))
        scale = max(abs(a) for a in alphas) or 1.0
        if beta <= scale * (1e-12 if v0.dtype == torch.float64 else 1e-6):
            break
        betas.append(beta)
        V[j + 1] = w / beta
    return np.asarray(alphas), np.asarray(betas)
