"""The P/Q mixture of Li, Wei & Ma (2019): a learning-order toy distribution.

Each example is ``x = (x1, x2) ∈ R^d × R^d`` with a label ``y ∈ {−1, +1}``
drawn uniformly. Conditioned on ``y``, one of three components is drawn:

* with probability ``p0`` only the P-part: ``x1 ~ P_y``, ``x2 = 0``;
* with probability ``q0`` only the Q-part: ``x1 = 0``, ``x2 ~ Q_y``;
* otherwise both: ``x1 ~ P_y``, ``x2 ~ Q_y``.

**P** (hard to generalize, easy to fit) is a pair of half Gaussians with a
margin ``γ0`` along a unit direction ``w*``::

    x1 ~ P_{+1}  ⇔  x1 = γ0 w* + g,  g ~ N(0, I/d) conditioned on ⟨w*, g⟩ ≥ 0
    x1 ~ P_{−1}  ⇔  x1 = −γ0 w* + g, g ~ N(0, I/d) conditioned on ⟨w*, g⟩ ≤ 0

so ``y ⟨w*, x1⟩ ≥ γ0``: linearly separable, but noisy in ``d`` dimensions.

**Q** (easy to generalize, hard to fit) lives on three rays through the
fixed vectors ``z``, ``z − ζ``, ``z + ζ`` with ``‖ζ‖ ≪ ‖z‖``::

    x2 ~ Q_{+1}  ⇔  x2 = α z,          α ~ U[α_lo, α_hi]
    x2 ~ Q_{−1}  ⇔  x2 = α (z + b ζ),  α ~ U[α_lo, α_hi], b ~ U{−1, +1}

The middle ray is the positive class and the outer two the negative one, so
Q is not linearly separable; a positively homogeneous ReLU network (no
biases) classifies ``α x`` as it classifies ``x`` and can memorise Q.

Sources: the definitions above are the 2020 report's summary of Li, Wei & Ma
§3 (``../shared/seeds/001_*.txt``, §2.1.3). The 20/20/60 split comes from a
third-party replication note (peers.md §3.6). The numerical constants (d,
γ0, ‖z‖, ‖ζ‖, n) are not in any source at hand; the defaults of
:class:`lbgap_synthetic.pq_plugin.PQSyntheticConfig` are explained there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "P_ONLY",
    "Q_ONLY",
    "BOTH",
    "COMPONENT_NAMES",
    "PQStructure",
    "PQSample",
    "draw_structure",
    "sample_pq",
    "sample_half_gaussian_p",
    "sample_q",
]

#: component codes
P_ONLY, Q_ONLY, BOTH = 0, 1, 2
#: component code → group name used in ``test_groups`` / ``train_groups``
COMPONENT_NAMES = {P_ONLY: "p_only", Q_ONLY: "q_only", BOTH: "both"}


@dataclass(frozen=True)
class PQStructure:
    """The fixed vectors defining one P/Q distribution.

    Attributes
    ----------
    w_star:
        Unit direction of the P margin, shape ``[d]``.
    z:
        Centre of the Q pattern, ``‖z‖ = q_norm``, shape ``[d]``.
    zeta:
        Offset of the negative Q rays, ``‖ζ‖ = zeta_norm``, shape ``[d]``.
    gamma0:
        The P margin.
    """

    w_star: torch.Tensor
    z: torch.Tensor
    zeta: torch.Tensor
    gamma0: float

    @property
    def d(self) -> int:
        return int(self.w_star.numel())


@dataclass(frozen=True)
class PQSample:
    """Examples drawn from a P/Q distribution.

    Attributes
    ----------
    x:
        Inputs ``[n, 2d]``: ``x[:, :d]`` is the P-part, ``x[:, d:]`` the Q-part.
    y:
        Class labels in ``{0, 1}`` (``long``); class 1 is ``y = +1``.
    component:
        ``P_ONLY``, ``Q_ONLY`` or ``BOTH`` per example (``long``).
    alpha:
        The Q scale of each example (NaN where there is no Q-part).
    b:
        The sign ``b`` of the negative Q examples (0 where it does not apply).
    """

    x: torch.Tensor
    y: torch.Tensor
    component: torch.Tensor
    alpha: torch.Tensor
    b: torch.Tensor

    @property
    def y_pm(self) -> torch.Tensor:
        """Labels in ``{−1, +1}``."""
        return self.y * 2 - 1

    def mask(self, component: int) -> torch.Tensor:
        return self.component == component


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def draw_structure(
    d: int,
    *,
    gamma0: float,
    q_norm: float,
    zeta_norm: float,
    zeta_orthogonal: bool,
    generator: torch.Generator,
) -> PQStructure:
    """Draw ``w*``, ``z`` and ``ζ`` uniformly on their spheres.

    With ``zeta_orthogonal`` the direction of ζ is drawn orthogonal to z
    (then ``‖z ± ζ‖ = sqrt(‖z‖² + ‖ζ‖²)`` for both negative rays).
    """
    w_star = _unit(torch.randn(d, generator=generator, dtype=torch.float64))
    z_dir = _unit(torch.randn(d, generator=generator, dtype=torch.float64))
    zeta_dir = torch.randn(d, generator=generator, dtype=torch.float64)
    if zeta_orthogonal:
        if d < 2:
            raise ValueError("zeta_orthogonal needs d >= 2")
        zeta_dir = zeta_dir - (zeta_dir @ z_dir) * z_dir
    zeta_dir = _unit(zeta_dir)
    return PQStructure(w_star=w_star, z=q_norm * z_dir, zeta=zeta_norm * zeta_dir, gamma0=float(gamma0))


def sample_half_gaussian_p(
    y_pm: torch.Tensor, structure: PQStructure, generator: torch.Generator
) -> torch.Tensor:
    """P-parts for labels ``y_pm ∈ {−1, +1}``: ``y γ0 w* + g`` with
    ``g ~ N(0, I/d)`` reflected into the half space ``y ⟨w*, g⟩ ≥ 0``.

    Reflecting the ``w*`` component of a Gaussian onto the half space gives
    exactly the conditioned (half-Gaussian) law, since the Gaussian is
    symmetric about the hyperplane ``⟨w*, g⟩ = 0``.
    """
    d = structure.d
    w = structure.w_star
    g = torch.randn(len(y_pm), d, generator=generator, dtype=torch.float64) / math.sqrt(d)
    s = g @ w
    yf = y_pm.to(torch.float64)
    g = g + (yf * s.abs() - s).unsqueeze(1) * w
    return yf.unsqueeze(1) * structure.gamma0 * w + g


def sample_q(
    y_pm: torch.Tensor,
    structure: PQStructure,
    generator: torch.Generator,
    *,
    alpha_low: float,
    alpha_high: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q-parts for labels ``y_pm``: ``α z`` (y = +1) or ``α (z + b ζ)`` (y = −1).

    Returns ``(x2, alpha, b)``; ``b`` is 0 for the positive class.
    """
    n = len(y_pm)
    alpha = alpha_low + (alpha_high - alpha_low) * torch.rand(n, generator=generator, dtype=torch.float64)
    b = torch.randint(0, 2, (n,), generator=generator) * 2 - 1
    b = torch.where(y_pm < 0, b, torch.zeros_like(b))
    x2 = alpha.unsqueeze(1) * (structure.z + b.to(torch.float64).unsqueeze(1) * structure.zeta)
    return x2, alpha, b


def sample_pq(
    n: int,
    structure: PQStructure,
    generator: torch.Generator,
    *,
    p0: float,
    q0: float,
    alpha_low: float = 0.0,
    alpha_high: float = 1.0,
    components: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> PQSample:
    """Draw ``n`` examples.

    Parameters
    ----------
    n:
        Number of examples.
    structure:
        The distribution's fixed vectors (:func:`draw_structure`).
    generator:
        Source of randomness (CPU generator).
    p0, q0:
        Probabilities of the P-only and Q-only components; both otherwise.
    alpha_low, alpha_high:
        Range of the uniform Q scale α.
    components:
        Component codes to use instead of drawing them i.i.d. (to build a test
        set with a fixed number per component).
    dtype:
        Floating dtype of ``x``.
    """
    if p0 < 0 or q0 < 0 or p0 + q0 > 1:
        raise ValueError("need p0, q0 >= 0 and p0 + q0 <= 1")
    d = structure.d
    y = torch.randint(0, 2, (n,), generator=generator)
    y_pm = y * 2 - 1
    if components is None:
        probs = torch.tensor([p0, q0, 1.0 - p0 - q0], dtype=torch.float64)
        components = torch.multinomial(probs, n, replacement=True, generator=generator)
    elif len(components) != n:
        raise ValueError("components must have length n")
    components = components.to(torch.long)
    x1 = sample_half_gaussian_p(y_pm, structure, generator)
    x2, alpha, b = sample_q(y_pm, structure, generator, alpha_low=alpha_low, alpha_high=alpha_high)
    has_p = (components != Q_ONLY).to(torch.float64).unsqueeze(1)
    has_q = (components != P_ONLY)
    x = torch.cat([x1 * has_p, x2 * has_q.to(torch.float64).unsqueeze(1)], dim=1)
    alpha = torch.where(has_q, alpha, torch.full_like(alpha, math.nan))
    b = torch.where(has_q, b, torch.zeros_like(b))
    assert x.shape == (n, 2 * d)
    return PQSample(x=x.to(dtype), y=y, component=components, alpha=alpha, b=b)
