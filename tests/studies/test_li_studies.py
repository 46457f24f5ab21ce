"""Studies of Li, Wei & Ma (2019) and the 2020 report's convex example (issue 4).

* ``convex_lr``: runs in seconds; its final test losses are checked against the closed form
  of gradient descent on the report's example (≈ 0.75 ε vs ≈ 1.5 ε).
* ``li_patch_cifar10``: the authors' recipe; checked for its settings and for the clear error
  when the CIFAR-10 files are absent.
* ``li_synthetic``: its arms and scale; the slow test runs it and asserts what holds at CPU scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from lbgap.registry import load_registry
from lbgap.report.make import final_values
from lbgap.spec import load_study
from lbgap_synthetic.convex import level_set_population_range

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "studies"

# the report's example: L̂ = a1 e1² + a2 e2², L_D = (e1² + e2²)/2, e = β − β*, β* = (1, 1), from β = 0
A = np.array([2 / 3, 1 / 3])
BETA_STAR = np.array([1.0, 1.0])


def _closed_form(lrs: list[float]) -> np.ndarray:
    """Errors e(T) = −β* ∏_t (1 − 2 η_t a) after the steps ``lrs`` (float64)."""
    return -BETA_STAR * np.prod([1.0 - 2.0 * lr * A for lr in lrs], axis=0) if lrs else -BETA_STAR


def _stop_step(lr_of_step, eps: float, limit: int = 100_000) -> int:
    """First T with L̂(T) < eps (the engine checks after every full-batch step)."""
    lrs: list[float] = []
    for t in range(limit):
        e = _closed_form(lrs)
        if A @ (e * e) < eps:
            return t
        lrs.append(lr_of_step(t))
    raise AssertionError("no convergence")


@pytest.fixture(scope="module")
def convex_results(tmp_path_factory):
    from lbgap.driver.run import run_study

    out = tmp_path_factory.mktemp("convex_lr")
    study = load_study(STUDIES / "convex_lr.yaml", load_registry())
    summary = run_study(study, out, device="cpu")
    with xr.open_dataset(summary.results) as ds:
        yield study, ds.load(), out


def test_convex_study_is_the_reports_example(convex_results):
    study, _, _ = convex_results
    v = study.variants
    assert list(v) == ["large_then_small", "small"]
    for cfg in v.values():
        assert cfg.dataset.name == "convex_regression" and tuple(cfg.dataset.counts) == (2, 1)
        assert cfg.batch_size == sum(cfg.dataset.counts)  # full-batch gradient descent
        assert cfg.optimizer.momentum == 0 and cfg.optimizer.weight_decay == 0
        assert cfg.model.init == "zeros"
    assert v["large_then_small"].optimizer.lr == 1.5 == 1 / A[0]  # edge of stability of β1
    assert v["small"].schedule.name == "constant"


def test_convex_study_follows_the_closed_form_to_075_and_15_eps(convex_results):
    study, ds, _ = convex_results
    eps = study.variants["small"].stopping[0].eps
    eta1 = study.variants["large_then_small"].optimizer.lr
    eta2 = study.variants["small"].optimizer.lr
    switch = int(study.variants["large_then_small"].schedule.milestones[0])
    assert study.variants["large_then_small"].schedule.factors[0] * eta1 == pytest.approx(eta2)
    schedules = {"large_then_small": lambda t: eta1 if t < switch else eta2, "small": lambda t: eta2}
    test = final_values(ds, "test_loss")
    assert level_set_population_range(A, (0.5, 0.5)) == pytest.approx((0.75, 1.5))
    for name, lr_of in schedules.items():
        T = _stop_step(lr_of, eps)
        e = _closed_form([lr_of(t) for t in range(T)])
        sub = ds.sel(variant=name)
        assert (sub["epochs_done"] == T).all(), f"{name}: stops after {T} steps"
        for var, want in (("beta_1", BETA_STAR[0] + e[0]), ("beta_2", BETA_STAR[1] + e[1])):
            got = final_values(sub, var).values
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)  # float32 training
        np.testing.assert_allclose(test.sel(variant=name).values, 0.5 * e @ e, rtol=1e-4)
    ratio = test / eps
    # Large then small: β2 is fitted in the first step (1 − 2·η1·a2 = 0), so at the stop
    # L_D = ½e1² = 0.75 L̂ with L̂ ∈ [ε (1 − 2η2 a1)², ε): the ratio is in [0.75 (1 − 2η2 a1)², 0.75).
    lo = 0.75 * (1 - 2 * eta2 * A[0]) ** 2
    assert ((ratio.sel(variant="large_then_small") >= lo - 1e-4) & (ratio.sel(variant="large_then_small") < 0.75)).all()
    # Small: L_D / L̂ = 1.5 (1 + ρ)/(1 + 2ρ) with ρ = e1²/e2² = ((1 − 2η2 a1)/(1 − 2η2 a2))^(2T), and the last
    # step shrinks L̂ by at least (1 − 2η2 a2)²/(1 + 2ρ(T−1)): the ratio is in [that product, 1.5).
    T = _stop_step(schedules["small"], eps)
    q = ((1 - 2 * eta2 * A[0]) / (1 - 2 * eta2 * A[1])) ** 2
    rho, rho_prev = q**T, q ** (T - 1)
    lo_s = 1.5 * (1 + rho) / (1 + 2 * rho) * (1 - 2 * eta2 * A[1]) ** 2 / (1 + 2 * rho_prev)
    assert ((ratio.sel(variant="small") >= lo_s - 1e-4) & (ratio.sel(variant="small") < 1.5)).all()
    assert lo_s > 1.3 and lo > 0.6  # the two arms' intervals are far apart: [0.63, 0.75) vs [1.37, 1.5)
    # the seeds are identical runs (deterministic design and initialisation)
    assert float(ratio.std("seed").max()) == 0.0


def test_convex_report_draws_the_trajectories(convex_results):
    from lbgap.report.make import make_report

    _, _, out = convex_results
    summary = make_report(out).read_text()
    assert "convex_trajectories.png" in summary and "pq_component_accuracy.png" not in summary
    assert (out / "report" / "convex_trajectories.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ patch CIFAR-10


def test_li_patch_cifar10_is_the_authors_recipe():
    study = load_study(STUDIES / "li_patch_cifar10.yaml", load_registry())
    v = study.variants
    assert list(v) == ["large_then_small", "small", "small_noise"]
    for cfg in v.values():
        assert cfg.dataset.name == "patch_cifar10"
        assert cfg.model.name == "wrn16" and cfg.model.widen_factor == 10
        assert (cfg.batch_size, cfg.epochs) == (128, 60)
        opt = cfg.optimizer
        assert (opt.momentum, opt.nesterov, opt.weight_decay) == (0.9, True, 5e-4)
        assert cfg.grad_clip is None
    ls = v["large_then_small"]
    assert ls.optimizer.lr == 0.1 and ls.schedule.name == "multistep"
    assert ls.schedule.milestones == [29] and ls.schedule.factors == [0.04]  # 0.004 from the 30th epoch
    assert v["small"].optimizer.lr == 0.004 and v["small"].schedule.name == "constant" and v["small"].noise == []
    sn = v["small_noise"]
    assert sn.optimizer.lr == 0.004 and sn.schedule.name == "constant"
    (noise,) = sn.noise
    assert (noise.name, noise.scale, noise.decay_factor, noise.decay_epoch, noise.sharing) == (
        "preactivation_noise", 0.4, 1e-5, 29, "batch_and_channels")
    assert len(study.seeds) >= 3


def test_li_patch_cifar10_without_the_files_names_them(tmp_path, monkeypatch):
    from lbgap_datasets.common import DatasetFilesMissing

    monkeypatch.setenv("LBGAP_DATA", str(tmp_path))
    reg = load_registry()
    study = load_study(STUDIES / "li_patch_cifar10.yaml", reg)
    cell = study.cells()[0]
    plugin = reg.get("dataset", cell.config.dataset.name)
    with pytest.raises(DatasetFilesMissing) as err:
        plugin.build(cell.config.dataset, seed=cell.seed, device=torch.device("cpu"))
    msg = str(err.value)
    assert str(tmp_path) in msg and "cifar-10-batches-py" in msg
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
        assert name in msg


# ------------------------------------------------------------------ synthetic P/Q


def test_li_synthetic_arms_and_scale():
    study = load_study(STUDIES / "li_synthetic.yaml", load_registry())
    v = study.variants
    assert list(v) == ["L-S", "S", "S_noise"]
    assert len(study.seeds) >= 3
    ls, s, sn = v["L-S"], v["S"], v["S_noise"]
    assert ls.optimizer.lr >= 10 * s.optimizer.lr and sn.optimizer.lr == s.optimizer.lr
    data = s.dataset
    assert data.name == "pq_synthetic" and data.test_sampling == "balanced"
    assert data.p0 * data.n_train < data.d / 2  # the theory's condition on the P-only count
    assert 1 - data.p0 - data.q0 >= 0.6  # most examples carry both parts
    # L-S anneals at ε1 + q log 2 with q the Q-only fraction
    assert ls.schedule.name == "loss_switch" and ls.schedule.q == data.q0
    assert ls.schedule.factor * ls.optimizer.lr == pytest.approx(s.optimizer.lr)
    assert s.noise == [] and ls.noise == [] and [n.name for n in sn.noise] == ["preactivation_noise"]
    assert sn.noise[0].sharing == "none"  # the theory's independent per-unit noise
    for cfg in v.values():
        assert cfg.model.name == "two_layer_relu" and [r.name for r in cfg.stopping] == ["train_loss_below"]
        assert cfg.dataset == data  # the same data for every arm


def _p_only(ds: xr.Dataset) -> xr.DataArray:
    return final_values(ds, "test_accuracy_p_only") * 100


@pytest.mark.slow
def test_li_synthetic_learning_order(tmp_path):
    """The paper's claims at CPU scale (docs/reproductions.md, Li, Wei & Ma): L-S beats S on P-only test
    examples (on average, and on most seeds), the large rate keeps Q unlearned while S memorizes it, and
    S+noise recovers at least half of the gap."""
    from lbgap.driver.run import run_study

    study = load_study(STUDIES / "li_synthetic.yaml", load_registry())
    summary = run_study(study, tmp_path, device="cpu")
    with xr.open_dataset(summary.results) as f:
        ds = f.load()
    p = _p_only(ds)
    q = final_values(ds, "test_accuracy_q_only") * 100
    mean = p.mean("seed")
    gap = float(mean.sel(variant="L-S") - mean.sel(variant="S"))
    # every arm ends with Q memorized; L-S and S+noise learned P from more examples than S
    assert float(q.min()) >= 99.0
    assert gap >= 2.0
    # the unstable phase's length varies from seed to seed (seed 3, not in the study, loses): most seeds
    assert int((p.sel(variant="L-S") > p.sel(variant="S")).sum()) >= 2
    assert int((p.sel(variant="S_noise") > p.sel(variant="S")).sum()) >= 2
    assert float(mean.sel(variant="S_noise") - mean.sel(variant="S")) >= 0.5 * gap
    # the learning order, after 300 epochs: S has memorized Q, the large rate has not
    q300 = ds["test_accuracy_q_only"].sel(epoch=300) * 100
    assert float(q300.sel(variant="S").min()) >= 99.0
    assert float(q300.sel(variant="L-S").max()) <= 80.0
    assert (ds["train_loss_running"].sel(variant="L-S", epoch=300) > 0.8).all()  # the unstable phase
    # L-S annealed, S+noise decayed its noise, and every arm stopped at eps2
    assert not np.isnan(ds["lr_switch_epoch"].sel(variant="L-S").values).any()
    assert not np.isnan(ds["preactivation_noise_decay_epoch"].sel(variant="S_noise").values).any()
    assert (ds["status"] == "stopped").all()
    from lbgap.report.make import make_report

    assert "pq_component_accuracy.png" in make_report(tmp_path).read_text()


# ------------------------------------------------------------------ the report's §4.3 (Gaussian design)


def _gd_replay(x: np.ndarray, y: np.ndarray, lr_of_step, eps: float) -> tuple[np.ndarray, int]:
    """Full-batch gradient descent on the training MSE from β = 0, stopped at the first β with
    L̂(β) < eps (float64): the report's algorithm."""
    beta = np.zeros(x.shape[1])
    for t in range(100_000):
        r = x @ beta - y
        if np.mean(r * r) < eps:
            return beta, t
        beta = beta - lr_of_step(t) * 2.0 * x.T @ r / len(y)
    raise AssertionError("no convergence")


def test_gaussian_convex_study_is_gradient_descent_on_each_experiments_data(tmp_path):
    from lbgap.driver.run import run_study
    from lbgap.engine.train import build_parts

    registry = load_registry()
    study = load_study(STUDIES / "convex_lr_gaussian.yaml", registry)
    v = study.variants
    assert len(study.seeds) == 10, "the report's ten experiments"
    assert v["small"].optimizer.lr == 0.01 and v["small"].schedule.name == "constant"
    eps = v["small"].stopping[0].eps
    assert eps == 0.1
    arms = {}
    for name, cfg in v.items():
        assert cfg.dataset.design == "gaussian" and cfg.dataset.n_train == 10 == cfg.batch_size
        if name != "small":
            (k,), (f,) = cfg.schedule.milestones, cfg.schedule.factors
            assert cfg.optimizer.lr == 0.1 and f * cfg.optimizer.lr == pytest.approx(0.01)
            arms[name] = lambda t, k=k: 0.1 if t < k else 0.01
        else:
            arms[name] = lambda t: 0.01
    summary = run_study(study, tmp_path / "out", device="cpu")
    with xr.open_dataset(summary.results) as ds:
        ds = ds.load()
    test = final_values(ds, "test_loss")
    # a regression study (no accuracy, runs of 5-100 steps) gets its learning curves
    from lbgap.report.make import make_report

    assert "learning_curves.png" in make_report(tmp_path / "out").read_text()
    for seed in (0, 3, 7):
        data = {name: build_parts(cfg, seed, registry, torch.device("cpu")).data for name, cfg in v.items()}
        x, y = data["small"].train_x.double().numpy(), data["small"].train_y.double().numpy().reshape(-1)
        xt, yt = data["small"].test_x.double().numpy(), data["small"].test_y.double().numpy().reshape(-1)
        for d in data.values():  # every arm of an experiment sees the same training and test sets
            assert torch.equal(d.train_x, data["small"].train_x) and torch.equal(d.test_y, data["small"].test_y)
        other = build_parts(v["small"], seed + 1, registry, torch.device("cpu")).data
        assert not torch.equal(other.train_x, data["small"].train_x), "each experiment draws its own data"
        for name, lr_of in arms.items():
            beta, steps = _gd_replay(x, y, lr_of, eps)
            sub = ds.sel(variant=name, seed=seed)
            assert int(sub["epochs_done"]) == steps, f"{name}, seed {seed}: stops after {steps} steps"
            got = np.array([float(final_values(sub, f"beta_{i}")) for i in (1, 2)])
            np.testing.assert_allclose(got, beta, rtol=0, atol=1e-4)  # float32 training
            r = xt @ beta - yt
            assert float(test.sel(variant=name, seed=seed)) == pytest.approx(np.mean(r * r), rel=1e-3)
