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


@pytest.mark.slow
def test_hoffer_regime_shows_the_gap_and_its_closing(tmp_path):
    from lbgap.driver.run import run_study

    study = load_study(ROOT / "studies" / "hoffer_regime.yaml", load_registry())
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    final = final_values(ds, "test_accuracy").mean("seed") * 100
    assert float(final.sel(variant="sb") - final.sel(variant="lb")) >= 3.0
    assert float(final.sel(variant="lb_lr_gbn_ra")) >= float(final.sel(variant="sb")) - 1.0
    assert float(final.sel(variant="lb_lr")) > float(final.sel(variant="lb"))
