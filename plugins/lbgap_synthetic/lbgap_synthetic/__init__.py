"""Synthetic studies of learning order: Li, Wei & Ma's P/Q mixture, their noise
injectors and loss-driven L-S schedule, and the 2020 report's convex example.

Plugins registered here:

* dataset ``pq_synthetic`` (:mod:`.pq_plugin`), dataset ``convex_regression``
  and model ``linear_regression`` (:mod:`.convex_plugin`);
* noise ``gradient_noise`` (:mod:`.gradient_noise`) and
  ``preactivation_noise`` (:mod:`.preactivation_noise`);
* schedule ``loss_switch`` and stopping rule ``train_loss_below``
  (:mod:`.loss_switch`);
* metric ``linear_coefficients`` (:mod:`.coefficients`): β per epoch, for the
  convex example's trajectories.

Report figures (``lbgap_report_figures``, :mod:`.report_figures`): test
accuracy per P/Q component against epoch with the anneal marked, and the
convex example's trajectories over the train and test loss contours.

Pure helpers: :mod:`.convex` (gradient descent on the convex example, closed
forms, trajectory plot) and :mod:`.plots` (accuracy per component).
"""

from __future__ import annotations

from lbgap.api import (
    DatasetPlugin,
    Deferred,
    MetricPlugin,
    ModelPlugin,
    NoisePlugin,
    SchedulePlugin,
    StoppingPlugin,
    hookimpl,
)

from .coefficients import LinearCoefficientsConfig, build_linear_coefficients
from .configs import ConvexRegressionConfig, LinearRegressionConfig, PQSyntheticConfig
from .gradient_noise import GradientNoiseConfig, build_gradient_noise
from .loss_switch import LossSwitchConfig, TrainLossBelowConfig, build_loss_switch, build_train_loss_below
from .preactivation_noise import PreactivationNoiseConfig, build_preactivation_noise

__all__ = [
    "lbgap_register_datasets",
    "lbgap_register_metrics",
    "lbgap_register_models",
    "lbgap_register_noise",
    "lbgap_register_schedules",
    "lbgap_register_stopping",
    "lbgap_report_figures",
]


@hookimpl
def lbgap_register_datasets():
    return [
        DatasetPlugin(name="pq_synthetic", config=PQSyntheticConfig, build=Deferred(".pq_plugin", "build_pq_synthetic", __name__)),
        DatasetPlugin(
            name="convex_regression",
            config=ConvexRegressionConfig,
            build=Deferred(".convex_plugin", "build_convex_regression", __name__),
        ),
    ]


@hookimpl
def lbgap_register_models():
    build = Deferred(".convex_plugin", "build_linear_regression", __name__)
    return [ModelPlugin(name="linear_regression", config=LinearRegressionConfig, build=build)]


@hookimpl
def lbgap_register_noise():
    return [
        NoisePlugin(name="gradient_noise", config=GradientNoiseConfig, build=build_gradient_noise, vectorizable=True),
        NoisePlugin(
            name="preactivation_noise", config=PreactivationNoiseConfig, build=build_preactivation_noise, vectorizable=True
        ),
    ]


@hookimpl
def lbgap_register_schedules():
    return [SchedulePlugin(name="loss_switch", config=LossSwitchConfig, build=build_loss_switch)]


@hookimpl
def lbgap_register_stopping():
    return [StoppingPlugin(name="train_loss_below", config=TrainLossBelowConfig, build=build_train_loss_below)]


@hookimpl
def lbgap_register_metrics():
    return [MetricPlugin(name="linear_coefficients", config=LinearCoefficientsConfig, build=build_linear_coefficients)]


@hookimpl
def lbgap_report_figures(results, out_dir):
    from .report_figures import report_figures

    return report_figures(results, out_dir)
