"""The public plugin API (``lbgap.api``): what it exports, and that plugins import nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


def test_trial_context_lives_outside_the_engine():
    from lbgap.engine.context import TrialContext

    assert TrialContext is api.TrialContext
    assert api.TrialContext.__module__ == "lbgap.trial"


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
