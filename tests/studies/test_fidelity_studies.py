"""Paper-scale studies of the experiments the seed texts report and the repository had no file for.

* Li, Wei & Ma (2019): the clean CIFAR-10 table (``li_cifar10_clean``), Fig. 1 (``li_cifar10_fig1``);
  the 2020 report's WideResNet16 on CIFAR-100 (``li_wrn16_cifar100``) and its CIFAR-10 10,000 images
  against the full training set (``li_cifar10_10k_vs_full``).
* The 2020 report's SB-vs-LB table of ResNet44, VGG and WideResNet16-4 (``nishtala_sb_lb_*``, Hoffer
  et al.'s protocol, shared through ``studies/bases/nishtala_sb_lb_protocol.yaml``).
* The CPU-scale analogue of Li's table on MNIST-1D (``li_mnist1d_lr_noise``).

Fast tests check every file's protocol against the seed text (the phrases each setting rests on are
looked up in ``../shared/seeds``) and dry-run every paper-scale file on synthetic CIFAR files written in
torchvision's formats, with the network narrowed so that the default run stays short; the slow tests
dry-run the real networks and run the CPU analogue, asserting the paper's ordering.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr

from lbgap.registry import load_registry
from lbgap.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
STUDIES = ROOT / "studies"
#: the 2020 replication report (Nishtala), which quotes Li et al.'s table and Hoffer et al.'s numbers
REPORT_SEED = ROOT.parent / "shared" / "seeds" / "001_727f1624312fc0dd.txt"
#: the notes on Hoffer et al. (2017)
HOFFER_SEED = ROOT.parent / "shared" / "seeds" / "002_26f652f23612146d.txt"

LI_FILES = ["li_cifar10_clean", "li_cifar10_fig1", "li_wrn16_cifar100", "li_cifar10_10k_vs_full"]
#: network, data set, parameter count (the plugins' documented counts)
SB_LB_FILES = {
    "nishtala_sb_lb_resnet44": ("resnet44", "cifar10", 661_338),
    "nishtala_sb_lb_vgg": ("vgg", "cifar10", 33_646_666),
    "nishtala_sb_lb_wrn16_4": ("wrn16_4", "cifar100", 2_800_804),
}
PAPER_FILES = [*LI_FILES, *SB_LB_FILES]

#: numbers each file's ``reproduces`` text quotes from the seed text (the table it reproduces)
PAPER_NUMBERS = {
    "li_cifar10_clean": ["90.41", "89.65", "84.93"],
    "li_cifar10_fig1": ["0.1 vs 0.01", "epoch 60"],
    "li_wrn16_cifar100": ["71.90", "66.35"],
    "li_cifar10_10k_vs_full": ["76%", "90%", "65%", "83%"],
    "nishtala_sb_lb_resnet44": ["92.83", "86.10"],
    "nishtala_sb_lb_vgg": ["92.30", "84.1"],
    "nishtala_sb_lb_wrn16_4": ["73.70", "68.15"],
}
#: the seed text's phrases that the settings checked below rest on
SEED_PHRASES = {
    REPORT_SEED: [
        # Li's clean table (the report's Figure 3)
        "| Large LR + anneal | 90.41% |",
        "| Small LR + noise | 89.65% |",
        "| Small LR | 84.93% |",
        "WideResNet16 trained and tested on CIFAR-10 data w/o data augmentation",
        # Fig. 1: the small rate leads until the anneal at epoch 60
        "outperforms the large learning rate shown in blue until epoch 60",
        # the report's CIFAR-100 table and its recipe
        "| Large LR + anneal | 71.90% |",
        "| Small LR | 66.35% |",
        "All models are trained for 200 epochs, annealing the learning rates by a factor of 0.2 at the 60th, "
        "120th, and 150th epoch for all models. The large learning rate model uses an initial learning rate "
        "of 0.1, whereas the small learning rate model uses initial learning rate of 0.01.",
        # the 10k-vs-full table
        "| Large LR + anneal | 76% | 90% |",
        "| Small LR | 65% | 83% |",
        # the three-arm recipe (§3.1 Configuration)
        "My large initial learning rate model trains with learning rate 0.1, annealing to 0.004 at the 30th "
        "epoch and the small LR model trains with fixed learning rate 0.004. The small LR with noise model "
        "trains with fixed learning rate 0.004, initial noise 0.4, and decays the noise to 4e-6 after the "
        "30th epoch. All models are trained for 60 epochs total",
        # the SB-vs-LB table
        "| <u>Resnet44</u> | CIFAR10 | 92.83% | 86.10% |",
        "| <u>VGG</u> | CIFAR10 | 92.30% | 84.1% |",
        "| <u>WideResnet16-4</u> | CIFAR100 | 73.70% | 68.15% |",
    ],
    HOFFER_SEED: ['The "ghost batch size" used is 128.'],
}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _study(name: str, registry):
    return load_study(STUDIES / f"{name}.yaml", registry)


def _lr_after(cfg, epochs_done: int) -> float:
    """The learning rate of a multistep or constant schedule once ``epochs_done`` epochs are done."""
    s = cfg.schedule
    if s.name == "constant":
        return cfg.optimizer.lr
    assert s.name == "multistep" and s.factors is not None
    k = sum(m <= epochs_done for m in s.milestones)
    return cfg.optimizer.lr * (s.factors[k - 1] if k else 1.0)


# ----------------------------------------------------------------- the seed text itself


@pytest.mark.parametrize("seed_file", list(SEED_PHRASES), ids=lambda p: p.name)
def test_the_settings_rest_on_phrases_of_the_seed_text(seed_file):
    if not seed_file.is_file():
        pytest.skip(f"no seed text at {seed_file}")
    text = " ".join(seed_file.read_text().split())
    for phrase in SEED_PHRASES[seed_file]:
        assert " ".join(phrase.split()) in text, phrase


@pytest.mark.parametrize("name", [*PAPER_FILES, "li_mnist1d_lr_noise"])
def test_each_file_names_its_paper_table_and_seeds(name, registry):
    study = _study(name, registry)
    assert study.header.study == name
    text = " ".join(study.header.reproduces.split())
    assert "Li, Wei & Ma" in text or "Nishtala" in text
    assert any(w in text for w in ("table", "Table", "Fig.")), "names the table or figure"
    for number in PAPER_NUMBERS.get(name, []):
        assert number in text, f"{name} quotes the paper's {number}"
    assert "3 seeds" in text and len(study.seeds) == 3
    header = (STUDIES / f"{name}.yaml").read_text().split("\nextends:")[0]
    if name in PAPER_FILES:
        assert "SILENT" in header or "silent" in header, "the header says where the paper is silent"


# ----------------------------------------------------------------- Li, Wei & Ma: the protocol


def _li_common(cfg, data_name: str) -> None:
    assert cfg.model.name == "wrn16" and (cfg.model.depth, cfg.model.widen_factor) == (16, 10)
    assert cfg.model.norm == "batchnorm" and cfg.model.dropout == 0.0
    assert cfg.dataset.name == data_name and cfg.dataset.normalization == "dataset"
    assert cfg.dataset.pad_crop == 0 and not cfg.dataset.hflip, "w/o data augmentation"
    assert cfg.dataset.root is None, "paper-scale data come from $LBGAP_DATA (or base.dataset.root=...)"
    opt = cfg.optimizer
    assert (opt.name, opt.momentum, opt.nesterov, opt.weight_decay) == ("sgd", 0.9, True, 5e-4)
    assert cfg.batch_size == 128 and cfg.grad_clip is None and cfg.regime == []


def _three_arm_recipe(v) -> None:
    """The report's §3.1 recipe: 0.1 annealed to 0.004 at the 30th epoch, 0.004, 0.004 + noise 0.4 → 4e-6."""
    ls, s, sn = v["large_then_small"], v["small"], v["small_noise"]
    for cfg in (ls, s, sn):
        assert cfg.epochs == 60
    assert ls.optimizer.lr == 0.1 and ls.schedule.milestones == [29]  # from the 30th epoch
    assert _lr_after(ls, 28) == 0.1 and _lr_after(ls, 29) == pytest.approx(0.004)
    assert ls.noise == [] and s.noise == []
    assert (s.optimizer.lr, s.schedule.name) == (0.004, "constant")
    assert (sn.optimizer.lr, sn.schedule.name) == (0.004, "constant")
    (noise,) = sn.noise
    assert (noise.name, noise.scale, noise.decay_epoch) == ("preactivation_noise", 0.4, 29)
    assert noise.scale * noise.decay_factor == pytest.approx(4e-6)


def test_li_clean_table_is_the_three_arm_recipe_on_clean_cifar10(registry):
    study = _study("li_cifar10_clean", registry)
    v = study.variants
    assert list(v) == ["large_then_small", "small", "small_noise"]
    for cfg in v.values():
        _li_common(cfg, "cifar10")
        assert cfg.dataset.n_train is None and cfg.dataset.n_test is None
    _three_arm_recipe(v)
    assert v["small_noise"].noise[0].sharing == "batch_and_channels", "the authors' shared spatial map"
    # the same arms, optimizer and schedule as the patch experiment's file, on clean images
    patch = _study("li_patch_cifar10", registry).variants
    for arm, cfg in v.items():
        for field in ("optimizer", "schedule", "noise", "epochs", "batch_size", "model", "eval"):
            assert getattr(cfg, field) == getattr(patch[arm], field), (arm, field)


def test_li_fig1_is_01_against_001_annealed_from_epoch_60(registry):
    v = _study("li_cifar10_fig1", registry).variants
    assert list(v) == ["large", "small"]
    for cfg in v.values():
        _li_common(cfg, "cifar10")
        assert cfg.epochs == 200
        s = cfg.schedule
        assert s.name == "multistep" and s.milestones == [59, 119, 149]  # the 60th, 120th, 150th epoch
        assert s.factors == pytest.approx([0.2, 0.2**2, 0.2**3])
    assert v["large"].optimizer.lr == 0.1 and v["small"].optimizer.lr == 0.01
    # before epoch 60 the rates are the caption's 0.1 and 0.01; the first anneal is at epoch 60
    assert _lr_after(v["large"], 58) == 0.1 and _lr_after(v["large"], 59) == pytest.approx(0.02)
    assert _lr_after(v["small"], 58) == 0.01 and _lr_after(v["small"], 59) == pytest.approx(0.002)
    assert v["small"].model_copy(update={"optimizer": v["large"].optimizer}) == v["large"]


def test_li_wrn16_cifar100_is_fig1s_protocol_on_cifar100(registry):
    fig1 = _study("li_cifar10_fig1", registry).variants
    v = _study("li_wrn16_cifar100", registry).variants
    assert list(v) == ["large", "small"]
    for arm, cfg in v.items():
        _li_common(cfg, "cifar100")
        assert cfg.model_copy(update={"dataset": fig1[arm].dataset}) == fig1[arm]
    assert (v["large"].optimizer.lr, v["small"].optimizer.lr) == (0.1, 0.01)
    assert v["large"].epochs == 200


def test_li_10k_vs_full_is_the_recipe_on_10000_and_50000_images(registry):
    v = _study("li_cifar10_10k_vs_full", registry).variants
    assert list(v) == ["large_then_small_10k", "small_10k", "large_then_small_full", "small_full"]
    clean = _study("li_cifar10_clean", registry).variants
    for arm, cfg in v.items():
        _li_common(cfg, "cifar10")
        base_arm = arm.rsplit("_", 1)[0]
        want = 10_000 if arm.endswith("_10k") else None
        assert cfg.dataset.n_train == want and cfg.dataset.n_test is None, "the full test set in both columns"
        if want:
            assert cfg.dataset.subset == "random" and cfg.dataset.subset_seed == 0, "the same images every trial"
        for field in ("optimizer", "schedule", "noise", "epochs", "batch_size", "model"):
            assert getattr(cfg, field) == getattr(clean[base_arm], field), (arm, field)


# ----------------------------------------------------------------- the SB-vs-LB table: the protocol


@pytest.mark.parametrize("name", list(SB_LB_FILES))
def test_sb_lb_files_follow_hoffers_protocol(name, registry):
    model_name, data_name, n_params = SB_LB_FILES[name]
    study = _study(name, registry)
    assert list(study.variants) == ["sb", "lb"]
    sb, lb = study.variants["sb"], study.variants["lb"]
    assert (sb.batch_size, lb.batch_size) == (128, 4096)
    # the LB column: the small batch's rate, schedule and epochs (no scaling, no regime adaptation)
    assert sb.model_copy(update={"batch_size": 4096}) == lb and lb.regime == []
    opt = sb.optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov) == ("sgd", 0.1, 0.9, False)
    assert sb.epochs == 200 and sb.grad_clip == 5.0
    d = sb.dataset
    assert d.name == data_name and d.n_train is None and d.root is None
    assert (d.normalization, d.pad_crop, d.pad_mode, d.hflip) == ("imagenet", 4, "constant", True)
    assert d.pad_fill == pytest.approx(127 / 255)
    assert sb.eval.bn_mode == "running"
    assert sb.model.name == model_name and sb.model.norm == "batchnorm"
    from lbgap.data import DataInfo

    info = DataInfo(input_shape=(3, 32, 32), num_classes=100 if data_name == "cifar100" else 10)
    model = registry.get("model", model_name).build(sb.model, info=info)
    assert sum(p.numel() for p in model.parameters()) == n_params


def test_sb_lb_regimes_are_the_authors_code(registry):
    """bigBatch's ResNet_cifar10 and WResNet_cifar10 regimes and convNet.pytorch's CIFAR VGG regime."""
    want = {
        # name: (weight decay, {epoch index: learning rate})
        "nishtala_sb_lb_resnet44": (1e-4, {0: 0.1, 81: 1e-2, 122: 1e-3, 164: 1e-4}),
        "nishtala_sb_lb_wrn16_4": (1e-4, {0: 0.1, 60: 2e-2, 120: 4e-3, 140: 1e-4}),
        "nishtala_sb_lb_vgg": (5e-4, {0: 0.1, 60: 0.1 * 0.2, 120: 0.1 * 0.2**2, 160: 0.1 * 0.2**3}),
    }
    for name, (wd, regime) in want.items():
        sb = _study(name, registry).variants["sb"]
        assert sb.optimizer.weight_decay == wd, name
        keys = sorted(regime)
        for i, key in enumerate(keys):
            # the rate from this key's epoch until the next key's
            end = keys[i + 1] - 1 if i + 1 < len(keys) else sb.epochs - 1
            for e in (key, end):
                assert _lr_after(sb, e) == pytest.approx(regime[key]), (name, e)
    vgg = _study("nishtala_sb_lb_vgg", registry).variants["sb"].model
    assert (vgg.depth, vgg.classifier_hidden, vgg.classifier_dropout) == (16, [4096, 4096], 0.5)
    wrn = _study("nishtala_sb_lb_wrn16_4", registry).variants["sb"].model
    assert (wrn.depth, wrn.multiplier) == (16, 4)


def test_the_sb_lb_files_share_one_protocol_file(registry):
    for name in SB_LB_FILES:
        head = (STUDIES / f"{name}.yaml").read_text()
        assert "\nextends: bases/nishtala_sb_lb_protocol.yaml\n" in head
    for name in ("li_cifar10_clean", "li_cifar10_fig1", "li_cifar10_10k_vs_full"):
        assert "\nextends: bases/li_wrn16_protocol.yaml\n" in (STUDIES / f"{name}.yaml").read_text()
    assert "\nextends: li_cifar10_fig1.yaml\n" in (STUDIES / "li_wrn16_cifar100.yaml").read_text()


# ----------------------------------------------------------------- dry runs on synthetic files

#: settings that narrow each network for the default run (the slow run dry-runs the real one)
NARROW = {
    "wrn16": {"model.depth": 10, "model.widen_factor": 1},
    "resnet44": {"model.depth": 8},
    "wrn16_4": {"model.depth": 8, "model.multiplier": 1},
    "vgg": {"model.depth": 11, "model.classifier_hidden": []},
}
#: synthetic training images per CIFAR-10 batch file (5 files), training images of CIFAR-100, test images
PER_BATCH, N_TEST = 12, 50
#: the 10k-vs-full file needs more than 10,000 training images to tell its two columns apart
PER_BATCH_10K = 2_100


def _fake_files():
    """``tests/lbgap_datasets/fake_vision_files.py``: writers of torchvision's CIFAR file layouts."""
    import study_tools

    return study_tools.import_as("fake_vision_files", ROOT / "tests" / "lbgap_datasets" / "fake_vision_files.py")


def _write_data(root: Path, name: str, data_name: str) -> int:
    """Synthetic files for ``name`` under ``root``; the number of training images written."""
    fake = _fake_files()
    if data_name == "cifar100":
        fake.write_cifar100(root, n_train=5 * PER_BATCH, n_test=N_TEST, seed=2)
        return 5 * PER_BATCH
    per_batch = PER_BATCH_10K if name == "li_cifar10_10k_vs_full" else PER_BATCH
    fake.write_cifar10(root, per_batch=per_batch, n_test=N_TEST, seed=1)
    return 5 * per_batch


def _dry_run_on_synthetic_files(name: str, registry, root: Path, monkeypatch, narrow: bool):
    from lbgap.driver.dryrun import dry_run
    from lbgap.engine.train import build_parts
    from lbgap_datasets.common import DatasetFilesMissing

    monkeypatch.setenv("LBGAP_DATA", str(root))
    study = _study(name, registry)
    cell = study.cells()[0]
    data_name = cell.config.dataset.name
    # without the files, the data set names them and the folder
    with pytest.raises(DatasetFilesMissing) as err:
        build_parts(cell.config, cell.seed, registry, torch.device("cpu"))
    folder = "cifar-100-python" if data_name == "cifar100" else "cifar-10-batches-py"
    assert str(root) in str(err.value) and folder in str(err.value)

    n_train = _write_data(root, name, data_name)
    # the synthetic files cannot match torchvision's md5 sums of the official ones
    overrides = {"dataset.verify_md5": False}
    if narrow:
        overrides.update(NARROW[cell.config.model.name])
    report = dry_run(study, device=torch.device("cpu"), overrides=overrides)
    assert not report.failed, [(r.check.label, r.stage, r.error) for r in report.failed]
    assert {r.check.variant for r in report.results} == set(study.variants)
    assert sum(r.check.trials for r in report.results) == len(study.cells())
    for r in report.results:
        cfg, p = r.check.config, r.result
        want = cfg.dataset.n_train or n_train
        assert (p.n_train, p.n_test) == (want, N_TEST), "the files under $LBGAP_DATA were read"
        assert p.batch_size == cfg.batch_size and p.epochs == cfg.epochs
        assert p.steps >= 1
    return study, report


@pytest.mark.parametrize("name", PAPER_FILES)
def test_paper_files_start_under_a_dry_run_on_synthetic_files(name, registry, tmp_path, monkeypatch):
    """Every variant builds its data from the torchvision-format files, trains and evaluates (the
    network narrowed; the real one in the slow test below)."""
    study, report = _dry_run_on_synthetic_files(name, registry, tmp_path, monkeypatch, narrow=True)
    if name == "li_cifar10_10k_vs_full":
        sizes = {r.check.variant: r.result.n_train for r in report.results}
        assert sizes == {"large_then_small_10k": 10_000, "small_10k": 10_000,
                         "large_then_small_full": 5 * PER_BATCH_10K, "small_full": 5 * PER_BATCH_10K}


#: li_cifar10_10k_vs_full has li_cifar10_clean's network and recipe (tested above) and reads 10,500
#: synthetic images: with the real WideResNet-16-10 its dry run takes 9 minutes on two busy cores
REAL_NETWORK_FILES = [n for n in PAPER_FILES if n != "li_cifar10_10k_vs_full"]


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_NETWORK_FILES)
def test_paper_files_start_under_a_dry_run_with_their_real_networks(name, registry, tmp_path, monkeypatch):
    study, report = _dry_run_on_synthetic_files(name, registry, tmp_path, monkeypatch, narrow=False)
    params = {r.result.n_params for r in report.results}
    if name in SB_LB_FILES:
        assert params == {SB_LB_FILES[name][2]}
    else:  # WideResNet-16-10: 17,116,634 parameters for 10 classes
        assert params == ({17_116_634} if study.variants[next(iter(study.variants))].dataset.name == "cifar10"
                          else {17_116_634 + 90 * 641})


@pytest.mark.slow
def test_the_command_line_dry_run_passes_on_synthetic_files(tmp_path):
    """``lbgap study run FILE --dry-run`` with overrides, as docs/reproductions.md gives it."""
    _write_data(tmp_path, "nishtala_sb_lb_resnet44", "cifar10")
    env = {**os.environ, "LBGAP_DATA": str(tmp_path), "OMP_NUM_THREADS": "1"}
    lbgap = Path(sys.executable).with_name("lbgap")
    cmd = [str(lbgap), "study", "run", str(STUDIES / "nishtala_sb_lb_resnet44.yaml"), "--dry-run",
           "base.dataset.verify_md5=false", "base.model.depth=8"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sb" in done.stdout and "lb" in done.stdout


# ----------------------------------------------------------------- the CPU analogue on MNIST-1D


def test_cpu_analogue_runs_the_clean_tables_recipe_on_mnist1d(registry):
    v = _study("li_mnist1d_lr_noise", registry).variants
    assert list(v) == ["large_then_small", "small", "small_noise"]
    paper = _study("li_cifar10_clean", registry).variants
    for arm, cfg in v.items():
        assert cfg.dataset.name == "mnist1d", "generated offline: no download"
        assert cfg.model.name == "mlp" and cfg.model.noise_sites and cfg.model.norm == "batchnorm"
        for field in ("optimizer", "schedule", "epochs", "batch_size", "grad_clip"):
            assert getattr(cfg, field) == getattr(paper[arm], field), (arm, field)
    (noise,), (paper_noise,) = v["small_noise"].noise, paper["small_noise"].noise
    assert noise.model_copy(update={"sharing": paper_noise.sharing}) == paper_noise
    assert noise.sharing == "none", "an MLP has no spatial map to share"
    _three_arm_recipe(v)


@pytest.mark.slow
def test_cpu_analogue_shows_the_papers_ordering(tmp_path, study_tool):
    """The ordering of Li et al.'s table, large_then_small > small_noise > small, in every seed, and
    each gap of the means larger than the sum of the two arms' seed standard deviations
    (docs/reproductions.md, CPU analogue, the table `studies/tools/li_tables.py` prints)."""
    from lbgap.driver.run import run_study

    study = load_study(STUDIES / "li_mnist1d_lr_noise.yaml", load_registry())
    summary = run_study(study, tmp_path, device="cpu")
    with xr.open_dataset(summary.results) as f:
        gaps = study_tool("li_tables").clean_gaps(f.load())
    assert set(gaps) == {("large_then_small", "small_noise"), ("small_noise", "small")}
    for (hi, lo), (gap, spread, every_seed) in gaps.items():
        assert every_seed and gap > spread, (hi, lo, gap, spread)
