"""Hutchinson trace (unbiased, honest error bars) and SLQ (Gauss quadrature exactness)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import dense_hessian, make_data, make_mlp, split_batches

from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.lanczos import MatrixOperator, lanczos_tridiagonal
from lbgap_curvature.loss import EvalBatches, ModelObjective
from lbgap_curvature.slq import gauss_quadrature, slq_spectrum, smoothed_density
from lbgap_curvature.trace import hutchinson_trace


@pytest.fixture(scope="module")
def hessian():
    torch.set_num_threads(1)
    data = make_data(n=40)
    model = make_mlp(hidden=(8,))
    xs, ys = split_batches(data.train_x, data.train_y, 16)
    return model, xs, ys, dense_hessian(model, xs, ys)


def test_hutchinson_unbiased_within_error_bar(hessian):
    _, _, _, H = hessian
    true = float(torch.trace(H))
    ests, ses = [], []
    for seed in range(200):
        r = hutchinson_trace(MatrixOperator(H), 20, generator=torch.Generator().manual_seed(seed))
        ests.append(r.estimate)
        ses.append(r.stderr)
    ests, ses = np.array(ests), np.array(ses)
    # mean of 200 independent estimates within 3 standard errors of the dense trace
    assert abs(ests.mean() - true) <= 3 * ests.std(ddof=1) / np.sqrt(len(ests))
    # the reported 95% intervals cover the truth at about the nominal rate
    coverage = np.mean(np.abs(ests - true) <= 1.96 * ses)
    assert 0.85 <= coverage <= 0.99


def test_hutchinson_on_model_hessian(hessian):
    model, xs, ys, H = hessian
    op = HessianOperator(ModelObjective(model, EvalBatches(xs, ys), F.cross_entropy))
    r = hutchinson_trace(op, 200, generator=torch.Generator().manual_seed(0))
    assert abs(r.estimate - float(torch.trace(H))) <= 4 * r.stderr
    assert r.n_matvec == 200 == op.n_matvec


def test_negative_trace_and_stopping_rule():
    g = torch.Generator().manual_seed(0)
    n = 50
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.linspace(-3, 1, n, dtype=torch.float64)) @ Q.T
    r = hutchinson_trace(MatrixOperator(A), 1000, generator=g, target_rel_stderr=0.05, min_probes=10)
    assert 10 <= r.n_matvec < 1000
    assert r.stderr <= 0.05 * abs(r.estimate)
    assert abs(r.estimate - float(torch.trace(A))) <= 4 * r.stderr
    assert r.estimate < 0


def test_gauss_quadrature_reproduces_moments(hessian):
    _, _, _, H = hessian
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    v = v / torch.linalg.vector_norm(v)
    a, b = lanczos_tridiagonal(lambda u: H @ u, v, 12)
    nodes, weights = gauss_quadrature(a, b)
    assert abs(weights.sum() - 1) <= 1e-12
    for j in (1, 2, 3):
        exact = float(v @ torch.linalg.matrix_power(H, j) @ v)
        assert abs((weights * nodes**j).sum() - exact) <= 1e-10 * abs(exact)


def test_slq_density_integrates_to_one_and_matches_spectrum(hessian):
    model, xs, ys, H = hessian
    op = HessianOperator(ModelObjective(model, EvalBatches(xs, ys), F.cross_entropy))
    res = slq_spectrum(op, num_probes=4, steps=op.size, generator=torch.Generator().manual_seed(0))
    assert res.n_matvec <= 4 * op.size
    np.testing.assert_allclose(np.nansum(res.weights, axis=1), 1.0, atol=1e-12)
    ev = torch.linalg.eigvalsh(H).numpy()
    lo, hi = res.support
    # with a full Krylov space the nodes are the eigenvalues themselves
    assert lo == pytest.approx(ev.min(), abs=1e-8) and hi == pytest.approx(ev.max(), rel=1e-8)
    grid = np.linspace(lo - 1, hi + 1, 4001)
    dens = smoothed_density(res, grid, 0.05)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-3)
    # mean of the SLQ measure estimates tr(H)/n
    mean = np.mean([np.nansum(w * t) for w, t in zip(res.weights, res.nodes, strict=True)])
    assert mean == pytest.approx(ev.mean(), abs=3 * ev.std() / np.sqrt(4 * op.size) * 3)
