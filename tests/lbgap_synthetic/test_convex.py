"""The convex example (2020 report §4): the 0.75ε vs 1.5ε claim, GD closed forms, plugins, plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from lbgap.data import DataInfo
from lbgap_synthetic.convex import (
    closed_form_errors,
    empirical_loss,
    gradient_descent,
    level_set_population_range,
    paper_design,
    plot_convex_trajectories,
    population_loss_basis,
    run_convex_example,
)
from lbgap_synthetic.convex_plugin import (
    ConvexRegressionConfig,
    LinearRegressionConfig,
    build_convex_regression,
    build_linear_regression,
)

BETA = (1.0, -2.0)


def test_paper_design_gives_the_reports_losses():
    X, y = paper_design(BETA)
    rng = np.random.default_rng(0)
    for beta in rng.normal(size=(20, 2)):
        e = beta - np.array(BETA)
        assert empirical_loss(beta, X, y) == pytest.approx(2 / 3 * e[0] ** 2 + 1 / 3 * e[1] ** 2, rel=1e-12)
        assert population_loss_basis(beta, BETA) == pytest.approx(0.5 * e[0] ** 2 + 0.5 * e[1] ** 2, rel=1e-12)


def test_level_set_extremes_are_075_and_15_eps():
    eps = 0.01
    X, y = paper_design(BETA)
    b = np.array(BETA)
    # residual all in beta2 (first term 0, second eps) -> 1.5 eps; all in beta1 -> 0.75 eps
    in_b2 = b + np.array([0.0, math.sqrt(3 * eps)])
    in_b1 = b + np.array([math.sqrt(1.5 * eps), 0.0])
    assert empirical_loss(in_b2, X, y) == pytest.approx(eps, rel=1e-12)
    assert empirical_loss(in_b1, X, y) == pytest.approx(eps, rel=1e-12)
    assert population_loss_basis(in_b2, BETA) == pytest.approx(1.5 * eps, rel=1e-12)
    assert population_loss_basis(in_b1, BETA) == pytest.approx(0.75 * eps, rel=1e-12)
    assert level_set_population_range((2 / 3, 1 / 3), (0.5, 0.5)) == pytest.approx((0.75, 1.5))
    # every point of the level set lies in between
    t = np.linspace(0, 2 * np.pi, 721)
    pts = b + np.stack([np.sqrt(1.5 * eps) * np.cos(t), np.sqrt(3 * eps) * np.sin(t)], axis=1)
    ratios = np.array([population_loss_basis(p, BETA) for p in pts]) / eps
    assert ratios.min() == pytest.approx(0.75, abs=1e-9) and ratios.max() == pytest.approx(1.5, abs=1e-9)


def test_gradient_descent_matches_the_closed_form_product():
    X, y = paper_design(BETA)
    run = gradient_descent(X, y, lr=1.25, lr_after=0.05, switch_loss=0.1, eps=1e-4,
                           test_loss=lambda b: population_loss_basis(b, BETA))
    assert run.converged and run.switch_step is not None
    for t in (0, 1, run.switch_step, run.steps):
        e = closed_form_errors(run.lrs[:t], (2 / 3, 1 / 3), BETA)
        np.testing.assert_allclose(run.betas[t] - np.array(BETA), e, rtol=0, atol=1e-12)
    # stops at the first iterate with train loss <= eps
    assert run.train_loss[-1] <= 1e-4 < run.train_loss[-2]
    assert np.all(run.lrs[: run.switch_step] == 1.25) and np.all(run.lrs[run.switch_step:] == 0.05)
    assert run.train_loss[run.switch_step] <= 0.1 < run.train_loss[run.switch_step - 1]


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_large_then_small_reaches_075_eps_and_small_reaches_15_eps(eps):
    res = run_convex_example(eps=eps, lr_large=1.5, switch_step=10, lr_small=0.05, beta_star=BETA)
    ls, s = res["large_then_small"], res["small"]
    assert ls.converged and s.converged and ls.switch_step == 10
    assert ls.final_train_loss <= eps and s.final_train_loss <= eps
    # at lr 1/a1 the over-sampled coordinate bounces and the other is fit in one step, so the whole
    # residual is in beta1: test = 0.75 train, to rounding
    assert ls.final_test_loss / ls.final_train_loss == pytest.approx(0.75, abs=1e-9)
    np.testing.assert_allclose(ls.betas[1:11, 1], BETA[1], atol=1e-12)
    # the small rate shrinks beta1 faster: test = 1.5 train - e1^2/2 -> 1.5 train as eps -> 0
    e1 = s.final_beta[0] - BETA[0]
    assert s.final_test_loss == pytest.approx(1.5 * s.final_train_loss - 0.5 * e1**2, rel=1e-9)
    assert s.final_test_loss / s.final_train_loss == pytest.approx(1.5, abs=20 * eps)
    assert ls.final_test_loss < s.final_test_loss
    assert res["test_over_eps"]["large_then_small"] < 0.76 and res["test_over_eps"]["small"] > 1.4
    assert res["level_set_range"] == pytest.approx((0.75, 1.5))


def test_an_early_anneal_lets_the_small_rate_move_the_residual_back():
    """With the switch far above eps, the small phase re-grows the share of beta2."""
    def ratio(eps):
        run = run_convex_example(eps=eps, lr_large=1.25, switch_loss=0.1, switch_step=None, beta_star=BETA)
        ls = run["large_then_small"]
        assert ls.switch_step == 3  # the large phase leaves e2 = -2 (1/6)^3 != 0
        return ls.final_test_loss / ls.final_train_loss

    r3, r5, r10 = ratio(1e-3), ratio(1e-5), ratio(1e-10)
    assert 0.75 < r3 < r5 < r10 < 1.5
    assert r10 > 1.2


@pytest.mark.parametrize(("lr", "ratio"), [(0.02, 1.5), (0.5, 1.5), (0.9, 1.5), (1.1, 0.75), (1.4, 0.75)])
def test_critical_learning_rate_is_one_over_trace(lr, ratio):
    """A single learning rate above 1/(a1 + a2) = 1 fits the under-sampled coordinate first."""
    X, y = paper_design(BETA)
    run = gradient_descent(X, y, lr=lr, eps=1e-8, test_loss=lambda b: population_loss_basis(b, BETA))
    assert run.converged
    assert run.final_test_loss / run.final_train_loss == pytest.approx(ratio, abs=1e-3)


def test_plugins_reproduce_the_pure_gradient_descent():
    data = build_convex_regression(ConvexRegressionConfig(beta_star=BETA), seed=0, device=torch.device("cpu"))
    assert data.task == "regression" and data.num_classes == 1
    X, y = paper_design(BETA)
    np.testing.assert_array_equal(data.train_x.numpy(), X)
    np.testing.assert_allclose(data.train_y.numpy(), y)
    np.testing.assert_array_equal(data.test_x.numpy(), np.eye(2))
    model = build_linear_regression(LinearRegressionConfig(), info=data.info)
    assert all(torch.all(p == 0) for p in model.parameters())
    assert len(list(model.parameters())) == 1  # no bias
    # hand-written full-batch GD with the engine's loss (MSE) and torch SGD
    model = model.double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    xs, ys = data.train_x.double(), data.train_y.double()
    ref = gradient_descent(X, y, lr=0.05, eps=0.0, max_steps=50, test_loss=lambda b: population_loss_basis(b, BETA))
    for t in range(50):
        pred = model(xs)
        assert pred.shape == ys.shape
        loss = torch.nn.functional.mse_loss(pred, ys)
        assert loss.item() == pytest.approx(ref.train_loss[t], rel=1e-10, abs=1e-14)
        test = torch.nn.functional.mse_loss(model(data.test_x.double()), data.test_y.double())
        assert test.item() == pytest.approx(ref.test_loss[t], rel=1e-10, abs=1e-14)  # test MSE = L_D
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_convex_regression_random_designs():
    cfg = ConvexRegressionConfig(design="gaussian", n_train=10, n_test=500, noise_std=0.1)
    a = build_convex_regression(cfg, seed=1, device=torch.device("cpu"))
    b = build_convex_regression(cfg, seed=2, device=torch.device("cpu"))
    assert a.train_x.shape == (10, 2) and a.test_x.shape == (500, 2)
    assert not torch.equal(a.train_x, b.train_x)
    # targets are <beta*, x> (+ noise on train only)
    torch.testing.assert_close(a.test_y, a.test_x @ torch.tensor([1.0, 1.0]))
    assert 0 < (a.train_y - a.train_x @ torch.tensor([1.0, 1.0])).abs().max() < 1.0
    c = build_convex_regression(ConvexRegressionConfig(design="basis_random", n_train=50), seed=0,
                                device=torch.device("cpu"))
    assert set(map(tuple, c.train_x.tolist())) == {(1.0, 0.0), (0.0, 1.0)}


def test_linear_regression_options():
    m = build_linear_regression(LinearRegressionConfig(bias=True, outputs=3, init="default"), info=DataInfo((2,), 1))
    assert m(torch.zeros(4, 2)).shape == (4, 3)
    assert any(torch.any(p != 0) for p in m.parameters())


def test_plot_convex_trajectories(tmp_path):
    res = run_convex_example(eps=1e-2, beta_star=BETA)
    runs = {"L-S": res["large_then_small"], "S": res["small"]}
    path = plot_convex_trajectories(tmp_path / "convex.png", runs, X=res["X"], y=res["y"], beta_star=BETA,
                                    eps=1e-2)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = Figure()
    ax = fig.subplots()
    out = plot_convex_trajectories(ax, runs, X=res["X"], y=res["y"], beta_star=BETA, eps=1e-2)
    assert out is ax
    drawn = [line for line in ax.lines if len(line.get_xdata()) == runs["S"].betas.shape[0]]
    assert drawn and np.allclose(drawn[0].get_xydata(), runs["S"].betas)
