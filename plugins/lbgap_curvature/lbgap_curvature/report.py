"""Figures of curvature metrics for ``lbgap report`` (drawn when the variables exist)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from .figures import (  # noqa: E402
    per_epoch_sharpness,
    plot_interpolation,
    plot_reparameterization,
    plot_sharpness_vs_batch_size,
    plot_sharpness_vs_loss,
    plot_spectrum_density,
    reparameterized_variables,
)

log = logging.getLogger(__name__)


def curvature_figures(ds: xr.Dataset, out_dir: Path) -> list[tuple[str, Path]]:
    """Interpolation plot (Keskar Fig. 3), sharpness and accuracy against batch size
    (Fig. 4), sharpness measured along training against the training loss (Fig. 6), spectral density, the α sweep of a reparameterized metric: whichever the
    results hold."""
    out: list[tuple[str, Path]] = []
    jobs = []
    if "interpolation_train_loss" in ds:
        jobs.append(
            (
                "Loss and accuracy along the line between minimizers (Keskar et al. Fig. 3)",
                "interpolation.png",
                lambda: plot_interpolation(ds),
            )
        )
    sharp = sorted(v for v in ds.data_vars if v.startswith("keskar_sharpness_"))
    if sharp and "batch_size" in ds.dims:
        jobs.append(
            (
                "Sharpness and test accuracy against batch size (Keskar et al. Fig. 4)",
                "sharpness_vs_batch_size.png",
                lambda: plot_sharpness_vs_batch_size(ds, sharpness=sharp[0]),
            )
        )
    along = per_epoch_sharpness(ds)
    if along:
        jobs.append(
            (
                "Sharpness against the training loss along training (Keskar et al. Fig. 6)",
                "sharpness_vs_loss.png",
                lambda: plot_sharpness_vs_loss(ds, sharpness=along[0]),
            )
        )
    if "hessian_spectrum_density" in ds:
        jobs.append(
            (
                "Hessian spectral density (stochastic Lanczos quadrature)",
                "hessian_spectrum.png",
                lambda: plot_spectrum_density(ds),
            )
        )
    if reparameterized_variables(ds):
        jobs.append(
            (
                "Curvature of α-rescaled copies of the minimizers, relative to α = 1 (Dinh et al.)",
                "reparameterization.png",
                lambda: plot_reparameterization(ds),
            )
        )
    for title, name, draw in jobs:
        try:
            fig = draw()
        except Exception:  # one figure failing must not lose the others
            log.exception("figure %s failed", name)
            continue
        path = Path(out_dir) / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        out.append((title, path))
    return out
