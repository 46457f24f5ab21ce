"""Hostile and malformed study files: ``lbgap study validate`` ends with exit status 0, or 2 and
``file:line: field: message``, never a traceback, and quickly.

The property-based part generates documents and mutates every shipped study; the explicit tests
each pin one hole that was open before the limits existed.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from typer.testing import CliRunner

from lbgap.cli.main import app
from lbgap.spec import SpecError, load_study_text
from lbgap.spec.model import MAX_SEED
from lbgap.spec.yamlio import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))
HOFFER = (ROOT / "studies" / "hoffer_regime.yaml").read_text()

_runner = CliRunner()
_tmp = Path(tempfile.mkdtemp(prefix="lbgap-hostile-"))

SETTINGS = settings(
    derandomize=True,  # the same cases on every run: the default suite stays deterministic
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def validate(text: str | bytes, name: str = "study.yaml", folder: Path = _tmp):
    """``lbgap study validate`` on ``text`` written to ``folder / name`` in-process; returns (result, path)."""
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = _runner.invoke(app, ["study", "validate", str(path)])
    return result, str(path)


def assert_clean(text: str | bytes, name: str = "study.yaml", folder: Path = _tmp) -> int:
    result, path = validate(text, name, folder)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"validate raised {result.exception!r} on:\n{text!r}") from result.exception
    assert "Traceback" not in output
    assert result.exit_code in (0, 2), (result.exit_code, output)
    if result.exit_code == 2:
        assert re.search(rf"^{re.escape(path)}:\d+: ", output, re.M), output
    return result.exit_code


def _dump(data) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def _load(text: str):
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    return yaml.load(text)


# ---------------------------------------------------------------- strategies

KEYS = [
    "study", "base", "variants", "grid", "seeds", "search", "description", "dataset", "model",
    "optimizer", "schedule", "regime", "noise", "metrics", "stopping", "name", "lr", "batch_size",
    "epochs", "eval", "warm_start", "variant", "params", "type", "low", "high", "choices", "momentum",
    "weight_decay", "hidden", "optimizer.lr", "sgd", "mlp", "blobs", "..", "", "extends",
]
HOSTILE = [
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, math.inf, -math.inf, math.nan, 1e308,
    5e-324, "", "..", ".", "/", "a/b", "-x", "x" * 200, "sgd", "mlp", "\x00", "é", "1e3", "true",
    [], {}, [[[]]], {"name": "sgd"}, {"name": "nope"}, [{"name": "lr_scaling"}],
    "study.yaml", "../../../../etc/passwd", "/dev/zero", "a\x00b",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(HOSTILE),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=4),
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=7)

YAML_ALPHABET = st.sampled_from(list("abc01:-[]{}&*!|>?#'\",.\n \t%@`\\=<~") + ["<<", "&a ", "*a", ".inf", "!!"])


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _replace_at(node, path, value):
    if not path:
        return value
    out = dict(node) if isinstance(node, dict) else list(node)
    out[path[0]] = _replace_at(node[path[0]], path[1:], value)
    return out


@st.composite
def tree_mutations(draw, text: str) -> str:
    """A study with the value at one path replaced (or one key dropped or added)."""
    data = _load(text)
    paths = list(_paths(data))
    path = draw(st.sampled_from(paths[1:]))
    action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
    if action == "replace":
        data = _replace_at(data, path, draw(st.one_of(st.sampled_from(HOSTILE), values)))
    else:
        parent = data
        for seg in path[:-1]:
            parent = parent[seg]
        if action == "drop":
            parent = dict(parent) if isinstance(parent, dict) else list(parent)
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent = {**parent, draw(st.sampled_from(KEYS)): draw(values)}
        data = _replace_at(data, path[:-1], parent)
    return _dump(data)


@st.composite
def text_mutations(draw, text: str) -> str:
    """A study with a few characters or lines deleted, repeated or inserted."""
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete-line", "repeat-line", "insert", "cut"]))
        if action == "delete-line":
            del lines[i]
        elif action == "repeat-line":
            lines.insert(i, lines[i])
        elif action == "insert":
            j = draw(st.integers(0, len(lines[i])))
            piece = "".join(draw(st.lists(YAML_ALPHABET, min_size=1, max_size=4)))
            lines[i] = lines[i][:j] + piece + lines[i][j:]
        else:
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j]
    return "".join(lines)


# ------------------------------------------------------------ property tests


@settings(SETTINGS, max_examples=60)
@given(documents)
def test_generated_documents_validate_cleanly(doc):
    assert_clean(_dump(doc))


@SETTINGS
@given(st.lists(YAML_ALPHABET, max_size=40).map("".join))
def test_generated_text_validates_cleanly(text):
    assert_clean(text)


@pytest.mark.parametrize("spec", STUDIES, ids=[p.stem for p in STUDIES])
def test_mutated_shipped_studies_validate_cleanly(spec, tmp_path):
    # a copy of studies/ of its own: the files a study extends (bases/, a sibling study) are beside it,
    # and a mutated file cannot leak into another study that extends it
    folder = tmp_path / "studies"
    shutil.copytree(spec.parent, folder)
    text = spec.read_text()
    assert assert_clean(text, spec.name, folder) == 0

    @settings(SETTINGS, max_examples=6)
    @given(st.data())
    def check(data):
        mutated = data.draw(st.one_of(tree_mutations(text), text_mutations(text)))
        assert_clean(mutated, spec.name, folder)

    check()


# ---------------------------------------------------------- the known holes


def _expect_2(text: str | bytes, fragment: str, *, path: str = "", within: float = 10.0) -> str:
    start = time.perf_counter()
    result, file = validate(text)
    took = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    one_line = " ".join(result.output.split())  # the console wraps long lines
    where = rf"{re.escape(file)}:\d+: " + (re.escape(path) + r"\S*: " if path else "")
    assert re.search(where, one_line), one_line
    assert fragment in one_line, one_line
    assert took < within, f"took {took:.1f} s"
    return one_line


def test_alias_bomb_is_refused_at_once():
    lines = ["study: bomb", "base: {}", "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    _expect_2("\n".join(lines) + "\n", "values (counting what each alias expands to)", within=5)


def test_many_aliases_are_refused():
    body = "\n".join(f"k{i}: *a" for i in range(MAX_ALIASES + 1))
    _expect_2(f"study: x\nbase: {{}}\nanchor: &a 1\n{body}\n", f"more than {MAX_ALIASES} aliases")


def test_alias_cycle_is_refused():
    _expect_2("study: x\nbase: &b {self: *b}\n", "a cycle", path="base.self")


def test_few_aliases_still_work():
    text = HOFFER.replace("base:\n", "base: &base\n", 1)
    assert text != HOFFER
    assert assert_clean(text) == 0


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused(opener, closer):
    deep = opener * 100_000 + "1" + closer * 100_000
    _expect_2(f"study: x\nbase:\n  dataset: {deep}\n", f"nested more than {MAX_DEPTH} deep", path="base.dataset")


@pytest.mark.parametrize(
    "old,new,path",
    [
        ("lr: 0.05", "lr: .inf", "base.optimizer.lr"),
        ("weight_decay: 1.0e-4", "weight_decay: .inf", "base.optimizer.weight_decay"),
        ("lr: 0.05", "lr: .nan", "base.optimizer.lr"),
        ("lr: 0.05", "lr: -.inf", "base.optimizer.lr"),
    ],
)
def test_non_finite_rates_are_refused(old, new, path):
    assert old in HOFFER
    _expect_2(HOFFER.replace(old, new, 1), "finite number", path=path)


def test_non_finite_plugin_setting_in_a_variant_and_grid_are_refused():
    text = HOFFER.replace("  sb: {}", "  sb: {optimizer: {name: sgd, lr: .inf}}")
    assert text != HOFFER
    _expect_2(text, "finite number", path="variants.sb.optimizer.lr")
    _expect_2(HOFFER + "grid:\n  optimizer.lr: [0.1, .inf]\n", "finite number", path="grid.optimizer.lr.1")


@pytest.mark.parametrize(
    "old,new,path,fragment",
    [
        ("  batch_size: 64", "  batch_size: true", "base.batch_size", "valid integer, not a boolean"),
        ("  epochs: 20", "  epochs: false", "base.epochs", "a number, not a boolean (got false)"),
        ("seeds: [0, 1, 2]", "seeds: [0, true]", "seeds.1", "valid integer, not a boolean"),
        ("  batch_size: 64", "  batch_size: '64'", "base.batch_size", "valid integer, not a string"),
        ("lr: 0.05", "lr: '0.05'", "base.optimizer.lr", "valid number, not a string"),
        ("momentum: 0.9", "momentum: true", "base.optimizer.momentum", "a number, not a boolean (got true)"),
        ("momentum: 0.9", "momentum: false", "base.optimizer.momentum", "valid number, not a boolean (got false)"),
    ],
)
def test_booleans_and_strings_are_not_numbers(old, new, path, fragment):
    assert old in HOFFER, old
    _expect_2(HOFFER.replace(old, new, 1), fragment, path=path)


def test_numbers_are_not_booleans(toy_registry):
    from lbgap.spec.load import coerced_values

    assert coerced_values({"shuffle": 1}, {"shuffle": True}) == [
        (("shuffle",), "Input should be true or false, not a number (got 1)")
    ]
    assert coerced_values({"shuffle": "yes"}, {"shuffle": True})[0][1].endswith("not a string (got 'yes')")
    assert coerced_values({"lr": 1}, {"lr": 1.0}) == []  # an integer is a number
    with pytest.raises(SpecError, match="true or false, not a number"):
        load_study_text(
            "study: t\nbase: {dataset: {name: blobs}, model: {name: tiny_mlp}, optimizer: {name: sgd, lr: 0.1},"
            " batch_size: 8, epochs: 1, shuffle: 1}\n",
            "t.yaml",
            toy_registry,
        )


def test_grid_boolean_is_not_a_batch_size():
    _expect_2(HOFFER + "grid:\n  batch_size: [32, true]\n", "not a boolean", path="grid.batch_size.1")


@pytest.mark.parametrize("seed", ["99999999999999999999999", str(MAX_SEED + 1), "-1"])
def test_seeds_out_of_range_are_refused(seed):
    _expect_2(HOFFER.replace("seeds: [0, 1, 2]", f"seeds: [{seed}]"), "", path="seeds.0")


def test_largest_seed_and_its_derived_seeds_fit():
    assert assert_clean(HOFFER.replace("seeds: [0, 1, 2]", f"seeds: [0, {MAX_SEED}]")) == 0
    # the engine derives generator seeds as seed * 1_000_003 + stream (streams grow by 7919 per epoch,
    # step or rank): even a billion steps stay far inside a 64-bit seed
    from lbgap.seeds import RANK_STRIDE, TARGET_STREAM, derive_seed

    derived = derive_seed(MAX_SEED, TARGET_STREAM + RANK_STRIDE * 10**9)
    assert derived < 2**63
    torch.Generator().manual_seed(derived)


def test_huge_integers_anywhere_are_refused():
    _expect_2(HOFFER.replace("hidden: [", "hidden: [99999999999999999999999, ", 1), "out of range")


@pytest.mark.parametrize("name", ["'..'", "'.'", "../escape", "a/b", ".hidden", "-rf", "'x y'", "x" * 101])
def test_path_like_study_names_are_refused(name):
    _expect_2(re.sub(r"^study: .*$", f"study: {name}", HOFFER, count=1, flags=re.M), "may hold only", path="study")


@pytest.mark.parametrize("name", ["'..'", ".x", "a/b"])
def test_path_like_variant_names_are_refused(name):
    text = HOFFER.replace("  sb: {}", f"  {name}: {{}}")
    assert text != HOFFER
    _expect_2(text, "may hold only")


@pytest.mark.parametrize("path", ["optimizer./etc", "optimizer..lr", "../lr", "regime.0", "optimizer.l r"])
def test_grid_paths_are_dotted_names(path):
    _expect_2(HOFFER + f"grid:\n  '{path}': [0.1]\n", "", path=f"grid.{path}")


def test_large_file_is_refused_before_reading(monkeypatch):
    path = _tmp / "large.yaml"
    with path.open("wb") as fh:  # 50 MB, sparse: cheap to make
        fh.write(b"study: x\n")
        fh.truncate(50_000_000)
    reads = []
    original = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **kw: reads.append(self) or original(self, *a, **kw))
    start = time.perf_counter()
    result = _runner.invoke(app, ["study", "validate", str(path)])
    assert time.perf_counter() - start < 2
    assert result.exit_code == 2
    assert f"{path}:1: the file is 50000000 bytes" in " ".join(result.output.split())
    assert not reads


def test_file_at_the_limit_is_read():
    text = HOFFER + "#" * (MAX_FILE_BYTES - len(HOFFER.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert assert_clean(text) == 0
    _expect_2(text + "#", "may hold at most")


@pytest.mark.parametrize(
    "line,fragment",
    [
        ("when: 2026-01-01", "date values are not allowed"),
        ("blob: !!binary aGk=", "binary values are not allowed"),
        ("? [a, b]\n: 1", "mapping keys must be strings"),
        ("1: one", "mapping keys must be strings"),
    ],
)
def test_other_yaml_types_are_refused(line, fragment):
    _expect_2(HOFFER + line + "\n", fragment)


def test_not_utf8_is_refused():
    _expect_2(HOFFER.encode() + b"\xff\xfe\n", "cannot read the file")
