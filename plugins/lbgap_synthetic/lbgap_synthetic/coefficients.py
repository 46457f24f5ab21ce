"""Metric plugin ``linear_coefficients``: the weights of a linear model, per epoch.

For the convex example (2020 report §4) the path of ``β = (β1, β2)`` under
gradient descent is the object of study: the report's figure draws it over the
train and test loss contours. The engine keeps only the initial and final
weights, so this metric records every coefficient after every ``every``
epochs as ``beta_1, beta_2, ...`` (and the intercept as ``beta_0`` when the
model has one). It reads the single ``nn.Linear`` layer of the model (for
:class:`lbgap_synthetic.convex_plugin.LinearRegression`, ``model.linear``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from pydantic import PositiveInt

from lbgap.api import PluginConfig

if TYPE_CHECKING:
    from torch import nn

    from lbgap.api import MeasureContext

__all__ = ["LinearCoefficientsConfig", "LinearCoefficients", "build_linear_coefficients", "coefficient_names"]


class LinearCoefficientsConfig(PluginConfig):
    """Coefficients β of a one-layer linear model after every epoch (beta_1, beta_2, ...; the convex example)."""

    every: PositiveInt = 1
    """Record every this many epochs (the last epoch is always filled in)."""

    max_coefficients: PositiveInt = 16
    """Refuse models with more coefficients than this (one variable per coefficient)."""


def _linear_layer(model: nn.Module) -> nn.Linear:
    from torch import nn  # imported when the metric runs, not when a study is validated

    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(layers) != 1 or layers[0].out_features != 1:
        raise ValueError(
            "linear_coefficients needs a model with exactly one nn.Linear layer with one output "
            f"(found {[(type(m).__name__, m.out_features) for m in layers]})"
        )
    return layers[0]


def coefficient_names(n: int, bias: bool) -> list[str]:
    """``beta_1 … beta_n``, and ``beta_0`` (the intercept) first when ``bias``."""
    return (["beta_0"] if bias else []) + [f"beta_{i}" for i in range(1, n + 1)]


class LinearCoefficients:
    """Reads ``β`` (and the intercept) of the model's linear layer."""

    at_end = True

    def __init__(self, cfg: LinearCoefficientsConfig) -> None:
        self.cfg = cfg
        self.every: Optional[int] = cfg.every
        self.attrs: dict[str, dict[str, str]] = {}

    def compute(self, ctx: MeasureContext) -> dict[str, Any]:
        layer = _linear_layer(ctx.model)
        w = layer.weight.detach().double().cpu().reshape(-1)
        if w.numel() > self.cfg.max_coefficients:
            raise ValueError(f"linear_coefficients: {w.numel()} coefficients exceed max_coefficients={self.cfg.max_coefficients}")
        values = ([float(layer.bias.detach().double().cpu().reshape(-1)[0])] if layer.bias is not None else []) + [
            float(v) for v in w
        ]
        names = coefficient_names(w.numel(), layer.bias is not None)
        for name in names:
            what = "intercept" if name == "beta_0" else f"coefficient {name[5:]}"
            self.attrs[name] = {"units": "1", "long_name": f"linear model {what} (β)"}
        return dict(zip(names, values, strict=True))


def build_linear_coefficients(cfg: LinearCoefficientsConfig) -> LinearCoefficients:
    return LinearCoefficients(cfg)
