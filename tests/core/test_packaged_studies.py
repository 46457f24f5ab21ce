"""The studies shipped with lbgap: listed, copied and run by name, from a source checkout and
from an installed wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LBGAP = [sys.executable, "-m", "lbgap"]
#: a shipped study shrunk to one epoch, one seed, two variants and a small data set
SHORT = [
    "base.epochs=1", "seeds=[0]", "variants={sb: {}, lb: {batch_size: 1024}}", "base.dataset.num_samples=2000",
]


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_list_names_the_shipped_studies(tmp_path):
    res = run([*LBGAP, "study", "list", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    by_name = {s["name"]: s for s in doc["studies"]}
    assert set(by_name) == {p.stem for p in (ROOT / "studies").glob("*.yaml")}
    assert by_name["hoffer_regime"]["scale"] == "CPU" and by_name["hoffer_regime"]["reproduces"].startswith("Hoffer")
    assert by_name["keskar_sb_lb_paper_c1"]["scale"] == "paper"
    res = run([*LBGAP, "study", "list"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(line for line in res.stdout.splitlines() if " hoffer_regime " in line)
    assert "Hoffer et al. 2017" in line and "CPU" in line


def test_copy_and_validate_by_name(tmp_path):
    res = run([*LBGAP, "study", "copy", "hoffer_regime"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "hoffer_regime.yaml").read_text() == (ROOT / "studies" / "hoffer_regime.yaml").read_text()
    res = run([*LBGAP, "study", "copy", "hoffer_regime"], cwd=tmp_path)  # no silent overwrite
    assert res.returncode == 2 and "--force" in res.stderr
    (tmp_path / "mine").mkdir()
    res = run([*LBGAP, "study", "copy", "hoffer_regime", "mine"], cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / "mine" / "hoffer_regime.yaml").is_file()
    res = run([*LBGAP, "study", "copy", "hofer_regime"], cwd=tmp_path)
    assert res.returncode == 2 and "did you mean 'hoffer_regime'" in res.stderr
    # a name that is no file is a shipped study
    (tmp_path / "hoffer_regime.yaml").unlink()
    res = run([*LBGAP, "study", "validate", "hoffer_regime"], cwd=tmp_path)
    assert res.returncode == 0 and "study 'hoffer_regime'" in res.stdout, res.stderr
    # a file of that name comes first
    (tmp_path / "hoffer_regime").write_text("study: x\n")
    res = run([*LBGAP, "study", "validate", "hoffer_regime"], cwd=tmp_path)
    assert res.returncode == 2


def test_a_study_that_extends_a_base_is_listed_copied_and_runs_with_it(tmp_path):
    """The bases in studies/bases/ are no studies of their own: not listed, but copied beside a
    study that extends one, so that the copy validates where it was written."""
    res = run([*LBGAP, "study", "list", "--json"], cwd=tmp_path)
    names = {s["name"] for s in json.loads(res.stdout)["studies"]}
    bases = {p.stem for p in (ROOT / "studies" / "bases").glob("*.yaml")}
    assert "keskar_sb_lb_paper_c1" in names and bases and not names & bases
    (tmp_path / "mine").mkdir()
    res = run([*LBGAP, "study", "copy", "keskar_sb_lb_paper_c1", "mine"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    base = tmp_path / "mine" / "bases" / "keskar_sb_lb_protocol.yaml"
    assert base.read_text() == (ROOT / "studies" / "bases" / "keskar_sb_lb_protocol.yaml").read_text()
    res = run([*LBGAP, "study", "validate", "mine/keskar_sb_lb_paper_c1.yaml"], cwd=tmp_path)
    assert res.returncode == 0 and "study 'keskar_sb_lb_paper_c1'" in res.stdout, res.stderr


def _site_packages(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def test_wheel_ships_the_studies(tmp_path):
    """Build the wheel from the tracked files, install it into a fresh virtual environment whose
    only other packages are the project's dependencies, and use a shipped study by name from a
    folder outside the source tree."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    res = run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist")], cwd=src)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("lbgap-*.whl")

    venv = tmp_path / "venv"
    res = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    python = venv / "bin" / "python"
    # the dependencies (torch, ...) from the test's environment, after the new environment's own
    # packages; the .pth files there (the editable install of lbgap) are not read
    Path(_site_packages(python), "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    res = run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr

    work = tmp_path / "work"
    work.mkdir()
    lbgap = [str(venv / "bin" / "lbgap")]
    res = run([str(python), "-c", "import lbgap, sys; print(lbgap.__file__)"], cwd=work)
    assert res.returncode == 0 and res.stdout.startswith(str(venv)), res.stdout + res.stderr
    res = run([*lbgap, "study", "list", "--json"], cwd=work)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["folder"].startswith(str(venv))
    assert "hoffer_regime" in {s["name"] for s in doc["studies"]}
    res = run([*lbgap, "study", "copy", "hoffer_regime", "h.yaml"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert (work / "h.yaml").read_text() == (ROOT / "studies" / "hoffer_regime.yaml").read_text()
    # a study that extends a base finds it in the installed folder
    res = run([*lbgap, "study", "show", "keskar_sb_lb_paper_c1"], cwd=work)
    assert res.returncode == 0 and "subspace_matrix: gaussian" in res.stdout, res.stderr
    res = run([*lbgap, "study", "run", "hoffer_regime", *SHORT, "--out", "out", "--no-report", "--device", "cpu"], cwd=work)
    assert res.returncode == 0, res.stderr
    assert (work / "out" / "results.nc").is_file()
