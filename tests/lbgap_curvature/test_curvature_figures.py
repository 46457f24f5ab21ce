"""Figures draw what the Dataset holds."""

import numpy as np
import xarray as xr

from lbgap_curvature.figures import (
    final_epoch,
    plot_interpolation,
    plot_sharpness_vs_batch_size,
    plot_spectrum_density,
)


def test_interpolation_plot_draws_the_curves():
    alpha = np.linspace(-1, 2, 25)
    ds = xr.Dataset(
        {
            f"interpolation_{s}_{v}": ("alpha", f(alpha))
            for s, f0 in (("train", 0.0), ("test", 0.5))
            for v, f in (
                ("loss", lambda a, f0=f0: (a - 0.3) ** 2 + f0),
                ("accuracy", lambda a, f0=f0: 1 - 0.1 * a**2 - f0 / 10),
            )
        },
        coords={"alpha": alpha},
    )
    fig = plot_interpolation(ds)
    ax, ax2 = fig.axes
    assert len(ax.get_lines()) == 2 and len(ax2.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), ds["interpolation_test_loss"].values)
    np.testing.assert_allclose(ax2.get_lines()[0].get_xdata(), alpha)


def test_sharpness_vs_batch_size_means_over_seeds_and_takes_final_epoch():
    bs = np.array([256, 1024, 4096])
    sharp = np.array([[1.0, 3.0], [10.0, 14.0], [100.0, 120.0]])
    acc = np.full((3, 2, 4), np.nan)
    acc[:, :, :3] = 0.5
    acc[:, 0, 2] = [0.99, 0.98, 0.95]  # seed 0 final epoch (epoch 3, epoch 4 padded NaN)
    acc[:, 1, 2] = [0.97, 0.96, 0.93]
    ds = xr.Dataset(
        {
            "keskar_sharpness_full_eps1e-03": (("batch_size", "seed"), sharp),
            "test_accuracy": (("batch_size", "seed", "epoch"), acc),
        },
        coords={"batch_size": bs, "seed": [0, 1], "epoch": [1, 2, 3, 4]},
    )
    np.testing.assert_allclose(final_epoch(ds["test_accuracy"]).values[:, 0], [0.99, 0.98, 0.95])
    fig = plot_sharpness_vs_batch_size(ds)
    ax, ax2 = fig.axes
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2.0, 12.0, 110.0])
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), [0.98, 0.97, 0.94])
    assert ax.get_xscale() == "log"


def test_sharpness_vs_batch_size_from_trial_variable():
    ds = xr.Dataset(
        {
            "keskar_sharpness_full_eps1e-03": ("trial", [1.0, 3.0, 50.0]),
            "test_accuracy": ("trial", [0.9, 0.8, 0.7]),
            "batch_size": ("trial", [128, 128, 2048]),
        }
    )
    ax = plot_sharpness_vs_batch_size(ds).axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [128, 2048])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [2.0, 50.0])


def test_spectrum_density_one_line_per_variant():
    grid = np.linspace(-1, 5, 50)
    dens = np.stack([np.exp(-((grid - c) ** 2)) for c in (0.0, 2.0)])
    ds = xr.Dataset(
        {
            "hessian_spectrum_density": (("variant", "density_grid"), dens),
            "hessian_spectrum_eigenvalue": (("variant", "density_grid"), np.stack([grid, grid])),
        },
        coords={"variant": ["small", "large"]},
    )
    ax = plot_spectrum_density(ds).axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["variant=small", "variant=large"]
    np.testing.assert_allclose(lines[1].get_ydata(), dens[1])


def test_reparameterization_plot_is_relative_to_alpha_one_and_log_log():
    from lbgap_curvature.figures import plot_reparameterization, reparameterized_variables

    alpha = np.array([0.01, 1.0, 100.0])
    top = np.array([[[1e4, 1.0, 1e4], [3e4, 3.0, 3e4]]])  # (variant, seed, alpha): α^-2 / α^2
    dims = ("variant", "seed", "reparam_alpha")
    ds = xr.Dataset(
        {
            "reparam_hessian_top_eigenvalue": (dims, top),
            "reparam_adaptive_sharpness_worst_l2_rho0.1": (dims, np.full((1, 2, 3), 0.002)),
            "reparam_adaptive_sharpness_average_l2_rho0.1_stderr": (dims, np.full((1, 2, 3), 1e-4)),
            "reparam_hessian_eigen_hvps": (dims, np.full((1, 2, 3), 40.0)),
            "reparam_logit_max_rel_change": (dims, np.zeros((1, 2, 3))),
            "hessian_top_eigenvalue": (("variant", "seed"), [[1.0, 3.0]]),
        },
        coords={"variant": ["sb"], "seed": [0, 1], "reparam_alpha": alpha},
    )
    assert reparameterized_variables(ds) == [
        "reparam_adaptive_sharpness_worst_l2_rho0.1",
        "reparam_hessian_top_eigenvalue",
    ]
    fig = plot_reparameterization(ds)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {
        "adaptive_sharpness_worst_l2_rho0.1 (variant=sb)",
        "hessian_top_eigenvalue (variant=sb)",
    }
    np.testing.assert_allclose(lines["hessian_top_eigenvalue (variant=sb)"].get_ydata(), [1e4, 1.0, 1e4])
    np.testing.assert_allclose(
        lines["adaptive_sharpness_worst_l2_rho0.1 (variant=sb)"].get_ydata(), [1.0, 1.0, 1.0]
    )
    np.testing.assert_allclose(lines["hessian_top_eigenvalue (variant=sb)"].get_xdata(), alpha)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    raw = plot_reparameterization(ds, relative=False, variables=["reparam_hessian_top_eigenvalue"]).axes[0]
    np.testing.assert_allclose(raw.get_lines()[0].get_ydata(), [2e4, 2.0, 2e4])  # mean over seeds
