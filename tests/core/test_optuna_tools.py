"""What Optuna's own tools (optuna-dashboard, optuna.load_study) see of a run's storage."""

from __future__ import annotations

import optuna

from lbgap.driver.run import run_study
from lbgap.driver.storage import make_storage
from lbgap.spec import load_study_text

GRID = """\
study: tools
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 3
variants:
  a: {}
grid:
  optimizer.lr: [0.1, 0.01]
seeds: [0]
"""

SEARCH = """\
study: tools_search
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 2
search:
  n_trials: 2
  params:
    batch_size: {type: pow2, low: 16, high: 64}
  sampler: {type: random, seed: 0}
seeds: [0]
"""


def _load(study, out):
    return optuna.load_study(study_name=f"{study.name}-{study.spec_hash[:12]}", storage=make_storage(out, None))


def test_grid_trials_say_which_cell_they_are_and_report_every_epoch(toy_registry, tmp_path):
    study = load_study_text(GRID, "tools.yaml", toy_registry)
    run_study(study, tmp_path, device="cpu", jobs=1)
    ostudy = _load(study, tmp_path)
    assert ostudy.metric_names == ["test_accuracy"]
    assert ostudy.user_attrs["spec_sha256"] == study.spec_hash and ostudy.user_attrs["lbgap_version"]
    trials = ostudy.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for t in trials:
        assert t.user_attrs["variant"] == "a" and t.user_attrs["seed"] == 0
        (lr,) = t.user_attrs["grid_point"].values()
        assert lr in (0.1, 0.01)
        assert (tmp_path / t.user_attrs["trial_file"]).exists()
        assert sorted(t.intermediate_values) == [1, 2, 3]  # the dashboard's learning curves
        assert t.intermediate_values[3] == t.value


def test_search_trials_carry_their_real_values(toy_registry, tmp_path):
    study = load_study_text(SEARCH, "tools_search.yaml", toy_registry)
    run_study(study, tmp_path, device="cpu", jobs=1)
    ostudy = _load(study, tmp_path)
    for t in ostudy.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert t.user_attrs["values"]["batch_size"] in (16, 32, 64)  # not log2(batch_size)
        assert 2 ** t.params["log2(batch_size)"] == t.user_attrs["values"]["batch_size"]
        assert all((tmp_path / f).exists() for f in t.user_attrs["trial_files"])
