"""Metric plugins inside a study: per-epoch scalars and arrays, end-of-training values."""

from __future__ import annotations

import numpy as np
import xarray as xr

from lbgap.driver.run import run_study
from lbgap.registry import load_registry
from lbgap.spec import load_study_text

SPEC = """\
study: metrics_in_study
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 128
  epochs: 3
  metrics:
    - {name: hessian_eigenvalues, k: 2, every: 2, at_end: true, max_samples: 200}
    - {name: hessian_trace, num_probes: 5, max_samples: 200}
seeds: [0]
"""


def test_per_epoch_arrays_and_end_values_land_in_results(tmp_path):
    reg = load_registry()
    summary = run_study(load_study_text(SPEC, "m.yaml", reg), tmp_path, device="cpu")
    ds = xr.open_dataset(summary.results)
    eig = ds["hessian_eigenvalues"].sel(variant="base", seed=0)
    assert eig.dims == ("epoch", "eigen_index") and eig.sizes["eigen_index"] == 2
    # measured at epoch 2 (every: 2) and at the end (epoch 3); not at epoch 1
    assert np.isnan(eig.sel(epoch=1)).all()
    assert np.isfinite(eig.sel(epoch=[2, 3])).all()
    assert (eig.sel(epoch=3)[0] >= eig.sel(epoch=3)[1]).item()  # top eigenvalue first
    top = ds["hessian_top_eigenvalue"].sel(variant="base", seed=0)
    assert top.dims == ("epoch",) and float(top.sel(epoch=3)) == float(eig.sel(epoch=3)[0])
    # an end-of-training metric has no epoch dimension
    assert ds["hessian_trace"].dims == ("variant", "seed")
    assert ds["hessian_eigenvalues"].attrs["units"] and ds["hessian_eigenvalues"].attrs["long_name"]


def test_report_draws_the_curvature_figures(tmp_path):
    from lbgap.measure import measure_study
    from lbgap.report import make_report

    reg = load_registry()
    text = SPEC.replace("  metrics:\n    - {name: hessian_eigenvalues, k: 2, every: 2, at_end: true, max_samples: 200}\n"
                        "    - {name: hessian_trace, num_probes: 5, max_samples: 200}\n", "") + \
        "variants:\n  sb: {}\n  lb: {batch_size: 512}\n"
    run_study(load_study_text(text, "m.yaml", reg), tmp_path, device="cpu")
    measure_study(tmp_path, [{"name": "interpolation", "num_points": 5}], reference_variant="sb", registry=reg)
    md = make_report(tmp_path).read_text()
    assert "Keskar et al. Fig. 3" in md
    assert (tmp_path / "report" / "interpolation.png").stat().st_size > 10_000
