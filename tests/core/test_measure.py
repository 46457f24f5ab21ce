"""Metrics after the fact on a finished study's saved weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from lbgap.driver.run import run_study
from lbgap.measure import MeasureError, measure_study
from lbgap.registry import load_registry
from lbgap.spec import load_study_text

SPEC = """\
study: measured
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16], norm: batchnorm}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 64
  epochs: 2
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0, 1]
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    reg = load_registry()
    out = tmp_path_factory.mktemp("measured")
    run_study(load_study_text(SPEC, str(out / "s.yaml"), reg), out, device="cpu")
    return out, reg


def test_distance_between_minimizers_matches_the_saved_weights(finished):
    out, reg = finished
    ds = measure_study(out, [{"name": "minimizer_distance"}], reference_variant="sb", registry=reg)
    assert ds["distance_to_reference"].dims == ("variant", "seed")
    np.testing.assert_allclose(ds["distance_to_reference"].sel(variant="sb").values, 0.0, atol=1e-6)
    a = torch.load(out / "weights" / "lb,seed=1" / "final.pt", weights_only=True)
    b = torch.load(out / "weights" / "sb,seed=1" / "final.pt", weights_only=True)
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    expected = float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in params)))
    assert float(ds["distance_to_reference"].sel(variant="lb", seed=1)) == pytest.approx(expected, rel=1e-5)
    reread = xr.open_dataset(out / "results.nc")
    assert "distance_to_reference" in reread and "lbgap measure" in reread.attrs["history"]
    assert reread["distance_to_reference"].attrs["reference_variant"] == "sb"


def test_bad_metric_config_is_refused(finished):
    out, reg = finished
    with pytest.raises(MeasureError, match="unknown metric plugin 'sharpnes'"):
        measure_study(out, [{"name": "sharpnes"}], registry=reg)
    with pytest.raises(MeasureError, match="unknown reference variant"):
        measure_study(out, [{"name": "minimizer_distance"}], reference_variant="xl", registry=reg)


def test_reparameterized_sweep_on_saved_weights(finished):
    """``lbgap measure`` with a metric that holds other metrics: the layer in front of BatchNorm × α."""
    out, reg = finished
    sweep = {
        "name": "reparameterized",
        "transform": "bn_alpha_scale",
        "layers": ["1"],
        "batchnorm": "2",
        "alphas": [0.1, 1.0, 10.0],
        "metrics": [{"name": "hessian_trace", "num_probes": 3, "max_samples": 100}],
    }
    ds = measure_study(out, [sweep], registry=reg)
    trace = ds["reparam_hessian_trace"]
    assert trace.dims == ("variant", "seed", "reparam_alpha") and np.isfinite(trace).all()
    assert float(ds["reparam_logit_max_rel_change"].max()) <= 1e-5
    acc = ds["reparam_test_accuracy"]
    np.testing.assert_array_equal(acc, acc.sel(reparam_alpha=1.0).broadcast_like(acc))
    bad = {**sweep, "metrics": [{"name": "hessian_trace", "num_probes": 1}]}
    with pytest.raises(
        MeasureError, match=r"metric reparameterized: metrics\.0\.num_probes: Input should be greater"
    ):
        measure_study(out, [bad], registry=reg)
