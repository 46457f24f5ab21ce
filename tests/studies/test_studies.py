"""The shipped studies: every file validates; the Hoffer study shows the paper's effect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xarray as xr

from lbgap.registry import load_registry
from lbgap.results import final_values
from lbgap.spec import load_study

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_file_validates_and_names_its_source(path):
    study = load_study(path, load_registry())
    assert study.header.reproduces.strip(), "every study names the paper, table or figure it reproduces"
    assert study.cells() or study.search is not None


def _names_in(text: str) -> set[str]:
    """Study file names a document mentions, with ``name_{a,b}.yaml`` groups expanded."""
    names = set(re.findall(r"\b([a-z0-9_]+)\.yaml\b", text))
    for head, alternatives, tail in re.findall(r"\b([a-z0-9_]+)\{([a-z0-9_,]+)\}([a-z0-9_]*)\.yaml\b", text):
        names.update(head + alt + tail for alt in alternatives.split(","))
    return names


def test_every_study_has_its_entry_in_the_reproductions_document():
    mentioned = _names_in((ROOT / "docs" / "reproductions.md").read_text())
    assert _names_in("x_{a,b}.yaml and y.yaml") == {"x_a", "x_b", "y"}
    missing = [p.stem for p in STUDIES if p.stem not in mentioned]
    assert not missing, f"docs/reproductions.md says nothing of {missing}"


def test_hoffer_regime_arms_are_the_papers_columns():
    study = load_study(ROOT / "studies" / "hoffer_regime.yaml", load_registry())
    assert list(study.variants) == ["sb", "lb", "lb_lr", "lb_lr_gbn", "lb_lr_gbn_ra"]
    assert len(study.seeds) >= 3
    v = study.variants
    sb, lb = v["sb"].batch_size, v["lb"].batch_size
    assert lb >= 8 * sb
    # the ghost size and the reference batch are the small batch, as in the paper
    assert v["lb_lr_gbn"].model.norm == "ghost" and v["lb_lr_gbn"].model.ghost_size == sb
    assert [r.name for r in v["lb_lr_gbn_ra"].regime] == ["lr_scaling", "regime_adaptation"]
    assert all(r.reference_batch == sb for r in v["lb_lr_gbn_ra"].regime)
    assert v["lb"].regime == [] and v["lb"].model.norm == "batchnorm"


#: the seeds the Hoffer claims rest on (docs/reproductions.md): the study's own three give `make study`
#: its time; with three, two of the claims sat at the edge of the spread and changed side between processors
HOFFER_CLAIM_SEEDS = "seeds=[0,1,2,3,4,5,6,7]"


@pytest.mark.slow
def test_hoffer_regime_shows_the_gap_and_its_closing(tmp_path, study_tool):
    """docs/reproductions.md's Hoffer table, 8 seeds: every arm fits its training set, so the gap is one of
    generalization; the gap and the remedies' gains have 95 % bootstrap intervals above zero
    (studies/tools/hoffer_tables.py computes them), and +RA ends about a point below SB."""
    from lbgap.driver.run import run_study

    study = load_study(ROOT / "studies" / "hoffer_regime.yaml", load_registry(), [HOFFER_CLAIM_SEEDS])
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    assert ds.sizes["seed"] == 8
    train = final_values(ds, "train_accuracy") * 100
    # the confound check: the small batch (and every other arm) fits its training set
    assert float(train.min()) >= 99.0, train.to_pandas()
    gains = study_tool("hoffer_tables").regime_gains(ds)
    gap, low, _, _ = gains["sb", "lb"]
    assert gap >= 3.0 and low > 0, gains["sb", "lb"]
    # sqrt scaling, then regime adaptation on top of it, each gain above zero with its interval
    for pair in (("lb_lr", "lb"), ("lb_lr_gbn_ra", "lb_lr")):
        assert gains[pair][1] > 0, (pair, gains[pair])
    # ghost batch norm does not cost accuracy on top of sqrt scaling (its gain is not resolved either)
    assert gains["lb_lr_gbn", "lb_lr"][2] > 0, gains["lb_lr_gbn", "lb_lr"]
    # regime adaptation closes most of the gap, and ends below SB by about a point (interval above zero)
    assert gains["lb_lr_gbn_ra", "lb"][0] >= 0.6 * gap
    behind, low, _, _ = gains["sb", "lb_lr_gbn_ra"]
    assert low > 0 and behind < 2.0, gains["sb", "lb_lr_gbn_ra"]


@pytest.mark.slow
def test_hoffer_ghost_bn_sizes(tmp_path, study_tool):
    """docs/reproductions.md's ghost-size table, 8 seeds: at this scale no ghost size gains over plain
    BatchNorm at the large batch (every gain's 95 % bootstrap interval reaches below zero), and ghosts of
    8 underfit and lose (their interval below zero)."""
    from lbgap.driver.run import run_study

    study = load_study(ROOT / "studies" / "hoffer_ghost_bn.yaml", load_registry())
    assert study.variants["ghost_64"].model.ghost_size == 64 and study.variants["bn"].model.norm == "batchnorm"
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    assert ds.sizes["seed"] == 8
    train = final_values(ds, "train_accuracy") * 100
    gains = study_tool("hoffer_tables").ghost_gains(ds)
    assert set(gains) == {"ghost_128", "ghost_64", "ghost_32", "ghost_16", "ghost_8"}
    for v, (_gain, low, _high, _spread) in gains.items():
        assert low < 0, (v, gains[v])
    assert float(train.sel(variant="ghost_8").max()) < 99.0
    gain, _low, high, _spread = gains["ghost_8"]
    assert gain < -2.0 and high < 0, gains["ghost_8"]
