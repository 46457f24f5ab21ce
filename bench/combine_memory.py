"""Peak memory and time of combining a study's trial files into ``results.nc``.

``python -m bench.combine_memory --trials 2000 5000 --epochs 100`` writes N synthetic trial files
shaped like the Hoffer study's (nine per-epoch variables, five scalars, ``status`` and
``status_reason``, the same attributes and encoding; one variant of five trains 1.6× the epochs,
as regime adaptation does, so the histories are ragged) for a grid of 5 variants × N/50 batch
sizes × 10 seeds, then combines them with :func:`lbgap.results.combine_grid` in a fresh process
per measurement and reports that process's peak resident memory (``ru_maxrss``) before and after
combining, and the combining time. ``--impl concat`` measures the one-call ``xarray.combine_nested``
that combining used before it streamed (:func:`lbgap.results.combine.combine_grid_in_memory`).

The trial files are kept in ``--cache`` (default: a folder under the system's temporary folder),
so a second measurement does not write them again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

VARIANTS = ["sb", "lb", "lb_lr", "lb_lr_gbn", "lb_lr_gbn_ra"]
SEEDS = 10
#: the per-epoch variables of a Hoffer trial file, with their attributes (lbgap.results.attrs)
PER_EPOCH = [
    "train_loss", "train_accuracy", "test_loss", "test_accuracy", "weight_distance", "step",
    "learning_rate", "train_loss_running", "epoch_time",
]
SCALARS = ["effective_learning_rate", "planned_epochs", "time_scale", "epochs_done", "wall_time"]


def grid(n_trials: int) -> tuple[list[SimpleNamespace], list[int]]:
    """Cells (variant × batch size × seed) of a grid of about ``n_trials`` trials."""
    from lbgap.spec.load import cell_key

    n_batch = max(1, round(n_trials / (len(VARIANTS) * SEEDS)))
    batches = [64 * (i + 1) for i in range(n_batch)]
    cells = []
    for v in VARIANTS:
        for b in batches:
            point = (("batch_size", b),)
            for s in range(SEEDS):
                cells.append(SimpleNamespace(variant=v, point=point, seed=s, key=cell_key(v, point, s)))
    return cells, batches


def trial(cell: SimpleNamespace, epochs: int, rng: np.random.Generator):
    """A trial file's dataset, as :func:`lbgap.results.trial_dataset` writes a Hoffer trial."""
    import xarray as xr

    from lbgap.results.attrs import variable_attrs
    from lbgap.results.trialfile import coord_value

    n = int(epochs * 1.6) if cell.variant.endswith("_ra") else epochs
    data = {name: xr.Variable(("epoch",), rng.random(n), attrs=variable_attrs(name)) for name in PER_EPOCH}
    for name in SCALARS:
        data[name] = xr.Variable((), float(rng.random()), attrs=variable_attrs(name))
    data["status"] = xr.Variable((), "completed", attrs=variable_attrs("status"))
    data["status_reason"] = xr.Variable((), "", attrs=variable_attrs("status_reason"))
    epoch = np.arange(1, n + 1, dtype=np.int64)
    ds = xr.Dataset(data, coords={"epoch": ("epoch", epoch, variable_attrs("epoch"))})
    coords = {"variant": cell.variant, **dict(cell.point), "seed": cell.seed}
    for name, value in coords.items():
        ds = ds.assign_coords({name: coord_value(value)})
        ds[name].attrs.update(variable_attrs(name))
    ds.attrs["lbgap_trial_key"] = cell.key
    ds.attrs["data_description"] = "MNIST-1D from mnist1d.make_dataset (seed 42, 10000 samples)"
    return ds


def make_trials(folder: Path, n_trials: int, epochs: int) -> Path:
    """Write the trial files once (``folder/trials``), with the encoding of ``write_atomic``."""
    from lbgap.results.trialfile import netcdf_encoding

    trials = folder / "trials"
    done = folder / "complete.json"
    cells, _ = grid(n_trials)
    if done.exists() and json.loads(done.read_text()) == {"trials": len(cells), "epochs": epochs}:
        return trials
    trials.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for cell in cells:
        ds = trial(cell, epochs, rng)
        ds.to_netcdf(trials / f"{cell.key}.nc", engine="netcdf4", encoding=netcdf_encoding(ds))
    done.write_text(json.dumps({"trials": len(cells), "epochs": epochs}))
    return trials


def child(folder: Path, n_trials: int, impl: str, out: Path) -> dict:
    """Combine in this (fresh) process; peak RSS before and after, and the time."""
    from lbgap.results import combine as combine_mod

    cells, batches = grid(n_trials)
    paths = {c.key: folder / "trials" / f"{c.key}.nc" for c in cells}
    shape = (len(VARIANTS), len(batches), SEEDS)
    dims = ["variant", "batch_size", "seed"]
    attrs = {"lbgap_study": "combine_memory", "Conventions": "CF-1.11"}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn = combine_mod.combine_grid if impl == "stream" else combine_mod.combine_grid_in_memory
    t0 = time.perf_counter()
    fn(paths, cells, dims, shape, attrs, out)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {
        "impl": impl, "trials": len(cells), "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak * scale / 2**20, 1), "rss_before_mib": round(before * scale / 2**20, 1),
        "results_nc_mib": round(out.stat().st_size / 2**20, 2),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.combine_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--impl", nargs="+", choices=["stream", "concat"], default=["stream"])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "lbgap-combine-memory")
    ap.add_argument("--child", nargs=3, metavar=("FOLDER", "N", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        folder, n, impl = Path(args.child[0]), int(args.child[1]), args.child[2]
        print(json.dumps(child(folder, n, impl, folder / f"results-{impl}.nc")))
        return 0
    rows = []
    for n in args.trials:
        folder = args.cache / f"{n}x{args.epochs}"
        t0 = time.perf_counter()
        make_trials(folder, n, args.epochs)
        made = time.perf_counter() - t0
        for impl in args.impl:
            proc = subprocess.run(
                [sys.executable, "-m", "bench.combine_memory", "--child", str(folder), str(n), impl],
                capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], env=os.environ,
            )
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{row['trials']:>6} trials × {args.epochs} epochs  {impl:>6}: {row['seconds']:7.1f} s, "
                f"peak RSS {row['peak_rss_mib']:7.1f} MiB (before combining {row['rss_before_mib']:.1f} MiB), "
                f"results.nc {row['results_nc_mib']:.1f} MiB  [trial files ready in {made:.0f} s]",
                flush=True,
            )
    if len(args.impl) == 2:
        for n in sorted({r["trials"] for r in rows}):
            a, b = (next(r for r in rows if r["trials"] == n and r["impl"] == i) for i in ("concat", "stream"))
            print(f"{n:>6} trials: peak RSS {b['peak_rss_mib'] / a['peak_rss_mib']:.2f}× and time "
                  f"{b['seconds'] / max(a['seconds'], 1e-9):.2f}× of the one-call concatenation"
                  if not math.isnan(a["seconds"]) else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
