"""What the table scripts of studies/tools/ share: read the one argument (a finished run's folder or its
``results.nc``), print the tables of the study it holds, and under them the processor and the seeds; the
mean ± standard deviation cell and the epoch a schedule first changes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

Table = Callable[[xr.Dataset], str]


def ms(values: np.ndarray, digits: int = 2) -> str:
    """Mean ± standard deviation (``ddof=1``) of ``values``; the mean alone for one value."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def first_change(series: np.ndarray, epochs: np.ndarray) -> int | None:
    """The last epoch at the first value of a per-epoch series before it first changes (None: never);
    NaN epochs (not recorded) are skipped."""
    ok = ~np.isnan(series)
    s, e = series[ok], epochs[ok]
    moved = np.nonzero(~np.isclose(s, s[0], rtol=1e-9, atol=0))[0]
    return int(e[moved[0] - 1]) if len(moved) else None


def machine_line(ds: xr.Dataset) -> str:
    cpu = json.loads(ds.attrs.get("lbgap_cpu_json", "{}"))
    if not cpu:
        return "Processor: not recorded (a results.nc written before lbgap recorded it)."
    return f"Processor: {cpu['model']} ({cpu['machine']}, torch CPU kernels {cpu['torch_cpu_capability']})."


def print_tables(argv: Sequence[str] | None, usage: str, pick: Callable[[xr.Dataset, set[str]], Table | None]) -> int:
    """The body of a table script's ``main``: ``pick(ds, variants)`` returns the function that renders the
    study's tables, or None for a study the script does not know. Exit status 2 on bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(usage, file=sys.stderr)
        return 2
    path = Path(args[0])
    path = path / "results.nc" if path.is_dir() else path
    if not path.exists():
        print(f"{path}: no such file (a finished run's folder or its results.nc)", file=sys.stderr)
        return 2
    with xr.open_dataset(path) as ds:
        variants = {str(v) for v in ds.variant.values} if "variant" in ds.coords else set()
        table = pick(ds, variants)
        if table is None:
            print(f"{path}: not a study this script knows (variants: {sorted(variants)})", file=sys.stderr)
            return 2
        print(table(ds))
        print(f"\n{machine_line(ds)} Seeds: {ds.sizes['seed']}.")
    return 0
