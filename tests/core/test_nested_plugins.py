"""Plugin configurations that hold other plugins' configurations (``lbgap.plugin.Nested``)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import pytest
import xarray as xr
from pydantic import Field, PositiveInt, ValidationError

from lbgap import hookimpl
from lbgap.plugin import MetricPlugin, Nested, PluginConfig, nested_fields
from lbgap.registry import Registry
from lbgap.spec import SpecError, load_study_text
from lbgap.spec.model import plugin_config_model


class ConstantConfig(PluginConfig):
    """Reports a constant."""

    value: float = Field(1.0, ge=0)
    tag: str = "c"
    every: Optional[PositiveInt] = None
    at_end: bool = True


class Constant:
    def __init__(self, cfg: ConstantConfig) -> None:
        self.cfg, self.every, self.at_end = cfg, cfg.every, cfg.at_end

    def compute(self, ctx) -> dict[str, Any]:
        return {f"const_{self.cfg.tag}": self.cfg.value}


class SumOfConfig(PluginConfig):
    """Sums the values of other metrics."""

    parts: Annotated[list[dict[str, Any]], Nested("metric")] = Field(min_length=1)
    every: Optional[PositiveInt] = None
    at_end: bool = True


class SumOf:
    def __init__(self, cfg: SumOfConfig, *, parts: list[Any]) -> None:
        self.cfg, self.every, self.at_end, self.parts = cfg, cfg.every, cfg.at_end, parts

    def compute(self, ctx) -> dict[str, Any]:
        return {"sum_of_parts": sum(v for m in self.parts for v in m.compute(ctx).values())}


class _NestedMetrics:
    @hookimpl
    def lbgap_register_metrics(self):
        return [
            MetricPlugin(name="constant", config=ConstantConfig, build=Constant),
            MetricPlugin(name="sum_of", config=SumOfConfig, build=SumOf),
        ]


@pytest.fixture(scope="module")
def reg():
    import toy_plugins

    import lbgap_training

    return Registry.from_plugins(
        [
            ("training", lbgap_training, "lbgap", "0"),
            ("toy", toy_plugins, "tests", "0"),
            ("nested", _NestedMetrics(), "tests", "0"),
        ]
    )


GOOD = """\
study: nested
base:
  dataset: {name: blobs, n_train: 64, n_test: 32}
  model: {name: tiny_mlp, width: 4}
  optimizer: {name: sgd, lr: 0.1}
  batch_size: 32
  epochs: 1
  metrics:
    - name: sum_of
      parts:
        - {name: constant, value: 2.0, tag: a}
        - {name: constant, value: 0.5, tag: b}
seeds: [0]
"""

CASES = [
    (
        "unknown-key",
        "value: 0.5, tag: b",
        "valeu: 0.5, tag: b",
        12,
        "base.metrics.0.parts.1.valeu",
        "did you mean 'value'",
    ),
    (
        "bad-value",
        "value: 0.5",
        "value: -0.5",
        12,
        "base.metrics.0.parts.1.value",
        "greater than or equal to 0",
    ),
    (
        "unknown-name",
        "{name: constant, value: 2.0",
        "{name: constnt, value: 2.0",
        11,
        "base.metrics.0.parts.0.name",
        "unknown metric plugin 'constnt' (did you mean 'constant'?)",
    ),
    (
        "missing-name",
        "{name: constant, value: 2.0, tag: a}",
        "{value: 2.0, tag: a}",
        11,
        "base.metrics.0.parts.0",
        "missing 'name'",
    ),
    (
        "nested-twice",
        "{name: constant, value: 2.0, tag: a}",
        "{name: sum_of, parts: []}",
        11,
        "base.metrics.0.parts.0.name",
        "cannot be nested",
    ),
    (
        "empty",
        "      parts:\n        - {name: constant, value: 2.0, tag: a}\n        - {name: constant, value: 0.5, tag: b}\n",
        "      parts: []\n",
        10,
        "base.metrics.0.parts",
        "at least 1 item",
    ),
    (
        "not-a-list",
        "      parts:\n        - {name: constant, value: 2.0, tag: a}\n        - {name: constant, value: 0.5, tag: b}\n",
        "      parts: {name: constant}\n",
        10,
        "base.metrics.0.parts",
        "valid list",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_nested_entries_are_validated_with_line_and_path(reg, case):
    _id, old, new, line, path, fragment = case
    assert old in GOOD
    with pytest.raises(SpecError) as info:
        load_study_text(GOOD.replace(old, new), "studies/n.yaml", reg)
    rendered = "\n".join(str(i) for i in info.value.issues)
    assert any(i.line == line and i.path == path and fragment in i.message for i in info.value.issues), (
        rendered
    )


def test_nested_entries_in_a_variant_are_checked_there(reg):
    text = GOOD.replace(
        "seeds: [0]\n",
        "variants:\n  a: {}\n  b:\n    metrics:\n      - {name: sum_of, parts: [{name: constant, value: -1}]}\nseeds: [0]\n",
    )
    with pytest.raises(SpecError) as info:
        load_study_text(text, "n.yaml", reg)
    assert [(i.line, i.path) for i in info.value.issues] == [(17, "variants.b.metrics.0.parts.0.value")]


def test_validated_entries_are_typed_and_built_by_the_host(reg, tmp_path):
    from lbgap.driver.run import run_study

    study = load_study_text(GOOD, "n.yaml", reg)
    cfg = study.variants["base"].metrics[0]
    assert [type(p).__mro__[1] for p in cfg.parts] == [ConstantConfig, ConstantConfig]
    assert '"tag":"b"' in study.to_json()
    metric = reg.build("metric", cfg)
    assert [type(p) for p in metric.parts] == [Constant, Constant]
    summary = run_study(study, tmp_path, device="cpu")
    ds = xr.load_dataset(summary.results)
    assert float(ds["sum_of_parts"].sel(variant="base", seed=0)) == 2.5


def test_without_a_registry_entries_stay_mappings(reg):
    assert nested_fields(SumOfConfig) == {"parts": "metric"}
    plain = SumOfConfig(parts=[{"name": "constant", "value": 3.0}])
    assert plain.parts == [{"name": "constant", "value": 3.0}]
    with pytest.raises(ValueError, match="needs the registry"):
        plugin_config_model(reg.get("metric", "sum_of"))
    # the host validates mappings when it builds
    built = reg.build(
        "metric",
        plugin_config_model(reg.get("metric", "sum_of"), reg).model_construct(name="sum_of", **dict(plain)),
    )
    assert built.compute(None) == {"sum_of_parts": 3.0}
    bad = plugin_config_model(reg.get("metric", "sum_of"), reg).model_construct(
        name="sum_of", parts=[{"name": "constant", "value": -3.0}]
    )
    with pytest.raises(ValidationError):
        reg.build("metric", bad)


def test_measure_validates_nested_entries(reg):
    from lbgap.measure import MeasureError, parse_metric_configs

    (cfg,) = parse_metric_configs([{"name": "sum_of", "parts": [{"name": "constant"}]}], reg)
    assert isinstance(cfg.parts[0], ConstantConfig)
    with pytest.raises(MeasureError, match=r"metric sum_of: parts\.0\.value: Input should be greater"):
        parse_metric_configs([{"name": "sum_of", "parts": [{"name": "constant", "value": -1}]}], reg)


def test_schema_describes_nested_entries(reg):
    from lbgap.spec.schema import study_json_schema

    defs = study_json_schema(reg)["$defs"]
    (wrapper,) = [d for d in defs.values() if d.get("title") == "metric:sum_of"]
    # a list of the metrics that hold no plugins themselves: 'constant' but not 'sum_of'
    items = wrapper["properties"]["parts"]["items"]
    assert "constant" in items["properties"]["name"]["enum"] and "sum_of" not in items["properties"]["name"]["enum"]
    selected = {"if": {"required": ["name"], "properties": {"name": {"const": "constant"}}},
                "then": {"$ref": "#/$defs/Metric_constant"}}
    assert selected in items["allOf"]


def test_only_kinds_built_from_the_configuration_alone_nest():
    with pytest.raises(ValueError, match="cannot be nested"):
        Nested("model")
