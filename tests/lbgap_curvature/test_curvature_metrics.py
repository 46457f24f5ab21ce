"""The metric plugins: registration, configuration, outputs, determinism and side-effect freedom."""

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from curvature_helpers import context, dense_hessian, make_data, make_mlp, split_batches
from torch import nn

import lbgap_curvature
from lbgap.metric import Metric
from lbgap.registry import Registry
from lbgap.spec.model import plugin_config_model
from lbgap_curvature.state import ModelSnapshot, rng_snapshot

FAST = {
    "keskar_sharpness": {"maxiter": 3, "subspace_dim": 5},
    "hessian_eigenvalues": {"k": 2},
    "hessian_trace": {"num_probes": 5},
    "hessian_spectrum": {"num_probes": 2, "lanczos_steps": 6, "grid_points": 50},
    "interpolation": {"num_points": 7},
    "minimizer_distance": {},
    "adaptive_sharpness": {"steps": 3},
    "gradient_noise_scale": {"noise_batch_size": 8},
    # the layer feeding the BatchNorm of _model() scaled by α: the same function in both BN modes
    "reparameterized": {
        "transform": "bn_alpha_scale",
        "layers": ["0"],
        "batchnorm": "1",
        "alphas": [0.5, 1.0, 4.0],
        "metrics": [{"name": "hessian_trace", "num_probes": 3}, {"name": "adaptive_sharpness", "steps": 2}],
    },
}


@pytest.fixture(scope="module")
def registry():
    return Registry.from_plugins([("curvature", lbgap_curvature, "test", "0")])


def _model(bn=True, dropout=0.0):
    return make_mlp(hidden=(7,), bn=bn, act=nn.ReLU, dtype=torch.float32, dropout=dropout)


def _ctx(model, dropout=0.0, **kw):
    data = make_data(n=40, dtype=torch.float32)
    data.eval_transform = lambda x, g: x * 0.5  # a normalisation, to check it is applied
    other = make_mlp(hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32, seed=9, dropout=dropout)
    init = make_mlp(hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32, seed=5, dropout=dropout)
    return context(
        model, data, reference_state=other.state_dict(), initial_state=init.state_dict(), seed=11, **kw
    )


def _build(registry, name, **kw):
    model = plugin_config_model(registry.get("metric", name), registry)
    return registry.build("metric", model.model_validate({"name": name, **FAST[name], **kw}))


def test_all_plugins_registered(registry):
    assert set(registry.of_kind("metric")) == set(FAST)
    for name, rec in registry.of_kind("metric").items():
        assert rec.describe()
        m = _build(registry, name)
        assert isinstance(m, Metric)
        assert m.every is None and m.at_end is True


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_metric_leaves_everything_as_found(registry, name, bn_mode):
    model = _model(dropout=0.2)
    model.train()
    model[0].weight.grad = torch.ones_like(model[0].weight)
    ctx = _ctx(model, dropout=0.2)
    metric = _build(registry, name, bn_mode=bn_mode, max_samples=30)
    snap = ModelSnapshot.take(model)
    rng = rng_snapshot()
    out = metric._compute(ctx)  # without the restoring safety net
    assert snap.differences(model) == []
    after = rng_snapshot()
    assert torch.equal(after["torch"], rng["torch"])
    assert np.array_equal(after["numpy"][1], rng["numpy"][1])
    assert after["python"] == rng["python"]
    assert out
    again = metric.compute(ctx)  # with it: same numbers (deterministic)
    assert set(again) == set(out)
    for k in out:
        if isinstance(out[k], xr.DataArray):
            xr.testing.assert_identical(out[k], again[k])
        else:
            assert out[k] == again[k] or (np.isnan(out[k]) and np.isnan(again[k]))


def test_outputs_have_names_dims_and_attrs(registry):
    ctx = _ctx(_model())
    outs = {}
    for name in FAST:
        m = _build(registry, name)
        out = m.compute(ctx)
        outs.update(out)
        for k, v in out.items():
            if isinstance(v, xr.DataArray):
                assert {"units", "long_name"} <= set(v.attrs)
            else:
                assert isinstance(v, float)
                assert {"units", "long_name"} <= set(m.attrs[k])
    for k in (
        "keskar_sharpness_full_eps1e-03",
        "keskar_sharpness_random_eps5e-04",
        "keskar_base_loss",
        "hessian_top_eigenvalue",
        "hessian_trace",
        "hessian_trace_stderr",
        "distance_to_reference",
        "distance_from_init",
        "adaptive_sharpness_worst_l2_rho0.1",
        "gradient_noise_scale",
    ):
        assert k in outs and np.isfinite(outs[k]), k
    assert outs["hessian_eigenvalues"].dims == ("eigen_index",)
    assert outs["interpolation_train_loss"].dims == ("alpha",)
    assert outs["interpolation_test_accuracy"].sizes["alpha"] == 7
    assert outs["hessian_spectrum_density"].dims == ("density_grid",)
    assert outs["keskar_sharpness_full_eps1e-03"] > outs["keskar_sharpness_full_eps5e-04"] >= 0
    assert outs["reparam_hessian_trace"].dims == ("reparam_alpha",)
    np.testing.assert_array_equal(outs["reparam_hessian_trace"]["reparam_alpha"], [0.5, 1.0, 4.0])


def test_keskar_subspace_matrix_is_used_and_seeded(registry):
    """Each distribution of A gives its own variable and value; the same seed, the same value."""
    ctx = _ctx(_model(bn=False))
    values = {}
    for matrix in ("orthonormal", "gaussian", "smoothout"):
        metric = _build(registry, "keskar_sharpness", spaces=["random"], eps=[1e-3], subspace_matrix=matrix)
        out = metric.compute(ctx)
        space = "random" if matrix == "orthonormal" else f"random_{matrix}"
        name = f"keskar_sharpness_{space}_eps1e-03"
        assert [k for k in out if k.startswith("keskar_sharpness_")] == [name]
        assert matrix in metric.attrs[name]["long_name"]
        assert metric.compute(ctx)[name] == out[name]
        values[matrix] = out[name]
    assert len(set(values.values())) == 3
    # unnormalised Gaussian columns have norm ≈ √n (n = 73 here), orthonormal ones 1: larger steps
    assert values["gaussian"] > 3 * values["orthonormal"] > 0


def test_eigenvalues_metric_matches_dense_hessian(registry):
    """The plugin path (subset, eval_transform, float64 copy, bn mode) reaches the dense answer."""
    model = _model()
    ctx = _ctx(model)
    m = _build(
        registry, "hessian_eigenvalues", k=3, tol=1e-9, precision="float64", bn_mode="batch", batch_size=16
    )
    out = m.compute(ctx)
    m64 = make_mlp(hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32)
    m64.load_state_dict(model.state_dict())
    m64 = m64.double()
    xs, ys = split_batches(ctx.data.train_x.double() * 0.5, ctx.data.train_y, 16)
    ev = np.sort(torch.linalg.eigvalsh(dense_hessian(m64, xs, ys, F.cross_entropy, "batch")).numpy())[::-1][
        :3
    ]
    np.testing.assert_allclose(out["hessian_eigenvalues"].values, ev, rtol=1e-8)
    assert out["hessian_eigenvalue_converged"].values.all()


def test_seeds_change_random_streams(registry):
    ctx = _ctx(_model())
    a = _build(registry, "hessian_trace").compute(ctx)["hessian_trace"]
    b = _build(registry, "hessian_trace", seed=1).compute(ctx)["hessian_trace"]
    ctx.seed = 12
    c = _build(registry, "hessian_trace").compute(ctx)["hessian_trace"]
    assert len({a, b, c}) == 3


def test_pairwise_metrics_without_reference_give_nan(registry):
    ctx = _ctx(_model())
    ctx.reference_state = None
    ctx.initial_state = None
    out = _build(registry, "interpolation").compute(ctx)
    assert np.isnan(out["interpolation_train_loss"].values).all()
    out = _build(registry, "minimizer_distance").compute(ctx)
    assert np.isnan(out["distance_to_reference"]) and np.isnan(out["distance_from_init"])


def test_interpolation_end_point_is_the_model(registry):
    model = _model()
    ctx = _ctx(model)
    out = _build(registry, "interpolation", num_points=4, alpha_min=0.0, alpha_max=1.0).compute(ctx)
    from lbgap_curvature.loss import EvalBatches, ModelObjective

    batches = EvalBatches.from_tensors(ctx.data.test_x, ctx.data.test_y, 16, ctx.data.eval_transform)
    loss, acc = ModelObjective(model, batches, F.cross_entropy).loss_and_accuracy()
    assert out["interpolation_test_loss"].sel(alpha=0.0).item() == loss
    assert out["interpolation_test_accuracy"].sel(alpha=0.0).item() == acc


@pytest.mark.parametrize(
    "name,bad",
    [
        ("keskar_sharpness", {"eps": [-1e-3]}),
        ("keskar_sharpness", {"spaces": ["diagonal"]}),
        ("hessian_eigenvalues", {"k": 0}),
        ("hessian_eigenvalues", {"hvp_mode": "magic"}),
        ("hessian_trace", {"num_probes": 1}),
        ("interpolation", {"alpha_min": 2.0, "alpha_max": 1.0}),
        ("adaptive_sharpness", {"rho": 0}),
        ("gradient_noise_scale", {"bn_mode": "train"}),
        ("minimizer_distance", {"unknown_field": 1}),
    ],
)
def test_impossible_settings_fail_validation(registry, name, bad):
    with pytest.raises(pydantic.ValidationError):
        registry.get("metric", name).config(**bad)
