"""Numerically honest metrics: Keskar sharpness at and near exact minima, NaN on non-finite models.

The Keskar tests use least squares with an orthogonal, mean-zero design, so the
loss is a quadratic with a (nearly) diagonal Hessian whose box maximum is at the
vertex ``x0 + sign(x0 − c)·b`` (``c``: the exact minimizer, ``b``: the box
half-widths); its value is evaluated in float64.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr
from curvature_helpers import context, make_data, make_mlp
from torch import nn

import lbgap_curvature
from lbgap.data import InMemoryData
from lbgap.registry import Registry
from lbgap.spec.model import plugin_config_model
from lbgap_curvature.lanczos import MatrixOperator
from lbgap_curvature.numerics import FiniteOperator, NonFiniteMeasurement, nonfinite_tensors
from lbgap_curvature.sharpness import keskar_sharpness, random_orthonormal_subspace, stall_tolerance

D = 6  # inputs; the model has D + 1 parameters


@pytest.fixture(scope="module")
def registry():
    return Registry.from_plugins([("curvature", lbgap_curvature, "test", "0")])


def _build(registry, name, **kw):
    model = plugin_config_model(registry.get("metric", name), registry)
    return registry.build("metric", model.model_validate({"name": name, **kw}))


# ---------------------------------------------------------------- least squares


def _design(n=256, noise=0.7, seed=0):
    """``X`` (orthogonal mean-zero columns, scales 0.5..2), targets with residual noise, in float32."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, D, generator=g, dtype=torch.float64))
    q, _ = torch.linalg.qr(q - q.mean(0))
    x = q * torch.linspace(0.5, 2.0, D, dtype=torch.float64) * n**0.5
    y = x @ torch.randn(D, generator=g, dtype=torch.float64) + 0.3
    y = y + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return x.float(), y[:, None].float()


def _least_squares(x, y):
    """In float64 on the (float32) data: loss f, its exact minimizer c."""
    a = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], 1)
    t = y.double()[:, 0]
    c = torch.linalg.lstsq(a, t[:, None]).solution[:, 0]
    return (lambda v: float(((a @ v - t) ** 2).mean())), c


def _exact_phi(x, y, x0, eps):
    """φ from the box vertex that maximises the quadratic, in float64."""
    f, c = _least_squares(x, y)
    b = eps * (x0.abs() + 1)
    s = torch.sign(x0 - c)
    s[s == 0] = 1
    return 100 * (f(x0 + s * b) - f(x0)) / (1 + f(x0))


def _linear(x0, dtype=torch.float32):
    model = nn.Linear(D, 1).to(dtype)
    with torch.no_grad():
        model.weight.copy_(x0[:D].reshape(1, D))
        model.bias.copy_(x0[D:])
    return model


def _at(offset, seed=5):
    """float32 model and data ``offset`` away from the exact minimum, its point in float64."""
    x, y = _design()
    _, c = _least_squares(x, y)
    g = torch.Generator().manual_seed(seed)
    model = _linear(c + offset * torch.randn(D + 1, generator=g, dtype=torch.float64))
    x0 = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).double()
    data = InMemoryData(x, y, x[:8], y[:8], 1, task="regression")
    return model, data, x0


def _metric_value(registry, model, data, eps, **kw):
    metric = _build(registry, "keskar_sharpness", spaces=["full"], eps=[eps], **kw)
    out = metric.compute(context(model, data, loss_fn=F.mse_loss, eval_batch_size=64))
    return out, f"full_eps{eps:.0e}"


def test_exact_minimum_float64_is_not_zero():
    """At an exact minimum (gradient exactly 0) the old search reported φ = 0."""
    x, y = _design()
    x, y = x.double(), y.double()
    f, c = _least_squares(x, y)
    a = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)

    def fg(v):
        r = a @ v - y[:, 0]
        return float((r**2).mean()), 2 * a.T @ r / len(r)

    exact = _exact_phi(x, y, c, 1e-3)
    old = keskar_sharpness(fg, c, 1e-3, restart_on_stall=False)
    new = keskar_sharpness(fg, c, 1e-3)
    assert old.stalled and old.sharpness < 1e-9 * exact  # rounding only: the false 0
    assert new.stalled and new.sharpness == pytest.approx(exact, rel=1e-6)
    assert exact > 1e-3


@pytest.mark.parametrize("offset", [0.0, 1e-6, 1e-4])
@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_float32_model_at_and_near_minimum_matches_float64_closed_form(registry, offset, eps):
    model, data, x0 = _at(offset)
    exact = _exact_phi(data.train_x, data.train_y, x0, eps)
    out, tag = _metric_value(registry, model, data, eps)
    assert out[f"keskar_sharpness_{tag}"] == pytest.approx(exact, rel=1e-6)
    assert out[f"keskar_float64_{tag}"] == 1.0
    assert exact > 0


def test_old_float32_search_is_wrong_near_minimum(registry):
    """Without the stall restart and the float64 pass, float32 values near a minimum are
    noise: off from the float64 closed form by more than a factor of 2 in every case. What the noise
    reads depends on the processor's kernels: several times the closed form at ε = 1e-5 and far below
    it at ε = 1e-3 on the processor this test was written on, exactly 0 in all three cases on an AVX2
    processor (AMD EPYC: the loss differences round away)."""
    errors = []
    for offset, eps in ((0.0, 1e-3), (0.0, 1e-5), (1e-6, 1e-5)):
        model, data, x0 = _at(offset)
        exact = _exact_phi(data.train_x, data.train_y, x0, eps)
        out, tag = _metric_value(registry, model, data, eps, restart_on_stall=False, float64_below=0.0)
        assert out[f"keskar_float64_{tag}"] == 0.0
        errors.append(out[f"keskar_sharpness_{tag}"] / exact)
    assert all(e < 0.5 or e > 2.0 for e in errors), errors


def test_stall_is_flagged_and_float64_used_only_below_threshold(registry):
    x, y = _design()
    x, y = x.double(), y.double()
    _, c = _least_squares(x, y)
    data = InMemoryData(x, y, x[:8], y[:8], 1, task="regression")
    out, tag = _metric_value(registry, _linear(c, torch.float64), data, 1e-3)
    assert out[f"keskar_stalled_{tag}"] == 1.0 and out[f"keskar_float64_{tag}"] == 1.0
    assert out[f"keskar_sharpness_{tag}"] == pytest.approx(_exact_phi(x, y, c, 1e-3), rel=1e-6)
    far, data, _ = _at(0.3)  # far from the minimum: φ ≫ float64_below, no stall, float32 kept
    out, tag = _metric_value(registry, far, data, 1e-3, float64_below=1e-2)
    assert out[f"keskar_sharpness_{tag}"] > 1e-2
    assert out[f"keskar_stalled_{tag}"] == 0.0 and out[f"keskar_float64_{tag}"] == 0.0


def test_random_subspace_at_exact_minimum():
    """f = ½ xᵀ A diag(λ) Aᵀ x at x0 = 0: the maximum over the y-box is ½ Σ λ_i b_i², b = ε."""
    n, p, eps = 40, 5, 1e-2
    A = random_orthonormal_subspace(n, p, generator=torch.Generator().manual_seed(2))
    lam = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    H = A @ torch.diag(lam) @ A.T

    def fg(v):
        hv = H @ v.double()
        return float(0.5 * v.double() @ hv), hv.to(v.dtype)

    x0 = torch.zeros(n, dtype=torch.float64)
    res = keskar_sharpness(fg, x0, eps, A=A)
    assert res.stalled
    assert res.sharpness == pytest.approx(100 * float(0.5 * (lam * eps**2).sum()), rel=1e-9)


def test_stall_tolerance_scales_with_dtype():
    assert stall_tolerance(0.5, torch.float32) == pytest.approx(16 * 0.5 * 2.0**-23)
    assert stall_tolerance(0.5, torch.float64) == pytest.approx(16 * 0.5 * 2.0**-52)
    assert stall_tolerance(0.0, torch.float32) == 0.0


# ---------------------------------------------------------------- non-finite models

CONFIGS = {
    "keskar_sharpness": {"maxiter": 2, "subspace_dim": 3},
    "hessian_eigenvalues": {"k": 2},
    "hessian_trace": {"num_probes": 3},
    "hessian_spectrum": {"num_probes": 2, "lanczos_steps": 5, "grid_points": 20},
    "interpolation": {"num_points": 4},
    "minimizer_distance": {},
    "adaptive_sharpness": {"steps": 2},
    "gradient_noise_scale": {"noise_batch_size": 8},
    "reparameterized": {
        "transform": "bn_alpha_scale",
        "layers": ["0"],
        "batchnorm": "1",
        "alphas": [0.5, 2.0],
        "metrics": [{"name": "hessian_eigenvalues", "k": 2}, {"name": "keskar_sharpness", "maxiter": 2}],
    },
}
#: metrics whose every value depends on the loss at the measured point
LOSS_BASED = {
    "keskar_sharpness",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_spectrum",
    "adaptive_sharpness",
}


def _ctx(model):
    data = make_data(n=40, dtype=torch.float32)
    ref = make_mlp(hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32, seed=9)
    return context(model, data, reference_state=ref.state_dict(), initial_state=ref.state_dict())


def _model():
    return make_mlp(hidden=(7,), bn=True, act=nn.ReLU, dtype=torch.float32)


def _all_nan(value):
    if isinstance(value, xr.DataArray):
        return bool(np.isnan(value.values.astype(float)).all())
    return math.isnan(value)


def _comment(metric, name, value):
    return (
        value.attrs.get("comment") if isinstance(value, xr.DataArray) else metric.attrs[name].get("comment")
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_nonfinite_parameters_give_nan_with_a_reason(registry, name, bad):
    good = _build(registry, name, **CONFIGS[name]).compute(_ctx(_model()))
    model = _model()
    with torch.no_grad():
        model[0].weight[0, 0] = bad
    metric = _build(registry, name, **CONFIGS[name])
    out = metric.compute(_ctx(model))
    assert set(out) == set(good)
    for k, v in out.items():
        assert _all_nan(v), k
        if isinstance(v, xr.DataArray):
            assert v.dims == good[k].dims and v.shape == good[k].shape
        if name != "reparameterized":
            assert "'0.weight'" in _comment(metric, k, v)
    assert "'0.weight' has 1 non-finite" in metric.nan_reason
    assert not any(_all_nan(v) for v in good.values())


@pytest.mark.parametrize("name", sorted(LOSS_BASED | {"gradient_noise_scale"}))
def test_infinite_loss_gives_nan_with_a_reason(registry, name):
    """Finite parameters whose loss overflows (a diverged run): NaN, the loss named as the reason."""
    model = _model()
    with torch.no_grad():
        model[-1].weight.mul_(1e38)
    metric = _build(registry, name, **CONFIGS[name], batch_size=40)
    out = metric.compute(_ctx(model))
    assert out and all(_all_nan(v) for v in out.values())
    assert "loss at the measured point is inf" in metric.nan_reason


def test_nan_reason_is_cleared_by_a_good_measurement(registry):
    metric = _build(registry, "hessian_trace", **CONFIGS["hessian_trace"])
    model = _model()
    with torch.no_grad():
        model[0].bias[0] = math.nan
    metric.compute(_ctx(model))
    assert metric.nan_reason is not None
    out = metric.compute(_ctx(_model()))
    assert metric.nan_reason is None and np.isfinite(out["hessian_trace"])
    assert "comment" not in metric.attrs["hessian_trace"]


def test_nonfinite_helpers():
    model = _model()
    assert nonfinite_tensors(model) is None
    model[1].running_var[2] = math.inf
    assert nonfinite_tensors(model) == "buffer '1.running_var' has 1 non-finite value(s) of 7"
    m = torch.eye(3, dtype=torch.float64)
    op = FiniteOperator(MatrixOperator(m))
    assert torch.equal(op.matvec(torch.ones(3, dtype=torch.float64)), torch.ones(3, dtype=torch.float64))
    m[1, 1] = math.nan
    with pytest.raises(NonFiniteMeasurement, match="Hessian-vector product"):
        op.matvec(torch.ones(3, dtype=torch.float64))
