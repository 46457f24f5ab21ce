"""The plugin author's contract: no silent clash, isolation of failures, diagnosis.

Each test builds small plugin packages in a temporary folder (a ``*.dist-info``
with ``entry_points.txt`` next to the module, put on ``sys.path``), as an
installed third-party package looks to :mod:`importlib.metadata`.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import lbgap.registry as registry_module
from lbgap import hookimpl
from lbgap.plugin import MetricPlugin, PluginConfig
from lbgap.provenance import OutputClashError, VariableSources, check_output_names, variable_attrs_of
from lbgap.registry import DuplicatePluginError, Registry, load_registry

_unique = itertools.count()


def fake_package(root: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed package ``dist`` in ``root``: its metadata, its entry points in the
    ``lbgap`` group and its modules (``{module name: source}``)."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[lbgap]\n" + "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    )
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path for fake packages; the process-wide registry is reloaded."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_CACHE", None)
    yield tmp_path
    registry_module._CACHE = None


def one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------ no silent clash


def test_entry_point_named_like_a_builtin_one_is_an_error_naming_both_packages(site):
    mod = f"clashpkg_{next(_unique)}"
    fake_package(site, "clashpkg", "1.2", {"models": mod}, {mod: "X = 1\n"})
    with pytest.raises(DuplicatePluginError) as info:
        load_registry()
    msg = str(info.value)
    assert "'models'" in msg and "clashpkg" in msg and "lbgap" in msg


class _OutputsConfig(PluginConfig):
    """A metric with fixed outputs."""


def _metric_plugin(name: str, outputs: tuple[str, ...], attrs: dict | None = None):
    class _Metric:
        every = 1
        at_end = False

        def __init__(self, cfg):
            self.outputs = outputs
            self.attrs = dict(attrs or {})

        def compute(self, ctx):
            return {o: 1.0 for o in outputs}

    class _Plugin:
        @staticmethod
        @hookimpl
        def lbgap_register_metrics():
            return [MetricPlugin(name=name, config=_OutputsConfig, build=_Metric)]

    return _Plugin()


def _cfg(reg: Registry, name: str):
    return SimpleNamespace(name=name)  # the metrics here read nothing from their configuration


def test_metric_declaring_a_core_variable_fails_before_training_naming_the_plugin():
    reg = Registry.from_plugins([("acc", _metric_plugin("my_accuracy", ("test_accuracy",)), "accpkg", "0.3")])
    metric = reg.build("metric", _cfg(reg, "my_accuracy"))
    with pytest.raises(OutputClashError) as info:
        check_output_names([metric])
    msg = str(info.value)
    assert "metric 'my_accuracy' (accpkg 0.3)" in msg and "'test_accuracy'" in msg and "lbgap itself" in msg


def test_two_metrics_declaring_one_variable_fail_naming_both_plugins():
    reg = Registry.from_plugins(
        [
            ("a", _metric_plugin("sharp_a", ("sharpness",)), "pkg-a", "1.0"),
            ("b", _metric_plugin("sharp_b", ("other", "sharpness")), "pkg-b", "2.0"),
        ]
    )
    metrics = [reg.build("metric", _cfg(reg, n)) for n in ("sharp_a", "sharp_b")]
    with pytest.raises(OutputClashError) as info:
        check_output_names(metrics)
    msg = str(info.value)
    assert "metric 'sharp_a' (pkg-a 1.0)" in msg and "metric 'sharp_b' (pkg-b 2.0)" in msg
    assert "'sharpness'" in msg
    check_output_names(metrics[:1])  # distinct names pass


def test_attrs_keys_declare_outputs_and_group_names_are_core():
    reg = Registry.from_plugins(
        [("g", _metric_plugin("grouped", (), {"test_loss_even": {"units": "1"}}), "gpkg", "0.1")]
    )
    metric = reg.build("metric", _cfg(reg, "grouped"))
    metric.outputs = None  # only attrs declares the name
    with pytest.raises(OutputClashError, match="metric 'grouped' \\(gpkg 0.1\\) writes 'test_loss_even'"):
        check_output_names([metric])


def test_variable_sources_name_both_writers_while_training():
    reg = Registry.from_plugins(
        [
            ("a", _metric_plugin("m_a", ()), "pkg-a", "1.0"),
            ("b", _metric_plugin("m_b", ()), "pkg-b", "2.0"),
        ]
    )
    a, b = (reg.build("metric", _cfg(reg, n)) for n in ("m_a", "m_b"))
    sources = VariableSources()
    sources.claim_all(["train_loss", "test_accuracy_even"], "lbgap")
    sources.claim("hessian_top", a)
    sources.claim("hessian_top", a)  # the same writer, next epoch
    with pytest.raises(OutputClashError, match="metric 'm_a' \\(pkg-a 1.0\\) and metric 'm_b' \\(pkg-b 2.0\\)"):
        sources.claim("hessian_top", b)
    with pytest.raises(OutputClashError, match="metric 'm_b' \\(pkg-b 2.0\\) writes 'test_accuracy'"):
        sources.claim("test_accuracy", b)
    assert sources.source("hessian_top") == "metric 'm_a' (pkg-a 1.0)"
    assert sources.as_dict() == {"hessian_top": "metric 'm_a' (pkg-a 1.0)"}
    assert variable_attrs_of([a], sources)["hessian_top"]["source"] == "metric 'm_a' (pkg-a 1.0)"
