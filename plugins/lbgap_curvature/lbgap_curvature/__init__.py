"""Curvature and sharpness metrics for lbgap.

Metric plugins (``metrics:`` entries of a study, or ``lbgap measure`` on saved
weights): ``keskar_sharpness``, ``hessian_eigenvalues``, ``hessian_trace``,
``hessian_spectrum``, ``interpolation``, ``minimizer_distance``,
``adaptive_sharpness``, ``gradient_noise_scale`` and ``reparameterized``
(other metrics on α-rescaled copies of the model). Their definitions and
output variables are in ``docs/metrics.md``.

The algorithms are plain functions usable without a study:
:mod:`.hvp` (Hessian-vector products), :mod:`.lanczos` (top eigenvalues),
:mod:`.trace` (Hutchinson), :mod:`.slq` (spectral density), :mod:`.sharpness`
(Keskar's Metric 2.1), :mod:`.adaptive` (adaptive sharpness),
:mod:`.interpolation` (parametric plot), :mod:`.reparam` (Dinh et al.'s
rescalings), :mod:`.noise_scale` (gradient noise scale),
:mod:`.numerics` (NaN with a reason on non-finite models) and
:mod:`.figures` (plots from a results Dataset).
"""

from __future__ import annotations

from lbgap.api import Deferred, MetricPlugin, PluginConfig, hookimpl

from .configs import (
    AdaptiveSharpnessConfig,
    GradientNoiseScaleConfig,
    HessianEigenvaluesConfig,
    HessianSpectrumConfig,
    HessianTraceConfig,
    InterpolationConfig,
    KeskarSharpnessConfig,
    MinimizerDistanceConfig,
    ReparameterizedConfig,
)

__all__ = ["lbgap_register_metrics"]

#: metric name → its configuration model, and the module and class that measure it (the class's
#: ``name`` and ``config_cls``). The class is imported when the metric is built, so registering
#: the plugins and validating a study load neither torch nor scipy.
METRICS: dict[str, tuple[type[PluginConfig], str, str]] = {
    "keskar_sharpness": (KeskarSharpnessConfig, "metrics", "KeskarSharpness"),
    "hessian_eigenvalues": (HessianEigenvaluesConfig, "metrics", "HessianEigenvalues"),
    "hessian_trace": (HessianTraceConfig, "metrics", "HessianTrace"),
    "hessian_spectrum": (HessianSpectrumConfig, "metrics", "HessianSpectrum"),
    "interpolation": (InterpolationConfig, "metrics", "Interpolation"),
    "minimizer_distance": (MinimizerDistanceConfig, "metrics", "MinimizerDistance"),
    "adaptive_sharpness": (AdaptiveSharpnessConfig, "metrics", "AdaptiveSharpness"),
    "gradient_noise_scale": (GradientNoiseScaleConfig, "metrics", "GradientNoiseScale"),
    "reparameterized": (ReparameterizedConfig, "reparameterized", "Reparameterized"),
}


@hookimpl
def lbgap_register_metrics() -> list[MetricPlugin]:
    return [
        MetricPlugin(name=name, config=config, build=Deferred(f".{module}", cls, __name__))
        for name, (config, module, cls) in METRICS.items()
    ]


@hookimpl
def lbgap_report_figures(results, out_dir):
    from .report import curvature_figures

    return curvature_figures(results, out_dir)
