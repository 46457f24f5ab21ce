"""An example lbgap plugin package: one model and one metric."""

from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveFloat
from torch import nn

from lbgap.api import MetricPlugin, ModelPlugin, PluginConfig, hookimpl


class SoftmaxRegressionConfig(PluginConfig):
    """Softmax regression: one linear layer from the flattened input to the logits."""

    temperature: PositiveFloat = 1.0
    """Logits are divided by this."""


class SoftmaxRegression(nn.Module):
    def __init__(self, in_features: int, classes: int, temperature: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) / self.temperature


def build_softmax_regression(cfg: SoftmaxRegressionConfig, *, info) -> nn.Module:
    return SoftmaxRegression(math.prod(info.input_shape), info.num_classes, cfg.temperature)


class ParameterNormConfig(PluginConfig):
    """Euclidean norm of all parameters."""

    every: int | None = Field(None, ge=1)
    """Record it every this many epochs (per-epoch variable)."""
    at_end: bool = True


class ParameterNorm:
    def __init__(self, cfg: ParameterNormConfig) -> None:
        self.every = cfg.every
        self.at_end = cfg.at_end

    def compute(self, ctx) -> dict[str, float]:
        with torch.no_grad():
            sq = sum(float(p.pow(2).sum()) for p in ctx.model.parameters())
        return {"parameter_norm": math.sqrt(sq)}


@hookimpl
def lbgap_register_models():
    return [ModelPlugin(name="softmax_regression", config=SoftmaxRegressionConfig, build=build_softmax_regression)]


@hookimpl
def lbgap_register_metrics():
    return [MetricPlugin(name="parameter_norm", config=ParameterNormConfig, build=ParameterNorm)]
