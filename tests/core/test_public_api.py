"""The public plugin API (``lbgap.api``): what it exports, and that plugins import nothing else."""

from __future__ import annotations

import ast
import importlib.metadata as md
import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import lbgap
import lbgap.api as api

ROOT = Path(__file__).resolve().parents[2]
#: lbgap names a plugin may import besides ``lbgap.api``: the marker ``from lbgap import hookimpl``
ALLOWED_FROM_TOP = {"hookimpl"}


def _sources() -> list[Path]:
    files = []
    for folder in (ROOT / "plugins", ROOT / "examples"):
        files += [p for p in folder.rglob("*.py") if not {"build", ".eggs"} & set(p.parts)
                  and not any(part.endswith(".egg-info") for part in p.parts)]
    return sorted(files)


def private_imports(source: str) -> list[str]:
    """``lbgap`` imports in ``source`` other than ``lbgap.api`` (and ``from lbgap import hookimpl``),
    anywhere in the module (function-level imports included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "lbgap" or (alias.name.startswith("lbgap.") and alias.name != "lbgap.api"):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "lbgap":
                bad = [a.name for a in node.names if a.name not in ALLOWED_FROM_TOP]
                if bad:
                    found.append(f"line {node.lineno}: from lbgap import {', '.join(bad)}")
            elif node.module.startswith("lbgap.") and node.module != "lbgap.api":
                found.append(f"line {node.lineno}: from {node.module} import ...")
    return found


def test_the_scan_finds_private_imports():
    src = (
        "import lbgap.engine.train\n"
        "from lbgap.plugin import PluginConfig\n"
        "from lbgap import hookimpl, __version__\n"
        "from lbgap.api import hookimpl\n"
        "import lbgap_models\n"
        "def f():\n    from lbgap.registry import get_registry\n"
    )
    assert sorted(private_imports(src)) == [
        "line 1: import lbgap.engine.train",
        "line 2: from lbgap.plugin import ...",
        "line 3: from lbgap import __version__",
        "line 7: from lbgap.registry import ...",
    ]


def test_plugins_and_examples_import_only_the_public_api():
    files = _sources()
    assert any("lbgap_curvature" in str(p) for p in files) and any("examples" in p.parts for p in files)
    offenders = {
        str(p.relative_to(ROOT)): found for p in files if (found := private_imports(p.read_text()))
    }
    assert not offenders, "plugins must import from lbgap.api only:\n" + "\n".join(
        f"{path}: {'; '.join(found)}" for path, found in offenders.items()
    )


def test_every_exported_name_exists_and_is_documented():
    assert len(set(api.__all__)) == len(api.__all__)
    for name in api.__all__:
        obj = getattr(api, name)
        if callable(obj) and not isinstance(obj, int) and name not in {"BatchTransform", "MetricValue"}:
            assert (getattr(obj, "__doc__", None) or "").strip(), f"lbgap.api.{name} has no docstring"
    assert set(api.__all__) >= {
        "hookimpl", "ModelPlugin", "DatasetPlugin", "OptimizerPlugin", "SchedulePlugin", "RegimePlugin",
        "NoisePlugin", "MetricPlugin", "StoppingPlugin", "PluginConfig", "Nested", "InMemoryData", "DataInfo",
        "BatchTransform", "TrialContext", "MeasureContext", "Progress", "Schedule", "StoppingRule", "Metric",
        "MetricValue", "TrainingPlan", "NoiseSite", "noise_sites", "batchnorm_layers", "bn_eval_mode",
        "variable_attrs", "final_values", "band_over_runs", "derive_seed",
    }
    assert api.hookimpl is lbgap.hookimpl


def test_api_reference_is_current():
    from lbgap.docgen import API_BEGIN, API_END, api_reference

    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index(API_BEGIN) : text.index(API_END) + len(API_END)]
    assert section + "\n" == api_reference(), "run `python -m lbgap.docgen docs/hooks.md` (make docs)"
    for name in api.__all__:
        assert f"#### `{name}`" in section


def test_trial_context_lives_outside_the_engine():
    assert api.TrialContext.__module__ == "lbgap.trial"
    assert not (ROOT / "lbgap" / "engine" / "context.py").exists()


@pytest.mark.parametrize("seed", [0, 1, 7, 2**32 - 1])
def test_derive_seed_is_the_engines_rule(seed):
    # the streams the engine has always used: seed * 1_000_003 + K
    for stream in (1, 17, 29, 41, 53, 41 + 7919 * 3, 53 + 7919 * 2, 7919 * 5 + 1):
        assert api.derive_seed(seed, stream) == seed * 1_000_003 + stream
    assert (api.TRIAL_STREAM, api.BATCH_ORDER_STREAM, api.AUGMENT_STREAM, api.LOCAL_STREAM, api.EVAL_STREAM) == (
        17, 29, 41, 53, 1,
    )
    assert api.RANK_STRIDE == 7919 and api.SEED_STRIDE == 1_000_003
    a = api.seeded_generator(seed, api.TRIAL_STREAM)
    assert a.initial_seed() == seed * 1_000_003 + 17


# ------------------------------------------------------------- the plugin pages of the docs

PAGES = sorted((ROOT / "docs" / "plugins").glob("*.md"))
#: a per-epoch or end-of-training variable each page's plugin adds to its study's results
EXPECTED = {
    "dataset": "test_accuracy_near_axes",
    "noise": "gradient_noise_std_used",
    "metric": "test_margin",
}


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _page_module(page: Path) -> types.ModuleType:
    (code,) = _blocks(page.read_text(), "python")
    assert not private_imports(code), f"{page.name} imports private lbgap modules"
    module = types.ModuleType(f"lbgap_docs_{page.stem}")
    sys.modules[module.__name__] = module
    exec(compile(code, str(page), "exec"), module.__dict__)
    return module


@pytest.fixture(scope="module")
def installed() -> list[tuple]:
    plugins = []
    for ep in sorted(md.entry_points(group="lbgap"), key=lambda e: e.name):
        try:
            plugins.append((ep.name, ep.load(), "installed", "0"))
        except Exception:  # reported by the registry; not what this test is about
            continue
    return plugins


def test_every_kind_has_a_page():
    from lbgap.plugin import PLUGIN_KINDS

    assert {p.stem for p in PAGES} >= set(PLUGIN_KINDS) | {"report"}
    text = (ROOT / "docs" / "plugins.md").read_text()
    for page in PAGES:
        assert f"plugins/{page.name}" in text, f"docs/plugins.md does not link {page.name}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "report"], ids=lambda p: p.stem)
def test_plugin_page_runs_its_study(page, installed):
    """Each page's plugin, exactly as printed, registers and trains in the page's study."""
    from lbgap.engine.train import run_trial
    from lbgap.registry import Registry
    from lbgap.spec import load_study_text

    module = _page_module(page)
    registry = Registry.from_plugins([*installed, ("docs", module, "docs", "0")])
    assert not registry.failures, registry.failures
    (study_text,) = _blocks(page.read_text(), "yaml")
    study = load_study_text(study_text, page.name, registry)
    out = run_trial(study.resolve("base", {}), 0, registry=registry, device=torch.device("cpu"))
    assert out.status in ("completed", "stopped"), out.reason
    if page.stem in EXPECTED:
        name = EXPECTED[page.stem]
        assert name in out.history or name in out.end, sorted(out.history)
        assert all(math.isfinite(v) for v in out.history.get(name, []))
    if page.stem == "regime":
        assert (out.plan.epochs, out.plan.time_scale) == (2, 2.0) and out.plan.lr == pytest.approx(0.2)


def test_report_page_draws_its_figure(tmp_path):
    module = _page_module(ROOT / "docs" / "plugins" / "report.md")
    values = np.array([[[1.0, 2.0, np.nan], [1.5, 2.5, 3.0]]])  # variant, seed, epoch
    ds = xr.Dataset(
        {"test_margin": (("variant", "seed", "epoch"), values, {"units": "1"})},
        coords={"variant": ["a"], "seed": [0, 1], "epoch": [1, 2, 3]},
    )
    ((title, path),) = module.lbgap_report_figures(results=ds, out_dir=tmp_path)
    assert title == "Test margin" and path.stat().st_size > 0
    assert module.lbgap_report_figures(results=ds.drop_vars("test_margin"), out_dir=tmp_path) == []


def test_metrics_python_api_examples_run():
    """The code of docs/metrics.md's "Python API" section runs as printed."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    section = text[text.index("## Python API") :]
    section = section[: m.start() + 3] if (m := re.search(r"\n## ", section[3:])) else section
    code = "\n".join(_blocks(section, "python"))
    assert "keskar_sharpness(" in code and "MeasureContext(" in code
    namespace: dict = {"__name__": "metrics_python_api"}
    exec(compile(code, "docs/metrics.md", "exec"), namespace)
    assert namespace["values"]["keskar_sharpness_full_eps1e-03"] >= 0
    assert namespace["result"].sharpness >= 0 and namespace["eig"].converged.all()
    assert namespace["top"].dims == ("eigen_index",)
