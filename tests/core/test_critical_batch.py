"""McCandlish et al.'s critical batch size model: fit, bootstrap, regimes and the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from lbgap.analysis import (
    REGIMES,
    examples_model,
    fit_critical_batch,
    regime_bounds,
    regime_of,
    steps_model,
)
from lbgap.analysis.figures import draw_steps_to_target, steps_to_target_figure

S_MIN, E_MIN = 400.0, 2.0e5
B_CRIT = E_MIN / S_MIN  # 500
BATCHES = 2.0 ** np.arange(3, 15)  # 8 .. 16384: perfect scaling to no gain


def _draw(rng: np.random.Generator, sigma: float, n: int) -> list[np.ndarray]:
    """``n`` measurements per batch size of steps drawn from the model with log-normal noise."""
    return [steps_model(b, S_MIN, B_CRIT) * np.exp(rng.normal(0.0, sigma, n)) for b in BATCHES]


def test_the_two_forms_satisfy_the_tradeoff():
    s = steps_model(BATCHES, S_MIN, B_CRIT)
    e = examples_model(BATCHES, E_MIN, B_CRIT)
    np.testing.assert_allclose(e, s * BATCHES, rtol=1e-12)  # E = S·B
    np.testing.assert_allclose((s / S_MIN - 1) * (e / E_MIN - 1), 1.0, rtol=1e-12)


def test_exact_points_give_the_parameters_back():
    fit = fit_critical_batch(BATCHES, steps_model(BATCHES, S_MIN, B_CRIT), n_boot=0)
    assert fit.s_min == pytest.approx(S_MIN, rel=1e-8)
    assert fit.b_crit == pytest.approx(B_CRIT, rel=1e-8)
    assert fit.e_min == pytest.approx(E_MIN, rel=1e-8)
    assert fit.rms_log_residual < 1e-10 and not fit.at_bound
    assert all(math.isnan(v) for lo_hi in fit.intervals.values() for v in lo_hi)


@pytest.mark.parametrize("aggregate", ["median", "geomean"])
def test_noisy_measurements_recover_the_parameters(aggregate):
    rng = np.random.default_rng(7)
    fit = fit_critical_batch(BATCHES, _draw(rng, 0.1, 5), aggregate=aggregate, n_boot=200, seed=1)
    assert fit.s_min == pytest.approx(S_MIN, rel=0.1)
    assert fit.e_min == pytest.approx(E_MIN, rel=0.1)
    assert fit.b_crit == pytest.approx(B_CRIT, rel=0.15)
    for name in ("s_min", "e_min", "b_crit"):
        lo, hi = fit.intervals[name]
        assert lo < getattr(fit, name) < hi
        assert hi / lo < 1.5  # a few per cent of noise gives intervals of a few per cent


def test_bootstrap_intervals_cover_the_truth_at_about_their_level():
    """Over 20 independent synthetic studies the 90 % intervals of B_crit cover the truth in
    most of them (the expected count is 18; 14 is more than 3 standard deviations below)."""
    covered = {"s_min": 0, "e_min": 0, "b_crit": 0}
    for k in range(20):
        rng = np.random.default_rng(100 + k)
        fit = fit_critical_batch(
            BATCHES, _draw(rng, 0.15, 6), aggregate="geomean", n_boot=100, confidence=0.9, seed=k
        )
        for name, true in (("s_min", S_MIN), ("e_min", E_MIN), ("b_crit", B_CRIT)):
            lo, hi = fit.intervals[name]
            covered[name] += lo <= true <= hi
    assert all(c >= 14 for c in covered.values()), covered


def test_the_bootstrap_is_seeded():
    samples = _draw(np.random.default_rng(3), 0.1, 4)
    a = fit_critical_batch(BATCHES, samples, aggregate="median", n_boot=50, seed=5)
    b = fit_critical_batch(BATCHES, samples, aggregate="median", n_boot=50, seed=5)
    c = fit_critical_batch(BATCHES, samples, aggregate="median", n_boot=50, seed=6)
    assert a.intervals == b.intervals
    np.testing.assert_array_equal(a.boot["b_crit"], b.boot["b_crit"])
    assert a.intervals != c.intervals


def test_best_of_a_search_is_the_minimum_and_misses_are_left_out():
    """``aggregate="min"``: the best trial per batch size; NaN (target never met) is no trial."""
    trials = [np.array([s * 1.5, s, np.nan, s * 3]) for s in steps_model(BATCHES, S_MIN, B_CRIT)]
    trials.append(np.array([np.nan, np.inf]))  # a batch size that never met the target
    fit = fit_critical_batch(np.append(BATCHES, 2.0**16), trials, n_boot=20)
    np.testing.assert_array_equal(fit.batch_sizes, BATCHES)
    assert fit.s_min == pytest.approx(S_MIN, rel=1e-6) and fit.b_crit == pytest.approx(B_CRIT, rel=1e-6)
    np.testing.assert_allclose(fit.steps, steps_model(BATCHES, S_MIN, B_CRIT), rtol=1e-12)
    assert fit.n_boot_failed == 0 and np.isfinite(fit.boot["b_crit"]).all()


def test_resampling_batch_sizes_for_single_measurements():
    rng = np.random.default_rng(11)
    steps = [v[0] for v in _draw(rng, 0.05, 1)]
    fit = fit_critical_batch(BATCHES, steps, resample="batch_sizes", n_boot=200, seed=2)
    lo, hi = fit.intervals["b_crit"]
    assert lo < B_CRIT < hi and hi > lo
    fixed = fit_critical_batch(BATCHES, steps, n_boot=20)  # one measurement each: no spread
    assert fixed.intervals["b_crit"][0] == pytest.approx(fixed.intervals["b_crit"][1])


def test_unsorted_input_and_a_2d_array():
    rng = np.random.default_rng(4)
    samples = np.stack(_draw(rng, 0.05, 3))
    order = rng.permutation(len(BATCHES))
    a = fit_critical_batch(BATCHES, samples, aggregate="mean", n_boot=0)
    b = fit_critical_batch(BATCHES[order], samples[order], aggregate="mean", n_boot=0)
    assert a.b_crit == pytest.approx(b.b_crit, rel=1e-9) and a.s_min == pytest.approx(b.s_min, rel=1e-9)


def test_all_in_one_regime_is_flagged():
    small = BATCHES[:4] / 64  # B ≪ B_crit: steps ∝ 1/B, B_crit undetermined
    fit = fit_critical_batch(small, E_MIN / small, n_boot=0)
    assert fit.at_bound


@pytest.mark.parametrize(
    "batches, steps, match",
    [
        ([64, 128], [100.0, 60.0], "3 or more batch sizes"),
        ([64, 128, 256], [[100.0], [60.0], [np.nan]], "3 or more batch sizes; got 2"),
        ([64, 128, 256], [100.0, 60.0], "one entry per batch size"),
        ([64, 64, 256], [100.0, 60.0, 40.0], "distinct"),
        ([0, 128, 256], [100.0, 60.0, 40.0], "positive"),
        ([64, 128, 256], [100.0, -60.0, 40.0], "must be positive"),
    ],
)
def test_bad_input_is_a_clear_error(batches, steps, match):
    with pytest.raises(ValueError, match=match):
        fit_critical_batch(batches, steps, n_boot=0)


def test_bad_options_are_errors():
    s = steps_model(BATCHES, S_MIN, B_CRIT)
    with pytest.raises(ValueError, match="aggregate"):
        fit_critical_batch(BATCHES, s, aggregate="max")
    with pytest.raises(ValueError, match="resample"):
        fit_critical_batch(BATCHES, s, resample="rows")
    with pytest.raises(ValueError, match="confidence"):
        fit_critical_batch(BATCHES, s, confidence=95)


def test_regimes():
    lo, hi = regime_bounds(B_CRIT)
    assert (lo, hi) == pytest.approx((50.0, 5000.0))
    # at the bounds: examples within 10 % of E_min, steps within 10 % of S_min
    assert examples_model(lo, E_MIN, B_CRIT) == pytest.approx(1.1 * E_MIN)
    assert steps_model(hi, S_MIN, B_CRIT) == pytest.approx(1.1 * S_MIN)
    assert regime_of(8, B_CRIT) == "perfect_scaling"
    assert regime_of(B_CRIT, B_CRIT) == "diminishing_returns"
    assert regime_of(1e5, B_CRIT) == "no_gain"
    assert list(regime_of([50, 51, 4999, 5000], B_CRIT)) == [REGIMES[0], REGIMES[1], REGIMES[1], REGIMES[2]]
    assert regime_bounds(B_CRIT, tolerance=0.25) == pytest.approx((125.0, 2000.0))
    with pytest.raises(ValueError, match="tolerance"):
        regime_bounds(B_CRIT, tolerance=1.5)


def test_figure_is_written(tmp_path):
    fit = fit_critical_batch(BATCHES, _draw(np.random.default_rng(0), 0.1, 3), aggregate="median", n_boot=50)
    path = steps_to_target_figure(fit, tmp_path / "figs" / "steps.png", b_simple=300.0)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[0] > 100


def test_figure_draws_the_model():
    import matplotlib.pyplot as plt

    fit = fit_critical_batch(BATCHES, _draw(np.random.default_rng(1), 0.1, 3), aggregate="median", n_boot=50)
    fig, ax = plt.subplots()
    try:
        art = draw_steps_to_target(ax, fit, b_simple=300.0)
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        x, y = (np.asarray(v, dtype=float) for v in art["fit"].get_data())
        np.testing.assert_allclose(y, fit.s_min * (1 + fit.b_crit / x), rtol=1e-12)
        assert x.min() <= BATCHES.min() and x.max() >= BATCHES.max()
        px, py = (np.asarray(v, dtype=float) for v in art["perfect_scaling"].get_data())
        np.testing.assert_allclose(px * py, fit.e_min, rtol=1e-12)  # S·B = E_min: slope −1
        # the fit approaches perfect scaling at small batches and S_min at large ones
        assert y[0] / py[0] == pytest.approx(1 + x[0] / fit.b_crit)
        mx, my = art["measured"].get_data()
        np.testing.assert_allclose(mx, fit.batch_sizes)
        np.testing.assert_allclose(my, fit.steps)
        assert art["b_crit"].get_xdata()[0] == pytest.approx(fit.b_crit)
        assert art["b_simple"].get_xdata()[0] == pytest.approx(300.0)
        assert {f"regime:{r}" for r in REGIMES} <= set(art)
        lo, hi = fit.regime_bounds()
        span = art["regime:diminishing_returns"]
        assert span.get_x() == pytest.approx(lo) and span.get_x() + span.get_width() == pytest.approx(hi)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ from results.nc


def _grid_results(with_noise: bool = True):
    import xarray as xr

    rng = np.random.default_rng(9)
    seeds = [0, 1, 2]
    steps = np.stack([np.stack(_draw(rng, 0.05, len(seeds))) for _ in ("sgd", "other")])
    steps[1] *= 2.0  # another arm: twice the steps everywhere (same B_crit, twice S_min)
    steps[0, -1, :] = np.nan  # the largest batch never met the target in the first arm
    ds = xr.Dataset(
        {"steps_to_target": (("variant", "batch_size", "seed"), steps)},
        coords={"variant": ["sgd", "other"], "batch_size": BATCHES.astype(int), "seed": seeds},
    )
    if with_noise:
        noise = np.full((2, len(BATCHES), len(seeds), 4), np.nan)
        noise[..., :3] = [100.0, 200.0, 300.0]  # grows over training; the last epoch is padding
        ds["gradient_noise_scale"] = (("variant", "batch_size", "seed", "epoch"), noise)
    return ds


def test_results_grid_per_batch_size_and_b_simple():
    from lbgap.analysis.report import b_simple_of, fit_results, steps_per_batch_size

    ds = _grid_results()
    b, values = steps_per_batch_size(ds.sel(variant="sgd"))
    np.testing.assert_array_equal(b, BATCHES)
    assert all(v.size == 3 for v in values) and np.isnan(values[-1]).all()
    fit = fit_results(ds, select={"variant": "other"}, aggregate="median", n_boot=0)
    assert fit.b_crit == pytest.approx(B_CRIT, rel=0.1) and fit.s_min == pytest.approx(2 * S_MIN, rel=0.1)
    assert b_simple_of(ds) == pytest.approx(300.0)
    assert math.isnan(b_simple_of(ds, "missing"))
    with pytest.raises(ValueError, match="epoch dimension"):
        steps_per_batch_size(ds, "gradient_noise_scale")


def test_results_search_groups_trials_by_their_batch_size():
    import xarray as xr

    from lbgap.analysis.report import steps_per_batch_size

    trial_b = np.array([64, 8, 64, 512, 8, 512])
    ds = xr.Dataset(
        {"steps_to_target": (("trial",), [10.0, 80.0, 12.0, np.nan, 70.0, 3.0])},
        coords={"trial": np.arange(6), "batch_size": ("trial", trial_b)},
    )
    b, values = steps_per_batch_size(ds)
    np.testing.assert_array_equal(b, [8, 64, 512])
    np.testing.assert_array_equal(values[0], [80.0, 70.0])
    np.testing.assert_array_equal(values[2], [np.nan, 3.0])
    with pytest.raises(ValueError, match="no 'lr'"):
        steps_per_batch_size(ds, batch="lr")


def test_report_figures_per_variant(tmp_path):
    from lbgap.analysis.report import critical_batch_figures

    figures = critical_batch_figures(_grid_results(), tmp_path, n_boot=20)
    assert [p.name for _, p in figures] == ["critical_batch_sgd.png", "critical_batch_other.png"]
    assert all(p.exists() for _, p in figures) and "B_crit" in figures[0][0]
    assert critical_batch_figures(_grid_results().drop_vars("steps_to_target"), tmp_path) == []
    few = _grid_results(with_noise=False).isel(batch_size=[0, 1])
    assert critical_batch_figures(few, tmp_path, n_boot=0) == []  # two batch sizes: no fit, no figure


def test_a_study_with_a_target_gives_the_figure(toy_registry, tmp_path):
    """End to end: a batch-size grid with a training-loss target, results.nc, the fit and its figure."""
    import xarray as xr

    from lbgap.analysis.report import critical_batch_figures, steps_per_batch_size
    from lbgap.driver.run import run_study
    from lbgap.spec import load_study_text

    text = """\
study: critical_batch
base:
  dataset: {name: blobs, n_train: 128, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.2, momentum: 0.9}
  batch_size: 32
  epochs: 20
  keep_weights: none
  target: {metric: train_loss, value: 0.3, every_steps: 1, stop: true}
  metrics: [{name: sgd_noise_scale}]
grid:
  batch_size: [2, 16, 128]
seeds: [0]
"""
    summary = run_study(load_study_text(text, "cb.yaml", toy_registry), tmp_path / "run", device="cpu")
    with xr.open_dataset(summary.results) as ds:
        b, steps = steps_per_batch_size(ds)
        np.testing.assert_array_equal(b, [2, 16, 128])
        assert all(np.isfinite(v).all() for v in steps)
        g = ds["sgd_noise_scale"].isel(epoch=0).squeeze().values  # lr·N/(B(1 − m))
        np.testing.assert_allclose(g, [0.2 * 128 / (bb * 0.1) for bb in (2, 16, 128)])
        ((title, path),) = critical_batch_figures(ds, tmp_path / "figs", n_boot=20)
    assert path.exists() and title.startswith("Steps to target against batch size")
