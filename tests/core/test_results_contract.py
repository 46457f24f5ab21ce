"""The results.nc contract of DESIGN.md, checked on a small grid study."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
import xarray as xr

from lbgap.driver.run import run_study
from lbgap.spec import load_study_text

SPEC = """\
study: contract
description: contract check
reproduces: nothing in particular
base:
  dataset: {name: blobs, n_train: 128, n_test: 64}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 2
variants:
  plain: {}
  adapted:
    regime: [{name: regime_adaptation, reference_batch: 16}]
grid:
  optimizer.lr: [0.1, 0.05]
seeds: [0, 1]
"""


def test_results_follow_the_contract(toy_registry, tmp_path):
    study = load_study_text(SPEC, "contract.yaml", toy_registry)
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.open_dataset(tmp_path / "results.nc")
    assert summary.results == tmp_path / "results.nc"
    # dimensions: variant, the grid dimension, seed, epoch
    assert ds["test_accuracy"].dims == ("variant", "lr", "seed", "epoch")
    for name in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_distance", "step"):
        assert ds[name].dims == ("variant", "lr", "seed", "epoch"), name
    # ragged: regime adaptation trains 2x longer (32/16), the plain arm is NaN-padded
    assert ds.sizes["epoch"] == 4
    assert np.isnan(ds["test_accuracy"].sel(variant="plain").isel(epoch=[2, 3])).all()
    assert np.isfinite(ds["test_accuracy"].sel(variant="adapted")).all()
    np.testing.assert_array_equal(ds["step"].sel(variant="adapted", lr=0.1, seed=0).values, [4, 8, 12, 16])
    # end-of-training values have no epoch dimension
    assert ds["wall_time"].dims == ("variant", "lr", "seed")
    assert set(ds["status"].values.ravel()) == {"completed"}
    # units and long names on every variable
    for name, var in ds.variables.items():
        assert "long_name" in var.attrs and "units" in var.attrs, name
    # the spec and its hash, versions, device
    spec = json.loads(ds.attrs["lbgap_spec_json"])
    assert spec["header"]["study"] == "contract"
    assert ds.attrs["lbgap_spec_sha256"] == hashlib.sha256(ds.attrs["lbgap_spec_json"].encode()).hexdigest()
    assert "torch" in json.loads(ds.attrs["lbgap_library_versions_json"])
    assert ds.attrs["device"] == "cpu" and ds.attrs["lbgap_version"]
    # the processor's instruction set, which decides whether another machine gets the same bits
    cpu = json.loads(ds.attrs["lbgap_cpu_json"])
    assert cpu["torch_cpu_capability"] == str(torch.backends.cpu.get_cpu_capability()), cpu
    assert cpu["machine"] and cpu["model"]
    # per-trial files exist and no temporary file is left behind
    trials = sorted(p.name for p in (tmp_path / "trials").iterdir())
    assert len(trials) == 8 and all(t.endswith(".nc") and not t.startswith(".") for t in trials)
    # initial and final weights per trial; the distance recorded matches them
    w = tmp_path / "weights" / "adapted,lr=0.1,seed=1"
    init = torch.load(w / "initial.pt", weights_only=True)
    final = torch.load(w / "final.pt", weights_only=True)
    dist = float(torch.sqrt(sum(((final[k] - init[k]) ** 2).sum() for k in init)))
    recorded = float(ds["weight_distance"].sel(variant="adapted", lr=0.1, seed=1).isel(epoch=-1))
    assert abs(dist - recorded) < 1e-5 * max(1.0, dist)


def test_initial_weights_are_recreated_by_the_seed(toy_registry, tmp_path):
    study = load_study_text(SPEC, "contract.yaml", toy_registry)
    run_study(study, tmp_path, device="cpu", max_trials=1)
    key = study.cells()[0].key
    init = torch.load(tmp_path / "weights" / key / "initial.pt", weights_only=True)
    from lbgap.engine.train import build_parts

    parts = build_parts(study.cells()[0].config, study.cells()[0].seed, toy_registry, torch.device("cpu"))
    for k, v in parts.model.state_dict().items():
        assert torch.equal(v, init[k])


def test_names_of_different_lengths_survive_combining(toy_registry, tmp_path):
    text = SPEC.replace("  plain: {}\n", "  sb: {}\n").replace("  adapted:\n", "  lb_lr_gbn_ra:\n").replace(
        "grid:\n  optimizer.lr: [0.1, 0.05]\n", "grid:\n  optimizer.name: [sgd, adagrad]\n"
    ).replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 2", "epochs: 1")
    study = load_study_text(text, "names.yaml", toy_registry)
    run_study(study, tmp_path, device="cpu")
    ds = xr.open_dataset(tmp_path / "results.nc")
    assert list(ds["variant"].values) == ["sb", "lb_lr_gbn_ra"]
    assert list(ds["name"].values) == ["sgd", "adagrad"]
    assert set(ds["status"].values.ravel()) == {"completed"}


def test_final_values_pick_each_runs_last_epoch():
    from lbgap.results import final_values

    ds = xr.Dataset({"acc": (("variant", "epoch"), [[0.1, 0.2, np.nan], [0.3, 0.4, 0.5], [np.nan] * 3])})
    out = final_values(ds, "acc").values
    assert out[0] == 0.2 and out[1] == 0.5 and np.isnan(out[2])
