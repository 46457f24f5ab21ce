"""Output for machines: piped output is not wrapped, --json where a program reads the output,
NO_COLOR respected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

LBGAP = [sys.executable, "-m", "lbgap"]

DIGITS = """\
study: digits_out
base:
  dataset: {name: digits}
  model: {name: mlp, hidden: [16]}
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  batch_size: 64
  epochs: 1
variants:
  sb: {}
  lb: {batch_size: 512}
seeds: [0]
"""


def lbgap(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI with stdout and stderr piped and no COLUMNS: as in CI or `| less`."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")}
    return subprocess.run(
        [*LBGAP, *args], cwd=cwd, env={**base, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


def test_piped_errors_are_one_line_each(tmp_path):
    folder = tmp_path / ("a_rather_long_folder_name_for_a_study_file_" * 2)
    folder.mkdir()
    (folder / "bad.yaml").write_text(DIGITS.replace("hidden: [16]", "hidden: [16], dropout_rate_of_the_hidden_layers: 0.5"))
    res = lbgap("study", "validate", str(folder / "bad.yaml"), cwd=tmp_path)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert len(line) > 200  # far beyond 80 columns, and not wrapped
    assert line.startswith(f"{folder / 'bad.yaml'}:4: base.model.dropout_rate_of_the_hidden_layers: unknown key")
    assert line.rstrip().endswith("norm")  # the whole list of allowed keys is there
    assert "\x1b[" not in res.stderr


def test_piped_tables_are_not_cut(tmp_path):
    res = lbgap("plugins", "list", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    plugins = json.loads(res.stdout)["plugins"]
    res = lbgap("plugins", "list", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    for p in plugins:  # each row whole on one line: name, origin and the full summary
        assert any(p["name"] in line and p["origin"] in line and p["summary"] in line for line in lines), p
    assert max(len(line) for line in lines) > 80
    assert "\x1b[" not in res.stdout


def test_no_color(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    env = {"FORCE_COLOR": "1", "NO_COLOR": "1"}
    res = lbgap("study", "copy", "no_such_study", cwd=tmp_path, env=env)
    assert res.returncode == 2 and "error:" in res.stderr
    assert "\x1b[31m" not in res.stderr and "\x1b[1;31m" not in res.stderr  # no red
    res = lbgap("study", "copy", "no_such_study", cwd=tmp_path, env={"FORCE_COLOR": "1"})
    assert "\x1b[" in res.stderr  # colour when forced and not refused


def test_validate_json(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    (tmp_path / "bad.yaml").write_text(DIGITS.replace("epochs: 1", "epochs: 0"))
    res = lbgap("study", "validate", "s.yaml", "bad.yaml", "--json", cwd=tmp_path)
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    good, bad = doc["files"]
    assert doc["ok"] is False
    assert good["ok"] and good["study"] == "digits_out" and good["trials"] == 2 and good["variants"] == ["sb", "lb"]
    assert len(good["spec_sha256"]) == 64
    assert bad == {
        "file": "bad.yaml", "ok": False,
        "errors": [{"file": "bad.yaml", "line": 7, "path": "base.epochs",
                    "message": "Input should be greater than 0 (got 0)"}],
    }
    assert res.stderr == ""


def test_dry_run_json(tmp_path):
    (tmp_path / "s.yaml").write_text(DIGITS)
    res = lbgap("study", "run", "s.yaml", "--dry-run", "--json", "--device", "cpu", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["study"] == "digits_out" and doc["ok"] is True and doc["trials"] == 2
    assert [r["variant"] for r in doc["results"]] == ["sb", "lb"]
    assert all(r["ok"] and r["parameters"] > 0 and r["trial_seconds"] > 0 for r in doc["results"])
    assert doc["study_seconds"]["low"] > 0
    assert not (tmp_path / "runs").exists()
