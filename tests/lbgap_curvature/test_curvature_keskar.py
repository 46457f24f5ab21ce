"""Keskar et al.'s Metric 2.1 against analytic box maxima of quadratics."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import make_data, make_mlp, split_batches

from lbgap_curvature.loss import EvalBatches, ModelObjective
from lbgap_curvature.sharpness import (
    as_subspace,
    keskar_box,
    keskar_sharpness,
    negated_objective,
    random_orthonormal_subspace,
)
from lbgap_curvature.state import ModelSnapshot
from lbgap_curvature.subspace import random_subspace


def quadratic(H, c, offset=0.0):
    """f(x) = ½(x − c)ᵀH(x − c) + offset, with its gradient."""

    def fg(x):
        d = x.double() - c
        Hd = H @ d
        return float(0.5 * d @ Hd + offset), Hd.to(x.dtype)

    return fg


def phi(fmax, f0):
    return 100 * (fmax - f0) / (1 + f0)


def test_separable_quadratic_closed_form():
    """Diagonal H: the box maximum is at the vertex δ_i = sign(x_i − c_i)·ε(|x_i| + 1)."""
    g = torch.Generator().manual_seed(0)
    n = 40
    h = torch.rand(n, generator=g, dtype=torch.float64) * 5 + 0.1
    x0 = torch.randn(n, generator=g, dtype=torch.float64)
    c = x0 - 1e-3 * torch.randn(n, generator=g, dtype=torch.float64)
    fg = quadratic(torch.diag(h), c, offset=0.3)
    eps = 1e-3
    b = eps * (x0.abs() + 1)
    d = (x0 - c).abs() + b
    f0 = fg(x0)[0]
    exact = phi(float(0.5 * (h * d * d).sum()) + 0.3, f0)
    res = keskar_sharpness(fg, x0, eps, maxiter=10)
    assert res.sharpness == pytest.approx(exact, rel=1e-6)
    assert res.base_loss == pytest.approx(f0, rel=1e-15)


def _convex_case(seed, spread):
    g = torch.Generator().manual_seed(seed)
    n = 10
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    H = M @ M.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    x0 = torch.randn(n, generator=g, dtype=torch.float64)
    c = x0 - spread * torch.randn(n, generator=g, dtype=torch.float64)
    fg = quadratic(H, c)
    b = 1e-3 * (x0.abs() + 1)
    vertices = [
        x0 + torch.tensor(s, dtype=torch.float64) * b for s in itertools.product((-1.0, 1.0), repeat=n)
    ]
    best = max(fg(v)[0] for v in vertices)
    return fg, x0, b, best


@pytest.mark.parametrize("seed", range(4))
def test_convex_quadratic_vertex_enumeration(seed):
    """Convex f: the box maximum is at one of the 2ⁿ vertices. Away from the
    minimum (gradient larger than curvature × box) L-BFGS-B gets ≥ 99% of it."""
    fg, x0, b, best = _convex_case(seed, spread=2e-2)
    f0 = fg(x0)[0]
    res = keskar_sharpness(fg, x0, 1e-3)
    assert phi(best, f0) * (1 + 1e-9) >= res.sharpness >= 0.99 * phi(best, f0)


@pytest.mark.parametrize("seed", range(4))
def test_convex_quadratic_near_minimum_reaches_a_local_maximum(seed):
    """Near the minimum the search is local: it ends at a KKT point of the box
    problem (every coordinate on the bound its gradient points to), never above
    the enumerated maximum."""
    fg, x0, b, best = _convex_case(seed, spread=2e-3)
    res = keskar_sharpness(fg, x0, 1e-3, maxiter=50)
    y = torch.as_tensor(res.y_best)
    assert res.max_loss <= best * (1 + 1e-12)
    _, grad = fg(x0 + y)
    at_bound = (y.abs() - b).abs() <= 1e-12 * b
    assert bool(torch.all(at_bound | (grad.abs() <= 1e-8)))
    assert bool(torch.all(torch.sign(grad[at_bound]) == torch.sign(y[at_bound])))


def test_random_subspace_bounds_and_pinv():
    g = torch.Generator().manual_seed(0)
    A = random_orthonormal_subspace(300, 20, generator=g)
    torch.testing.assert_close(A.T @ A, torch.eye(20, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.pinv(A), A.T, atol=1e-8, rtol=0)
    x0 = torch.randn(300, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(
        keskar_box(x0, 1e-3, A), 1e-3 * ((torch.linalg.pinv(A) @ x0).abs() + 1).numpy(), rtol=1e-10
    )


def test_random_subspace_quadratic_closed_form():
    """f = ½ xᵀ diag(h) x restricted to x0 + A y with AᵀHA diagonal: separable in y."""
    g = torch.Generator().manual_seed(1)
    n, p = 60, 5
    A = random_orthonormal_subspace(n, p, generator=g)
    lam = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    H = A @ torch.diag(lam) @ A.T  # AᵀHA = diag(lam)
    c = torch.zeros(n, dtype=torch.float64)
    x0 = A @ torch.tensor([0.5, -0.2, 0.1, 0.3, -0.4], dtype=torch.float64)
    fg = quadratic(H, c)
    eps = 1e-2
    z0 = A.T @ x0
    b = eps * (z0.abs() + 1)
    exact = float(0.5 * (lam * (z0.abs() + b) ** 2).sum())
    res = keskar_sharpness(fg, x0, eps, A=A)
    assert res.max_loss == pytest.approx(exact, rel=1e-6)


def test_objective_signs_match_finite_differences():
    """L-BFGS-B gets (−f, −Aᵀ∇f): the returned gradient is the derivative of the returned value."""
    data = make_data(n=30)
    model = make_mlp(hidden=(7,))
    obj = ModelObjective(model, EvalBatches(*split_batches(data.train_x, data.train_y, 8)), F.cross_entropy)
    A = random_orthonormal_subspace(obj.size, 4, generator=torch.Generator().manual_seed(0))
    for basis in (None, A):
        fun = negated_objective(obj.loss_and_grad, obj.x0, basis)
        y = np.random.default_rng(0).normal(size=obj.size if basis is None else 4) * 1e-2
        d = np.random.default_rng(1).normal(size=y.shape)
        val, grad = fun(y)
        h = 1e-6
        fd = (fun(y + h * d)[0] - fun(y - h * d)[0]) / (2 * h)
        assert fd == pytest.approx(grad @ d, rel=1e-6)
        assert val == pytest.approx(
            -obj.loss(obj.x0 + torch.as_tensor(y if basis is None else (basis @ torch.as_tensor(y)).numpy())),
            rel=1e-12,
        )


def test_model_sharpness_positive_and_model_untouched():
    data = make_data(n=40)
    model = make_mlp(hidden=(9,), bn=True)
    model.train()
    snap = ModelSnapshot.take(model)
    rng = torch.random.get_rng_state()
    obj = ModelObjective(model, EvalBatches(*split_batches(data.train_x, data.train_y, 16)), F.cross_entropy)
    res = keskar_sharpness(obj.loss_and_grad, obj.x0, 1e-3)
    assert res.sharpness > 0
    assert res.max_loss > res.base_loss
    assert res.nit <= 10
    assert snap.differences(model) == []
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_zero_gradient_start_restarts_from_a_random_point():
    """At an exact critical point the centred search cannot move (the old false 0, kept
    with restart_on_stall=False); the stall is detected and a random start reaches the maximum."""
    n = 8
    H = torch.diag(torch.arange(1.0, n + 1, dtype=torch.float64))
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fg = quadratic(H, x0)  # minimum exactly at x0
    stuck = keskar_sharpness(fg, x0, 1e-2, restart_on_stall=False)
    centre = keskar_sharpness(fg, x0, 1e-2)
    rand = keskar_sharpness(fg, x0, 1e-2, start="random", generator=torch.Generator().manual_seed(0))
    b = 1e-2 * (x0.abs() + 1)
    exact = phi(float(0.5 * (torch.diag(H) * b * b).sum()), 0.0)
    assert stuck.sharpness == 0.0 and stuck.stalled
    assert centre.stalled and centre.sharpness == pytest.approx(exact, rel=1e-6)
    assert not rand.stalled and rand.sharpness == pytest.approx(exact, rel=1e-6)


# ------------------------------------------------------------ random-subspace matrices

MATRICES = ("orthonormal", "gaussian", "smoothout")


@pytest.mark.parametrize("matrix", MATRICES)
def test_subspace_products_and_pinv_match_numpy(matrix):
    """A y, Aᵀg and A⁺x from the factored form equal the dense products with numpy's pinv."""
    g = torch.Generator().manual_seed(3)
    n, p = 200, 10
    S = random_subspace(n, p, matrix=matrix, generator=g)
    A = S.matrix().numpy()
    pinv = np.linalg.pinv(A)
    np.testing.assert_allclose(S.pinv_matrix().numpy(), pinv, rtol=0, atol=1e-8)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.randn(p, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(S.pinv_apply(x).numpy(), pinv @ x.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(S.apply(y).numpy(), A @ y.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.adjoint(x).numpy(), A.T @ x.numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(keskar_box(x, 1e-3, S), 1e-3 * (np.abs(pinv @ x.numpy()) + 1), rtol=1e-8)


def test_subspace_distributions_are_the_stated_ones():
    n, p = 400, 6
    # gaussian: A is the raw N(0, 1) draw itself (no normalisation)
    S = random_subspace(n, p, matrix="gaussian", generator=torch.Generator().manual_seed(5))
    raw = torch.randn(n, p, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(S.matrix(), raw, rtol=0, atol=1e-12)
    # smoothout: A⁺ has U[−1, 1] entries with unit-norm rows, and A = pinv(A⁺)
    S = random_subspace(n, p, matrix="smoothout", generator=torch.Generator().manual_seed(5))
    u = torch.rand(n, p, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    expected = (u / u.norm(dim=0)).T
    torch.testing.assert_close(S.pinv_matrix(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(S.matrix().numpy(), np.linalg.pinv(expected.numpy()), rtol=0, atol=1e-8)
    # orthonormal: QR of the same Gaussian draw: the same span as 'gaussian'
    S = random_subspace(n, p, matrix="orthonormal", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(
        S.matrix().T @ S.matrix(), torch.eye(p, dtype=torch.float64), rtol=0, atol=1e-12
    )
    proj = S.matrix() @ S.matrix().T
    torch.testing.assert_close(proj @ raw, raw, rtol=0, atol=1e-10)


def test_dense_matrix_is_factored_exactly():
    """A tensor passed as A (any full column rank, not only orthonormal) gets the exact A⁺."""
    g = torch.Generator().manual_seed(2)
    A = torch.rand(50, 4, generator=g, dtype=torch.float64) + 0.5  # all-positive, far from orthonormal
    S = as_subspace(A)
    torch.testing.assert_close(S.matrix(), A, rtol=0, atol=1e-12)
    np.testing.assert_allclose(S.pinv_matrix().numpy(), np.linalg.pinv(A.numpy()), rtol=0, atol=1e-8)


def test_subspace_draws_are_seeded():
    for matrix in MATRICES:
        a = random_subspace(100, 5, matrix=matrix, generator=torch.Generator().manual_seed(1))
        b = random_subspace(100, 5, matrix=matrix, generator=torch.Generator().manual_seed(1))
        c = random_subspace(100, 5, matrix=matrix, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a.matrix(), b.matrix()) and torch.equal(a.pinv_matrix(), b.pinv_matrix())
        assert not torch.allclose(a.matrix(), c.matrix())


#: box size per distribution: the y-box is ε(|A⁺x| + 1) wide, and a Gaussian A's columns have norm ≈ √n
SUBSPACE_EPS = {"orthonormal": 1e-2, "gaussian": 2e-3, "smoothout": 1e-2}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("matrix", MATRICES)
def test_subspace_convex_quadratic_vertex_enumeration(matrix, seed):
    """f convex in x, hence in y: the maximum over the y-box is at one of its 2^p vertices
    (box from numpy's pinv). Away from the minimum L-BFGS-B reaches ≥ 99% of it."""
    g = torch.Generator().manual_seed(10 + seed)
    n, p, eps = 30, 8, SUBSPACE_EPS[matrix]
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    H = M @ M.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    x0 = torch.randn(n, generator=g, dtype=torch.float64)
    c = x0 - 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    fg = quadratic(H, c)
    S = random_subspace(n, p, matrix=matrix, generator=g)
    A = S.matrix()
    b = eps * (torch.as_tensor(np.linalg.pinv(A.numpy())) @ x0).abs() + eps
    best = max(
        fg(x0 + A @ (torch.tensor(s, dtype=torch.float64) * b))[0]
        for s in itertools.product((-1.0, 1.0), repeat=p)
    )
    f0 = fg(x0)[0]
    res = keskar_sharpness(fg, x0, eps, A=S)
    assert phi(best, f0) * (1 + 1e-9) >= res.sharpness >= 0.99 * phi(best, f0)
    assert np.all(np.abs(res.y_best) <= b.numpy() * (1 + 1e-12))
