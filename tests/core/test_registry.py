"""Plugin discovery: entry points, duplicates, failures, the hook reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbgap import hookimpl
from lbgap.plugin import ModelPlugin, PluginConfig
from lbgap.registry import DuplicatePluginError, Registry, load_registry

ROOT = Path(__file__).resolve().parents[2]


class _Cfg(PluginConfig):
    """A config."""


class _Dup:
    @staticmethod
    @hookimpl
    def lbgap_register_models():
        return [ModelPlugin(name="tiny_mlp", config=_Cfg, build=lambda cfg, info: None)]


class _Broken:
    @staticmethod
    @hookimpl
    def lbgap_register_models():
        raise RuntimeError("cannot find my weights")


class _Wrong:
    @staticmethod
    @hookimpl
    def lbgap_register_models():
        return ["not a record"]


def test_duplicate_names_fail(toy_registry):
    import toy_plugins

    with pytest.raises(DuplicatePluginError, match="'tiny_mlp' is provided by both tests and thirdparty"):
        Registry.from_plugins([("toy", toy_plugins, "tests", "0"), ("dup", _Dup(), "thirdparty", "1.0")])


def test_failing_registration_is_reported_and_others_work():
    import toy_plugins

    reg = Registry.from_plugins(
        [("broken", _Broken(), "brokenpkg", "0.1"), ("wrong", _Wrong(), "wrongpkg", "0.1"), ("toy", toy_plugins, "tests", "0")]
    )
    reasons = {f.name: f.reason for f in reg.failures}
    assert "cannot find my weights" in reasons["broken"]
    assert "returned str" in reasons["wrong"]
    assert "tiny_mlp" in reg.of_kind("model")


def test_entry_point_that_fails_to_import_is_reported(tmp_path, monkeypatch):
    dist = tmp_path / "lbgap_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lbgap-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lbgap]\nbroken = lbgap_broken_missing_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = load_registry()
    failure = [f for f in reg.failures if f.name == "broken"]
    assert failure and failure[0].origin == "lbgap-broken"
    assert "ModuleNotFoundError" in failure[0].reason
    # the built-in plugins still load, through the same entry-point group
    assert {"sgd", "adam", "adagrad"} <= set(reg.of_kind("optimizer"))
    assert "mnist1d" in reg.of_kind("dataset") and "mlp" in reg.of_kind("model")


def test_one_package_visible_twice_is_not_a_clash(tmp_path, monkeypatch):
    # an editable install and a copy in site-packages: the same distribution, two paths
    for folder in ("a", "b"):
        dist = tmp_path / folder / "lbgap_twice-0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {'lbgap_twice' if folder == 'a' else 'lbgap-twice'}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[lbgap]\ntwice = lbgap_twice_plugin\n")
        monkeypatch.syspath_prepend(str(tmp_path / folder))
    (tmp_path / "a" / "lbgap_twice_plugin.py").write_text("X = 1\n")
    reg = load_registry()
    assert "twice" in reg.packages and not [f for f in reg.failures if f.name == "twice"]


def test_two_packages_with_one_entry_point_name_fail_naming_both(tmp_path, monkeypatch):
    for dist_name in ("firstpkg", "secondpkg"):
        dist = tmp_path / f"{dist_name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[lbgap]\nshared_name = {dist_name}_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DuplicatePluginError, match="'shared_name' .* both (firstpkg|secondpkg) .* and (firstpkg|secondpkg)"):
        load_registry()


def test_builtins_come_from_entry_points():
    import importlib.metadata as md

    names = {ep.value for ep in md.entry_points(group="lbgap")}
    assert {"lbgap_training", "lbgap_datasets", "lbgap_models", "lbgap_curvature", "lbgap_synthetic"} <= names
    reg = load_registry()
    assert not [f for f in reg.failures if f.origin == "lbgap"], reg.failures


def test_hook_reference_is_current():
    from lbgap.docgen import hook_reference

    committed = (ROOT / "docs" / "hooks.md").read_text()
    assert committed == hook_reference(), "run `python -m lbgap.docgen docs/hooks.md`"


def test_every_hook_is_documented():
    from lbgap import hookspecs
    from lbgap.docgen import _hooks

    hooks = _hooks()
    assert len(hooks) >= 14
    for name, fn in hooks:
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, f"{name} lacks a docstring"
    assert hookspecs.__doc__


def test_plugin_summary_joins_the_first_paragraph():
    class Cfg(PluginConfig):
        """First line
        continues here.

        Details.
        """

    rec = ModelPlugin(name="x", config=Cfg, build=lambda c, info: None)
    assert rec.describe() == "First line continues here."


def test_schema_lists_installed_plugins():
    from lbgap.spec.schema import study_json_schema

    schema = study_json_schema(load_registry())
    text = str(schema)
    for name in ("mnist1d", "mlp", "sgd", "lr_scaling", "regime_adaptation"):
        assert f"'{name}'" in text
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "Variant" in schema["$defs"]
