"""Top eigenvalues against eigvalsh of dense Hessians."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import dense_hessian, make_data, make_mlp, split_batches

from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.lanczos import MatrixOperator, eigsh_eigenpairs, top_eigenpairs
from lbgap_curvature.loss import EvalBatches, ModelObjective


@pytest.fixture(scope="module")
def problem():
    torch.set_num_threads(1)
    data = make_data(n=60, d_in=8)
    model = make_mlp(d_in=8, hidden=(12, 10), bn=True)
    xs, ys = split_batches(data.train_x, data.train_y, 16)
    H = dense_hessian(model, xs, ys)
    return model, xs, ys, H


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b)))


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("which", ["LA", "LM"])
def test_top_eigenvalues_fp64(problem, k, which):
    model, xs, ys, H = problem
    ev = torch.linalg.eigvalsh(H).numpy()
    ref = ev[np.argsort(-ev if which == "LA" else -np.abs(ev))][:k]
    op = HessianOperator(ModelObjective(model, EvalBatches(xs, ys), F.cross_entropy))
    res = top_eigenpairs(
        op, k, which=which, tol=1e-10, generator=torch.Generator().manual_seed(0), verify=True
    )
    assert res.all_converged
    assert _rel(res.eigenvalues, ref) <= 1e-8
    # the reported residuals are confirmed by explicit products and meet the tolerance
    assert np.all(res.residuals <= 1e-10 * np.abs(res.eigenvalues) * 1.1)
    assert res.n_matvec == op.n_matvec


def test_top_eigenvalues_fp32(problem):
    model, xs, ys, H = problem
    ref = np.sort(torch.linalg.eigvalsh(H).numpy())[::-1][:5]
    m32 = make_mlp(d_in=8, hidden=(12, 10), bn=True)  # same seed → same weights, then cast
    m32.load_state_dict(model.state_dict())
    m32 = m32.float()
    op = HessianOperator(ModelObjective(m32, EvalBatches([x.float() for x in xs], ys), F.cross_entropy))
    res = top_eigenpairs(op, 5, tol=1e-4, generator=torch.Generator().manual_seed(1))
    assert _rel(res.eigenvalues, ref) <= 1e-4


def test_estimated_residual_matches_explicit_residual(problem):
    model, xs, ys, H = problem
    op = MatrixOperator(H)
    est = top_eigenpairs(op, 3, tol=1e-6, generator=torch.Generator().manual_seed(5))
    ver = top_eigenpairs(op, 3, tol=1e-6, generator=torch.Generator().manual_seed(5), verify=True)
    np.testing.assert_allclose(est.eigenvalues, ver.eigenvalues, rtol=0, atol=0)
    assert np.all(ver.residuals <= 1.1 * est.residuals + 1e-13 * np.abs(est.eigenvalues))
    assert ver.n_matvec == est.n_matvec + 3


@pytest.mark.parametrize("max_basis", [7, 12])
def test_thick_restart_converges(max_basis):
    g = torch.Generator().manual_seed(0)
    n = 200
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    ev = torch.cat([torch.tensor([10.0, 9.7, 9.5, 9.0, 8.8]), torch.linspace(-3, 6, n - 5)]).double()
    A = Q @ torch.diag(ev) @ Q.T
    res = top_eigenpairs(MatrixOperator(A), 5, tol=1e-10, max_basis=max_basis, max_matvec=2000, generator=g)
    assert res.restarts > 0
    assert res.all_converged
    np.testing.assert_allclose(res.eigenvalues, ev[:5].numpy(), rtol=1e-9)


def test_clustered_eigenvalues_subspace():
    """A near-degenerate pair: eigenvalues right and the Ritz subspace within 1e-3 rad."""
    g = torch.Generator().manual_seed(2)
    n = 120
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    ev = torch.cat([torch.tensor([5.0, 5.0 - 1e-7]), torch.linspace(-1, 3, n - 2)]).double()
    A = Q @ torch.diag(ev) @ Q.T
    res = top_eigenpairs(MatrixOperator(A), 2, tol=1e-9, generator=g, return_vectors=True)
    np.testing.assert_allclose(res.eigenvalues, ev[:2].numpy(), rtol=1e-9)
    angles = torch.linalg.svdvals(Q[:, :2].T @ res.eigenvectors).clamp(max=1).acos()
    assert float(angles.max()) < 1e-3


def test_unconverged_is_flagged_and_warned(caplog):
    g = torch.Generator().manual_seed(0)
    n = 300
    ev = torch.linspace(0, 1, n, dtype=torch.float64)  # no gap at all
    A = torch.diag(ev)
    with caplog.at_level("WARNING"):
        res = top_eigenpairs(MatrixOperator(A), 3, tol=1e-12, max_matvec=15, generator=g)
    assert not res.all_converged
    assert res.n_matvec == 15
    assert "unconverged" in caplog.text


def test_eigsh_solver_agrees(problem):
    model, xs, ys, H = problem
    ref = np.sort(torch.linalg.eigvalsh(H).numpy())[::-1][:3]
    res = eigsh_eigenpairs(MatrixOperator(H), 3, tol=1e-12)
    assert _rel(res.eigenvalues, ref) <= 1e-8
    assert res.all_converged


def test_exhausting_a_small_operator_is_exact():
    A = torch.diag(torch.tensor([3.0, -7.0, 1.0, 2.0], dtype=torch.float64))
    res = top_eigenpairs(MatrixOperator(A), 4, tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, [3.0, 2.0, 1.0, -7.0], atol=1e-12)
    res = top_eigenpairs(MatrixOperator(A), 1, which="LM", tol=1e-12)
    np.testing.assert_allclose(res.eigenvalues, [-7.0], atol=1e-12)
