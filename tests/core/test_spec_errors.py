"""Malformed study files: each gives ``file:line: field.path: message``."""

from __future__ import annotations

import pytest

from lbgap.spec import SpecError, load_study_text

GOOD = """\
study: toy
base:
  dataset: {name: blobs}
  model: {name: tiny_mlp, width: 8}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 2
variants:
  small: {}
  large: {batch_size: 128}
seeds: [0, 1]
"""


def _replace(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


# (id, text, expected line, expected field path, a fragment of the message)
CASES = [
    ("yaml-syntax", GOOD.replace("seeds: [0, 1]", "seeds: [0, 1"), 12, "", "YAML syntax error"),
    ("duplicate-key", GOOD.replace("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n"), 8, "", "duplicate key"),
    ("not-a-mapping", "- just\n- a list\n", 1, "", "must be a mapping"),
    ("empty-file", "", 1, "", "empty"),
    ("python-tag", GOOD.replace("epochs: 2", "epochs: !!python/object/apply:os.system ['ls']"), 7, "base.epochs", "tags"),
    ("unknown-top-key", GOOD + "seed: [3]\n", 12, "seed", "unknown key 'seed' (did you mean 'seeds'?)"),
    ("missing-study", GOOD.replace("study: toy\n", ""), 1, "study", "required setting 'study' is missing"),
    ("bad-study-name", GOOD.replace("study: toy", "study: my study!"), 1, "study", "may hold only letters, digits and _.-"),
    ("unknown-base-key", _replace("  epochs: 2\n", "  epochs: 2\n  epocs: 3\n"), 8, "base.epocs", "unknown key 'epocs'"),
    ("negative-batch", _replace("batch_size: 32", "batch_size: -32"), 6, "base.batch_size", "greater than 0 (got -32)"),
    ("zero-epochs", _replace("epochs: 2", "epochs: 0"), 7, "base.epochs", "greater than 0"),
    ("wrong-type", _replace("epochs: 2", "epochs: two"), 7, "base.epochs", "valid integer"),
    ("unknown-model", _replace("name: tiny_mlp", "name: tiny_mpl"), 4, "base.model.name", "unknown model plugin 'tiny_mpl' (did you mean 'tiny_mlp'?)"),
    ("missing-plugin-name", _replace("dataset: {name: blobs}", "dataset: {n_train: 10}"), 3, "base.dataset", "missing 'name'"),
    ("plugin-unknown-key", _replace("{name: tiny_mlp, width: 8}", "{name: tiny_mlp, widht: 8}"), 4, "base.model.widht", "did you mean 'width'"),
    ("plugin-bad-value", _replace("{name: sgd, lr: 0.1}", "{name: sgd, lr: -0.1}"), 5, "base.optimizer.lr", "greater than 0"),
    ("plugin-constraint", _replace("{name: sgd, lr: 0.1}", "{name: sgd, lr: 0.1, nesterov: true}"), 5, "base.optimizer", "nesterov needs momentum"),
    ("missing-required", _replace("  batch_size: 32\n", ""), 2, "base.batch_size", "required setting 'batch_size' is missing"),
    ("variant-bad-value", _replace("large: {batch_size: 128}", "large: {batch_size: 0}"), 10, "variants.large.batch_size", "greater than 0"),
    ("variant-unknown-key", _replace("large: {batch_size: 128}", "large: {batch: 128}"), 10, "variants.large.batch", "unknown key 'batch'"),
    ("variant-unknown-plugin", _replace("large: {batch_size: 128}", "large: {optimizer: {name: rmsprop, lr: 1}}"), 10, "variants.large.optimizer.name", "unknown optimizer plugin 'rmsprop'"),
    ("variant-bad-name", _replace("  large:", "  large one:"), 10, "variants.large one", "may hold only"),
    ("seeds-duplicate", _replace("seeds: [0, 1]", "seeds: [1, 1]"), 11, "seeds", "distinct"),
    ("seeds-empty", _replace("seeds: [0, 1]", "seeds: []"), 11, "seeds", "at least 1 item"),
    ("grid-bad-value", GOOD + "grid:\n  batch_size: [16, -4]\n", 13, "grid.batch_size.1", "greater than 0"),
    ("grid-unknown-path", GOOD + "grid:\n  optimizer.lrr: [0.1]\n", 13, "grid.optimizer.lrr", "no such setting: unknown key 'lrr' (did you mean 'lr'?)"),
    ("grid-reserved-dim", GOOD + "grid:\n  model.seed: [1]\n", 13, "grid.model.seed", "reserved"),
    ("grid-empty", GOOD + "grid:\n  batch_size: []\n", 13, "grid.batch_size", "at least one value"),
    ("schedule-milestones", _replace("  epochs: 2\n", "  epochs: 2\n  schedule: {name: multistep, milestones: [5, 3], gamma: 0.1}\n"), 8, "base.schedule", "strictly increasing"),
    ("regime-list-item", _replace("  epochs: 2\n", "  epochs: 2\n  regime:\n    - {name: lr_scaling, rule: cube, reference_batch: 32}\n"), 9, "base.regime.0.rule", "'none', 'linear' or 'sqrt'"),
    ("eval-bn-mode", _replace("  epochs: 2\n", "  epochs: 2\n  eval: {bn_mode: keras}\n"), 8, "base.eval.bn_mode", "'running' or 'batch'"),
    ("warm-start-unknown", _replace("large: {batch_size: 128}", "large: {warm_start: {variant: tiny, epochs: 1}}"), 10, "variants.large.warm_start.variant", "unknown variant 'tiny'"),
    ("search-bad-bounds", GOOD.replace("variants:\n  small: {}\n  large: {batch_size: 128}\n", "") + "search:\n  params:\n    optimizer.lr: {type: float, low: 1.0, high: 0.1, log: true}\n", 11, "search.params.optimizer.lr", "low must be below high"),
    ("search-with-grid", GOOD.replace("variants:\n  small: {}\n  large: {batch_size: 128}\n", "") + "grid:\n  batch_size: [8]\nsearch:\n  params:\n    batch_size: {type: pow2, low: 8, high: 64}\n", 10, "grid.batch_size", "either crossed by the grid or searched"),
    ("search-unknown-path", GOOD.replace("variants:\n  small: {}\n  large: {batch_size: 128}\n", "") + "search:\n  params:\n    optimizer.momentun: {type: float, low: 0.0, high: 0.9}\n", 11, "search.params.optimizer.momentun", "no such setting: unknown key 'momentun' (did you mean 'momentum'?)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_reported_with_line_and_path(case, toy_registry):
    _id, text, line, path, fragment = case
    with pytest.raises(SpecError) as info:
        load_study_text(text, "studies/bad.yaml", toy_registry)
    issues = info.value.issues
    rendered = "\n".join(str(i) for i in issues)
    match = [i for i in issues if i.line == line and i.path == path and fragment in i.message]
    assert match, f"expected line {line}, path {path!r}, message with {fragment!r}; got:\n{rendered}"
    assert str(match[0]).startswith(f"studies/bad.yaml:{line}: ")


def test_good_spec_loads(toy_registry):
    study = load_study_text(GOOD, "good.yaml", toy_registry)
    assert list(study.variants) == ["small", "large"]
    assert study.variants["large"].batch_size == 128
    assert study.variants["small"].model.width == 8  # merged from base
    assert len(study.cells()) == 4


def test_every_problem_is_reported_at_once(toy_registry):
    text = _replace("batch_size: 32", "batch_size: -1").replace("epochs: 2", "epochs: -2")
    with pytest.raises(SpecError) as info:
        load_study_text(text, "bad.yaml", toy_registry)
    paths = {i.path for i in info.value.issues}
    assert {"base.batch_size", "base.epochs"} <= paths


def test_yaml_1_2_floats_and_booleans(toy_registry):
    from lbgap.spec.yamlio import load_yaml

    doc = load_yaml("x.yaml", "lr: 1e-3\nflag: no\nother: off\n").data
    assert doc == {"lr": 0.001, "flag": "no", "other": "off"}  # YAML 1.1 would give "1e-3", False, False
    study = load_study_text(_replace("{name: sgd, lr: 0.1}", "{name: sgd, lr: 1e-3}"), "ok.yaml", toy_registry)
    assert study.variants["small"].optimizer.lr == pytest.approx(1e-3)


def test_variant_with_other_plugin_replaces_section(toy_registry):
    text = _replace("large: {batch_size: 128}", "large: {optimizer: {name: adam}}")
    study = load_study_text(text, "ok.yaml", toy_registry)
    assert study.variants["large"].optimizer.name == "adam"
    assert study.variants["large"].optimizer.lr == pytest.approx(1e-3)  # adam's default, not sgd's 0.1


def _issues(text: str, registry) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_study_text(text, "bad.yaml", registry)
    return [str(i) for i in info.value.issues]


def test_unknown_plugin_does_not_hide_other_errors(toy_registry):
    text = (
        _replace("name: tiny_mlp", "name: tiny_mpl")
        .replace("epochs: 2", "epochs: 0")
        .replace("large: {batch_size: 128}", "large: {batch_size: -1, optimizer: {name: sgdd}}")
        + "seed: [3]\n"
    )
    issues = _issues(text, toy_registry)
    expected = [
        "bad.yaml:12: seed: unknown key 'seed' (did you mean 'seeds'?); allowed: ",
        "bad.yaml:4: base.model.name: unknown model plugin 'tiny_mpl' (did you mean 'tiny_mlp'?); installed: ",
        "bad.yaml:7: base.epochs: Input should be greater than 0 (got 0)",
        "bad.yaml:10: variants.large.optimizer.name: unknown optimizer plugin 'sgdd' (did you mean 'sgd'?); ",
        "bad.yaml:10: variants.large.batch_size: Input should be greater than 0 (got -1)",
    ]
    assert len(issues) == len(expected), issues
    for issue, start in zip(issues, expected, strict=True):
        assert issue.startswith(start), (issue, start)


def test_header_errors_do_not_hide_the_configuration_errors(toy_registry):
    text = _replace("study: toy", "study: '..'").replace("seeds: [0, 1]", "seeds: [1, 1]")
    text = text.replace("{name: sgd, lr: 0.1}", "{name: sgd, lr: .inf}")
    issues = _issues(text, toy_registry)
    assert [i.split(": ")[0:2] for i in issues] == [
        ["bad.yaml:1", "study"],
        ["bad.yaml:11", "seeds"],
        ["bad.yaml:5", "base.optimizer.lr"],
    ]


def test_errors_of_base_are_not_repeated_for_each_variant(toy_registry):
    text = _replace("  batch_size: 32\n", "").replace("large: {batch_size: 128}", "large: {epochs: 0}")
    issues = _issues(text, toy_registry)
    assert issues == [
        "bad.yaml:2: base.batch_size: required setting 'batch_size' is missing",
        "bad.yaml:9: variants.large.epochs: Input should be greater than 0 (got 0)",
    ]


def test_unknown_plugin_in_one_variant_leaves_the_others_checked(toy_registry):
    text = _replace("  small: {}", "  small: {model: {name: nope}}").replace(
        "large: {batch_size: 128}", "large: {model: {width: -3}}"
    )
    issues = _issues(text, toy_registry)
    assert len(issues) == 2
    assert issues[0].startswith("bad.yaml:9: variants.small.model.name: unknown model plugin 'nope'")
    assert issues[1].startswith("bad.yaml:10: variants.large.model.width: Input should be greater than 0")


def test_warm_start_from_a_variant_with_errors_is_not_called_unknown(toy_registry):
    text = _replace("  small: {}", "  small: {epochs: 0}").replace(
        "large: {batch_size: 128}", "large: {warm_start: {variant: small, epochs: 0}}"
    )
    assert _issues(text, toy_registry) == ["bad.yaml:9: variants.small.epochs: Input should be greater than 0 (got 0)"]


@pytest.mark.parametrize(
    "grid,expected",
    [
        ("optimizer.lrr: [0.1, 0.2]", "bad.yaml:13: grid.optimizer.lrr: no such setting: unknown key 'lrr' (did you mean 'lr'?)"),
        ("optimzer.lr: [0.1]", "bad.yaml:13: grid.optimzer.lr: no such setting: unknown key 'optimzer' (did you mean 'optimizer'?)"),
        ("optimizer.lr: [0.1, -1.0]", "bad.yaml:13: grid.optimizer.lr.1: Input should be greater than 0 (got -1.0)"),
        ("model.width: [4, two]", "bad.yaml:13: grid.model.width.1: Input should be a valid integer, unable to parse string as an integer (got 'two')"),
    ],
)
def test_grid_errors_point_at_the_path_or_the_value(toy_registry, grid, expected):
    issues = _issues(GOOD + f"grid:\n  {grid}\n", toy_registry)
    assert len(issues) == 1, issues
    assert issues[0].startswith(expected), issues


# ------------------------------------------------------------------ extends


def _write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_merges_onto_the_parent_like_a_variant(tmp_path, toy_registry):
    from lbgap.spec import load_study

    _write(tmp_path, "parents/toy.yaml", GOOD)
    child = _write(
        tmp_path,
        "child.yaml",
        "extends: parents/toy.yaml\nstudy: child\nbase:\n  optimizer: {lr: 0.5}\n"
        "variants:\n  large: {batch_size: 64}\n  huge: {batch_size: 256}\nseeds: [3]\n",
    )
    study = load_study(child, toy_registry)
    assert study.name == "child"
    assert list(study.variants) == ["small", "large", "huge"]
    assert study.variants["small"].optimizer.lr == 0.5 and study.variants["small"].model.width == 8
    assert study.variants["large"].batch_size == 64
    assert study.seeds == [3]
    assert study.sources == (str(child), str(tmp_path / "parents" / "toy.yaml"))
    # the run folder keeps study.text: a standalone study that loads to the same study
    assert "\nextends:" not in study.text and study.text.startswith("# resolved from ")
    again = load_study_text(study.text, "resolved.yaml", toy_registry)
    assert again.spec_hash == study.spec_hash


def test_extends_chains_and_a_plugin_with_another_name_replaces(tmp_path, toy_registry):
    from lbgap.spec import load_study

    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "b.yaml", "extends: a.yaml\nbase:\n  epochs: 5\n")
    c = _write(tmp_path, "c.yaml", "extends: b.yaml\nstudy: c\nbase:\n  optimizer: {name: adam}\n")
    study = load_study(c, toy_registry)
    assert study.variants["small"].epochs == 5
    assert study.variants["small"].optimizer.name == "adam"
    assert study.variants["small"].optimizer.lr == pytest.approx(1e-3)  # adam's default, not sgd's 0.1
    assert len(study.sources) == 3


def test_extends_errors_name_the_file_and_line_they_come_from(tmp_path, toy_registry):
    from lbgap.spec import load_study

    _write(tmp_path, "parent.yaml", GOOD.replace("epochs: 2", "epochs: 0"))
    child = _write(tmp_path, "child.yaml", "# a child\nextends: parent.yaml\nbase:\n  batch_size: -1\n")
    with pytest.raises(SpecError) as info:
        load_study(child, toy_registry)
    issues = [str(i) for i in info.value.issues]
    assert f"{tmp_path / 'parent.yaml'}:7: base.epochs: Input should be greater than 0 (got 0)" in issues
    assert f"{child}:4: base.batch_size: Input should be greater than 0 (got -1)" in issues


@pytest.mark.parametrize(
    "files,fragment",
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\nstudy: b\n"}, "a cycle of extends"),
        ({"a.yaml": "extends: a.yaml\n"}, "a cycle of extends"),
        ({"a.yaml": "study: a\nextends: missing.yaml\n"}, "no such study file"),
        ({"a.yaml": "extends: [b.yaml]\n"}, "must be the path of another study file"),
        ({"a.yaml": "extends: /etc/passwd\n"}, "relative to this file's folder"),
    ],
)
def test_extends_cycles_and_missing_files_are_errors(tmp_path, toy_registry, files, fragment):
    from lbgap.spec import load_study

    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(SpecError) as info:
        load_study(tmp_path / "a.yaml", toy_registry)
    (issue,) = info.value.issues
    assert issue.path == "extends" and fragment in issue.message
    assert issue.line == [i for i, line in enumerate((tmp_path / issue.file).read_text().splitlines(), 1)
                          if line.startswith("extends:")][0]


def test_extends_too_long_a_chain_is_an_error(tmp_path, toy_registry):
    from lbgap.spec import load_study
    from lbgap.spec.load import MAX_EXTENDS

    _write(tmp_path, "s0.yaml", GOOD)
    for i in range(1, MAX_EXTENDS + 3):
        _write(tmp_path, f"s{i}.yaml", f"extends: s{i - 1}.yaml\n")
    with pytest.raises(SpecError, match="extend one another"):
        load_study(tmp_path / f"s{MAX_EXTENDS + 2}.yaml", toy_registry)
    assert load_study(tmp_path / f"s{MAX_EXTENDS}.yaml", toy_registry).name == "toy"


def test_every_searched_parameter_is_checked(toy_registry):
    text = GOOD.replace("variants:\n  small: {}\n  large: {batch_size: 128}\n", "") + (
        "search:\n  params:\n    optimizer.lrr: {type: float, low: 0.1, high: 1.0}\n"
        "    batch_size: {type: categorical, choices: [16, -4]}\n"
        "    epochs: {type: int, low: 1, high: 4}\n"
    )
    issues = _issues(text, toy_registry)
    assert len(issues) == 2, issues
    assert issues[0].startswith("bad.yaml:11: search.params.optimizer.lrr: no such setting: unknown key 'lrr'")
    assert issues[1].startswith(
        "bad.yaml:12: search.params.batch_size: value -4 is not valid here: Input should be greater than 0"
    )
