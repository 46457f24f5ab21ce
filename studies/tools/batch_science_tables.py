"""Print the measured tables of the batch-science studies from a finished run's ``results.nc``.

    .venv/bin/python studies/tools/batch_science_tables.py runs/goyal_linear_warmup
    .venv/bin/python studies/tools/batch_science_tables.py runs/smith_increase_batch

The study is recognised by its variants: ``scaled_warmup``/``scaled_no_warmup``/``unscaled`` along a
``batch_size`` grid (Goyal et al. 2017, ``studies/goyal_linear_warmup*.yaml``) or
``decay_lr``/``increase_batch``/``hybrid`` (Smith et al. 2018, ``studies/smith_increase_batch*.yaml``).
Every value is a mean ± standard deviation over seeds (``ddof=1``), in markdown; the tests in
``tests/studies/test_batch_science_studies.py`` assert the claims from the same functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

GOYAL_ARMS = ("scaled_warmup", "scaled_no_warmup", "unscaled")
SMITH_ARMS = ("decay_lr", "increase_batch", "hybrid")


def final(da: xr.DataArray) -> xr.DataArray:
    """The last non-NaN value along ``epoch`` (NaN where there is none)."""
    values = da.transpose(..., "epoch").values
    out = np.full(values.shape[:-1], np.nan)
    for idx in np.ndindex(*values.shape[:-1]):
        row = values[idx][~np.isnan(values[idx])]
        out[idx] = row[-1] if len(row) else np.nan
    dims = [d for d in da.dims if d != "epoch"]
    return xr.DataArray(out, dims=dims, coords={d: da[d] for d in dims})


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float).ravel()
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def fmt(values, scale: float = 1.0, digits: int = 2) -> str:
    m, s = mean_std(np.asarray(values, dtype=float) * scale)
    return "—" if np.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


# ----------------------------------------------------------------------------- Goyal et al.


def goyal_numbers(ds: xr.Dataset) -> dict:
    """Per arm and batch size: final test error (%), final training loss, steps to the target, steps
    and the largest gap of the seed-mean test-error curve to the reference batch's (points)."""
    sizes = [int(b) for b in ds["batch_size"].values]
    ref = min(sizes)
    err = (1 - ds["test_accuracy"]) * 100
    ref_curve = err.sel(variant="scaled_warmup", batch_size=ref).mean("seed")
    out = {}
    for arm in GOYAL_ARMS:
        for b in sizes:
            cell = ds.sel(variant=arm, batch_size=b)
            curve = err.sel(variant=arm, batch_size=b).mean("seed")
            out[arm, b] = {
                "test_error": final(err.sel(variant=arm, batch_size=b)).values,
                "train_loss": final(cell["train_loss"]).values,
                "train_loss_epoch1": cell["train_loss"].isel(epoch=0).values,
                "steps_to_target": cell["steps_to_target"].values if "steps_to_target" in ds else None,
                "steps": int(np.nanmax(cell["step"].values)),
                "curve_gap": float(np.nanmax(np.abs(curve - ref_curve).values)),
            }
    return out


def goyal_tables(ds: xr.Dataset) -> str:
    nums = goyal_numbers(ds)
    sizes = [int(b) for b in ds["batch_size"].values]
    head = "| arm | " + " | ".join(str(b) for b in sizes) + " |\n|---|" + "---|" * len(sizes) + "\n"
    lines = []
    for title, key, scale, digits in (
        ("final test error (%)", "test_error", 1.0, 2),
        ("final training loss", "train_loss", 1.0, 3),
        ("training loss after epoch 1", "train_loss_epoch1", 1.0, 3),
    ):
        lines.append(f"{title}, mean ± std over seeds\n\n" + head)
        for arm in GOYAL_ARMS:
            lines.append(f"| {arm} | " + " | ".join(fmt(nums[arm, b][key], scale, digits) for b in sizes) + " |\n")
        lines.append("\n")
    if "steps_to_target" in ds:
        spec = ds.attrs.get("lbgap_spec_json", "")
        lines.append("steps to the target (median over seeds; n/m = seeds that met it) and optimizer steps\n\n" + head)
        for arm in GOYAL_ARMS:
            cells = []
            for b in sizes:
                stt = np.asarray(nums[arm, b]["steps_to_target"], dtype=float)
                met = stt[~np.isnan(stt)]
                med = f"{np.median(met):.0f}" if len(met) else "—"
                cells.append(f"{med} ({len(met)}/{len(stt)}) of {nums[arm, b]['steps']}")
            lines.append(f"| {arm} | " + " | ".join(cells) + " |\n")
        lines.append("\n")
        del spec
    lines.append("largest gap of the seed-mean test-error curve to the reference batch's (points)\n\n" + head)
    for arm in GOYAL_ARMS:
        lines.append(f"| {arm} | " + " | ".join(f"{nums[arm, b]['curve_gap']:.2f}" for b in sizes) + " |\n")
    return "".join(lines)


# ----------------------------------------------------------------------------- Smith et al.


def smith_numbers(ds: xr.Dataset) -> dict:
    """Per arm: test accuracy (%) per epoch and seed, final test accuracy, steps, the batch and the
    SGD noise scale per epoch; and the largest difference between the arms' seed-mean curves."""
    acc = ds["test_accuracy"] * 100
    out = {"arms": {}}
    for arm in SMITH_ARMS:
        cell = ds.sel(variant=arm)
        out["arms"][arm] = {
            "test_accuracy": acc.sel(variant=arm).values,  # seed × epoch
            "final": final(acc.sel(variant=arm)).values,
            "steps": cell["step"].max("epoch").values,
            "batch": cell["batch_size_epoch"].isel(seed=0).values,
            "noise": cell["sgd_noise_scale"].values,
            "lr": cell["learning_rate"].isel(seed=0).values,
        }
    curves = {arm: np.nanmean(v["test_accuracy"], axis=0) for arm, v in out["arms"].items()}
    out["curve_gap"] = float(
        max(np.nanmax(np.abs(curves[a] - curves["decay_lr"])) for a in SMITH_ARMS if a != "decay_lr")
    )
    out["epochs"] = ds["epoch"].values
    return out


def smith_tables(ds: xr.Dataset) -> str:
    nums = smith_numbers(ds)
    arms = nums["arms"]
    batch = arms["increase_batch"]["batch"]
    # the last epoch of every stage (the epoch before each change of the batch, and the last one)
    ends = [i for i in range(len(batch)) if i == len(batch) - 1 or batch[i + 1] != batch[i]]
    epochs = [int(nums["epochs"][i]) for i in ends]
    head = "| arm | " + " | ".join(f"epoch {e}" for e in epochs) + " | steps |\n|---|" + "---|" * (len(ends) + 1) + "\n"
    lines = ["test accuracy (%) at the end of each stage, mean ± std over seeds\n\n", head]
    for arm, v in arms.items():
        cells = [fmt(v["test_accuracy"][:, i]) for i in ends]
        steps = sorted({int(s) for s in v["steps"]})
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {', '.join(map(str, steps))} |\n")
    lines.append("\nbatch size / learning rate / SGD noise scale g in each stage (seed 0; g equal in every seed)\n\n")
    lines.append("| arm | " + " | ".join(f"epoch {e}" for e in epochs) + " |\n|---|" + "---|" * len(ends) + "\n")
    for arm, v in arms.items():
        cells = [f"{v['batch'][i]:.0f} / {v['lr'][i]:.3g} / {v['noise'][0, i]:.4g}" for i in ends]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |\n")
    noise = np.stack([v["noise"] for v in arms.values()])
    spread = float(np.nanmax(np.abs(noise - noise[:1])) / np.nanmax(np.abs(noise)))
    fin = {arm: v["final"] for arm, v in arms.items()}
    seed_std = max(mean_std(f)[1] for f in fin.values())
    lines.append(
        f"\nlargest relative difference of g between arms, any epoch and seed: {spread:.1e}\n"
        f"largest gap between the arms' seed-mean test-accuracy curves (any epoch): {nums['curve_gap']:.2f} points\n"
        "final test accuracy differences to decay_lr: "
        + ", ".join(f"{a} {np.mean(fin[a]) - np.mean(fin['decay_lr']):+.2f}" for a in SMITH_ARMS if a != "decay_lr")
        + f" points; largest seed std of an arm {seed_std:.2f} points\n"
    )
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    path = Path(argv[0])
    ds = xr.load_dataset(path / "results.nc" if path.is_dir() else path)
    variants = set(map(str, ds["variant"].values))
    if variants >= set(GOYAL_ARMS):
        print(goyal_tables(ds))
    elif variants >= set(SMITH_ARMS):
        print(smith_tables(ds))
    else:
        print(f"not a batch-science study: variants {sorted(variants)}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
