"""Component-accuracy figure and registration through the real entry point."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from lbgap.registry import load_registry
from lbgap_synthetic.plots import plot_component_accuracy


def _results(with_switch: bool = True) -> xr.Dataset:
    rng = np.random.default_rng(0)
    variants, seeds, epochs = ["L-S", "S", "S+noise"], [0, 1, 2], np.arange(1, 11)
    ds = xr.Dataset(coords={"variant": variants, "seed": seeds, "epoch": epochs})
    for comp in ("p_only", "q_only", "both"):
        ds[f"test_accuracy_{comp}"] = (("variant", "seed", "epoch"), rng.uniform(0.4, 1.0, (3, 3, 10)))
    ds["test_accuracy_p_only"][1, 2, 7:] = np.nan  # a run that stopped early
    if with_switch:
        ds["lr_switch_epoch"] = (("variant", "seed"), np.array([[4.0, 5.0, 6.0], [np.nan] * 3, [3.0, 3.0, np.nan]]))
    return ds


def test_plot_component_accuracy_draws_seed_means_and_anneal(tmp_path):
    ds = _results()
    out = tmp_path / "fig" / "components.png"
    fig = plot_component_accuracy(ds, out)
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "P only (hard to generalize)", "Q only (memorizable)", "P and Q"]
    for ax, comp in zip(axes, ("p_only", "q_only", "both"), strict=True):
        expected = ds[f"test_accuracy_{comp}"].mean("seed", skipna=True).values
        if comp == "p_only":  # the S run of seed 2 stopped after epoch 7 and counts with its final value
            v = ds["test_accuracy_p_only"].values[1]
            expected[1, 7:] = (v[0, 7:] + v[1, 7:] + v[2, 6]) / 3
        curves = [line for line in ax.lines if len(line.get_xdata()) == 10]
        assert len(curves) == 3
        for i in range(3):
            np.testing.assert_allclose(curves[i].get_ydata(), expected[i])
            np.testing.assert_array_equal(curves[i].get_xdata(), np.arange(1, 11))
        # anneal markers at the mean switch epoch of the variants that switched
        vlines = sorted(line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 2)
        assert vlines == pytest.approx([3.0, 5.0])


def test_plot_component_accuracy_without_variant_or_switch(tmp_path):
    ds = _results(with_switch=False).isel(variant=0, drop=True)
    fig = plot_component_accuracy(ds, tmp_path / "one.pdf", anneal_epoch=30)
    assert (tmp_path / "one.pdf").exists()
    assert any(len(line.get_xdata()) == 2 and line.get_xdata()[0] == 30 for line in fig.axes[0].lines)
    with pytest.raises(KeyError, match="test_accuracy_q_only"):
        plot_component_accuracy(ds.drop_vars("test_accuracy_q_only"), tmp_path / "x.png")
    with pytest.raises(ValueError, match="unexpected dimensions"):
        plot_component_accuracy(ds.expand_dims(lr=[0.1, 0.2]), tmp_path / "x.png")


def test_entry_point_registers_every_plugin():
    reg = load_registry()
    assert not [f for f in reg.failures if f.name == "synthetic"]
    names = {(rec.kind, rec.name) for rec in reg.all_records() if rec.origin == "lbgap"}
    assert {
        ("dataset", "pq_synthetic"),
        ("dataset", "convex_regression"),
        ("model", "linear_regression"),
        ("noise", "gradient_noise"),
        ("noise", "preactivation_noise"),
        ("schedule", "loss_switch"),
        ("stopping", "train_loss_below"),
    } <= names


def test_plot_component_accuracy_connects_sparse_evaluations(tmp_path):
    """With eval.every > 1 the epochs between evaluations are NaN; the curves join the evaluated ones."""
    ds = _results(with_switch=False)
    for comp in ("p_only", "q_only", "both"):
        ds[f"test_accuracy_{comp}"][:, :, 0::2] = np.nan  # evaluated after epochs 2, 4, ..., 10
    fig = plot_component_accuracy(ds, tmp_path / "sparse.png")
    for ax, comp in zip(fig.axes, ("p_only", "q_only", "both"), strict=True):
        expected = ds[f"test_accuracy_{comp}"].mean("seed", skipna=True).values
        if comp == "p_only":  # the S run of seed 2 was last evaluated after epoch 6 and keeps that value
            v = ds["test_accuracy_p_only"].values[1]
            expected[1, 7:] = (v[0, 7:] + v[1, 7:] + v[2, 5]) / 3
        assert len(ax.lines) == 3
        for i, line in enumerate(ax.lines):
            np.testing.assert_array_equal(line.get_xdata(), [2, 4, 6, 8, 10])
            np.testing.assert_allclose(line.get_ydata(), expected[i][1::2])
