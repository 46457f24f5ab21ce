"""The ``reparameterized`` metric: inner metrics on α-rescaled copies, against dense oracles."""

import numpy as np
import pydantic
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import context, dense_hessian, make_data, make_mlp, split_batches
from torch import nn

import lbgap_curvature
from lbgap.registry import Registry
from lbgap.spec.model import plugin_config_model
from lbgap_curvature.flat import ParamLayout
from lbgap_curvature.reparam import relu_alpha_scale, scale_vector
from lbgap_curvature.state import ModelSnapshot, rng_snapshot

INNER = [
    {"name": "hessian_eigenvalues", "k": 1, "tol": 1e-10, "max_hvps": 200},
    {"name": "keskar_sharpness", "eps": [1e-3], "spaces": ["full"], "maxiter": 5},
    {"name": "adaptive_sharpness", "rho": 0.1, "steps": 5},
]
ALPHAS = [0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def registry():
    return Registry.from_plugins([("curvature", lbgap_curvature, "test", "0")])


def _metric(registry, name="reparameterized", **settings):
    model = plugin_config_model(registry.get("metric", name), registry)
    return registry.build("metric", model.model_validate({"name": name, **settings}))


@pytest.fixture
def relu_ctx():
    """A float64 ReLU network 6 → 10 → 8 → 3: layers "0", "2", "4"."""
    model = make_mlp(d_in=6, hidden=(10, 8), act=nn.ReLU, seed=3)
    return context(model, make_data(n=48, d_in=6), eval_batch_size=16, seed=7)


def test_alpha_one_reproduces_the_inner_metrics_and_the_model_is_untouched(registry, relu_ctx):
    metric = _metric(registry, layers=["0", "2"], alphas=ALPHAS, metrics=INNER)
    snap = ModelSnapshot.take(relu_ctx.model)
    rng = rng_snapshot()
    out = metric._compute(relu_ctx)  # without the restoring safety net
    assert snap.differences(relu_ctx.model) == []
    assert torch.equal(rng_snapshot()["torch"], rng["torch"])
    for entry in INNER:
        direct = _metric(registry, **entry).compute(relu_ctx)
        for name, value in direct.items():
            got = out[f"reparam_{name}"].sel(reparam_alpha=1.0)
            np.testing.assert_array_equal(got.values, np.asarray(getattr(value, "values", value)))
    assert out["reparam_logit_max_abs_change"].sel(reparam_alpha=1.0) == 0.0


def test_function_unchanged_eigenvalue_as_theorem_3_adaptive_invariant(registry, relu_ctx):
    metric = _metric(registry, layers=["0", "2"], alphas=ALPHAS, metrics=INNER)
    out = metric.compute(relu_ctx)
    da = out["reparam_hessian_top_eigenvalue"]
    assert da.dims == ("reparam_alpha",) and list(da["reparam_alpha"].values) == ALPHAS
    assert {"units", "long_name"} <= set(da.attrs) and "relu_alpha_scale" in da.attrs["long_name"]
    assert float(out["reparam_logit_max_rel_change"].max()) <= 1e-12
    acc = out["reparam_test_accuracy"].values
    assert np.all(acc == acc[1])
    np.testing.assert_allclose(
        out["reparam_test_loss"], out["reparam_test_loss"].sel(reparam_alpha=1.0), rtol=1e-12
    )
    # Dinh et al., Theorem 3, against the dense Hessian of the untransformed network: H' = S⁻¹HS⁻¹
    model = relu_ctx.model
    xs, ys = split_batches(relu_ctx.data.train_x, relu_ctx.data.train_y, 16)
    H = dense_hessian(model, xs, ys, F.cross_entropy)
    layout = ParamLayout.from_model(model)
    for alpha in ALPHAS:
        s = scale_vector(layout, relu_alpha_scale(model, ["0", "2"], [alpha, 1 / alpha])[1])
        expected = float(torch.linalg.eigvalsh(H / s[:, None] / s[None, :])[-1])
        assert float(da.sel(reparam_alpha=alpha)) == pytest.approx(expected, rel=1e-8)
    assert (da.sel(reparam_alpha=[0.1, 10.0]) > 3 * da.sel(reparam_alpha=1.0)).all()
    keskar = out["reparam_keskar_sharpness_full_eps1e-03"]
    assert float(keskar.sel(reparam_alpha=0.1)) > 2 * float(keskar.sel(reparam_alpha=1.0))
    adaptive = out["reparam_adaptive_sharpness_worst_l2_rho0.1"]
    np.testing.assert_allclose(adaptive, adaptive.sel(reparam_alpha=1.0), rtol=1e-6)


def test_powers_spread_alpha_over_layers(registry, relu_ctx):
    metric = _metric(registry, layers=["0", "2", "4"], powers=[1, 1, -2], alphas=[3.0])
    new = metric.transformed(relu_ctx.model, 3.0)
    for name, factor in (("0", 3.0), ("2", 3.0), ("4", 1 / 9)):
        old = dict(relu_ctx.model.named_modules())[name].weight
        torch.testing.assert_close(dict(new.named_modules())[name].weight, old * factor, rtol=1e-14, atol=0)
    out = metric.compute(relu_ctx)
    assert float(out["reparam_logit_max_rel_change"].squeeze()) <= 1e-12
    # the default: the first layer α, the last 1/α, the others untouched
    new = _metric(registry, layers=["0", "2", "4"], alphas=[3.0]).transformed(relu_ctx.model, 3.0)
    torch.testing.assert_close(new[2].weight, relu_ctx.model[2].weight, rtol=0, atol=0)
    torch.testing.assert_close(new[4].weight, relu_ctx.model[4].weight / 3, rtol=1e-14, atol=0)


@pytest.mark.parametrize("bn_mode", ["running", "batch"])
def test_bn_alpha_scale_float32_model_float64_check(registry, bn_mode):
    model = make_mlp(d_in=6, hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32)
    ctx = context(model, make_data(n=40, d_in=6, dtype=torch.float32), seed=1)
    metric = _metric(
        registry,
        transform="bn_alpha_scale",
        layers=["0"],
        batchnorm="1",
        alphas=[0.01, 100.0],
        bn_mode=bn_mode,
        precision="float64",
        metrics=[{"name": "hessian_trace", "num_probes": 4, "bn_mode": bn_mode}],
    )
    out = metric.compute(ctx)
    assert float(out["reparam_logit_max_rel_change"].max()) <= 1e-10  # a float64 copy, transformed exactly
    # the weights in front of BatchNorm: their Hessian block scales by α⁻²
    trace = abs(out["reparam_hessian_trace"])
    assert np.all(np.isfinite(trace)) and trace.sel(reparam_alpha=0.01) > 100 * trace.sel(reparam_alpha=100.0)
    assert next(ctx.model.parameters()).dtype == torch.float32


def test_prefix_names_the_variables_and_the_dimension(registry, relu_ctx):
    out = _metric(registry, layers=["0", "2"], alphas=[2.0], prefix="dinh").compute(relu_ctx)
    assert set(out) == {
        "dinh_logit_max_abs_change",
        "dinh_logit_max_rel_change",
        "dinh_test_loss",
        "dinh_test_accuracy",
    }
    assert all(v.dims == ("dinh_alpha",) for v in out.values())


def test_a_variable_produced_twice_is_an_error(registry, relu_ctx):
    metric = _metric(registry, layers=["0", "2"], alphas=[2.0], metrics=[INNER[0], INNER[0]])
    with pytest.raises(ValueError, match="produced twice"):
        metric.compute(relu_ctx)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"layers": ["0"]}, "at least two layers"),
        ({"layers": ["0", "2"], "powers": [1, 1]}, "sum to 0"),
        ({"layers": ["0", "2"], "powers": [1, 0, -1]}, "one power per layer"),
        ({"layers": ["0", "2"], "alphas": [1.0, 1.0]}, "distinct"),
        ({"layers": ["0", "2"], "alphas": [0.0]}, "greater than 0"),
        ({"layers": ["0", "2"], "batchnorm": "1"}, "bn_alpha_scale only"),
        ({"transform": "bn_alpha_scale", "layers": ["0"]}, "batchnorm it feeds"),
        ({"layers": ["0", "2"], "prefix": "9x"}, "pattern"),
        ({"layers": ["0", "2"], "metrics": [{"name": "hessian_trace", "num_probes": 1}]}, "num_probes"),
        (
            {"layers": ["0", "2"], "metrics": [{"name": "reparameterized", "layers": ["0", "2"]}]},
            "does not match",
        ),
    ],
)
def test_impossible_settings_fail_validation(registry, bad, message):
    model = plugin_config_model(registry.get("metric", "reparameterized"), registry)
    with pytest.raises(pydantic.ValidationError, match=message):
        model.model_validate({"name": "reparameterized", **bad})
