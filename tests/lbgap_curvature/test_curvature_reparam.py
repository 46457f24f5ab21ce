"""Dinh et al.'s rescalings: same function, predictably different Hessian, same adaptive sharpness."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import dense_hessian, make_data, make_mlp, split_batches
from torch import nn

from lbgap_curvature.adaptive import adaptive_average_case, adaptive_worst_case
from lbgap_curvature.flat import ParamLayout
from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.lanczos import top_eigenpairs
from lbgap_curvature.loss import EvalBatches, ModelObjective
from lbgap_curvature.reparam import bn_alpha_scale, relu_alpha_scale, scale_vector
from lbgap_curvature.sharpness import keskar_sharpness


@pytest.fixture(scope="module")
def relu_net():
    torch.set_num_threads(1)
    data = make_data(n=48, d_in=6)
    model = make_mlp(d_in=6, hidden=(10, 8), act=nn.ReLU, seed=3)
    xs, ys = split_batches(data.train_x, data.train_y, 16)
    return model, data, xs, ys


def _objective(model, xs, ys, mode="running"):
    return ModelObjective(model, EvalBatches(xs, ys), F.cross_entropy, bn_mode=mode)


@pytest.mark.parametrize("alphas", [(10.0, 0.1, 1.0), (1e-2, 1.0, 1e2), (4.0, 0.5, 0.5)])
def test_relu_alpha_scale_preserves_outputs(relu_net, alphas):
    model, data, xs, ys = relu_net
    new, scales = relu_alpha_scale(model, ["0", "2", "4"], alphas)
    with torch.no_grad():
        a, b = model(data.test_x), new(data.test_x)
    assert float((a - b).abs().max() / a.abs().max()) <= 1e-6
    # hidden biases scale with the cumulative product, the output bias is unchanged
    assert scales["2.bias"] == pytest.approx(alphas[0] * alphas[1])
    assert scales["4.bias"] == pytest.approx(1.0)
    assert torch.equal(new[4].bias, model[4].bias)


def test_alpha_scale_requires_unit_product(relu_net):
    model, *_ = relu_net
    with pytest.raises(ValueError, match="multiply to 1"):
        relu_alpha_scale(model, ["0", "2"], [2.0, 0.4])


@pytest.mark.parametrize("alpha", [0.05, 7.0])
def test_top_eigenvalue_changes_as_predicted(relu_net, alpha):
    """Theorem 3 of Dinh et al.: H' = S⁻¹ H S⁻¹ with S the parameter scaling."""
    model, data, xs, ys = relu_net
    new, scales = relu_alpha_scale(model, ["0", "2", "4"], [alpha, 1.0, 1.0 / alpha])
    H = dense_hessian(model, xs, ys)
    s = scale_vector(ParamLayout.from_model(model), scales)
    predicted = H / s[:, None] / s[None, :]
    lam_pred = float(torch.linalg.eigvalsh(predicted)[-1])
    lam_new = top_eigenpairs(HessianOperator(_objective(new, xs, ys)), 1, tol=1e-10).eigenvalues[0]
    lam_old = float(torch.linalg.eigvalsh(H)[-1])
    assert lam_new == pytest.approx(lam_pred, rel=1e-8)
    # and it really moves: by a large factor in either direction
    assert lam_new > 5 * lam_old


def test_adaptive_sharpness_invariant_plain_sharpness_not(relu_net):
    model, data, xs, ys = relu_net
    new, _ = relu_alpha_scale(model, ["0", "2", "4"], [8.0, 1.0, 0.125])
    o1, o2 = _objective(model, xs, ys), _objective(new, xs, ys)
    for norm in ("l2", "linf"):
        w1 = adaptive_worst_case(
            o1.loss_and_grad, o1.x0, 0.05, norm=norm, generator=torch.Generator().manual_seed(0)
        )
        w2 = adaptive_worst_case(
            o2.loss_and_grad, o2.x0, 0.05, norm=norm, generator=torch.Generator().manual_seed(0)
        )
        assert w1.sharpness > 0
        assert w2.sharpness == pytest.approx(w1.sharpness, rel=1e-6)
        a1 = adaptive_average_case(
            o1.loss, o1.x0, 0.05, norm=norm, generator=torch.Generator().manual_seed(0)
        )
        a2 = adaptive_average_case(
            o2.loss, o2.x0, 0.05, norm=norm, generator=torch.Generator().manual_seed(0)
        )
        assert a2.sharpness == pytest.approx(a1.sharpness, rel=1e-6)
    # Keskar's full-space ε-sharpness is not invariant
    k1 = keskar_sharpness(o1.loss_and_grad, o1.x0, 1e-3).sharpness
    k2 = keskar_sharpness(o2.loss_and_grad, o2.x0, 1e-3).sharpness
    assert abs(k2 - k1) > 0.1 * k1


@pytest.mark.parametrize("mode", ["running", "batch"])
def test_bn_alpha_scale_preserves_function_and_adaptive_sharpness(mode):
    data = make_data(n=48, d_in=6)
    model = make_mlp(d_in=6, hidden=(10,), bn=True, act=nn.ReLU, seed=4)
    new, scales = bn_alpha_scale(model, "0", "1", 25.0)
    xs, ys = split_batches(data.train_x, data.train_y, 16)
    o1, o2 = _objective(model, xs, ys, mode), _objective(new, xs, ys, mode)
    l1, acc1 = o1.loss_and_accuracy()
    l2, acc2 = o2.loss_and_accuracy()
    assert l2 == pytest.approx(l1, rel=1e-6) and acc1 == acc2
    w1 = adaptive_worst_case(o1.loss_and_grad, o1.x0, 0.05, generator=torch.Generator().manual_seed(1))
    w2 = adaptive_worst_case(o2.loss_and_grad, o2.x0, 0.05, generator=torch.Generator().manual_seed(1))
    assert w2.sharpness == pytest.approx(w1.sharpness, rel=1e-6)
    # the scaled layer's Hessian block shrinks by 1/α² (scale invariance of BN)
    s = scale_vector(o1.layout, scales)
    H1 = dense_hessian(model, xs, ys, bn_mode=mode)
    H2 = HessianOperator(o2).dense()
    torch.testing.assert_close(H2, H1 / s[:, None] / s[None, :], rtol=1e-7, atol=1e-10)


def test_adaptive_worst_case_quadratic_oracle():
    """f = ½δᵀHδ at its minimum: the adaptive L2 maximum is ½ρ²λ_max(DHD), D = diag(|w|)."""
    g = torch.Generator().manual_seed(0)
    n = 12
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    H = (
        Q
        @ torch.diag(
            torch.cat([torch.tensor([6.0, 2.0]), torch.rand(n - 2, generator=g, dtype=torch.float64)])
        )
        @ Q.T
    )
    w = torch.randn(n, generator=g, dtype=torch.float64)

    def fg(x):
        d = x - w
        return float(0.5 * d @ H @ d), H @ d

    D = torch.diag(w.abs())
    rho = 0.3
    exact = 0.5 * rho**2 * float(torch.linalg.eigvalsh(D @ H @ D)[-1])
    res = adaptive_worst_case(fg, w, rho, steps=20, generator=g)
    assert exact * (1 + 1e-9) >= res.sharpness >= 0.99 * exact
    # average case: E[½ (D u)ᵀ H (D u)] = ½ ρ² tr(DHD) for u ~ N(0, ρ² I)
    avg = adaptive_average_case(lambda x: fg(x)[0], w, rho, samples=400, generator=g)
    expected = 0.5 * rho**2 * float(torch.trace(D @ H @ D))
    assert abs(avg.sharpness - expected) <= 4 * avg.stderr


def test_adaptive_linf_vertex_oracle():
    """The L∞ maximum of a convex quadratic is at a vertex: enumerate them."""
    g = torch.Generator().manual_seed(1)
    n = 8
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    H = M @ M.T
    w = torch.randn(n, generator=g, dtype=torch.float64)

    def fg(x):
        d = x - w
        return float(0.5 * d @ H @ d), H @ d

    rho = 0.1
    best = max(
        fg(w + rho * w.abs() * torch.tensor(s, dtype=torch.float64))[0]
        for s in itertools.product((-1.0, 1.0), repeat=n)
    )
    res = adaptive_worst_case(fg, w, rho, norm="linf", steps=30, generator=g)
    assert best * (1 + 1e-9) >= res.sharpness >= 0.99 * best


def test_random_draws_identical_across_reparam(relu_net):
    model, data, xs, ys = relu_net
    o1 = _objective(model, xs, ys)
    res = [
        adaptive_average_case(o1.loss, o1.x0, 0.1, generator=torch.Generator().manual_seed(s)).sharpness
        for s in (0, 0, 1)
    ]
    assert res[0] == res[1] != res[2]
    assert np.isfinite(res).all()
