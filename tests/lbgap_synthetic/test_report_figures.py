"""Report figures of the synthetic studies (hook ``lbgap_report_figures``) and the β metric."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from lbgap.data import DataInfo
from lbgap.metric import MeasureContext
from lbgap.registry import load_registry
from lbgap_synthetic import report_figures as rf
from lbgap_synthetic.coefficients import LinearCoefficientsConfig, build_linear_coefficients
from lbgap_synthetic.convex import gradient_descent, paper_design, population_loss_basis
from lbgap_synthetic.convex_plugin import LinearRegressionConfig, build_linear_regression

EPOCHS = np.arange(1, 41)


def _pq_results(extra_dim: bool = False) -> xr.Dataset:
    """Results shaped like a P/Q study: four arms, three seeds, 40 epochs."""
    rng = np.random.default_rng(1)
    variants = ["L-S", "S", "S+noise", "step"]
    ds = xr.Dataset(coords={"variant": variants, "seed": [0, 1, 2], "epoch": EPOCHS})
    shape = (4, 3, len(EPOCHS))
    for comp in ("p_only", "q_only", "both"):
        ds[f"test_accuracy_{comp}"] = (("variant", "seed", "epoch"), rng.uniform(0.4, 1.0, shape))
    ds["test_accuracy"] = ds["test_accuracy_p_only"]
    lr = np.full(shape, 0.1)
    lr[0, :, 12:] = 0.004  # loss_switch: the record says so too
    lr[3, :, 30:] = 0.004  # a step schedule: epochs 31.. run at the small rate
    lr[1:3] = 0.004
    ds["learning_rate"] = (("variant", "seed", "epoch"), lr)
    ds["lr_switch_epoch"] = (("variant", "seed"), np.array([[12.0, 12.0, 14.0]] + [[np.nan] * 3] * 3))
    ds["preactivation_noise_decay_epoch"] = (("variant", "seed"), np.array([[np.nan] * 3] * 2 + [[29.0] * 3] + [[np.nan] * 3]))
    if extra_dim:
        ds = xr.concat([ds, ds], dim=xr.DataArray([0.1, 0.5], dims="lr", name="lr"))
    return ds


def test_anneal_epochs_prefer_the_switch_then_noise_decay_then_lr_drop():
    ds = _pq_results()
    anneal = rf.anneal_epochs(ds)
    assert anneal.sel(variant="L-S").values.tolist() == [12.0, 12.0, 14.0]
    assert np.isnan(anneal.sel(variant="S").values).all()  # constant small rate: never annealed
    assert anneal.sel(variant="S+noise").values.tolist() == [29.0] * 3
    # the first epoch at the small rate is epoch 31, so 30 epochs were done at the switch
    assert anneal.sel(variant="step").values.tolist() == [30.0] * 3


def test_component_figure_is_drawn_through_the_registered_hook(tmp_path):
    ds = _pq_results()
    got = [fig for figs in load_registry().pm.hook.lbgap_report_figures(results=ds, out_dir=tmp_path) for fig in figs]
    paths = {p.name for _, p in got}
    assert rf.COMPONENT_FIGURE in paths and rf.CONVEX_FIGURE not in paths
    assert (tmp_path / rf.COMPONENT_FIGURE).read_bytes()[:4] == b"\x89PNG"


def test_component_figure_marks_the_mean_anneal_of_each_arm(tmp_path, monkeypatch):
    seen = {}

    def capture(sub, path, **kw):
        seen["ds"] = sub
        path.write_bytes(b"\x89PNG")
        return None

    monkeypatch.setattr(rf, "plot_component_accuracy", capture)
    title, path = rf.component_accuracy_figure(_pq_results(), tmp_path)
    assert "anneal" in title and path == tmp_path / rf.COMPONENT_FIGURE
    sw = seen["ds"]["lr_switch_epoch"]
    assert float(sw.sel(variant="step").mean()) == 30.0
    assert float(sw.sel(variant="S+noise").mean()) == 29.0


def test_grid_dimensions_become_arms_of_their_own(tmp_path, monkeypatch):
    seen = {}

    def capture(sub, path, **kw):
        seen["ds"] = sub
        return None

    monkeypatch.setattr(rf, "plot_component_accuracy", capture)
    rf.component_accuracy_figure(_pq_results(extra_dim=True), tmp_path)
    sub = seen["ds"]
    assert set(sub["test_accuracy_p_only"].dims) == {"variant", "seed", "epoch"}
    labels = [str(v) for v in sub["variant"].values]
    assert len(labels) == 8 and "L-S, lr=0.1" in labels and "step, lr=0.5" in labels
    # the real plot accepts the stacked results
    out = tmp_path / "real"
    out.mkdir()
    monkeypatch.undo()
    assert rf.component_accuracy_figure(_pq_results(extra_dim=True), out)[1].exists()


def test_nothing_is_drawn_for_other_studies(tmp_path):
    ds = xr.Dataset(coords={"variant": ["a"], "seed": [0], "epoch": EPOCHS})
    ds["test_accuracy"] = (("variant", "seed", "epoch"), np.ones((1, 1, len(EPOCHS))))
    assert rf.report_figures(ds, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def _convex_results(eps: float = 1e-3) -> tuple[xr.Dataset, dict]:
    """Results shaped like the convex study, from the pure GD of lbgap_synthetic.convex."""
    X, y = paper_design((1.0, 1.0))

    def test_loss(b):
        return population_loss_basis(b, (1.0, 1.0))

    runs = {
        "large_then_small": gradient_descent(X, y, lr=1.5, lr_after=0.06, switch_step=10, eps=eps, test_loss=test_loss),
        "small": gradient_descent(X, y, lr=0.06, eps=eps, test_loss=test_loss),
    }
    n = max(r.steps for r in runs.values())
    beta = np.full((2, 2, n, 2), np.nan)  # variant, seed, epoch, coefficient
    for i, r in enumerate(runs.values()):
        beta[i, :, : r.steps] = r.betas[1:]  # epoch e holds the weights after e steps
    ds = xr.Dataset(coords={"variant": list(runs), "seed": [0, 1], "epoch": np.arange(1, n + 1)})
    ds["beta_1"] = (("variant", "seed", "epoch"), beta[..., 0])
    ds["beta_2"] = (("variant", "seed", "epoch"), beta[..., 1])
    cfg = {
        "dataset": {"name": "convex_regression", "design": "paper_counts", "counts": [2, 1], "beta_star": [1.0, 1.0]},
        "model": {"name": "linear_regression", "init": "zeros"},
        "stopping": [{"name": "train_loss_below", "eps": eps}],
    }
    ds.attrs["lbgap_spec_json"] = json.dumps({"variants": {k: cfg for k in runs}, "header": {}, "grid": {}})
    return ds, runs


def test_convex_figure_draws_the_recorded_paths_from_zero(tmp_path, monkeypatch):
    ds, runs = _convex_results()
    seen = {}

    def capture(target, got, **kw):
        seen.update(kw, runs=got, target=target)
        return target

    monkeypatch.setattr(rf, "plot_convex_trajectories", capture)
    title, path = rf.convex_trajectory_figure(ds, tmp_path)
    assert "contours" in title and path == tmp_path / rf.CONVEX_FIGURE
    assert seen["eps"] == 1e-3
    np.testing.assert_array_equal(seen["X"], paper_design((1.0, 1.0))[0])
    for name, run in runs.items():
        drawn = seen["runs"][name]
        np.testing.assert_allclose(drawn.betas, run.betas, rtol=0, atol=1e-15)  # starts at beta = 0
        np.testing.assert_allclose(drawn.train_loss, run.train_loss, rtol=1e-12)
        np.testing.assert_allclose(drawn.test_loss, run.test_loss, rtol=1e-12)
        assert drawn.converged


def test_convex_figure_is_written_and_the_component_figure_is_not(tmp_path):
    ds, _ = _convex_results()
    figs = rf.report_figures(ds, tmp_path)
    assert [p.name for _, p in figs] == [rf.CONVEX_FIGURE]
    assert (tmp_path / rf.CONVEX_FIGURE).read_bytes()[:4] == b"\x89PNG"


def test_convex_figure_needs_convex_data(tmp_path):
    ds, _ = _convex_results()
    spec = json.loads(ds.attrs["lbgap_spec_json"])
    for cfg in spec["variants"].values():
        cfg["dataset"] = {"name": "gaussian_blobs"}
    ds.attrs["lbgap_spec_json"] = json.dumps(spec)
    assert rf.convex_trajectory_figure(ds, tmp_path) is None
    assert rf.convex_trajectory_figure(ds.drop_vars("beta_2"), tmp_path) is None


# ------------------------------------------------------------------ metric linear_coefficients


def _ctx(model):
    return MeasureContext(model=model, data=None, loss_fn=None, device=torch.device("cpu"))


def test_linear_coefficients_reads_beta_and_intercept():
    info = DataInfo(input_shape=(3,), num_classes=1)
    model = build_linear_regression(LinearRegressionConfig(bias=True), info=info)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[0.5, -1.25, 2.0]]))
        model.linear.bias.fill_(0.75)
    metric = build_linear_coefficients(LinearCoefficientsConfig())
    assert metric.every == 1 and metric.at_end
    assert metric.compute(_ctx(model)) == {"beta_0": 0.75, "beta_1": 0.5, "beta_2": -1.25, "beta_3": 2.0}
    assert metric.attrs["beta_2"]["units"] == "1"


def test_linear_coefficients_refuses_other_models():
    metric = build_linear_coefficients(LinearCoefficientsConfig(max_coefficients=2))
    with pytest.raises(ValueError, match="exactly one nn.Linear"):
        metric.compute(_ctx(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))))
    wide = build_linear_regression(LinearRegressionConfig(), info=DataInfo(input_shape=(3,), num_classes=1))
    with pytest.raises(ValueError, match="max_coefficients"):
        metric.compute(_ctx(wide))


def test_metric_is_registered():
    reg = load_registry()
    assert reg.get("metric", "linear_coefficients").build is build_linear_coefficients
