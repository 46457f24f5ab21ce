"""The configuration models of this package's data sets and model (no torch: a study file is
validated without loading it; :mod:`.convex_plugin` and :mod:`.pq_plugin` build them)."""

from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from lbgap.api import PluginConfig

__all__ = ["ConvexRegressionConfig", "LinearRegressionConfig", "PQSyntheticConfig"]


class ConvexRegressionConfig(PluginConfig):
    """Undersampled 2-D linear regression (the 2020 report's convex example, §4)."""

    design: Literal["paper_counts", "basis_random", "gaussian"] = "paper_counts"
    """``paper_counts``: ``counts`` copies of e1 and e2 (report §4.2, train loss
    2/3 (β1−β1*)² + 1/3 (β2−β2*)²); ``basis_random``: ``n_train`` points drawn uniformly from
    {e1, e2}; ``gaussian``: ``n_train`` points from N(0, I₂) (report §4.3: 10 examples)."""

    counts: tuple[NonNegativeInt, NonNegativeInt] = (2, 1)
    """Copies of e1 and e2 in the ``paper_counts`` training set. [report §4.2: n = 3, two samples
    share a point; the report's text names (0, 1) as the repeated point but its loss puts weight 2/3
    on β1, i.e. on e1 = (1, 0), which is what is used here]"""

    n_train: PositiveInt = 10
    """Training points for ``basis_random`` and ``gaussian``. [report §4.3: 10]"""

    n_test: PositiveInt = 10000
    """Test points for ``gaussian`` (for the basis designs the test set is {e1, e2}, exact)."""

    beta_star: tuple[float, float] = (1.0, 1.0)
    """Ground truth β*. [report: symbol only]"""

    noise_std: NonNegativeFloat = 0.0
    """Standard deviation of Gaussian noise on the training targets (report: none)."""

    data_seed: Optional[int] = None
    """Seed of the random designs; None uses the trial seed."""

    @model_validator(mode="after")
    def _check(self) -> ConvexRegressionConfig:
        if self.design == "paper_counts" and sum(self.counts) == 0:
            raise ValueError("counts must contain at least one point")
        return self


class LinearRegressionConfig(PluginConfig):
    """Linear model ŷ = ⟨β, x⟩ (+ b), started at zero (the convex example's GD from 0)."""

    bias: bool = False
    """Add an intercept. [report: none]"""

    init: Literal["zeros", "default"] = "zeros"
    """``zeros``: β = 0 (report: "gradient descent ... starting at β = 0"); ``default``: PyTorch's
    ``nn.Linear`` initialisation."""

    outputs: Optional[PositiveInt] = Field(None)
    """Number of outputs; None = 1, returned as shape ``[batch]`` to match float targets ``[batch]``."""


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
