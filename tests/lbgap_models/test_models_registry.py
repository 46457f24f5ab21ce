"""lbgap_models through the real plugin registry and the study-spec models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from torch import nn

import lbgap_models
from lbgap.data import DataInfo
from lbgap.nn import batchnorm_layers
from lbgap.registry import load_registry
from lbgap.spec.model import plugin_config_model
from lbgap_models.ghost_batchnorm import GhostBatchNorm

NAMES = {"mlp", "f1", "f2", "c1", "c2", "c3", "c4", "resnet44", "wrn16_4", "vgg", "wrn16", "two_layer_relu"}

#: BatchNorm models with small settings, and data shapes they accept
BN_MODELS = [
    ("mlp", {"norm": "batchnorm", "hidden": [8, 8]}, DataInfo((5,), 3)),
    ("f1", {}, DataInfo((1, 28, 28), 10)),
    ("f2", {}, DataInfo((360,), 1973)),
    ("c1", {}, DataInfo((3, 32, 32), 10)),
    ("c3", {"variant": "hoffer"}, DataInfo((3, 32, 32), 100)),
    ("c2", {}, DataInfo((3, 32, 32), 10)),
    ("c4", {}, DataInfo((3, 32, 32), 100)),
    ("resnet44", {"depth": 8}, DataInfo((3, 32, 32), 10)),
    ("wrn16_4", {"multiplier": 1}, DataInfo((3, 32, 32), 100)),
    ("vgg", {"depth": 11, "classifier_hidden": []}, DataInfo((3, 32, 32), 10)),
    ("wrn16", {"widen_factor": 1}, DataInfo((3, 32, 32), 10)),
]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_every_model_is_registered_without_failure(registry):
    assert not [f for f in registry.failures if f.name == "models" or "lbgap_models" in f.reason]
    models = registry.of_kind("model")
    assert NAMES <= set(models)
    assert {r.name for r in lbgap_models.model_plugins()} == NAMES
    for name in NAMES:
        rec = models[name]
        assert rec.origin == "lbgap"
        first_line = rec.config.__doc__.strip().splitlines()[0]
        assert rec.describe() == first_line and len(first_line) > 20


@pytest.mark.parametrize("name", sorted(NAMES))
def test_spec_model_validates_defaults_and_forbids_unknown_keys(registry, name):
    model = plugin_config_model(registry.get("model", name))
    cfg = model.model_validate({"name": name})
    assert cfg.name == name
    for field, info in type(cfg).model_fields.items():
        if field != "name":
            assert info.description, f"{name}.{field} has no description"
    with pytest.raises(ValidationError):
        model.model_validate({"name": name, "no_such_field": 1})


@pytest.mark.parametrize(("name", "bad"), [
    ("mlp", {"ghost_size": 0}),
    ("f1", {"norm": "layernorm"}),
    ("f1", {"momentum_policy": "sometimes"}),
    ("c1", {"dense_dropout": 1.0}),
    ("c1", {"variant": "paper"}),
    ("resnet44", {"bn_momentum": 0.0}),
    ("wrn16", {"depth": 15}),
    ("vgg", {"depth": 12}),
    ("two_layer_relu", {"tau0": -1.0}),
])  # fmt: skip
def test_impossible_values_fail_validation(registry, name, bad):
    with pytest.raises(ValidationError):
        plugin_config_model(registry.get("model", name)).model_validate({"name": name, **bad})


@pytest.mark.parametrize(("name", "settings", "info"), BN_MODELS, ids=[m[0] for m in BN_MODELS])
def test_ghost_batch_norm_is_selectable_in_every_batchnorm_model(registry, name, settings, info):
    rec = registry.get("model", name)
    config = plugin_config_model(rec)
    plain = rec.build(config.model_validate({"name": name, **settings}), info=info)
    ghost = rec.build(
        config.model_validate({"name": name, **settings, "norm": "ghost", "ghost_size": 16}), info=info
    )
    plain_bn, ghost_bn = batchnorm_layers(plain), batchnorm_layers(ghost)
    assert plain_bn and not any(isinstance(m, GhostBatchNorm) for m in plain_bn)
    assert len(ghost_bn) == len(plain_bn)
    assert all(isinstance(m, GhostBatchNorm) and m.ghost_size == 16 for m in ghost_bn)
    assert [m.num_features for m in ghost_bn] == [m.num_features for m in plain_bn]
    assert sum(p.numel() for p in ghost.parameters()) == sum(p.numel() for p in plain.parameters())
    none = rec.build(config.model_validate({"name": name, **settings, "norm": "none"}), info=info)
    assert not batchnorm_layers(none)
    assert isinstance(none, nn.Module)
