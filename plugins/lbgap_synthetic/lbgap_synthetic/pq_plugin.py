"""Dataset plugin ``pq_synthetic``: the P/Q mixture of Li, Wei & Ma (2019).

See :mod:`lbgap_synthetic.pq_data` for the distribution. The test split
reports accuracy per component through ``test_groups`` named ``p_only``,
``q_only`` and ``both`` (the same names in ``train_groups``).
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from lbgap.api import InMemoryData, PluginConfig

from .pq_data import BOTH, COMPONENT_NAMES, P_ONLY, Q_ONLY, PQSample, draw_structure, sample_pq

__all__ = ["PQSyntheticConfig", "build_pq_synthetic", "pq_structure_and_splits"]


class PQSyntheticConfig(PluginConfig):
    """P/Q mixture of Li, Wei & Ma 2019: linearly separable noisy P plus memorisable, non-linear Q.

    Inputs are ``x = (x1, x2) ∈ R^{2d}`` (P-part then Q-part, a missing part is
    zero), labels are classes ``{0, 1}`` (class 1 is the paper's ``y = +1``).
    The structure (the forms of P and Q and the mixture) follows the paper as
    summarised in the 2020 report. The numbers (d, γ0, ‖z‖, ‖ζ‖, n) are in no
    source at hand; the defaults respect the paper's stated constraints
    (``p0·n_train < d/2``, ``‖ζ‖ < ‖z‖``) and are the scale explored on a CPU with
    ``studies/tools/explore_pq.py`` — they are not the paper's values.
    """

    d: PositiveInt = 500
    """Dimension of each part (the input has ``2d`` features). [paper: "d large", value unknown; chosen]"""

    n_train: PositiveInt = 800
    """Training examples. The theory needs the P-only count ``p0·n_train`` below ``d/2`` [report §2.1.4]."""

    n_test: PositiveInt = 3000
    """Test examples."""

    test_sampling: Literal["balanced", "mixture"] = "balanced"
    """``balanced``: ``n_test/3`` test examples of each component, so per-component accuracies are
    equally precise (the overall ``test_accuracy`` is then an equal-weight average);
    ``mixture``: drawn from the training mixture."""

    p0: float = Field(0.2, ge=0.0, le=1.0)
    """Probability of a P-only example. [2nd: 20/20/60 split, peers.md §3.6]"""

    q0: float = Field(0.2, ge=0.0, le=1.0)
    """Probability of a Q-only example (the rest have both parts). [2nd: 20/20/60 split]"""

    gamma0: NonNegativeFloat = 0.25
    """P margin ``γ0``: ``y⟨w*, x1⟩ ≥ γ0``. In units of ``1/sqrt(d)`` unless ``margin_units='absolute'``.
    [paper: symbol only; 1/sqrt(d) scaling from a third-party replication; value chosen so that a
    max-margin linear classifier on P-only data reaches 71.5% from 160 and 85.1% from 640 examples
    at d = 500]"""

    margin_units: Literal["per_sqrt_d", "absolute"] = "per_sqrt_d"
    """How ``gamma0`` is read: multiplied by ``1/sqrt(d)``, or as is. (The P noise is N(0, I/d), whose
    component along w* has std ``1/sqrt(d)``.)"""

    q_norm: PositiveFloat = 1.0
    """``‖z‖``, the length of the centre of the Q pattern (the P-part has norm ≈ 1). [paper: symbol
    only; chosen]"""

    zeta_norm: PositiveFloat = 0.3
    """``‖ζ‖`` (the paper's ``‖ζ‖ ≪ 1``): the offset of the negative Q rays ``z ± ζ``. [paper: "≪ 1";
    value chosen: much smaller values are not fitted by the small learning rate within hundreds of
    epochs at this scale]"""

    zeta_orthogonal: bool = True
    """Draw ζ orthogonal to z (both negative rays then have the same length). [choice; the paper
    does not say]"""

    alpha_low: NonNegativeFloat = 0.0
    """Lower end of the uniform Q scale α. [report: α ~ U[0, 1]]"""

    alpha_high: PositiveFloat = 1.0
    """Upper end of the uniform Q scale α. [report: α ~ U[0, 1]]"""

    data_seed: Optional[int] = None
    """Seed of the data (structure and samples); None uses the trial seed, so every seed is a new
    draw of ``w*``, ``z``, ``ζ`` and of the examples."""

    @model_validator(mode="after")
    def _check(self) -> PQSyntheticConfig:
        if self.p0 + self.q0 > 1.0:
            raise ValueError(f"p0 + q0 must be at most 1, got {self.p0 + self.q0}")
        if self.alpha_low >= self.alpha_high:
            raise ValueError("alpha_low must be below alpha_high")
        return self

    @property
    def gamma0_absolute(self) -> float:
        return self.gamma0 / math.sqrt(self.d) if self.margin_units == "per_sqrt_d" else self.gamma0


def _balanced_components(n: int, generator: torch.Generator) -> torch.Tensor:
    codes = torch.tensor([P_ONLY, Q_ONLY, BOTH])
    comp = codes.repeat(n // 3 + 1)[:n]
    return comp[torch.randperm(n, generator=generator)]


def pq_structure_and_splits(cfg: PQSyntheticConfig, seed: int):
    """Draw the structure and both splits on the CPU: ``(structure, train, test)``."""
    gen = torch.Generator().manual_seed(int(cfg.data_seed if cfg.data_seed is not None else seed))
    structure = draw_structure(
        cfg.d,
        gamma0=cfg.gamma0_absolute,
        q_norm=cfg.q_norm,
        zeta_norm=cfg.zeta_norm,
        zeta_orthogonal=cfg.zeta_orthogonal,
        generator=gen,
    )
    kw = dict(p0=cfg.p0, q0=cfg.q0, alpha_low=cfg.alpha_low, alpha_high=cfg.alpha_high)
    train = sample_pq(cfg.n_train, structure, gen, **kw)
    comp = _balanced_components(cfg.n_test, gen) if cfg.test_sampling == "balanced" else None
    test = sample_pq(cfg.n_test, structure, gen, components=comp, **kw)
    return structure, train, test


def _groups(sample: PQSample) -> dict[str, torch.Tensor]:
    return {name: sample.component == code for code, name in COMPONENT_NAMES.items()}


def build_pq_synthetic(cfg: PQSyntheticConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the P/Q data set (inputs ``float32 [n, 2d]``, labels ``{0, 1}``)."""
    _, train, test = pq_structure_and_splits(cfg, seed)
    data = InMemoryData(
        train_x=train.x,
        train_y=train.y,
        test_x=test.x,
        test_y=test.y,
        num_classes=2,
        test_groups=_groups(test),
        train_groups=_groups(train),
        description=(
            f"P/Q mixture (Li, Wei & Ma 2019): d={cfg.d}, n_train={cfg.n_train}, p0={cfg.p0}, q0={cfg.q0}, "
            f"gamma0={cfg.gamma0_absolute:.4g}, |z|={cfg.q_norm}, |zeta|={cfg.zeta_norm}, "
            f"alpha~U[{cfg.alpha_low}, {cfg.alpha_high}]"
        ),
    )
    return data.to(device)
