"""``lbgap schema``: a JSON Schema (draft 2020-12) that a generic validator (the ``jsonschema``
package) applies with the same verdicts as ``lbgap study validate``, on every shipped study, the
example plugin's study and the tests' specs, and that points an error at the plugin a section names."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from lbgap.registry import Registry
from lbgap.spec import SpecError, load_study_text
from lbgap.spec.schema import DRAFT, study_json_schema
from lbgap.spec.yamlio import YAMLSyntaxError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))
#: partial studies that shipped studies extend: not studies on their own, so the schema (which
#: requires a study's name, network and data set) applies to them only as part of a resolved study
BASES = sorted((ROOT / "studies" / "bases").glob("*.yaml"))


def _module(name: str, path: Path):
    import study_tools

    return study_tools.import_as(name, path)


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Every installed plugin, the tests' toy plugins and the example plugin package."""
    plugins = []
    for ep in sorted(md.entry_points(group="lbgap"), key=lambda e: e.name):
        try:
            plugins.append((ep.name, ep.load(), "installed", "0"))
        except Exception:  # a plugin that fails to import is reported by the registry, not here
            continue
    plugins.append(("toy", sys.modules["toy_plugins"], "tests", "0"))
    example = ROOT / "examples" / "lbgap-example-plugin" / "lbgap_example" / "__init__.py"
    plugins.append(("example", _module("lbgap_example", example), "lbgap-example-plugin", "0"))
    plugins.append(("nested", NESTED._NestedMetrics(), "tests", "0"))
    return Registry.from_plugins(plugins)


@pytest.fixture(scope="module")
def schema(registry) -> dict:
    return study_json_schema(registry)


@pytest.fixture(scope="module")
def validator(schema) -> Draft202012Validator:
    return Draft202012Validator(schema)


def _verdicts(text: str, registry, validator, file: str = "spec.yaml") -> tuple[bool, bool, list[str]]:
    """(validate accepts, the schema accepts, the schema's messages); ``file`` names the text's
    file, from whose folder an ``extends`` is read."""
    data = load_yaml(file, text).data
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    try:
        load_study_text(text, file, registry)
        accepted = True
    except SpecError:
        accepted = False
    return accepted, not errors, errors


def _test_specs() -> list[tuple[str, str]]:
    """Module-level study texts of the test suite (``NAME = \"\"\"study: ...\"\"\"``)."""
    out = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and node.value.value.lstrip().startswith(("study:", "#"))
                and "\nbase:" in node.value.value
            ):
                out.append((f"{path.relative_to(ROOT)}:{node.targets[0].id}", node.value.value))
    return out


TEST_SPECS = _test_specs()


def test_schema_is_draft_2020_12_without_discriminator(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT
    assert '"discriminator"' not in json.dumps(schema)


@pytest.mark.parametrize("spec", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_studies_are_accepted_by_both(spec, registry, validator):
    accepted, schema_ok, errors = _verdicts(spec.read_text(), registry, validator, str(spec))
    assert accepted
    assert schema_ok, errors
    # the resolved study too: what the files it extends contribute is checked as a whole study
    resolved = load_study_text(spec.read_text(), str(spec), registry).text
    accepted, schema_ok, errors = _verdicts(resolved, registry, validator, str(spec))
    assert accepted and schema_ok, errors


def test_every_base_is_extended_by_a_shipped_study(registry):
    """A base is checked through the studies that extend it; one that none extends would go unchecked."""
    extended = {
        Path(source).resolve()
        for spec in STUDIES
        for source in load_study_text(spec.read_text(), str(spec), registry).sources[1:]
    }
    assert BASES and {b.resolve() for b in BASES} <= extended


def test_the_tests_specs_are_found():
    names = {name for name, _ in TEST_SPECS}
    assert "tests/conftest.py:TOY_SPEC" in names and "tests/core/test_spec_errors.py:GOOD" in names
    assert "tests/core/test_example_plugin.py:STUDY" in names


@pytest.mark.parametrize("name,text", TEST_SPECS, ids=[n for n, _ in TEST_SPECS])
def test_the_tests_specs_get_the_same_verdict(name, text, registry, validator):
    accepted, schema_ok, errors = _verdicts(text, registry, validator)
    assert accepted == schema_ok, errors


# checks across settings that JSON Schema cannot express (see lbgap/spec/schema.py)
BEYOND_JSON_SCHEMA = {
    "plugin-constraint",  # a plugin's own validator (nesterov needs momentum)
    "schedule-milestones",  # idem (strictly increasing)
    "grid-bad-value",  # the values fit the setting the path names
    "grid-unknown-path",  # the path names a setting
    "warm-start-unknown",  # the warm start names a declared variant
    "search-bad-bounds",  # low < high
    "search-unknown-path",  # the path names a setting
    "search-with-grid",  # a grid dimension is not also searched
}


NESTED = _module("lbgap_test_nested_plugins", ROOT / "tests" / "core" / "test_nested_plugins.py")


@pytest.mark.parametrize("case", NESTED.CASES, ids=[c[0] for c in NESTED.CASES])
def test_bad_nested_plugin_entries_are_rejected_by_both(case, registry, validator):
    _id, old, new = case[:3]
    assert old in NESTED.GOOD
    accepted, schema_ok, errors = _verdicts(NESTED.GOOD.replace(old, new), registry, validator)
    assert not accepted and not schema_ok


def _spec_error_cases():
    module = _module("lbgap_test_spec_errors", ROOT / "tests" / "core" / "test_spec_errors.py")
    return module.CASES


CASES = _spec_error_cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_specs_are_rejected_by_both(case, registry, validator):
    case_id, text = case[0], case[1]
    try:
        load_yaml("spec.yaml", text)
    except YAMLSyntaxError:
        pytest.skip("not YAML that a schema applies to")
    accepted, schema_ok, errors = _verdicts(text, registry, validator)
    assert not accepted
    assert schema_ok == (case_id in BEYOND_JSON_SCHEMA), errors


HOFFER = (ROOT / "studies" / "hoffer_regime.yaml").read_text()


def _edit(old: str, new: str) -> str:
    assert old in HOFFER, old
    return HOFFER.replace(old, new, 1)


VARIANT_CASES = [
    # (id, text, accepted by both)
    ("override-without-name", _edit("  sb: {}", "  sb: {model: {norm: ghost, ghost_size: 64}}"), True),
    ("override-with-base-name", _edit("  sb: {}", "  sb: {optimizer: {name: sgd, lr: 0.1}}"), True),
    ("other-plugin-with-settings", _edit("  sb: {}", "  sb: {optimizer: {name: adam, lr: 0.001}}"), True),
    ("override-unknown-key", _edit("  sb: {}", "  sb: {model: {widht: 3}}"), False),
    ("override-key-of-another-plugin", _edit("  sb: {}", "  sb: {optimizer: {betas: [0.9, 0.99]}}"), False),
    ("override-bad-value", _edit("  sb: {}", "  sb: {optimizer: {lr: -1.0}}"), False),
    ("other-plugin-bad-key", _edit("  sb: {}", "  sb: {optimizer: {name: adam, momentum: 0.9}}"), False),
    ("unknown-plugin", _edit("  sb: {}", "  sb: {optimizer: {name: sgdd}}"), False),
    ("null-variant", _edit("  sb: {}", "  sb:"), True),
    ("list-item-without-name", _edit("  sb: {}", "  sb: {regime: [{rule: sqrt, reference_batch: 64}]}"), False),
    ("study-dots", _edit("study: hoffer_regime", "study: '..'"), False),
    ("variant-dots", _edit("  sb: {}", "  '..': {}"), False),
    ("lr-inf", _edit("lr: 0.05", "lr: .inf"), False),
    ("weight-decay-inf", _edit("weight_decay: 1.0e-4", "weight_decay: .inf"), False),
    ("batch-size-true", _edit("  batch_size: 64", "  batch_size: true"), False),
    ("batch-size-string", _edit("  batch_size: 64", "  batch_size: '64'"), False),
    ("seed-too-large", _edit("seeds: [0, 1, 2]", "seeds: [4294967296]"), False),
    ("seed-largest", _edit("seeds: [0, 1, 2]", "seeds: [4294967295]"), True),
    ("seeds-repeated", _edit("seeds: [0, 1, 2]", "seeds: [0, 0]"), False),
    ("grid-ok", HOFFER + "grid:\n  optimizer.lr: [0.01, 0.1]\n", True),
    ("grid-reserved", HOFFER + "grid:\n  model.seed: [1]\n", False),
    ("grid-bad-path", HOFFER + "grid:\n  optimizer/lr: [0.1]\n", False),
    ("grid-index-last", HOFFER + "grid:\n  model.hidden.0: [8]\n", False),
    ("grid-empty", HOFFER + "grid:\n  optimizer.lr: []\n", False),
    ("search-and-variants", HOFFER + "search:\n  params:\n    optimizer.lr: {type: float, low: 0.1, high: 1.0}\n", False),
    ("search-missing-high", _edit("variants:", "search:\n  params:\n    optimizer.lr: {type: float, low: 0.1}\nvariants:"), False),
    ("search-pow2-not-power", _edit("variants:", "search:\n  params:\n    batch_size: {type: pow2, low: 3, high: 64}\nvariants:"), False),
    ("search-categorical-without-choices", _edit("variants:", "search:\n  params:\n    batch_size: {type: categorical}\nvariants:"), False),
]


SHALLUE = (ROOT / "studies" / "shallue_steps_to_target.yaml").read_text()
ONE_MINUS = "type: float, low: 0.01, high: 0.5, log: true, transform: one_minus"
assert ONE_MINUS in SHALLUE
VARIANT_CASES += [
    ("search-one-minus-int", SHALLUE.replace(ONE_MINUS, "type: int, low: 1, high: 5, transform: one_minus"), False),
    ("search-one-minus-pow2", SHALLUE.replace(ONE_MINUS, "type: pow2, low: 1, high: 4, transform: one_minus"), False),
    ("search-transform-unknown", SHALLUE.replace(ONE_MINUS, ONE_MINUS.replace("one_minus", "log10")), False),
    ("search-transform-none", SHALLUE.replace(ONE_MINUS, ONE_MINUS.replace("one_minus", "none")), True),
]


@pytest.mark.parametrize("case", VARIANT_CASES, ids=[c[0] for c in VARIANT_CASES])
def test_variants_and_limits_get_the_same_verdict(case, registry, validator):
    _id, text, expected = case
    accepted, schema_ok, errors = _verdicts(text, registry, validator)
    assert accepted == expected
    assert schema_ok == expected, errors


def _leaves(error):
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in _leaves(sub)]


def test_a_typo_is_reported_against_the_plugin_the_section_names(validator):
    data = load_yaml("spec.yaml", _edit("momentum: 0.9", "momentun: 0.9")).data
    errors = [leaf for e in validator.iter_errors(data) for leaf in _leaves(e)]
    assert len(errors) == 1, [e.message for e in errors]
    (error,) = errors
    assert list(error.absolute_path) == ["base", "optimizer"]
    assert "'momentun' was unexpected" in error.message
    assert error.schema.get("title") == "optimizer:sgd"


def test_an_unknown_plugin_name_is_one_error_at_the_name(validator):
    data = load_yaml("spec.yaml", _edit("name: sgd", "name: sgdd")).data
    errors = [leaf for e in validator.iter_errors(data) for leaf in _leaves(e)]
    assert [list(e.absolute_path) for e in errors] == [["base", "optimizer", "name"]]
    assert "is not one of" in errors[0].message


def test_cli_prints_the_schema():
    from typer.testing import CliRunner

    from lbgap.cli.main import app

    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed["$schema"] == DRAFT
    Draft202012Validator.check_schema(printed)


def test_a_study_that_extends_another_gets_the_same_verdict(tmp_path, registry, validator):
    (tmp_path / "parent.yaml").write_text(HOFFER)
    cases = [
        ("extends: parent.yaml\nstudy: short\nbase: {epochs: 3, model: {norm: none}}\n", True),
        ("extends: parent.yaml\nvariants:\n  lb: {batch_size: 512}\n", True),
        ("extends: parent.yaml\nbase: {epochs: 0}\n", False),
        ("extends: parent.yaml\nbase: {optimizer: {lrr: 1.0}}\n", False),
        ("extends: parent.yaml\nstudy: '..'\n", False),
    ]
    for text, expected in cases:
        child = tmp_path / "child.yaml"
        child.write_text(text)
        errors = [e.message for e in validator.iter_errors(load_yaml(str(child)).data)]
        try:
            load_study_text(text, str(child), registry)
            accepted = True
        except SpecError:
            accepted = False
        assert accepted == expected, text
        assert (not errors) == expected, (text, errors)
