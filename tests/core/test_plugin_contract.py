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


# --------------------------------------------------------- isolation and diagnosis


@pytest.fixture
def cli(site, monkeypatch):
    """Run ``lbgap ...`` in this process (the registry reloads from ``site``)."""
    import importlib

    from typer.testing import CliRunner

    main = importlib.import_module("lbgap.cli.main")  # lbgap.cli.main is also the name of its entry function
    monkeypatch.setattr(main, "_printed", set())
    runner = CliRunner()

    def invoke(*args: str):
        main._printed.clear()  # a command prints each plugin failure once: one command per process
        return runner.invoke(main.app, list(args))

    return invoke


BROKEN = """\
import lbgap

raise RuntimeError("this plugin needs a missing_toolkit_lib")
"""


def _broken_package(site: Path) -> str:
    mod = f"brokenpkg_{next(_unique)}"
    fake_package(site, "brokenpkg", "0.4", {"broken_plugins": mod}, {mod: BROKEN})
    return mod


def test_plugin_that_fails_to_import_is_named_with_traceback_only_when_verbose(cli, site):
    mod = _broken_package(site)
    res = cli("plugins", "list")
    assert res.exit_code == 0
    text = one_line(res.stderr)
    assert "plugin 'broken_plugins' (brokenpkg) could not be loaded" in text
    assert "missing_toolkit_lib" in text and "Traceback" not in text
    assert "sgd" in res.stdout  # the others keep working

    res = cli("plugins", "list", "--verbose")
    assert res.exit_code == 0
    assert "Traceback (most recent call last)" in res.stderr and f"{mod}.py" in res.stderr


def test_strict_exits_non_zero_when_a_plugin_failed(cli, site, tmp_path):
    _broken_package(site)
    res = cli("plugins", "list", "--strict")
    assert res.exit_code == 3
    assert "1 plugin(s) failed to load or register (--strict)" in one_line(res.stderr)
    res = cli("plugins", "list", "--strict", "--json")
    assert res.exit_code == 3
    # study run --strict stops before it reads or runs anything
    res = cli("study", "run", str(tmp_path / "no_such_study.yaml"), "--strict", "--out", str(tmp_path / "out"))
    assert res.exit_code == 3 and not (tmp_path / "out").exists()
    assert "broken_plugins" in one_line(res.stderr)


def test_strict_passes_when_every_plugin_loaded(cli, site):
    res = cli("plugins", "list", "--strict")
    assert res.exit_code == 0, res.stderr


SHOWN = '''\
from pydantic import PositiveInt
from lbgap import hookimpl
from lbgap.plugin import MetricPlugin, PluginConfig


class LayerNormsConfig(PluginConfig):
    """Norm of each layer's weights.

    One variable per layer, measured every ``every`` epochs.
    """

    every: PositiveInt = 2
    """Measure every this many epochs."""
    layers: list[str] = []
    """Which layers (all if empty)."""


@hookimpl
def lbgap_register_metrics():
    return [MetricPlugin(name="layer_norms", config=LayerNormsConfig, build=lambda cfg: None)]


@hookimpl
def lbgap_epoch_end(trial, record):
    pass
'''


def test_plugins_show_prints_settings_docs_package_and_hooks(cli, site):
    mod = f"showpkg_{next(_unique)}"
    fake_package(site, "showpkg", "1.5", {"show": mod}, {mod: SHOWN})
    res = cli("plugins", "show", "layer_norms", "--json")
    assert res.exit_code == 0, res.stderr
    import json

    (doc,) = json.loads(res.stdout)
    assert (doc["kind"], doc["origin"], doc["version"]) == ("metric", "showpkg", "1.5")
    assert doc["doc"].startswith("Norm of each layer's weights.") and "every ``every`` epochs" in doc["doc"]
    settings = {s["name"]: s for s in doc["settings"]}
    assert settings["every"]["default"] == "2" and settings["every"]["type"] == "int (> 0)"
    assert settings["every"]["description"] == "Measure every this many epochs."
    assert settings["layers"]["default"] == "[]" and settings["layers"]["description"] == "Which layers (all if empty)."
    assert doc["hooks"] == ["lbgap_epoch_end", "lbgap_register_metrics"]
    res = cli("plugins", "show", "layer_norms")
    text = one_line(res.stdout)
    assert res.exit_code == 0 and "metric 'layer_norms' — showpkg 1.5" in text and "lbgap_epoch_end" in text
    res = cli("plugins", "show", "layer_norm")
    assert res.exit_code == 2 and "did you mean 'layer_norms'" in res.stderr


FIGURES = '''\
from lbgap import hookimpl


@hookimpl
def lbgap_report_figures(results, out_dir):
    {body}
'''


def _results(path: Path) -> None:
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(0)
    shape = (2, 2, 3)
    dims = ("variant", "seed", "epoch")
    ds = xr.Dataset(
        {n: (dims, rng.uniform(0.1, 0.9, shape)) for n in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")},
        coords={"variant": ["sb", "lb"], "seed": [0, 1], "epoch": [1, 2, 3]},
    )
    ds["epochs_done"] = (("variant", "seed"), np.full((2, 2), 3.0))
    ds["status"] = (("variant", "seed"), np.array([["completed"] * 2] * 2))
    ds.attrs["lbgap_study"] = "figs"
    ds.to_netcdf(path)


def test_a_failing_report_figure_is_named_and_the_others_are_drawn(cli, site, caplog):
    bad, good = f"badfig_{next(_unique)}", f"goodfig_{next(_unique)}"
    fake_package(site, "badfigpkg", "0.2", {"badfig": bad},
                 {bad: FIGURES.format(body="raise ZeroDivisionError('no variance to plot')")})
    fake_package(site, "goodfigpkg", "0.1", {"goodfig": good}, {good: FIGURES.format(body='''\
import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    path = out_dir / "good.png"
    fig.savefig(path)
    plt.close(fig)
    return [("A good figure", path)]''')})
    out = site / "study"
    out.mkdir()
    _results(out / "results.nc")
    with caplog.at_level("ERROR", logger="lbgap.report.make"):
        res = cli("report", str(out))
    assert res.exit_code == 1
    assert "the figures of plugin 'badfig' (badfigpkg 0.2) failed" in one_line(res.stderr)
    (rec,) = [r for r in caplog.records if "badfig" in r.getMessage()]
    assert "ZeroDivisionError: no variance to plot" in rec.getMessage() and rec.exc_info is not None
    summary = (out / "report" / "summary.md").read_text()
    assert "![A good figure](good.png)" in summary and (out / "report" / "good.png").exists()
    assert "plugin 'badfig' (badfigpkg 0.2): ZeroDivisionError: no variance to plot" in summary


# ------------------------------------------------------------------ metric metadata


class _NormMetric:
    every = 1
    at_end = True
    outputs = ("layer_norm", "final_margin")
    attrs = {
        "layer_norm": {"units": "1", "long_name": "Frobenius norm of the first layer's weights"},
        "final_margin": {"units": "nat", "long_name": "mean logit margin at the end of training"},
    }

    def __init__(self, cfg):
        pass

    def compute(self, ctx):  # pragma: no cover - the outcome below is made by hand
        return {}


class _NormPlugin:
    @staticmethod
    @hookimpl
    def lbgap_register_metrics():
        return [MetricPlugin(name="norms", config=_OutputsConfig, build=_NormMetric)]


def _outcome(key: str, seed: int, norms: list[float]):
    import torch

    from lbgap.outcome import TrialOutcome
    from lbgap.plan import TrainingPlan

    history = {
        "train_loss": [0.5, 0.4], "test_loss": [0.6, 0.5], "train_accuracy": [0.8, 0.9],
        "test_accuracy": [0.7, 0.8], "layer_norm": norms,
    }
    return TrialOutcome(
        key=key, seed=seed, status="completed", reason="", plan=TrainingPlan(batch_size=8, lr=0.1, epochs=2),
        history=history, end={"final_margin": 1.5 + seed}, initial_state={"w": torch.zeros(1)},
        final_state={"w": torch.ones(1)},
    )


def test_metric_attrs_land_in_the_trial_file_results_and_report(tmp_path):
    import xarray as xr

    from lbgap.report import build_report
    from lbgap.results import combine_grid, trial_dataset, write_atomic

    reg = Registry.from_plugins([("norms", _NormPlugin(), "normpkg", "0.7")])
    metric = reg.build("metric", SimpleNamespace(name="norms"))
    check_output_names([metric])
    sources = VariableSources()
    sources.claim_all(["layer_norm", "final_margin"], metric)
    declared = variable_attrs_of([metric], sources)
    paths, cells = {}, []
    for seed in (0, 1):
        outcome = _outcome(f"v-{seed}", seed, [2.0 + seed, 3.0 + seed])
        if seed == 0:
            ds = trial_dataset(outcome, {"variant": "v", "seed": seed}, declared)
        else:  # the engine hands the attributes over on the outcome
            outcome.variable_attrs = declared
            ds = trial_dataset(outcome, {"variant": "v", "seed": seed})
        paths[outcome.key] = tmp_path / f"{outcome.key}.nc"
        write_atomic(ds, paths[outcome.key])
        cells.append(SimpleNamespace(key=outcome.key, variant="v", point=(), seed=seed))
    with xr.open_dataset(paths["v-0"]) as trial:
        assert trial["layer_norm"].attrs == {
            "units": "1", "long_name": "Frobenius norm of the first layer's weights",
            "source": "metric 'norms' (normpkg 0.7)",
        }
        assert trial["final_margin"].attrs["units"] == "nat"
        assert trial["test_accuracy"].attrs["long_name"] == "test accuracy (fraction correct)"
        assert "source" not in trial["test_accuracy"].attrs
    out = tmp_path / "study"
    combine_grid(paths, cells, ["variant", "seed"], [1, 2], {"lbgap_study": "norms"}, out / "results.nc")
    with xr.open_dataset(out / "results.nc") as results:
        assert results["final_margin"].attrs["long_name"] == "mean logit margin at the end of training"
        assert results["final_margin"].attrs["source"] == "metric 'norms' (normpkg 0.7)"
        assert results["layer_norm"].dims == ("variant", "seed", "epoch")
    summary = build_report(out, reg).path.read_text()
    assert "## Plugin metrics" in summary
    assert "| arm | final_margin [nat] | layer_norm [1] |" in summary
    assert "| v | 2 ± 0.71 | 3.5 ± 0.71 |" in summary
    assert "- `final_margin`: mean logit margin at the end of training (units: nat); from metric 'norms' (normpkg 0.7)" in summary


def test_study_attrs_record_which_package_provided_each_named_plugin():
    import json

    from lbgap.provenance import missing_plugin_hint
    from lbgap.results.combine import study_attrs

    reg = Registry.from_plugins([("norms", _NormPlugin(), "normpkg", "0.7")])
    study = SimpleNamespace(
        header=SimpleNamespace(description="d", reproduces=""), name="s", file="s.yaml", spec_hash="0",
        to_json=lambda: json.dumps({"base": {"metrics": [{"name": "norms"}], "model": {"name": "mlp"}}}),
    )
    attrs = study_attrs(study, reg, "cpu")
    recorded = json.loads(attrs["lbgap_plugin_sources_json"])
    assert recorded == {"metric:norms": {"package": "normpkg", "version": "0.7"}}
    assert missing_plugin_hint("metric", "norms", attrs["lbgap_plugin_sources_json"]) == (
        "metric 'norms' was provided by normpkg 0.7: install that package"
    )
    assert missing_plugin_hint("model", "mlp", recorded) is None


def test_declared_outputs_ignore_a_method_named_outputs():
    from lbgap.provenance import declared_outputs

    class WithMethod:
        attrs: dict = {}

        def outputs(self, x):
            return x

    assert declared_outputs(WithMethod()) is None
    check_output_names([WithMethod()])


def test_hook_label_names_the_package_of_a_hook_implementation():
    import toy_plugins

    from lbgap.provenance import hook_label

    reg = Registry.from_plugins([("norms", _NormPlugin(), "normpkg", "0.7"), ("toy", toy_plugins, "tests", "0")])
    metric = reg.build("metric", SimpleNamespace(name="norms"))
    (impl,) = reg.pm.hook.lbgap_register_metrics.get_hookimpls()
    assert hook_label(impl, reg) == "plugin 'norms' (normpkg 0.7)"
    assert hook_label(SimpleNamespace(plugin=metric, plugin_name="x"), reg) == "metric 'norms' (normpkg 0.7)"
    assert hook_label(SimpleNamespace(plugin=toy_plugins, plugin_name="unknown")) == "module toy_plugins"


def test_a_run_folder_names_the_package_of_a_plugin_that_is_no_longer_installed(tmp_path, toy_registry):
    import toy_plugins

    import lbgap_training
    from lbgap.driver.folder import prepare_folder
    from lbgap.spec import SpecError, load_study, load_study_text

    spec = textwrap.dedent("""\
        study: norms
        base:
          dataset: {name: blobs}
          model: {name: tiny_mlp}
          optimizer: {name: sgd, lr: 0.1}
          batch_size: 16
          epochs: 1
          metrics: [{name: norms}]
        """)
    with_norms = Registry.from_plugins(
        [("training", lbgap_training, "lbgap", "0"), ("toy", toy_plugins, "tests", "0"),
         ("norms", _NormPlugin(), "normpkg", "0.7")]
    )
    prepare_folder(load_study_text(spec, "norms.yaml", with_norms), tmp_path, None)
    with pytest.raises(SpecError) as info:  # resume, measure or report on a machine without normpkg
        load_study(tmp_path / "spec.yaml", toy_registry)
    (issue,) = [i for i in info.value.issues if i.path == "base.metrics.0.name"]
    assert issue.message.endswith("; metric 'norms' was provided by normpkg 0.7: install that package")
    with pytest.raises(SpecError) as elsewhere:  # the same file outside a run folder: no record, no hint
        load_study_text(spec, str(tmp_path / "other" / "norms.yaml"), toy_registry)
    assert "normpkg" not in str(elsewhere.value.issues[0])
