"""Random ``n × p`` matrices for Keskar et al.'s random-subspace sharpness.

Metric 2.1 needs ``A`` (steps ``x + A y``, gradients ``Aᵀ∇f``) and its
pseudo-inverse ``A⁺`` (the box ``ε(|A⁺x| + 1)``). Every matrix here is held
factored as ``A = Q M``: ``Q`` (``n × p``, orthonormal columns, the model's
dtype) and ``M`` (``p × p``, invertible, float64), so that

    A y = Q (M y),    Aᵀ g = Mᵀ (Qᵀ g),    A⁺ x = M⁻¹ (Qᵀ x).

The last identity holds for any full-column-rank ``A`` (``A⁺ = (AᵀA)⁻¹Aᵀ =
M⁻¹Qᵀ``). Only the ``n × p`` factor is stored; nothing ``n × n`` is formed and
``M⁻¹`` comes from triangular solves, not from normal equations.

Distributions (Keskar et al. do not say how their ``A`` was drawn):

* ``orthonormal``: a Gaussian matrix orthonormalised by QR (a uniformly random
  ``p``-dimensional subspace); ``A = Q``, ``A⁺ = Aᵀ``.
* ``gaussian``: i.i.d. N(0, 1) entries, unnormalised (columns of norm ≈ √n);
  ``A = QR`` and ``A⁺ = R⁻¹Qᵀ``.
* ``smoothout``: the construction of the SmoothOut port of Metric 2.1: ``A⁺``
  has i.i.d. U[−1, 1] entries and unit-norm rows, ``A = pinv(A⁺)``. With
  ``A⁺ᵀ = QR``: ``A = Q R⁻ᵀ`` and ``A⁺ = RᵀQᵀ``.

Drawn with the same generator, ``orthonormal`` and ``gaussian`` span the same
subspace and differ only in the scale and coordinates of ``y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .configs import SubspaceMatrix

__all__ = [
    "Subspace",
    "SubspaceMatrix",
    "SUBSPACE_MATRICES",
    "random_subspace",
    "random_orthonormal_subspace",
]

SUBSPACE_MATRICES: tuple[str, ...] = ("orthonormal", "gaussian", "smoothout")


def _qr(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduced QR with the signs fixed (diag R ≥ 0), so the factors are unique."""
    q, r = torch.linalg.qr(a, mode="reduced")
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1
    return q * signs, r * signs[:, None]


def _tri_inv(r: torch.Tensor) -> torch.Tensor:
    """R⁻¹ of an upper-triangular R by a triangular solve."""
    eye = torch.eye(r.shape[0], dtype=r.dtype, device=r.device)
    return torch.linalg.solve_triangular(r, eye, upper=True)


@dataclass(frozen=True)
class Subspace:
    """``A = Q M``: ``basis`` Q (n × p, orthonormal columns), ``mix`` M (p × p) and ``mix_inv`` M⁻¹.

    ``mix`` and ``mix_inv`` are float64 on the basis's device; None means the identity.
    """

    basis: torch.Tensor
    mix: torch.Tensor | None = None
    mix_inv: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.basis.shape[0]), int(self.basis.shape[1]))

    @classmethod
    def from_matrix(cls, A: torch.Tensor) -> Subspace:
        """Factor any full-column-rank ``A`` (QR)."""
        q, r = _qr(A)
        r64 = r.double()
        return cls(q, r64, _tri_inv(r64))

    def apply(self, y: torch.Tensor) -> torch.Tensor:
        """``A y`` (in the basis's dtype)."""
        z = y.double().to(self.basis.device)
        if self.mix is not None:
            z = self.mix @ z
        return self.basis @ z.to(self.basis.dtype)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        """``Aᵀ g`` (float64)."""
        z = (self.basis.T @ g.to(self.basis.dtype)).double()
        return z if self.mix is None else self.mix.T @ z

    def pinv_apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A⁺ x`` (float64)."""
        z = (self.basis.T @ x.to(self.basis.dtype)).double()
        return z if self.mix_inv is None else self.mix_inv @ z

    def matrix(self) -> torch.Tensor:
        """``A`` as a dense ``n × p`` float64 tensor (for checks on small problems)."""
        q = self.basis.double()
        return q if self.mix is None else q @ self.mix

    def pinv_matrix(self) -> torch.Tensor:
        """``A⁺`` as a dense ``p × n`` float64 tensor (for checks on small problems)."""
        qt = self.basis.double().T
        return qt if self.mix_inv is None else self.mix_inv @ qt


def random_subspace(
    n: int,
    p: int,
    *,
    matrix: SubspaceMatrix = "orthonormal",
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Subspace:
    """A random ``n × p`` matrix of the distribution ``matrix`` (module docstring).

    The entries are drawn on the CPU from ``generator`` in ``dtype`` (so the
    numbers do not depend on the device), then factored on ``device``.
    """
    if not 1 <= p <= n:
        raise ValueError(f"subspace dimension must be in [1, {n}], got {p}")
    if matrix in ("orthonormal", "gaussian"):
        g = torch.randn(n, p, generator=generator, dtype=dtype).to(device)
        if matrix == "gaussian":
            return Subspace.from_matrix(g)
        return Subspace(_qr(g)[0])
    if matrix == "smoothout":
        # the transpose of A⁺: n × p, U[−1, 1] entries, unit-norm columns (= rows of A⁺)
        bt = torch.rand(n, p, generator=generator, dtype=dtype).mul_(2).sub_(1).to(device)
        bt /= torch.linalg.vector_norm(bt, dim=0, keepdim=True)
        q, r = _qr(bt)
        del bt
        r64 = r.double()
        return Subspace(q, _tri_inv(r64).T, r64.T)
    raise ValueError(f"subspace matrix must be one of {', '.join(SUBSPACE_MATRICES)}, not {matrix!r}")


def random_orthonormal_subspace(
    n: int,
    p: int,
    *,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """An ``n × p`` matrix with orthonormal columns spanning a uniformly random subspace."""
    return random_subspace(n, p, matrix="orthonormal", generator=generator, dtype=dtype, device=device).basis
