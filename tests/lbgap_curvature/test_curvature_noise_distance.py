"""Gradient noise scale against per-example gradients; distances against NumPy."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lbgap_curvature.distance import parameter_distance, parameter_norm, selected_names
from lbgap_curvature.noise_scale import simple_noise_scale


def _linear_regression(n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    return X, y, w


def _grad(X, y, w):
    # gradient of mean((Xw − y)²)
    return 2 * X.T @ (X @ w - y) / len(y)


def _exact(X, y, w):
    per = torch.stack([_grad(X[i : i + 1], y[i : i + 1], w) for i in range(len(y))])
    G = per.mean(0)
    tr = float(((per - G) ** 2).sum(1).mean())
    return tr, float(G @ G)


def test_batch_size_one_is_exact():
    X, y, w = _linear_regression()
    tr, g2 = _exact(X, y, w)
    res = simple_noise_scale(((_grad(X[i : i + 1], y[i : i + 1], w), 1) for i in range(len(y))), len(y))
    assert res.trace_covariance == pytest.approx(tr, rel=1e-12)
    assert res.grad_sq_norm == pytest.approx(g2, rel=1e-12)
    assert res.noise_scale == pytest.approx(tr / g2, rel=1e-12)


def test_larger_batches_unbiased():
    X, y, w = _linear_regression(n=43)
    tr, _ = _exact(X, y, w)
    b, n = 8, 43  # 5 full batches and a remainder of 3
    ests = []
    for seed in range(400):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        batches = [
            (_grad(X[perm[i : i + b]], y[perm[i : i + b]], w), len(perm[i : i + b])) for i in range(0, n, b)
        ]
        ests.append(simple_noise_scale(batches, n).trace_covariance)
    ests = np.array(ests)
    assert abs(ests.mean() - tr) <= 3 * ests.std(ddof=1) / np.sqrt(len(ests))


def test_rejects_bad_batches():
    g = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError):
        simple_noise_scale([(g, 4), (g, 5)], 9)
    with pytest.raises(ValueError):
        simple_noise_scale([(g, 4), (g, 4)], 10)


def test_distances_match_numpy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    other = {k: v + torch.randn_like(v) for k, v in model.state_dict().items() if v.is_floating_point()}
    params = dict(model.named_parameters())
    for include, names in (("parameters", list(params)), ("weights", ["0.weight", "2.weight"])):
        assert selected_names(model, include) == names
        ref = np.sqrt(
            sum(
                (
                    (params[n].detach().numpy().astype(np.float64) - other[n].numpy().astype(np.float64)) ** 2
                ).sum()
                for n in names
            )
        )
        assert parameter_distance(params, other, names) == pytest.approx(ref, rel=1e-12)
        norm = np.sqrt(sum((other[n].numpy().astype(np.float64) ** 2).sum() for n in names))
        assert parameter_norm(other, names) == pytest.approx(norm, rel=1e-12)
    assert F is not None
