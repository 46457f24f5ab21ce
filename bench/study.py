"""A whole study end to end under different throughput settings, timed round-robin.

Each configuration runs ``lbgap study run SPEC --out <fresh folder> --no-report`` with its own
``--jobs``/``--vectorize`` in a subprocess; the configurations alternate, round after round
(after one warm-up run of the first, which also fills the data caches), and the ratio of the
median wall times is reported against the first configuration, the baseline. The results of
every run are compared with the baseline's (every data variable but wall-clock times), so a
setting that changed a number would be reported as such.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES = ("epoch_time", "wall_time")


def run_once(spec: Path, args: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "lbgap", "study", "run", str(spec), "--out", str(out), "--no-report", *args]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


def same_results(a: Path, b: Path) -> bool:
    import numpy as np
    import xarray as xr

    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        for name in x.data_vars:
            if name in TIMES:
                continue
            u, v = x[name].values, y[name].values
            if u.dtype.kind == "f" and not np.array_equal(u, v, equal_nan=True):
                return False
            if u.dtype.kind != "f" and not np.array_equal(u, v):
                return False
    return True


def compare_settings(
    spec: Path, settings: dict[str, list[str]], rounds: int = 3, keep: Path | None = None
) -> list[dict]:
    """Median wall time of the study under each setting (the first is the baseline); ``keep``:
    where to copy the baseline's results.nc."""
    work = Path(tempfile.mkdtemp(prefix="lbgap-bench-"))
    try:
        names = list(settings)
        run_once(spec, settings[names[0]], work / "warmup")
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / "warmup" / "results.nc", keep)
        times: dict[str, list[float]] = {n: [] for n in names}
        same: dict[str, bool] = {n: True for n in names}
        for r in range(rounds):
            for n in names:
                out = work / f"{n}-{r}"
                times[n].append(run_once(spec, settings[n], out))
                same[n] = same[n] and same_results(out / "results.nc", work / "warmup" / "results.nc")
                shutil.rmtree(out)
        base = statistics.median(times[names[0]])
        return [
            {"setting": n, "args": " ".join(settings[n]), "median_s": statistics.median(times[n]),
             "ratio": base / statistics.median(times[n]), "same_results": same[n], "times": times[n]}
            for n in names
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
