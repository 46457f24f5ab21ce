"""Batch-science studies: Goyal et al. 2017 (linear scaling with gradual warm-up) and Smith,
Kindermans, Ying & Le 2018 (increase the batch instead of decaying the learning rate).

Fast tests check each file against the paper's protocol (the arms, the learning rates and schedules
each arm gets, the paper-scale values), that the SGD noise scale of Smith's three arms is equal at
every epoch by construction, and that the paper-scale files start: without CIFAR-10 they name the
missing files, with small synthetic CIFAR-10 files every variant builds and trains under a dry run.

Slow tests run the CPU-scale studies as shipped and assert the claims documented in
docs/reproductions.md against the seed spread.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from lbgap.registry import load_registry
from lbgap.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "studies"

GOYAL_ARMS = ["scaled_warmup", "scaled_no_warmup", "unscaled"]
SMITH_ARMS = ["decay_lr", "increase_batch", "hybrid"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _study(name: str, registry, overrides=()):
    return load_study(STUDIES / f"{name}.yaml", registry, overrides)


def _tables():
    """``studies/tools/batch_science_tables.py``, the script that prints the documented tables."""
    import study_tools

    return study_tools.load("batch_science_tables")


# ----------------------------------------------------------------- fast: files and protocol


@pytest.mark.parametrize(
    "name",
    ["goyal_linear_warmup", "goyal_linear_warmup_paper", "smith_increase_batch", "smith_increase_batch_paper"],
)
def test_study_files_validate_and_state_scale_and_seeds(name, registry):
    study = _study(name, registry)
    assert study.header.study == name
    assert ("Goyal" if name.startswith("goyal") else "Smith") in study.header.reproduces
    assert len(study.seeds) >= 3 and "3 seeds" in study.header.reproduces
    if name.endswith("_paper"):
        assert "CIFAR-10" in study.header.reproduces and "$LBGAP_DATA" in study.header.reproduces
    else:
        assert all(c.config.dataset.name == "mnist1d" for c in study.cells()), "no download"


def _goyal_arms_follow_the_rule(study, reference: int, warmup_epochs: float, base_schedule: dict) -> None:
    from lbgap_training.linear_warmup import goyal_warmup_lr

    assert list(study.variants) == GOYAL_ARMS
    sizes = study.grid_values["batch_size"]
    assert reference in sizes and max(sizes) >= 32 * reference // 8, "k up to at least 4"
    by_arm = {arm: [c.config for c in study.cells() if c.variant == arm] for arm in GOYAL_ARMS}
    for arm, configs in by_arm.items():
        assert sorted({c.batch_size for c in configs}) == sorted(sizes)
        for cfg in configs:
            assert cfg.optimizer.name == "sgd" and cfg.optimizer.momentum == 0.9
            assert cfg.model.norm == "ghost" and cfg.model.ghost_size == 32, "BN over n = 32 per worker"
            scaled = arm != "unscaled"
            assert [(r.name, r.rule, r.reference_batch) for r in cfg.regime] == (
                [("lr_scaling", "linear", reference)] if scaled else []
            )
            if arm == "scaled_warmup":
                sched = cfg.schedule
                assert sched.name == "linear_warmup" and sched.reference_batch == reference
                assert sched.warmup_epochs == warmup_epochs and sched.start_factor is None
                assert [s.model_dump(exclude_none=True) for s in sched.then] == [base_schedule]
            else:
                assert cfg.schedule.model_dump(exclude_none=True) == base_schedule
    # the arms differ only in the regime and the schedule
    for a, b in zip(by_arm["scaled_warmup"], by_arm["unscaled"], strict=True):
        assert a.model_copy(update={"regime": [], "schedule": b.schedule}) == b
    # Goyal's learning rate: η at step 0, kη after the warm-up, for the largest batch
    eta, big = by_arm["unscaled"][0].optimizer.lr, max(sizes)
    n = 1000
    assert goyal_warmup_lr(0, n, eta, big, reference, warmup_epochs) == pytest.approx(eta)
    assert goyal_warmup_lr(int(warmup_epochs * n), n, eta, big, reference, warmup_epochs) == pytest.approx(
        eta * big / reference
    )


def test_goyal_paper_file_is_the_papers_protocol(registry):
    study = _study("goyal_linear_warmup_paper", registry)
    milestones = {"name": "multistep", "milestones": [30.0, 60.0, 80.0], "gamma": 0.1}
    _goyal_arms_follow_the_rule(study, 256, 5.0, _schedule_dump(study, milestones))
    sizes = study.grid_values["batch_size"]
    assert {256, 8192} <= set(sizes), "the paper's kn = 256 baseline and its 8k"
    for cell in study.cells():
        cfg = cell.config
        assert cfg.optimizer.lr == 0.1 and cfg.optimizer.weight_decay == 1e-4, "η = 0.1 per 256, wd 1e-4"
        assert cfg.epochs == 90
        assert cfg.dataset.name == "cifar10" and cfg.dataset.n_train is None
        assert cfg.model.name == "resnet44"


def _schedule_dump(study, expected: dict) -> dict:
    """The base schedule of the unscaled arm as validated (defaults filled in), checked against the
    values that matter."""
    cfg = next(c.config for c in study.cells() if c.variant == "unscaled")
    dump = cfg.schedule.model_dump(exclude_none=True)
    for key, value in expected.items():
        assert dump[key] == value, (key, dump[key], value)
    return dump


def test_goyal_cpu_file_scales_the_protocol(registry):
    study = _study("goyal_linear_warmup", registry)
    cfg = next(c.config for c in study.cells() if c.variant == "unscaled")
    reference = min(study.grid_values["batch_size"])
    assert reference == 32, "the smallest batch is the reference, as kn = 256 is the paper's"
    expected = {"name": "multistep", "gamma": 0.1}
    dump = _schedule_dump(study, expected)
    warm = next(c.config for c in study.cells() if c.variant == "scaled_warmup").schedule.warmup_epochs
    _goyal_arms_follow_the_rule(study, reference, warm, dump)
    # the paper's shape: warm-up and milestones at the same fractions of training (5, 30, 60, 80 of 90)
    fractions = [m / cfg.epochs for m in dump["milestones"]]
    assert len(fractions) >= 2 and all(0.25 <= f <= 0.95 for f in fractions)
    assert max(study.grid_values["batch_size"]) == 1024 and len(study.grid_values["batch_size"]) >= 5
    assert cfg.target is not None and cfg.target.metric == "test_error" and not cfg.target.stop


def _smith_arms(study) -> dict:
    assert list(study.variants) == SMITH_ARMS
    v = study.variants
    decay, grow, hybrid = v["decay_lr"], v["increase_batch"], v["hybrid"]
    assert decay.schedule.name == "multistep" and decay.regime == []
    milestones, gamma = list(decay.schedule.milestones), decay.schedule.gamma
    for cfg in (grow, hybrid):
        assert cfg.schedule.name == "constant", "the decays are batch growth now, not both"
        (regime,) = cfg.regime
        assert regime.name == "increase_batch" and list(regime.milestones) == milestones
        assert regime.factor == pytest.approx(1 / gamma)
        assert cfg.model_copy(update={"regime": [], "schedule": decay.schedule}) == decay
    assert grow.regime[0].max_batch_size is None
    cap = hybrid.regime[0].max_batch_size
    assert decay.batch_size < cap < decay.batch_size * grow.regime[0].factor ** len(milestones)
    assert decay.model.norm == "ghost" and decay.model.ghost_size == decay.batch_size
    assert [m.name for m in decay.metrics] == ["sgd_noise_scale"]
    return {"milestones": milestones, "factor": 1 / gamma, "batch": decay.batch_size, "cap": cap, "cfg": decay}


def _noise_per_epoch(cfg, arm_cfg, n_train: int) -> list[float]:
    """g = εN/(B(1 − m)) at every epoch from the arm's learning-rate schedule and batch stages."""
    from lbgap_training.batch_schedule import batch_stages
    from lbgap_training.noise_scale import sgd_noise_scale

    if arm_cfg.regime:
        r = arm_cfg.regime[0]
        stages = batch_stages(arm_cfg.batch_size, list(r.milestones), r.factor, r.max_batch_size)
    else:
        stages = [(0.0, arm_cfg.batch_size, 1.0)]
    out = []
    for epoch in range(arm_cfg.epochs):
        _, batch, lr_factor = [s for s in stages if s[0] <= epoch][-1]
        lr = arm_cfg.optimizer.lr * lr_factor
        if arm_cfg.schedule.name == "multistep":
            lr *= arm_cfg.schedule.gamma ** sum(epoch >= m for m in arm_cfg.schedule.milestones)
        out.append(sgd_noise_scale(lr, n_train, batch, arm_cfg.optimizer.momentum))
    return out


@pytest.mark.parametrize("name,n_train", [("smith_increase_batch", 16_000), ("smith_increase_batch_paper", 50_000)])
def test_smith_arms_have_the_same_noise_scale_at_every_epoch(name, n_train, registry):
    study = _study(name, registry)
    _smith_arms(study)
    curves = {arm: _noise_per_epoch(None, cfg, n_train) for arm, cfg in study.variants.items()}
    np.testing.assert_allclose(curves["increase_batch"], curves["decay_lr"], rtol=1e-12)
    np.testing.assert_allclose(curves["hybrid"], curves["decay_lr"], rtol=1e-12)
    assert curves["decay_lr"][-1] < curves["decay_lr"][0] / 100, "three fivefold falls"


def test_smith_paper_file_is_the_recalled_protocol(registry):
    study = _study("smith_increase_batch_paper", registry)
    arms = _smith_arms(study)
    cfg = arms["cfg"]
    assert arms["milestones"] == [60, 120, 160] and arms["factor"] == 5 and arms["batch"] == 128
    assert cfg.epochs == 200 and cfg.optimizer.lr == 0.1 and cfg.optimizer.momentum == 0.9
    assert cfg.model.name == "wrn16_4" and cfg.model.ghost_size == 128
    assert cfg.dataset.name == "cifar10" and cfg.dataset.n_train is None
    assert arms["cap"] == 3200
    assert "recalled" in study.header.reproduces


def test_smith_cpu_file_is_the_paper_schedule_compressed(registry):
    arms = _smith_arms(_study("smith_increase_batch", registry))
    cfg = arms["cfg"]
    # 60, 120, 160 of 200 epochs, tenfold shorter; factor 5
    assert [m / cfg.epochs for m in arms["milestones"]] == [0.3, 0.6, 0.8] and arms["factor"] == 5
    assert cfg.optimizer.momentum == 0.9


def _fake_cifar10(root: Path) -> None:
    import study_tools

    module = study_tools.import_as("fake_vision_files", ROOT / "tests" / "lbgap_datasets" / "fake_vision_files.py")
    module.write_cifar10(root, per_batch=20, n_test=20, seed=1)


@pytest.mark.parametrize(
    "name,overrides",
    [
        # two of the six batch sizes (the paper's 256 and 8k) keep the default run short; every arm
        ("goyal_linear_warmup_paper", ["grid.batch_size=[256, 8192]"]),
        ("smith_increase_batch_paper", []),
    ],
)
def test_paper_files_name_the_missing_files_then_start_under_a_dry_run(
    name, overrides, registry, tmp_path, monkeypatch
):
    from lbgap.driver.dryrun import dry_run
    from lbgap.engine.train import build_parts
    from lbgap_datasets.common import DatasetFilesMissing

    monkeypatch.setenv("LBGAP_DATA", str(tmp_path))
    study = _study(name, registry, overrides)
    cell = study.cells()[0]
    assert cell.config.dataset.root is None, "paper-scale data come from $LBGAP_DATA"
    with pytest.raises(DatasetFilesMissing) as err:
        build_parts(cell.config, cell.seed, registry, torch.device("cpu"))
    assert str(tmp_path) in str(err.value) and "cifar-10-batches-py" in str(err.value)

    _fake_cifar10(tmp_path)  # 100 training and 20 test images in the real file format
    report = dry_run(study, device=torch.device("cpu"), steps=1, overrides={"dataset.verify_md5": False})
    assert not report.failed, [(r.check.label, r.stage, r.error) for r in report.failed]
    assert {r.check.variant for r in report.results} == set(study.variants)
    assert sum(r.check.trials for r in report.results) == len(study.cells())
    for r in report.results:
        p = r.result
        assert (p.n_train, p.n_test) == (100, 20), "the files under $LBGAP_DATA were read"
        assert math.isfinite(p.train_loss) and math.isfinite(p.eval_loss)


# ----------------------------------------------------------------- slow: the papers' claims


def _run(name: str, registry, out_dir: Path) -> xr.Dataset:
    from lbgap.driver.run import run_study

    summary = run_study(_study(name, registry), out_dir, device="cpu")
    assert summary.results is not None and not summary.failed and not summary.diverged
    return xr.load_dataset(summary.results)


#: the largest gap (points) between the seed-mean test-accuracy curves of Smith's arms that the test allows
SMITH_CURVE_GAP = 1.0


def check_smith(ds: xr.Dataset) -> None:
    """The claims of docs/reproductions.md on a finished ``smith_increase_batch`` run."""
    nums = _tables().smith_numbers(ds)
    arms = nums["arms"]
    # the noise scale is the same in every arm, epoch and seed
    for arm in ("increase_batch", "hybrid"):
        np.testing.assert_allclose(arms[arm]["noise"], arms["decay_lr"]["noise"], rtol=1e-9)
    assert list(arms["increase_batch"]["batch"][[0, 6, 12, 16]]) == [32, 160, 800, 4000]
    assert list(arms["hybrid"]["batch"][[0, 6, 12, 16]]) == [32, 160, 800, 800]
    # equivalent: the final accuracies lie within the seed spread of each other ...
    finals = {arm: v["final"] for arm, v in arms.items()}
    spread = max(np.std(f, ddof=1) for f in finals.values())
    for arm in ("increase_batch", "hybrid"):
        assert abs(np.mean(finals[arm]) - np.mean(finals["decay_lr"])) <= spread
    # ... and so do the curves: at no epoch do the seed means differ by more than a point
    assert nums["curve_gap"] <= SMITH_CURVE_GAP
    # far fewer parameter updates, in every seed: 3,696 and 3,760 against 10,000
    steps = {arm: v["steps"] for arm, v in arms.items()}
    assert (steps["decay_lr"] == 20 * 500).all()
    assert (steps["increase_batch"] <= 0.4 * steps["decay_lr"]).all()
    assert (steps["hybrid"] <= 0.4 * steps["decay_lr"]).all()


@pytest.mark.slow
def test_smith_increasing_the_batch_is_equivalent_to_decaying_the_rate_in_fewer_steps(registry, tmp_path):
    """The whole CPU study (3 arms × 3 seeds): the same noise scale at every epoch, the same test
    accuracy per epoch within the seed spread, and far fewer parameter updates."""
    check_smith(_run("smith_increase_batch", registry, tmp_path))


def check_goyal(ds: xr.Dataset) -> None:
    """The claims of docs/reproductions.md on a finished ``goyal_linear_warmup`` run (final test error
    in %, mean and std over the seeds)."""
    nums = _tables().goyal_numbers(ds)
    sizes = sorted(int(b) for b in ds["batch_size"].values)
    ref, largest = sizes[0], sizes[-1]

    def err(arm, b):
        v = np.asarray(nums[arm, b]["test_error"], dtype=float)
        return float(v.mean()), float(v.std(ddof=1))

    # k = 1: the rule and the warm-up change nothing, so the three arms are the same runs
    for arm in ("scaled_no_warmup", "unscaled"):
        np.testing.assert_array_equal(nums[arm, ref]["test_error"], nums["scaled_warmup", ref]["test_error"])
    base, base_std = err("scaled_warmup", ref)
    # scaling with warm-up matches the reference batch up to GOYAL_MATCH_UP_TO (within the seed spread) ...
    for b in (b for b in sizes if b <= GOYAL_MATCH_UP_TO):
        m, s = err("scaled_warmup", b)
        assert abs(m - base) <= 2 * max(s, base_std) + GOYAL_MATCH_TOL, (b, m, base)
    # ... and without warm-up it does not at the batch where warm-up matters
    b = GOYAL_WARMUP_MATTERS_AT
    warm, warm_std = err("scaled_warmup", b)
    cold, cold_std = err("scaled_no_warmup", b)
    assert cold - warm > 2 * max(warm_std, cold_std), (b, cold, warm)
    # without the rule the large batches fall behind
    for b in (b for b in sizes if GOYAL_UNSCALED_WORSE_FROM <= b <= GOYAL_WARMUP_MATTERS_AT):
        un, un_std = err("unscaled", b)
        warm, warm_std = err("scaled_warmup", b)
        assert un - warm > 2 * max(un_std, warm_std), (b, un, warm)
    # beyond the range, as beyond 8k in the paper, the rule breaks down even with the one-epoch warm-up
    assert err("scaled_warmup", largest)[0] - base > GOYAL_BREAKDOWN


#: scaling with warm-up matches the reference batch's final test error (within twice the larger seed
#: std, plus this many points) at every batch up to GOYAL_MATCH_UP_TO (k = 8)
GOYAL_MATCH_UP_TO, GOYAL_MATCH_TOL = 256, 0.0
#: the batch (k = 16) at which no warm-up loses more than twice the seed std to warm-up
GOYAL_WARMUP_MATTERS_AT = 512
#: from this batch up to GOYAL_WARMUP_MATTERS_AT the unscaled arm loses more than twice the seed std
GOYAL_UNSCALED_WORSE_FROM = 256
#: at the largest batch (k = 32) scaling with the one-epoch warm-up is this many points worse than k = 1
GOYAL_BREAKDOWN = 10.0


@pytest.mark.slow
def test_goyal_linear_scaling_with_warmup_matches_the_small_batch(registry, tmp_path):
    """The whole CPU study (3 arms × 5 batch sizes × 3 seeds; about 8 CPU-minutes, two workers)."""
    ds = _run("goyal_linear_warmup", registry, tmp_path)
    check_goyal(ds)
    assert "steps_to_target" in ds and "examples_to_target" in ds
