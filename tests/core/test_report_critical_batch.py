"""``lbgap report`` on a study that measured steps to target along batch sizes: the McCandlish fit's
table (S_min, E_min, B_crit with bootstrap intervals, B_simple) and its figures."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lbgap.analysis import steps_model
from lbgap.analysis.report import best_per_batch_size, critical_batch_analysis
from lbgap.registry import Registry
from lbgap.report import build_report
from lbgap.report.make import CRITICAL_BATCH

S_MIN, E_MIN = 400.0, 2.0e5
B_CRIT = E_MIN / S_MIN  # 500
BATCHES = 2 ** np.arange(3, 14)  # 8 .. 8192: perfect scaling to no gain
SEEDS = [0, 1, 2, 3]
EPOCHS = 6
NOISE = [50.0, 100.0, 200.0, 300.0, 400.0, 500.0]  # gradient_noise_scale at epochs 1..6: it grows


def _results(
    out: Path,
    *,
    batches=BATCHES,
    steps: np.ndarray | None = None,
    with_target: bool = True,
    with_noise: bool = True,
    variants=("base",),
) -> Path:
    """A results.nc in the layout of a grid study over batch sizes (variant × batch_size × seed
    [× epoch]) whose steps to target follow ``S = S_min (1 + B_crit/B)`` with log-normal noise."""
    rng = np.random.default_rng(2024)
    shape = (len(variants), len(batches), len(SEEDS))
    if steps is None:
        steps = steps_model(np.asarray(batches, dtype=float)[None, :, None], S_MIN, B_CRIT) * np.exp(
            rng.normal(0.0, 0.1, shape)
        )
        steps = np.round(steps)
    per_epoch = (*shape, EPOCHS)
    dims4 = ("variant", "batch_size", "seed", "epoch")
    dims3 = ("variant", "batch_size", "seed")
    acc = np.broadcast_to(np.linspace(0.5, 0.95, EPOCHS), per_epoch).copy()
    loss = np.broadcast_to(np.linspace(1.0, 0.1, EPOCHS), per_epoch).copy()
    ds = xr.Dataset(
        {
            "train_loss": (dims4, loss, {"units": "1", "long_name": "mean training loss"}),
            "test_loss": (dims4, loss * 1.1, {"units": "1", "long_name": "mean test loss"}),
            "train_accuracy": (dims4, acc, {"units": "1", "long_name": "training accuracy"}),
            "test_accuracy": (dims4, acc - 0.02, {"units": "1", "long_name": "test accuracy"}),
            "epochs_done": (dims3, np.full(shape, float(EPOCHS)), {"units": "1"}),
            "status": (dims3, np.full(shape, "stopped"), {"units": ""}),
        },
        coords={"variant": list(variants), "batch_size": np.asarray(batches), "seed": SEEDS,
                "epoch": np.arange(1, EPOCHS + 1)},
        attrs={"lbgap_study": "critical_batch_synthetic", "title": "critical_batch_synthetic"},
    )
    if with_target:
        ds["steps_to_target"] = (dims3, steps, {"units": "1", "long_name": "optimizer steps until the target"})
        b = np.asarray(batches, dtype=float)[None, :, None]
        ds["examples_to_target"] = (dims3, steps * b, {"units": "1", "long_name": "examples until the target"})
    if with_noise:
        noise = np.broadcast_to(np.asarray(NOISE), per_epoch).copy()
        noise[:, :, 0, 4:] = np.nan  # seed 0 stopped after epoch 4: its last value is 300
        ds["gradient_noise_scale"] = (dims4, noise, {"units": "samples", "long_name": "simple gradient noise scale"})
    out.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out / "results.nc")
    return out


def _no_plugins() -> Registry:
    return Registry.from_plugins([])


def _row(summary: str, arm: str) -> list[str]:
    """The cells of the critical batch table's row of ``arm``."""
    section = summary.split("## Critical batch size", 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == arm:
            return cells
    raise AssertionError(f"no row for {arm!r} in\n{section}")


def _interval(cell: str) -> tuple[float, float, float]:
    m = re.match(r"([-\d.e+]+) \[([-\d.e+]+), ([-\d.e+]+)\]", cell)
    assert m, cell
    return float(m[1]), float(m[2]), float(m[3])


def test_report_fits_the_model_and_draws_the_figures(tmp_path):
    out = _results(tmp_path / "study")
    made = build_report(out, _no_plugins(), critical_batch_boot=300)
    assert made.failures == []
    summary = made.path.read_text()
    header = "| arm | batch sizes fitted | per batch size | S_min [steps] | E_min [examples] | B_crit | B_simple |"
    assert header in summary
    arm, used, per, s_min, e_min, b_crit, b_simple, rms = _row(summary, "base")
    assert used == "11 of 11 (8–8192)"
    assert per == "median of ≤ 4 seeds (bootstrap: seeds)"
    for cell, true in ((b_crit, B_CRIT), (s_min, S_MIN), (e_min, E_MIN)):
        value, lo, hi = _interval(cell)
        assert lo <= true <= hi, (cell, true)
        assert lo <= value <= hi and value == pytest.approx(true, rel=0.15)
    # B_simple: over the 44 runs, each one's last value (500, or 300 for the seed that stopped early)
    q25, q50, q75 = np.quantile([300.0] * 11 + [500.0] * 33, [0.25, 0.5, 0.75])
    assert q25 < 500.0  # the early stops count with their last value, not the grid's last epoch
    assert b_simple == f"{q50:.4g} [{q25:.4g}, {q75:.4g}] (44 runs)"
    assert float(rms) < 0.1
    assert "95 % percentile bootstrap intervals (300 replicates)" in summary
    assert "B_simple: the measured gradient noise scale `gradient_noise_scale`" in summary
    rep = out / "report"
    for png in ("critical_batch.png", "examples_steps.png", "learning_curves.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in summary
    assert "not fitted" not in summary


def test_one_row_and_figure_per_variant_without_noise_scale(tmp_path):
    b = np.asarray(BATCHES, dtype=float)[None, :, None]
    steps = np.broadcast_to(steps_model(b, S_MIN, B_CRIT), (2, len(BATCHES), len(SEEDS))).copy()
    steps[1] *= 2.0  # the second arm: twice the steps, the same B_crit
    out = _results(tmp_path / "s", steps=steps, with_noise=False, variants=("sgd", "adam"))
    made = build_report(out, _no_plugins(), critical_batch_boot=20)
    summary = made.path.read_text()
    for arm, s_min in (("sgd", S_MIN), ("adam", 2 * S_MIN)):
        cells = _row(summary, arm)
        assert _interval(cells[5])[0] == pytest.approx(B_CRIT, rel=1e-6)
        assert _interval(cells[3])[0] == pytest.approx(s_min, rel=1e-6)
        assert cells[6] == "—"  # no gradient_noise_scale measured
        assert (out / "report" / f"critical_batch_{arm}.png").exists()
        assert (out / "report" / f"examples_steps_{arm}.png").exists()


def test_without_steps_to_target_nothing_is_drawn_and_the_cli_exits_0(tmp_path):
    from typer.testing import CliRunner

    from lbgap.cli.main import app

    out = _results(tmp_path / "plain", with_target=False)
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    summary = (out / "report" / "summary.md").read_text()
    assert "Critical batch size" not in summary and "not fitted" not in summary
    assert not list((out / "report").glob("critical_batch*.png"))
    assert not list((out / "report").glob("examples_steps*.png"))


@pytest.mark.parametrize(
    "batches, missed, reason",
    [
        ([64, 128], None, "needs steps to target at 3 or more batch sizes; got 2"),
        ([64, 128, 256, 512], "all", "needs steps to target at 3 or more batch sizes; got 0"),
    ],
)
def test_a_fit_that_cannot_run_says_why_in_one_line(tmp_path, batches, missed, reason):
    steps = None
    if missed == "all":  # no run met the target
        steps = np.full((1, len(batches), len(SEEDS)), np.nan)
    out = _results(tmp_path / "few", batches=batches, steps=steps)
    made = build_report(out, _no_plugins(), critical_batch_boot=20)
    assert made.failures == []
    summary = made.path.read_text()
    lines = [ln for ln in summary.splitlines() if "not fitted" in ln]
    assert len(lines) == 1
    assert lines[0].startswith("Critical batch size of base not fitted: fitting S_min and B_crit")
    assert reason in lines[0]
    assert "| arm | batch sizes fitted |" not in summary  # no table without a fit
    assert not list((out / "report").glob("critical_batch*.png"))
    assert (out / "report" / "learning_curves.png").exists()  # the rest of the report goes on


def _break_the_figures(monkeypatch):
    import lbgap.analysis.report as analysis_report

    def broken(result, out_dir, **kw):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(analysis_report, "critical_batch_result_figures", broken)


def test_a_failing_figure_is_named_and_the_rest_is_written(tmp_path, monkeypatch):
    _break_the_figures(monkeypatch)
    out = _results(tmp_path / "study", with_noise=False)
    made = build_report(out, _no_plugins(), critical_batch_boot=10)
    assert [f.plugin for f in made.failures] == [CRITICAL_BATCH]
    assert "RuntimeError: cannot draw" in made.failures[0].reason
    summary = made.path.read_text()
    assert f"- {CRITICAL_BATCH}: RuntimeError: cannot draw" in summary  # under "Figures not drawn"
    assert "| base |" in summary  # the table was written all the same
    assert (out / "report" / "learning_curves.png").exists()


@pytest.mark.slow
def test_a_failing_figure_makes_the_cli_exit_1(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lbgap.cli.main import app

    _break_the_figures(monkeypatch)
    out = _results(tmp_path / "study", with_noise=False)
    res = CliRunner().invoke(app, ["report", str(out)])
    assert res.exit_code == 1
    assert "the figures of critical batch size (lbgap.analysis) failed" in " ".join(res.output.split())


# ------------------------------------------------------------------ the best per batch size


def test_best_per_batch_size_of_a_plain_grid_is_the_grid():
    da = xr.DataArray(
        np.arange(6.0).reshape(3, 2), dims=("batch_size", "seed"), coords={"batch_size": [8, 16, 32], "seed": [0, 1]},
        name="steps_to_target",
    )
    best = best_per_batch_size(da)
    assert best.dims == ("batch_size", "seed")
    np.testing.assert_array_equal(best.values, da.values)


def test_best_per_batch_size_takes_the_fewest_steps_over_trials_inside_each_grid_point():
    # batch_size × seed × trial: a search (say over the learning rate) inside each grid point
    steps = np.array([
        [[30.0, 20.0, np.nan], [25.0, np.nan, 40.0]],
        [[np.nan, np.nan, np.nan], [12.0, 11.0, 13.0]],  # seed 0 of batch 16 never met the target
    ])
    da = xr.DataArray(steps, dims=("batch_size", "seed", "trial"), coords={"batch_size": [8, 16], "seed": [0, 1]},
                      name="steps_to_target")
    best = best_per_batch_size(da.transpose("trial", "seed", "batch_size"))
    assert best.dims == ("batch_size", "seed")
    np.testing.assert_array_equal(best.values, [[20.0, 25.0], [np.nan, 11.0]])
    # another grid dimension (a learning-rate grid) is a search too
    lr = xr.concat([da.isel(trial=0), da.isel(trial=1)], dim="lr")
    np.testing.assert_array_equal(best_per_batch_size(lr).values, [[20.0, 25.0], [np.nan, 11.0]])


def test_best_per_batch_size_groups_a_searchs_trials_by_their_batch_size():
    da = xr.DataArray(
        [[10.0, 11.0], [80.0, 81.0], [12.0, 9.0], [np.nan, np.nan], [70.0, 90.0], [3.0, 4.0]],
        dims=("trial", "seed"),
        coords={"trial": np.arange(6), "batch_size": ("trial", [64, 8, 64, 512, 8, 512]), "lr": ("trial", np.ones(6))},
        name="steps_to_target",
    )
    best = best_per_batch_size(da)
    np.testing.assert_array_equal(best["batch_size"].values, [8, 64, 512])
    np.testing.assert_array_equal(best.values, [[70.0, 81.0], [10.0, 9.0], [3.0, 4.0]])


def test_the_analysis_fits_the_best_trial_of_each_seed(tmp_path):
    """Trials inside each grid point: the fit gets the best of each seed's trials, whose steps
    follow the model exactly; worse trials (2× and 3×) do not pull it."""
    b = np.asarray(BATCHES, dtype=float)
    exact = steps_model(b, S_MIN, B_CRIT)
    trials = np.stack([exact * 2.0, exact, exact * 3.0], axis=-1)  # batch × trial
    steps = np.broadcast_to(trials[None, :, None, :], (1, len(b), 2, 3))
    ds = xr.Dataset(
        {"steps_to_target": (("variant", "batch_size", "seed", "trial"), steps),
         "examples_to_target": (("variant", "batch_size", "seed", "trial"), steps * b[None, :, None, None])},
        coords={"variant": ["base"], "batch_size": BATCHES, "seed": [0, 1], "trial": [0, 1, 2]},
    )
    (result,) = critical_batch_analysis(ds, n_boot=10)
    assert result.best_over == ("trial",)
    assert result.fit.b_crit == pytest.approx(B_CRIT, rel=1e-6)
    assert result.fit.s_min == pytest.approx(S_MIN, rel=1e-6)
    np.testing.assert_allclose(result.examples, exact * b)
    assert critical_batch_analysis(ds.drop_vars("steps_to_target")) == []
    assert math.isnan(critical_batch_analysis(ds.isel(batch_size=[0, 1]), n_boot=0)[0].fit or math.nan)
