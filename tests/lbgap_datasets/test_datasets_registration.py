"""The package registers every dataset plugin through the entry point."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from lbgap.data import InMemoryData
from lbgap.plugin import DatasetPlugin
from lbgap.registry import load_registry

EXPECTED = {"mnist1d", "mnist", "cifar10", "cifar100", "patch_cifar10", "digits", "timit_frames"}


def test_entry_point_registers_all_datasets():
    reg = load_registry()
    assert not [f for f in reg.failures if f.name == "datasets"]
    datasets = {name: rec for name, rec in reg.of_kind("dataset").items() if rec.origin == "lbgap"}
    assert EXPECTED <= set(datasets)
    for name in EXPECTED:
        rec = datasets[name]
        assert isinstance(rec, DatasetPlugin)
        assert rec.describe(), name
        assert "name" not in rec.config.model_fields
        for field_name, info in rec.config.model_fields.items():
            assert info.description, f"{name}.{field_name} has no description"
        with pytest.raises(ValidationError):
            rec.config(no_such_setting=1)


def test_digits_build_through_the_registry():
    rec = load_registry().get("dataset", "digits")
    data = rec.build(rec.config(), seed=0, device=torch.device("cpu"))
    assert isinstance(data, InMemoryData) and data.train_x.dtype == torch.float32
