"""The ``reparameterized`` metric: other metrics measured on function-preserving rescalings.

For each α of ``alphas`` the measured model is deep-copied and transformed by
:func:`~lbgap_curvature.reparam.relu_alpha_scale` (layer k × α^powers[k]) or
:func:`~lbgap_curvature.reparam.bn_alpha_scale` (the layer feeding a BatchNorm ×
α); every inner metric (a ``metrics`` list with the syntax of a study's) then
measures the copy in a context that differs from the original only in its
model. The inner metrics' random streams do not depend on α, so every α sees the
same data subset and the same random directions.

The function check — the largest change of any test logit against the
untransformed model, the test loss and accuracy of each copy — shows that the
transformed network computes the same function, whatever the inner metrics say.

Every output is a DataArray along ``<prefix>_alpha`` (a dimension of its own, so
that it does not collide with the interpolation metric's ``alpha``); an inner
variable ``v`` becomes ``<prefix>_v``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from lbgap.api import InMemoryData, MeasureContext, bn_eval_mode, variable_attrs

from .configs import ReparameterizedConfig
from .loss import EvalBatches
from .metrics import _CurvatureMetric
from .reparam import bn_alpha_scale, relu_alpha_scale

__all__ = ["ReparameterizedConfig", "Reparameterized"]

log = logging.getLogger(__name__)


class Reparameterized(_CurvatureMetric):
    """Built by the host with the inner metrics already built (``metrics=``)."""

    name = "reparameterized"
    config_cls = ReparameterizedConfig
    cfg: ReparameterizedConfig

    def __init__(self, cfg: ReparameterizedConfig, *, metrics: Sequence[Any] = ()) -> None:
        super().__init__(cfg)
        self.metrics = list(metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg!r}, metrics={self.metrics!r})"

    def transformed(self, model: torch.nn.Module, alpha: float) -> torch.nn.Module:
        """A transformed deep copy of ``model`` (``model`` is not modified)."""
        cfg = self.cfg
        if cfg.transform == "bn_alpha_scale":
            return bn_alpha_scale(model, cfg.layers[0], cfg.batchnorm, alpha)[0]
        powers = cfg.powers or [1.0] + [0.0] * (len(cfg.layers) - 2) + [-1.0]
        factors = [alpha**p for p in powers]
        factors[-1] = 1.0 / math.prod(factors[:-1])  # exact product 1 despite rounding
        return relu_alpha_scale(model, cfg.layers, factors)[0]

    def _outputs(self, model: torch.nn.Module, batches: EvalBatches) -> list[torch.Tensor]:
        with torch.no_grad(), bn_eval_mode(model, self.cfg.bn_mode):
            return [model(x) for x in batches.xs]

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        batches = self.batches(ctx, "test")
        measured = self.model(ctx)  # the model, or a float64 copy
        if measured is not ctx.model:
            ctx = dataclasses.replace(ctx, model=measured, data=_float64_data(ctx.data))
        base = self._outputs(ctx.model, batches)
        base_max = max(float(o.abs().max()) for o in base)
        classify = ctx.data.task == "classification"
        rows: dict[str, list[Any]] = {}
        attrs: dict[str, dict[str, str]] = {}
        for alpha in cfg.alphas:
            model = self.transformed(ctx.model, alpha)
            outs = self._outputs(model, batches)
            change = max(float((o - b).abs().max()) for o, b in zip(outs, base, strict=True))
            loss = sum(
                float(ctx.loss_fn(o, y)) * w
                for o, y, w in zip(outs, batches.ys, batches.weights, strict=True)
            )
            acc = math.nan
            if classify:
                acc = (
                    sum(int((o.argmax(1) == y).sum()) for o, y in zip(outs, batches.ys, strict=True))
                    / batches.n
                )
            values: dict[str, Any] = {
                "logit_max_abs_change": change,
                "logit_max_rel_change": change / base_max if base_max > 0 else math.nan,
                "test_loss": loss,
                "test_accuracy": acc,
            }
            sub = dataclasses.replace(ctx, model=model)
            for metric in self.metrics:
                for name, value in metric.compute(sub).items():
                    if name in values:
                        raise ValueError(f"reparameterized: the variable {name!r} is produced twice")
                    values[name] = value
                    if name not in attrs:
                        attrs[name] = _inner_attrs(metric, name, value)
            for name, value in values.items():
                rows.setdefault(name, []).append(value)
            log.info("%s alpha=%g: max |Δlogit| %.3g", cfg.transform, alpha, change)
            del model, sub
        return self._arrays(rows, attrs)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        # forward passes only; the inner metrics return their own NaN values
        return self._compute(ctx)

    def _arrays(
        self, rows: dict[str, list[Any]], attrs: dict[str, dict[str, str]]
    ) -> dict[str, xr.DataArray]:
        cfg = self.cfg
        dim = f"{cfg.prefix}_alpha"
        alpha = xr.DataArray(
            np.asarray(cfg.alphas, dtype=float),
            dims=(dim,),
            attrs={"units": "1", "long_name": f"alpha of the {cfg.transform} transformation"},
        )
        after = f"after {cfg.transform} by alpha"
        own = {
            "logit_max_abs_change": ("1", "largest |change| of a test logit against the untransformed model"),
            "logit_max_rel_change": ("1", "largest |change| of a test logit / largest |test logit|"),
            "test_loss": ("1", "mean test loss"),
            "test_accuracy": ("1", "test accuracy (fraction correct)"),
        }
        out: dict[str, xr.DataArray] = {}
        for name, values in rows.items():
            if name in own:
                units, long_name = own[name]
                meta = {"units": units, "long_name": f"{long_name}, {after}"}
            else:
                meta = {**attrs[name], "long_name": f"{attrs[name]['long_name']}, {after}"}
            if isinstance(values[0], xr.DataArray):
                da = xr.concat(values, dim=dim, join="outer", coords="minimal", compat="override")
                da = da.assign_coords({dim: alpha}).transpose(dim, ...)
            else:
                da = xr.DataArray(np.asarray(values, dtype=float), dims=(dim,), coords={dim: alpha})
            out[f"{cfg.prefix}_{name}"] = da.assign_attrs(meta)
        return out


def _float64_data(data: InMemoryData) -> InMemoryData:
    """A copy of ``data`` with floating tensors (inputs, regression targets) in float64."""

    def f64(t: torch.Tensor) -> torch.Tensor:
        return t.double() if t.is_floating_point() else t

    return dataclasses.replace(
        data,
        train_x=f64(data.train_x),
        train_y=f64(data.train_y),
        test_x=f64(data.test_x),
        test_y=f64(data.test_y),
    )


def _inner_attrs(metric: Any, name: str, value: Any) -> dict[str, str]:
    """``units`` and ``long_name`` of an inner variable: the DataArray's, the metric's ``attrs``, or the default."""
    if isinstance(value, xr.DataArray) and {"units", "long_name"} <= set(value.attrs):
        return {"units": value.attrs["units"], "long_name": value.attrs["long_name"]}
    found = getattr(metric, "attrs", {}).get(name, {})
    default = variable_attrs(name)
    return {
        "units": found.get("units", default["units"]),
        "long_name": found.get("long_name", default["long_name"]),
    }
