"""Print the best trials of a finished Optuna search (a study with ``search:``) from its ``results.nc``.

    .venv/bin/python studies/tools/search_table.py runs/search [--top 5]

One row per trial, best first (the study's direction, ``optuna_direction``): its number, every searched
setting (the coordinates along ``trial``), the objective and how many trials were pruned. Docs tables of
searches (docs/reproductions.md, ``search_lr_batch``) are this script's output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_tables import print_tables  # noqa: E402


def cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}"
    return str(value)


def best_trials(ds: xr.Dataset, top: int) -> str:
    """The ``top`` completed trials by objective, and the count of each trial state."""
    params = [str(c) for c in ds.coords if c != "trial" and ds.coords[c].dims == ("trial",)]
    done = ds["objective"].dropna("trial")
    order = np.argsort(done.values)
    if ds.attrs.get("optuna_direction", "minimize") == "maximize":
        order = order[::-1]
    lines = ["| trial | " + " | ".join(params) + " | objective |", "|---|" + "---|" * (len(params) + 1)]
    for i in order[:top]:
        t = int(done["trial"].values[i])
        row = ds.sel(trial=t)
        lines.append(f"| {t} | " + " | ".join(cell(row[p].values.item()) for p in params) + f" | {done.values[i]:.4g} |")
    states = ", ".join(f"{n} {s}" for s, n in zip(*np.unique(ds["trial_state"].values, return_counts=True), strict=True))
    lines.append(f"\n{ds.sizes['trial']} trials: {states}; direction {ds.attrs.get('optuna_direction', '?')}.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a finished search's output folder or its results.nc")
    p.add_argument("--top", type=int, default=5, help="how many trials (default 5)")
    args = p.parse_args(argv)

    def pick(ds: xr.Dataset, _variants):
        return (lambda d: best_trials(d, args.top)) if "objective" in ds and "trial" in ds.dims else None

    return print_tables([args.run], __doc__, pick)


if __name__ == "__main__":
    sys.exit(main())
