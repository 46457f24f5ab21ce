"""The scripts of studies/tools/ that print docs/reproductions.md's Hoffer and Li tables from results.nc:
their numbers against hand-computed ones on small made-up datasets, and their refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr


def _dataset(finals: dict[str, list[float]], epochs: int = 4, extra: dict | None = None) -> xr.Dataset:
    """variant × seed × epoch: test accuracy rising linearly to each run's final value (fractions), the
    rest of the variables the scripts read."""
    variants, seeds = list(finals), list(range(len(next(iter(finals.values())))))
    shape = (len(variants), len(seeds), epochs)
    ramp = np.linspace(0.5, 1.0, epochs)
    test = np.array([[[f * r for r in ramp] for f in finals[v]] for v in variants])
    lr = np.broadcast_to(np.where(np.arange(1, epochs + 1) <= epochs // 2, 0.1, 0.01), shape).copy()
    dist = np.broadcast_to(np.arange(1, epochs + 1, dtype=float), shape).copy()
    dims = ("variant", "seed", "epoch")
    ds = xr.Dataset(
        {
            "test_accuracy": (dims, test),
            "train_accuracy": (dims, np.full(shape, 0.999)),
            "test_loss": (dims, 1 - test),
            "train_loss": (dims, np.full(shape, 0.01)),
            "learning_rate": (dims, lr),
            "weight_distance": (dims, dist),
        },
        coords={"variant": variants, "seed": seeds, "epoch": np.arange(1, epochs + 1)},
    )
    for name, values in (extra or {}).items():
        ds[name] = (dims, values)
    return ds


HOFFER = {
    "sb": [0.74, 0.75, 0.76],
    "lb": [0.67, 0.68, 0.69],
    "lb_lr": [0.70, 0.71, 0.72],
    "lb_lr_gbn": [0.71, 0.72, 0.73],
    "lb_lr_gbn_ra": [0.73, 0.74, 0.75],
}


def test_hoffer_gains_and_table(study_tool):
    tables = study_tool("hoffer_tables")
    ds = _dataset(HOFFER)
    gains = tables.regime_gains(ds)
    gap, low, high, spread = gains["sb", "lb"]
    assert gap == pytest.approx(7.0) and spread == pytest.approx(2.0)
    # the bootstrap interval of the difference of means: inside the range of the seed differences
    assert 5.0 <= low < 7.0 < high <= 9.0
    assert gains["sb", "lb_lr_gbn_ra"][0] == pytest.approx(1.0)
    assert tables.end_of_high_rate(ds, "sb") == 2
    text = tables.regime_tables(ds)
    assert "| SB | 99.31 | 92.83 | 75.00 ± 1.00 | 99.90 ± 0.00 |" in text
    assert f"| the large-batch gap (SB − LB) | +7.00 | {low:+.2f} to {high:+.2f} | yes | 2.00 | yes |" in text
    assert "+RA closes 86 % of the gap." in text  # 6 of 7 points
    assert "SB 2.0, LB 2.0" in text  # the distance at epoch 2, the last epoch of the first rate
    assert "SB 74.0, 75.0, 76.0" in text


def test_hoffer_ghost_table_orders_ghosts_by_size(study_tool):
    tables = study_tool("hoffer_tables")
    ds = _dataset({"bn": [0.70, 0.71, 0.72], "ghost_8": [0.66, 0.66, 0.66], "ghost_128": [0.72, 0.72, 0.72]})
    gains = tables.ghost_gains(ds)
    gain, low, high, spread = gains["ghost_8"]
    assert gain == pytest.approx(-5.0) and spread == pytest.approx(1.0) and high < 0
    text = tables.ghost_tables(ds)
    assert text.index("| 128 |") < text.index("| 8 |")
    assert f"| 8 | 66.00 ± 0.00 | 99.90 ± 0.00 | -4.0, -5.0, -6.0 | -5.00 | {low:+.2f} to {high:+.2f} | 1.00 |" in text


def test_hoffer_script_reads_a_run_folder_and_names_the_processor(study_tool, tmp_path, capsys):
    tables = study_tool("hoffer_tables")
    ds = _dataset(HOFFER)
    ds.attrs["lbgap_cpu_json"] = json.dumps({"model": "Test CPU", "machine": "x86_64", "torch_cpu_capability": "AVX2"})
    ds.to_netcdf(tmp_path / "results.nc")
    assert tables.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Processor: Test CPU (x86_64, torch CPU kernels AVX2). Seeds: 3." in out
    # a run of another study, and a folder without results, are refused with status 2
    _dataset({"a": [0.5, 0.6]}).to_netcdf(tmp_path / "other.nc")
    assert tables.main([str(tmp_path / "other.nc")]) == 2
    assert tables.main([str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_li_clean_gaps_and_table(study_tool):
    tables = study_tool("li_tables")
    ds = _dataset({"large_then_small": [0.86, 0.85, 0.87], "small_noise": [0.82, 0.81, 0.80], "small": [0.77, 0.76, 0.81]})
    gaps = tables.clean_gaps(ds)
    gain, spread, every = gaps["large_then_small", "small_noise"]
    assert gain == pytest.approx(5.0) and spread == pytest.approx(2.0) and every
    assert gaps["small_noise", "small"][2] is False  # seed 2: small (81) above small_noise (80)
    text = tables.clean_table(ds)
    assert "| large then small | 90.41 | **86.00 ± 1.00** | 86.00, 85.00, 87.00 |" in text
    assert "test after 2 epochs (before the anneal)" in text


def test_li_synthetic_components_and_switch(study_tool):
    tables = study_tool("li_tables")
    finals = {"L-S": [0.84, 0.85], "S": [0.77, 0.78], "S_noise": [0.83, 0.84]}
    base = _dataset(finals)
    extra = {f"test_accuracy_{c}": base["test_accuracy"].values for c in ("p_only", "q_only", "both")}
    ds = _dataset(finals, extra=extra)
    ds["epochs_done"] = (("variant", "seed"), np.full((3, 2), 4.0))
    ds["learning_rate"].loc[{"variant": "S"}] = 0.01  # constant: no switch
    text = tables.synthetic_table(ds)
    assert "| L-S | 84.5 ± 0.7 (84.0, 85.0) |" in text and text.rstrip().endswith("| 4, 4 | 2, 2 |")
    assert "| S | 77.5 ± 0.7 (77.0, 78.0) |" in text and "| 4, 4 | — |" in text


def _convex(finals: dict[str, list[float]], train: float, extra: dict | None = None) -> xr.Dataset:
    ds = _dataset(finals, extra=extra)
    ds["test_loss"] = ds["test_accuracy"]  # the made-up final values stand for test MSEs here
    ds["train_loss"] = ds["train_loss"] * 0 + train
    ds["epochs_done"] = (("variant", "seed"), np.arange(ds.sizes["variant"] * ds.sizes["seed"], dtype=float).reshape(ds.sizes["variant"], -1) + 3)
    base = {"stopping": [{"name": "train_loss_below", "eps": 0.01}]}
    ds.attrs["lbgap_spec_json"] = json.dumps({"header": {"base": base}, "variants": {}, "grid": {}})
    return ds


def test_li_convex_tables(study_tool):
    tables = study_tool("li_tables")
    shape = (2, 2, 4)
    beta1 = np.full(shape, 1.3)
    beta2 = np.full(shape, 1.0)
    beta2[1] = 1.1  # small: e1 = 0.3, e2 = 0.1, rho = 9
    ds = _convex({"large_then_small": [0.0075, 0.0075], "small": [0.014, 0.014]}, 0.009, {"beta_1": beta1, "beta_2": beta2})
    assert tables.stop_eps(ds) == 0.01
    text = tables.convex_table(ds)
    assert "| large then small | 3 | 0.9000 | **0.7500** | ∞ (e2 = 0) |" in text
    assert "| small | 5 | 0.9000 | **1.4000** | 9 |" in text and "identical runs: yes" in text
    # the Gaussian design: RMSE = sqrt(MSE), and how often an arm beats small in the same experiment
    g = _convex({"small": [0.04, 0.09, 0.16], "large_then_small_2": [0.01, 0.16, 0.09]}, 0.05)
    text = tables.convex_gaussian_table(g)
    assert "| small | 0.3000 ± 0.1000 | 0.0500 | 1.933 | 3–5 | — |" in text
    assert "| large_then_small_2 | 0.2667 ± 0.1528 | 0.0500 | 1.733 | 6–8 | 2 of 3 |" in text


def test_search_table_ranks_completed_trials_by_the_direction(study_tool, tmp_path, capsys):
    tables = study_tool("search_table")
    ds = xr.Dataset(
        {
            "objective": ("trial", [0.5, np.nan, 0.7, 0.6]),
            "trial_state": ("trial", ["complete", "pruned", "complete", "complete"]),
        },
        coords={"trial": [0, 1, 2, 3], "lr": ("trial", [0.1, 0.2, 0.05, 0.3]), "seed": [0]},
        attrs={"optuna_direction": "maximize"},
    )
    text = tables.best_trials(ds, 2)
    assert text.splitlines()[2:4] == ["| 2 | 0.05 | 0.7 |", "| 3 | 0.3 | 0.6 |"]
    assert "4 trials: 3 complete, 1 pruned; direction maximize." in text
    ds.attrs["optuna_direction"] = "minimize"
    assert tables.best_trials(ds, 1).splitlines()[2] == "| 0 | 0.1 | 0.5 |"
    ds.to_netcdf(tmp_path / "results.nc")
    assert tables.main([str(tmp_path), "--top", "3"]) == 0
    assert "| 3 | 0.3 | 0.6 |" in capsys.readouterr().out


def test_keskar_optimizers_table(study_tool, capsys):
    tables = study_tool("keskar_tables")
    ds = _dataset({"sgd_sb": [0.96, 0.96], "sgd_lb": [0.94, 0.94], "adam_sb": [0.95, 0.95], "adam_lb": [0.95, 0.95]})
    dims = ("variant", "seed", "epoch")
    phi = np.full((4, 2, 4), np.nan)
    phi[:, :, -1] = [[2.0, 2.0], [20.0, 20.0], [3.0, 3.0], [6.0, 6.0]]
    ds["keskar_sharpness_full_eps1e-03"] = (dims, phi)
    ds["train_loss"].loc[{"variant": "sgd_sb", "epoch": 4}] = np.nan  # sgd_sb stopped after 3 epochs
    tables.optimizers(ds, 200)
    out = capsys.readouterr().out
    assert "| sgd | 96.00 ± 0.00 | 94.00 ± 0.00 | 2.00 (2.00 to 2.00) | 2.00 ± 0.00 | 20.00 ± 0.00 | 10.0× (10.0–10.0) | 3.0 ± 0.0 | 4.0 ± 0.0 |" in out
    assert "| adam | 95.00 ± 0.00 | 95.00 ± 0.00 | 0.00 (0.00 to 0.00) |" in out and out.index("| adam") < out.index("| sgd")


def test_keskar_dinh_table(study_tool, capsys):
    tables = study_tool("keskar_tables")
    alphas = [0.1, 1.0, 10.0]
    dims = ("variant", "seed", "reparam_alpha")
    base = np.array([2.0, 4.0])  # seeds 0 and 1 at alpha = 1
    grow = np.array([100.0, 1.0, 100.0])  # the factor each alpha multiplies the curvature by
    curv = np.einsum("s,a->sa", base, grow)[None].repeat(2, 0)
    ds = xr.Dataset(
        {
            "reparam_logit_max_rel_change": (dims, np.array([[[1e-7, 0, 3e-7], [2e-7, 0, 1e-7]]] * 2)),
            "reparam_test_accuracy": (dims, np.full((2, 2, 3), 0.95)),
            "reparam_hessian_top_eigenvalue": (dims, curv),
            "reparam_keskar_sharpness_full_eps1e-03": (dims, curv * 2),
            "reparam_keskar_sharpness_full_eps5e-04": (dims, curv),
            "reparam_adaptive_sharpness_worst_l2_rho0.1": (dims, np.full((2, 2, 3), 0.002)),
        },
        coords={"variant": ["sb", "lb"], "seed": [0, 1], "reparam_alpha": alphas},
    )
    tables.dinh(ds, 10)
    out = capsys.readouterr().out
    assert "| SB | max ∣Δ logits∣ / max ∣logits∣ (largest over seeds) | 2.0e-07 | 0 | 3.0e-07 |" in out
    assert "|  | top Hessian eigenvalue | 300 | 3 ± 1.41 | 300 |" in out
    assert "|  | test accuracy (%) | 95.00 | 95.00 ± 0.00 | 95.00 |" in out
    assert "top Hessian eigenvalue: α ∈ {0.1, 10} ÷ α = 1, trial by trial 100×–100×" in out
    assert "largest relative change 0; test accuracy identical at every α: yes" in out
