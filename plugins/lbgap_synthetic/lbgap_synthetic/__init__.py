"""Synthetic studies of learning order: Li, Wei & Ma's P/Q mixture, their noise
injectors and loss-driven L-S schedule, and the 2020 report's convex example.

Plugins registered here:

* dataset ``pq_synthetic`` (:mod:`.pq_plugin`), dataset ``convex_regression``
  and model ``linear_regression`` (:mod:`.convex_plugin`);
* noise ``gradient_noise`` (:mod:`.gradient_noise`) and
  ``preactivation_noise`` (:mod:`.preactivation_noise`);
* schedule ``loss_switch`` and stopping rule ``train_loss_below``
  (:mod:`.loss_switch`).

Pure helpers: :mod:`.convex` (gradient descent on the convex example, closed
forms, trajectory plot) and :mod:`.plots` (accuracy per component).
"""

from __future__ import annotations

from lbgap import hookimpl
from lbgap.plugin import DatasetPlugin, ModelPlugin, NoisePlugin, SchedulePlugin, StoppingPlugin

from .convex_plugin import (
    ConvexRegressionConfig,
    LinearRegressionConfig,
    build_convex_regression,
    build_linear_regression,
)
from .gradient_noise import GradientNoiseConfig, build_gradient_noise
from .loss_switch import LossSwitchConfig, TrainLossBelowConfig, build_loss_switch, build_train_loss_below
from .pq_plugin import PQSyntheticConfig, build_pq_synthetic
from .preactivation_noise import PreactivationNoiseConfig, build_preactivation_noise

__all__ = [
    "lbgap_register_datasets",
    "lbgap_register_models",
    "lbgap_register_noise",
    "lbgap_register_schedules",
    "lbgap_register_stopping",
]


@hookimpl
def lbgap_register_datasets():
    return [
        DatasetPlugin(name="pq_synthetic", config=PQSyntheticConfig, build=build_pq_synthetic),
        DatasetPlugin(name="convex_regression", config=ConvexRegressionConfig, build=build_convex_regression),
    ]


@hookimpl
def lbgap_register_models():
    return [ModelPlugin(name="linear_regression", config=LinearRegressionConfig, build=build_linear_regression)]


@hookimpl
def lbgap_register_noise():
    return [
        NoisePlugin(name="gradient_noise", config=GradientNoiseConfig, build=build_gradient_noise),
        NoisePlugin(name="preactivation_noise", config=PreactivationNoiseConfig, build=build_preactivation_noise),
    ]


@hookimpl
def lbgap_register_schedules():
    return [SchedulePlugin(name="loss_switch", config=LossSwitchConfig, build=build_loss_switch)]


@hookimpl
def lbgap_register_stopping():
    return [StoppingPlugin(name="train_loss_below", config=TrainLossBelowConfig, build=build_train_loss_below)]
