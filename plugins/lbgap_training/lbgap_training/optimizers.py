"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdaGrad."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pydantic import Field, PositiveFloat, model_validator

from lbgap.api import OptimizerPlugin, PluginConfig

if TYPE_CHECKING:
    import torch


class SGDConfig(PluginConfig):
    """Stochastic gradient descent with momentum, Nesterov and weight decay (torch.optim.SGD)."""

    lr: PositiveFloat
    """Base learning rate (before LR scaling rules and the schedule)."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """Heavy-ball momentum (PyTorch's form: v ← μv + g; w ← w − ηv)."""
    dampening: float = Field(0.0, ge=0.0, le=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty added to the gradient (coupled, as Hoffer's and Li et al.'s code)."""

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> SGDConfig:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        return self


class AdamConfig(PluginConfig):
    """Adam (torch.optim.Adam); Keskar et al. trained every network with it."""

    lr: PositiveFloat = 1e-3
    """Base learning rate (Keras' default 1e-3)."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    """Denominator constant (Keras 1.x used 1e-8, Keras 2 uses 1e-7)."""
    weight_decay: float = Field(0.0, ge=0.0)
    amsgrad: bool = False

    @model_validator(mode="after")
    def _betas(self) -> AdamConfig:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("betas must lie in [0, 1)")
        return self


class AdagradConfig(PluginConfig):
    """AdaGrad (torch.optim.Adagrad)."""

    lr: PositiveFloat = 1e-2
    lr_decay: float = Field(0.0, ge=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    initial_accumulator_value: float = Field(0.0, ge=0.0)
    eps: PositiveFloat = 1e-10


def build_sgd(cfg: SGDConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch  # when a trial is built, not when a study is validated

    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        dampening=cfg.dampening,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
    )


def build_adam(cfg: AdamConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad
    )


def build_adagrad(cfg: AdagradConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adagrad(
        params,
        lr=cfg.lr,
        lr_decay=cfg.lr_decay,
        weight_decay=cfg.weight_decay,
        initial_accumulator_value=cfg.initial_accumulator_value,
        eps=cfg.eps,
    )


OPTIMIZERS = [
    OptimizerPlugin(name="sgd", config=SGDConfig, build=build_sgd),
    OptimizerPlugin(name="adam", config=AdamConfig, build=build_adam),
    OptimizerPlugin(name="adagrad", config=AdagradConfig, build=build_adagrad),
]
