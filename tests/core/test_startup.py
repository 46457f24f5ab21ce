"""Start-up cost: the commands that only read plugins' configuration models (``lbgap study validate``,
``lbgap plugins list``, ``lbgap schema``, ``lbgap --help``) must not import the training stack.

Checked by module, not by time: each command runs in a fresh interpreter, which then lists the heavy
modules it holds. ``lbgap.api`` loads the names defined outside ``lbgap.plugin`` on first use, and the
built-in plugin packages register records whose configuration models import no torch and whose
``build`` imports the implementing module when called.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import lbgap.api as api
from lbgap.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
#: what only training, measuring, results and reports need (each costs 0.3 to 2.5 s to import)
HEAVY = ("torch", "torchvision", "scipy", "optuna", "xarray", "matplotlib")


def _heavy_after(code: str) -> list[str]:
    """The modules of :data:`HEAVY` that a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_public_api_loads_no_heavy_module():
    assert _heavy_after("import lbgap.api") == []


def test_plugin_packages_register_without_heavy_modules():
    code = (
        "from lbgap.registry import load_registry\n"
        "reg = load_registry()\n"
        "assert not reg.failures, reg.failures\n"
        "assert sum(1 for _ in reg.all_records()) > 30\n"
    )
    assert _heavy_after(code) == []


@pytest.mark.parametrize(
    "args",
    [
        ["study", "validate", *sorted(str(p) for p in (ROOT / "studies").glob("*.yaml"))],
        ["plugins", "list"],
        ["schema"],
        ["--help"],
    ],
    ids=["study validate", "plugins list", "schema", "help"],
)
def test_configuration_commands_load_no_heavy_module(args):
    code = (
        "from typer.testing import CliRunner\n"
        "from lbgap.cli.main import app\n"
        f"res = CliRunner().invoke(app, {args!r})\n"
        "assert res.exit_code == 0, res.output[-4000:]\n"
    )
    assert _heavy_after(code) == []


def test_every_public_name_imports_from_the_api():
    names = ", ".join(api.__all__)
    # in a fresh interpreter, each name resolves through lbgap.api's look-up on first use
    assert "torch" in _heavy_after(f"from lbgap.api import {names}")
    assert set(api.__all__) <= set(dir(api))
    for name in api.__all__:
        assert getattr(api, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        api.not_a_name  # noqa: B018


def test_deferred_builds_resolve_to_their_implementations():
    """Each built-in record's ``build`` imports its module on demand; the object it stands for exists,
    and a metric class agrees with the record on its name and configuration model."""
    reg = load_registry()
    deferred = [rec for rec in reg.all_records() if hasattr(rec.build, "resolve")]
    for rec in deferred:
        target = rec.build.resolve()
        assert callable(target), rec.name
        assert (rec.build.__doc__ or "") == (target.__doc__ or "")
        if isinstance(target, type) and hasattr(target, "config_cls"):
            assert (target.name, target.config_cls) == (rec.name, rec.config)
    kinds = {rec.kind for rec in deferred}
    assert {"model", "dataset", "metric"} <= kinds
