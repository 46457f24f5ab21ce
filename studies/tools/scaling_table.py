"""The measured tables of docs/reproductions.md for the steps-to-target studies
(studies/shallue_steps_to_target.yaml, studies/mccandlish_noise_scale.yaml).

Reads a finished run's results.nc and prints, as markdown:

* per batch size: the trials that met the target of the search's budget, the best trial's steps and
  examples to the target, its learning rate and momentum, the fitted S(B) = S_min (1 + B_crit/B),
  the ratio of steps to those of the next batch size, and the fit's regime;
* the fit of lbgap report (lbgap.analysis.report.critical_batch_analysis: the best per batch size,
  1000 bootstrap replicates of the batch sizes, 95 % intervals, generator seed 0);
* with the gradient_noise_scale metric: B_simple of the best trial of each batch size at its first
  measured epoch and at the target, and B_simple at the target over every trial that met it
  (median, quartiles), against B_crit; and over every trial measured twice or more, how often its last
  B_simple is above its first.

Run from the repository root:

    .venv/bin/python studies/tools/scaling_table.py runs/shallue_steps_to_target
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from lbgap.analysis.report import best_per_batch_size, critical_batch_analysis


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def main(run_dir: str) -> None:
    ds = xr.load_dataset(Path(run_dir) / "results.nc")
    (result,) = critical_batch_analysis(ds)
    fit = result.fit
    if fit is None:
        print(f"no fit: {result.reason}")
        return
    best = best_per_batch_size(ds["steps_to_target"]).isel(seed=0)
    sizes = best["batch_size"].values.astype(int)
    steps = best.values
    noise = "gradient_noise_scale" in ds
    head = (
        "| B | trials met | best steps | best examples | lr | momentum | fitted S(B) | S(B)/S(2B) | regime |"
    )
    if noise:
        head += " B_simple, first epoch | B_simple at target |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for i, b in enumerate(sizes):
        at = ds.sel(batch_size=b).isel(seed=0)
        n_met = int(np.isfinite(at["steps_to_target"].values).sum())
        trial = int(at["best_trial"])
        row = at.isel(trial=trial)
        ratio = f"{steps[i] / steps[i + 1]:.2f}" if i + 1 < len(sizes) else "—"
        fitted = fit.s_min * (1 + fit.b_crit / b)
        line = (
            f"| {b} | {n_met}/{at.sizes['trial']} | {steps[i]:.0f} | {float(row['examples_to_target']):.0f} "
            f"| {float(row['lr']):.3g} | {float(row['momentum']):g} | {fitted:.0f} | {ratio} "
            f"| {fit.regime([b])[0]} |"
        )
        if noise:
            series = _finite(row["gradient_noise_scale"].values)
            first = f"{series[0]:.3g}" if series.size else "—"
            last = f"{series[-1]:.3g}" if series.size else "—"
            line += f" {first} | {last} |"
        print(line)
    print()
    lo, hi = fit.intervals["b_crit"]
    slo, shi = fit.intervals["s_min"]
    elo, ehi = fit.intervals["e_min"]
    print(
        f"S_min = {fit.s_min:.1f} [{slo:.1f}, {shi:.1f}] steps, E_min = {fit.e_min:.0f} [{elo:.0f}, {ehi:.0f}] "
        f"examples, B_crit = {fit.b_crit:.1f} [{lo:.1f}, {hi:.1f}] ({fit.confidence:.0%} bootstrap over "
        f"{result.resample}, {fit.n_boot} replicates), rms log residual {fit.rms_log_residual:.3f}, "
        f"at_bound={fit.at_bound}"
    )
    if noise:
        met = np.isfinite(ds["steps_to_target"].values)
        da = ds["gradient_noise_scale"].transpose(..., "epoch").values
        at_target, first = [], []
        for idx in zip(*np.nonzero(met), strict=True):
            series = _finite(da[idx])
            if series.size:
                at_target.append(series[-1])
                first.append(series[0])
        at_target, first = np.array(at_target), np.array(first)
        q25, q50, q75 = np.quantile(at_target, [0.25, 0.5, 0.75])
        grew = np.mean(at_target > first)
        print(
            f"B_simple at the target over the {at_target.size} trials that met it: median {q50:.1f} "
            f"[quartiles {q25:.1f}, {q75:.1f}]; B_simple / B_crit = {q50 / fit.b_crit:.2f}; "
            f"larger at the target than at the first epoch in {grew:.0%} of them"
        )
        rows = [_finite(row) for row in da.reshape(-1, da.shape[-1])]
        twice = [row for row in rows if row.size >= 2]
        ratios = np.array([row[-1] / row[0] for row in twice])
        print(
            f"every trial measured twice or more ({len(twice)}): the last B_simple above the first in "
            f"{np.mean(ratios > 1):.0%}, median ratio last / first {np.median(ratios):.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/shallue_steps_to_target")
