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
from typing import Optional

import torch
from torch import nn

from lbgap.api import DataInfo, InMemoryData

from .configs import ConvexRegressionConfig, LinearRegressionConfig

__all__ = [
    "ConvexRegressionConfig",
    "build_convex_regression",
    "LinearRegressionConfig",
    "LinearRegression",
    "build_linear_regression",
]


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
