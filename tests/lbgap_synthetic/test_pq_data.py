"""The P/Q distribution: margins, half-Gaussian law, Q rays and labels, mixture fractions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy import stats
from scipy.optimize import linprog

from lbgap_synthetic.pq_data import BOTH, P_ONLY, Q_ONLY, draw_structure, sample_pq
from lbgap_synthetic.pq_plugin import PQSyntheticConfig, build_pq_synthetic, pq_structure_and_splits

D = 50


def _draw(n=4000, d=D, gamma0=0.3, p0=0.2, q0=0.2, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed)
    st = draw_structure(d, gamma0=gamma0, q_norm=1.0, zeta_norm=0.1, zeta_orthogonal=True, generator=gen)
    return st, sample_pq(n, st, gen, p0=p0, q0=q0, dtype=torch.float64, **kw)


def test_structure_norms_and_orthogonality():
    st, _ = _draw(n=1)
    assert st.w_star.norm().item() == pytest.approx(1.0, abs=1e-12)
    assert st.z.norm().item() == pytest.approx(1.0, abs=1e-12)
    assert st.zeta.norm().item() == pytest.approx(0.1, abs=1e-12)
    assert abs((st.z @ st.zeta).item()) < 1e-12


def test_p_part_has_margin_gamma0_along_true_direction():
    st, s = _draw(gamma0=0.3)
    has_p = s.component != Q_ONLY
    x1 = s.x[has_p, :D]
    margins = s.y_pm[has_p].double() * (x1 @ st.w_star)
    assert margins.min().item() >= 0.3 - 1e-12
    # the half Gaussian reaches down to the margin: the closest points are within a small
    # quantile of |N(0, 1/d)| of it
    assert margins.min().item() < 0.3 + 0.05 / math.sqrt(D)


def test_p_part_is_half_gaussian_with_the_label_sign():
    st, s = _draw(gamma0=0.3)
    has_p = s.component != Q_ONLY
    y = s.y_pm[has_p].double()
    g = s.x[has_p, :D] - y[:, None] * 0.3 * st.w_star
    along = g @ st.w_star
    assert torch.all(y * along >= 0)  # the sign of the half space is the label's
    # |<w*, g>| * sqrt(d) is half-normal(0, 1)
    ks = stats.kstest((along.abs() * math.sqrt(D)).numpy(), stats.halfnorm.cdf)
    assert ks.pvalue > 1e-3
    # the orthogonal part is N(0, I/d) restricted to d-1 dimensions: a coordinate in a fixed
    # orthogonal direction is N(0, 1/d)
    v = torch.randn(D, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    v = v - (v @ st.w_star) * st.w_star
    v = v / v.norm()
    ks2 = stats.kstest(((g @ v) * math.sqrt(D)).numpy(), stats.norm.cdf)
    assert ks2.pvalue > 1e-3


def test_q_part_lies_on_the_three_rays_with_the_middle_one_positive():
    st, s = _draw()
    has_q = s.component != P_ONLY
    x2 = s.x[has_q, D:]
    y = s.y[has_q]
    # zeta is orthogonal to z, so alpha = <x2, z>/|z|^2 and x2/alpha - z in {0, +zeta, -zeta}
    alpha = (x2 @ st.z) / (st.z @ st.z)
    assert torch.allclose(alpha, s.alpha[has_q], atol=1e-12)
    assert alpha.min() >= 0 and alpha.max() <= 1
    offset = x2 / alpha[:, None] - st.z
    b = (offset @ st.zeta) / (st.zeta @ st.zeta)
    assert torch.allclose(offset, b[:, None] * st.zeta, atol=1e-9)
    assert set(torch.round(b).long().tolist()) == {-1, 0, 1}
    assert torch.allclose(b, torch.round(b), atol=1e-9)
    # labelling rule: the middle ray z is class 1 (y = +1), the outer rays z ± zeta class 0
    assert torch.all((torch.round(b) == 0) == (y == 1))
    # both outer rays are used by the negative class, about equally
    neg = torch.round(b[y == 0])
    assert abs((neg > 0).double().mean().item() - 0.5) < 4 * math.sqrt(0.25 / len(neg))
    # alpha ~ U[0, 1]
    assert stats.kstest(alpha.numpy(), stats.uniform.cdf).pvalue > 1e-3


def test_missing_parts_are_zero():
    _, s = _draw()
    p_only, q_only, both = s.mask(P_ONLY), s.mask(Q_ONLY), s.mask(BOTH)
    assert torch.all(s.x[p_only, D:] == 0) and torch.all(s.x[p_only, :D].norm(dim=1) > 0)
    assert torch.all(s.x[q_only, :D] == 0)
    assert torch.all(s.x[both, :D].norm(dim=1) > 0)
    assert torch.all(torch.isnan(s.alpha[p_only])) and torch.all(s.b[p_only] == 0)


@pytest.mark.parametrize(("p0", "q0"), [(0.2, 0.2), (0.1, 0.5)])
def test_component_and_label_fractions_within_binomial_tolerance(p0, q0):
    n = 20000
    _, s = _draw(n=n, p0=p0, q0=q0)
    for code, p in ((P_ONLY, p0), (Q_ONLY, q0), (BOTH, 1 - p0 - q0)):
        frac = s.mask(code).double().mean().item()
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert abs(s.y.double().mean().item() - 0.5) < 4 * math.sqrt(0.25 / n)


def _separable(x: np.ndarray, y_pm: np.ndarray) -> bool:
    """Is there (w, b) with y (w.x + b) >= 1 for every point? (LP feasibility)"""
    n, k = x.shape
    a_ub = -y_pm[:, None] * np.hstack([x, np.ones((n, 1))])
    res = linprog(np.zeros(k + 1), A_ub=a_ub, b_ub=-np.ones(n), bounds=[(None, None)] * (k + 1), method="highs")
    assert res.status in (0, 2), res.message
    return res.status == 0


def test_q_only_is_not_linearly_separable_but_p_only_is():
    st, s = _draw(n=1200)
    q = s.mask(Q_ONLY)
    xq, yq = s.x[q, D:].numpy(), s.y_pm[q].numpy().astype(float)
    assert not _separable(xq, yq)
    # a ReLU pair |<zeta, x2>| (what a two-layer network can build) makes it separable; this would
    # fail if the middle ray were not the odd class out
    feat = np.hstack([xq @ st.z.numpy()[:, None], np.abs(xq @ st.zeta.numpy())[:, None]])
    assert _separable(feat, yq)
    p = s.mask(P_ONLY)
    assert _separable(s.x[p, :D].numpy(), s.y_pm[p].numpy().astype(float))


def test_config_validation():
    with pytest.raises(ValidationError):
        PQSyntheticConfig(p0=0.6, q0=0.5)
    with pytest.raises(ValidationError):
        PQSyntheticConfig(alpha_low=1.0, alpha_high=0.5)
    with pytest.raises(ValidationError):
        PQSyntheticConfig(unknown=1)
    assert PQSyntheticConfig(d=400, gamma0=2.0).gamma0_absolute == pytest.approx(0.1)
    assert PQSyntheticConfig(gamma0=0.3, margin_units="absolute").gamma0_absolute == 0.3


def test_plugin_build_groups_labels_and_seeding():
    cfg = PQSyntheticConfig(d=20, n_train=300, n_test=301)
    data = build_pq_synthetic(cfg, seed=3, device=torch.device("cpu"))
    assert data.train_x.shape == (300, 40) and data.train_x.dtype == torch.float32
    assert data.num_classes == 2 and set(data.train_y.unique().tolist()) <= {0, 1}
    assert data.task == "classification"
    for groups, n in ((data.test_groups, 301), (data.train_groups, 300)):
        assert set(groups) == {"p_only", "q_only", "both"}
        total = sum(m.long() for m in groups.values())
        assert torch.all(total == 1)  # disjoint and covering
        assert sum(int(m.sum()) for m in groups.values()) == n
    counts = sorted(int(m.sum()) for m in data.test_groups.values())
    assert counts == [100, 100, 101]  # balanced test set
    # P-only rows have zero Q-part, per the groups
    assert torch.all(data.test_x[data.test_groups["p_only"], 20:] == 0)
    assert torch.all(data.test_x[data.test_groups["q_only"], :20] == 0)
    # the trial seed drives the data unless data_seed is set
    again = build_pq_synthetic(cfg, seed=3, device=torch.device("cpu"))
    other = build_pq_synthetic(cfg, seed=4, device=torch.device("cpu"))
    assert torch.equal(again.train_x, data.train_x) and not torch.equal(other.train_x, data.train_x)
    fixed = cfg.model_copy(update={"data_seed": 11})
    a = build_pq_synthetic(fixed, seed=3, device=torch.device("cpu"))
    b = build_pq_synthetic(fixed, seed=4, device=torch.device("cpu"))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)


def test_mixture_test_sampling_uses_the_mixture():
    cfg = PQSyntheticConfig(d=10, n_train=10, n_test=20000, test_sampling="mixture", p0=0.1, q0=0.3)
    _, _, test = pq_structure_and_splits(cfg, seed=0)
    assert abs(test.mask(Q_ONLY).double().mean().item() - 0.3) < 4 * math.sqrt(0.21 / 20000)
