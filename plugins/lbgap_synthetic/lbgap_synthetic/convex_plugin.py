"""Plugins for the convex example (2020 report §4): ``convex_regression`` data and a
``linear_regression`` model.

With ``design="paper_counts"`` (the default) the training set is the report's
undersampled case — two copies of ``e1`` and one of ``e2`` — and the test set
is the two support points once each, so the engine's test MSE *is* the
population loss ``L_D(β) = ‖β − β*‖²/2``. Train with full-batch SGD
(``batch_size = 3``), no momentum, no weight decay, and stop with
``train_loss_below``; the learning-rate order effect is analysed in
:mod:`lbgap_synthetic.convex`.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from torch import nn

from lbgap.api import DataInfo, InMemoryData, PluginConfig

__all__ = [
    "ConvexRegressionConfig",
    "build_convex_regression",
    "LinearRegressionConfig",
    "LinearRegression",
    "build_linear_regression",
]


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


def build_convex_regression(cfg: ConvexRegressionConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the regression data (``task="regression"``, float targets)."""
    gen = torch.Generator().manual_seed(int(cfg.data_seed if cfg.data_seed is not None else seed))
    eye = torch.eye(2, dtype=torch.float64)
    beta = torch.tensor(cfg.beta_star, dtype=torch.float64)
    if cfg.design == "paper_counts":
        x = torch.cat([eye[0:1].repeat(cfg.counts[0], 1), eye[1:2].repeat(cfg.counts[1], 1)])
    elif cfg.design == "basis_random":
        x = eye[torch.randint(0, 2, (cfg.n_train,), generator=gen)]
    else:
        x = torch.randn(cfg.n_train, 2, generator=gen, dtype=torch.float64)
    y = x @ beta
    if cfg.noise_std > 0:
        y = y + cfg.noise_std * torch.randn(len(y), generator=gen, dtype=torch.float64)
    if cfg.design == "gaussian":
        xt = torch.randn(cfg.n_test, 2, generator=gen, dtype=torch.float64)
        what = f"x ~ N(0, I2), n={cfg.n_train}"
    else:
        xt = eye.clone()
        what = "x uniform on {e1, e2}" + (f", counts={cfg.counts}" if cfg.design == "paper_counts" else f", n={cfg.n_train}")
    yt = xt @ beta
    data = InMemoryData(
        train_x=x.float(),
        train_y=y.float(),
        test_x=xt.float(),
        test_y=yt.float(),
        num_classes=1,
        task="regression",
        description=f"2-D linear regression (report §4): {what}, beta*={cfg.beta_star}, noise={cfg.noise_std}",
    )
    return data.to(device)


class LinearRegressionConfig(PluginConfig):
    """Linear model ŷ = ⟨β, x⟩ (+ b), started at zero (the convex example's GD from 0)."""

    bias: bool = False
    """Add an intercept. [report: none]"""

    init: Literal["zeros", "default"] = "zeros"
    """``zeros``: β = 0 (report: "gradient descent ... starting at β = 0"); ``default``: PyTorch's
    ``nn.Linear`` initialisation."""

    outputs: Optional[PositiveInt] = Field(None)
    """Number of outputs; None = 1, returned as shape ``[batch]`` to match float targets ``[batch]``."""


class LinearRegression(nn.Module):
    """``x ↦ x.flatten(1) @ β (+ b)``; a single output is squeezed to ``[batch]``."""

    def __init__(self, in_features: int, outputs: Optional[int], *, bias: bool, zero_init: bool) -> None:
        super().__init__()
        self.squeeze = outputs is None
        self.linear = nn.Linear(in_features, outputs or 1, bias=bias)
        if zero_init:
            nn.init.zeros_(self.linear.weight)
            if bias:
                nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return out.squeeze(-1) if self.squeeze else out


def build_linear_regression(cfg: LinearRegressionConfig, *, info: DataInfo) -> LinearRegression:
    in_features = int(math.prod(info.input_shape))
    return LinearRegression(in_features, cfg.outputs, bias=cfg.bias, zero_init=cfg.init == "zeros")
