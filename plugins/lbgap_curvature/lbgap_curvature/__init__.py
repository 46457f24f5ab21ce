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

from lbgap.api import MetricPlugin, hookimpl

from .metrics import METRIC_CLASSES
from .reparameterized import Reparameterized

__all__ = ["lbgap_register_metrics"]


@hookimpl
def lbgap_register_metrics() -> list[MetricPlugin]:
    return [
        MetricPlugin(name=cls.name, config=cls.config_cls, build=cls)
        for cls in (*METRIC_CLASSES, Reparameterized)
    ]


@hookimpl
def lbgap_report_figures(results, out_dir):
    from .report import curvature_figures

    return curvature_figures(results, out_dir)
