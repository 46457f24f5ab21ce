"""Every plugin value in a trial's results is traced to its writer; clashes are errors naming both."""

from __future__ import annotations

import pytest
import torch

from lbgap import hookimpl
from lbgap.engine.train import build_parts, run_trial
from lbgap.provenance import OutputClashError
from lbgap.spec import load_study_text

CPU = torch.device("cpu")
SPEC = """\
study: prov
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.05}
  batch_size: 32
  epochs: 2
"""


class _Metric:
    def __init__(self, values: dict[str, float], every=1, at_end=False) -> None:
        self.values, self.every, self.at_end = values, every, at_end

    def compute(self, ctx):
        return dict(self.values)


class _EpochWriter:
    def __init__(self, key: str) -> None:
        self.key = key

    @hookimpl
    def lbgap_epoch_end(self, trial, record):
        record[self.key] = 1.0


def _run(registry, metrics=(), writers=()):
    cfg = load_study_text(SPEC, "prov.yaml", registry).resolve("base", {})
    parts = build_parts(cfg, 0, registry, CPU)
    parts.metrics.extend(metrics)
    names = []
    for i, w in enumerate(writers):
        registry.pm.register(w, name=f"writer{i}")
        names.append(f"writer{i}")
    try:
        return run_trial(cfg, 0, registry=registry, device=CPU, parts=parts)
    finally:
        for n in names:
            registry.pm.unregister(name=n)


def test_a_metric_returning_a_core_variable_is_an_error(toy_registry):
    with pytest.raises(OutputClashError, match="test_accuracy"):
        _run(toy_registry, metrics=[_Metric({"test_accuracy": 1.0})])


def test_two_metrics_writing_one_variable_is_an_error(toy_registry):
    with pytest.raises(OutputClashError, match="both write the results variable 'shared'"):
        _run(toy_registry, metrics=[_Metric({"shared": 1.0}), _Metric({"shared": 2.0})])


def test_two_hook_implementations_writing_one_key_is_an_error(toy_registry):
    with pytest.raises(OutputClashError, match="'extra'"):
        _run(toy_registry, writers=[_EpochWriter("extra"), _EpochWriter("extra")])


def test_every_plugin_value_names_its_writer(toy_registry):
    out = _run(toy_registry, metrics=[_Metric({"mine": 3.0})], writers=[_EpochWriter("hooked")])
    assert out.history["mine"] == [3.0, 3.0] and out.history["hooked"] == [1.0, 1.0]
    assert "_Metric" in out.variable_attrs["mine"]["source"]
    assert "_EpochWriter" in out.variable_attrs["hooked"]["source"]
