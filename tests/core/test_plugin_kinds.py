"""Each plugin kind is declared once (lbgap.plugin.KINDS); the registry, the study spec and the
docs follow that table."""

from __future__ import annotations

import inspect
import typing

from lbgap import hookspecs
from lbgap.docgen import kinds_table
from lbgap.plugin import KINDS, PLUGIN_KINDS, Nested
from lbgap.registry import REGISTER_HOOKS
from lbgap.spec.model import trial_config_model


def test_every_kind_has_its_registration_hook_returning_its_record():
    for kind in KINDS:
        assert kind.record.kind == kind.name
        fn = getattr(hookspecs, kind.hook)
        assert hasattr(fn, "lbgap_spec"), f"{kind.hook} is not a hook specification"
        returned = typing.get_type_hints(fn, vars(hookspecs) | {k.record.__name__: k.record for k in KINDS})["return"]
        assert typing.get_args(returned) == (kind.record,), f"{kind.hook} returns {returned}"
    register_hooks = {n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("lbgap_register_")}
    assert register_hooks == {k.hook for k in KINDS}, "a registration hook without a kind, or a kind without one"


def test_the_registry_and_the_spec_are_derived_from_the_table(toy_registry):
    assert REGISTER_HOOKS == {k.name: k.hook for k in KINDS}
    assert PLUGIN_KINDS == {k.name: k.record for k in KINDS}
    fields = trial_config_model(toy_registry).model_fields
    for kind in KINDS:
        assert kind.field in fields, f"the trial config has no field {kind.field!r} for {kind.name} plugins"
        assert fields[kind.field].description == kind.doc
        many = typing.get_origin(fields[kind.field].annotation) is list
        assert many == kind.many, kind.name
    # a kind with a default: a study that leaves the field out gets that plugin
    model = trial_config_model(toy_registry)
    for kind in KINDS:
        if kind.default is not None:
            assert fields[kind.field].default_factory is not None
            assert fields[kind.field].default_factory().name == kind.default["name"], model


def test_only_plain_kinds_can_be_nested():
    for kind in KINDS:
        if kind.plain:
            assert Nested(kind.name).kind == kind.name
        else:
            try:
                Nested(kind.name)
            except ValueError as exc:
                assert "cannot be nested" in str(exc)
            else:
                raise AssertionError(f"{kind.name} plugins were accepted as nested")


def test_the_hook_reference_lists_every_kind():
    table = "\n".join(kinds_table())
    for kind in KINDS:
        assert f"| {kind.name} | `{kind.record.__name__}` | `{kind.hook}` |" in table
