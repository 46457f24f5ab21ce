"""Print docs/reproductions.md's Li, Wei & Ma (2019) tables from a finished run's ``results.nc``.

    .venv/bin/python studies/tools/li_tables.py runs/li_synthetic          # the P/Q mixture
    .venv/bin/python studies/tools/li_tables.py runs/li_mnist1d_lr_noise   # the clean table's analogue
    .venv/bin/python studies/tools/li_tables.py runs/convex_lr             # the convex example (§4.2)
    .venv/bin/python studies/tools/li_tables.py runs/convex_lr_gaussian    # its Gaussian design (§4.3)

The study is recognised by its variants: ``L-S``/``S``/``S_noise`` (``studies/li_synthetic.yaml``, final
test accuracy per P/Q component), ``large_then_small``/``small_noise``/``small``
(``studies/li_mnist1d_lr_noise.yaml``), ``large_then_small``/``small`` with the ``linear_coefficients``
metric (``studies/convex_lr.yaml``) or ``small``/``large_then_small_<k>`` (``studies/convex_lr_gaussian.yaml``). Accuracies are final values in %, mean ± standard deviation over
seeds (``ddof=1``) and per seed; a *spread* is the sum of two arms' standard deviations.
``tests/studies/test_fidelity_studies.py`` asserts the analogue's claims from :func:`clean_gaps`.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from lbgap.results import final_values

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_tables import first_change, ms, print_tables  # noqa: E402

SYNTHETIC_ARMS = {"L-S": "L-S", "S": "S", "S_noise": "S+noise"}
COMPONENTS = {"p_only": "P only", "q_only": "Q only", "both": "P and Q"}
CLEAN_ARMS = ("large_then_small", "small_noise", "small")
# Li, Wei & Ma, the clean CIFAR-10 table (WideResNet16, the 2020 report's Figure 3)
CLEAN_PAPER = {"large_then_small": 90.41, "small_noise": 89.65, "small": 84.93}
CLEAN_LABELS = {"large_then_small": "large then small", "small_noise": "small + noise", "small": "small"}


def per_seed(values: np.ndarray, digits: int = 2) -> str:
    return ", ".join(f"{x:.{digits}f}" for x in np.asarray(values, dtype=float))


def synthetic_table(ds: xr.Dataset) -> str:
    head = "| arm | " + " | ".join(COMPONENTS.values()) + " | epochs to ε2 | learning-rate switch after |"
    lines = [head, "|---|" + "---|" * (len(COMPONENTS) + 2)]
    for arm, label in SYNTHETIC_ARMS.items():
        cells = []
        for comp in COMPONENTS:
            acc = final_values(ds, f"test_accuracy_{comp}").sel(variant=arm).values * 100
            cells.append(f"{ms(acc, 1)} ({per_seed(acc, 1)})")
        done = ", ".join(str(int(x)) for x in ds["epochs_done"].sel(variant=arm).values)
        switches = [first_change(ds["learning_rate"].sel(variant=arm, seed=s).values, ds.epoch.values) for s in ds.seed.values]
        switch = "—" if all(x is None for x in switches) else ", ".join(str(x) for x in switches)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {done} | {switch} |")
    return "\n".join(lines)


def clean_gaps(ds: xr.Dataset) -> dict[tuple[str, str], tuple[float, float, bool]]:
    """Neighbouring arms of the paper's ordering: (gain of the first in points, spread, the first above
    the second in every seed)."""
    test = final_values(ds, "test_accuracy") * 100
    mean, std = test.mean("seed"), test.std("seed", ddof=1)
    out = {}
    for a, b in itertools.pairwise(CLEAN_ARMS):
        every = bool((test.sel(variant=a) > test.sel(variant=b)).all())
        out[a, b] = (float(mean.sel(variant=a) - mean.sel(variant=b)), float(std.sel(variant=a) + std.sel(variant=b)), every)
    return out


def clean_table(ds: xr.Dataset) -> str:
    test = final_values(ds, "test_accuracy") * 100
    loss = final_values(ds, "test_loss")
    train = final_values(ds, "train_accuracy") * 100
    lr = ds["learning_rate"].sel(variant="large_then_small").isel(seed=0)
    milestone = first_change(lr.values, lr.epoch.values)  # the last epoch before the anneal
    seeds = ", ".join(str(int(s)) for s in ds.seed.values)
    lines = [
        f"| arm | paper (WRN-16-10, CIFAR-10) | lbgap test | seeds {seeds} | test after {milestone} epochs (before the anneal) "
        "| final test loss | final running train accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in CLEAN_ARMS:
        acc = test.sel(variant=arm).values
        before = float(ds["test_accuracy"].sel(variant=arm, epoch=milestone).mean("seed")) * 100
        lines.append(
            f"| {CLEAN_LABELS[arm]} | {CLEAN_PAPER[arm]} | **{ms(acc)}** | {per_seed(acc)} | {before:.2f} "
            f"| {float(loss.sel(variant=arm).mean()):.3f} | {ms(train.sel(variant=arm).values)} |"
        )
    lines.append("")
    gaps = clean_gaps(ds)
    for (a, b), (g, s, every) in gaps.items():
        lines.append(f"{a} − {b}: {g:+.2f} points, spread {s:.2f}, higher in every seed: {'yes' if every else 'no'}")
    recovered = gaps["small_noise", "small"][0] / (gaps["large_then_small", "small_noise"][0] + gaps["small_noise", "small"][0])
    lines.append(f"The noise recovers {100 * recovered:.0f} % of the large rate's advantage over the small rate.")
    return "\n".join(lines)


def stop_eps(ds: xr.Dataset) -> float:
    """The ``train_loss_below`` threshold of the study's base (ε of the convex examples)."""
    base = json.loads(ds.attrs["lbgap_spec_json"])["header"]["base"]
    return float(next(r["eps"] for r in base["stopping"] if r["name"] == "train_loss_below"))


def convex_table(ds: xr.Dataset) -> str:
    """``convex_lr``: steps to L̂ < ε and the final training and population losses over ε, with
    ρ = e1²/e2² (e = β − β*) at the stop; seed 0 (the seeds are identical runs)."""
    eps = stop_eps(ds)
    lines = ["| arm | steps | final L̂/ε | final L_D/ε | ρ = e1²/e2² at the stop |", "|---|---|---|---|---|"]
    train, test = final_values(ds, "train_loss"), final_values(ds, "test_loss")
    for arm in ("large_then_small", "small"):
        one = {"variant": arm, "seed": ds.seed.values[0]}
        e1, e2 = (float(final_values(ds, f"beta_{i}").sel(one)) - 1.0 for i in (1, 2))
        rho = f"{e1**2 / e2**2:.2g}" if e2 != 0 else "∞ (e2 = 0)"
        lines.append(
            f"| {arm.replace('_', ' ')} | {int(ds['epochs_done'].sel(one))} | {float(train.sel(one)) / eps:.4f} "
            f"| **{float(test.sel(one)) / eps:.4f}** | {rho} |"
        )
    same = all(bool((final_values(ds, v).std("seed") == 0).all()) for v in ("train_loss", "test_loss"))
    lines.append(f"\nThe {ds.sizes['seed']} seeds are identical runs: {'yes' if same else 'no'}.")
    return "\n".join(lines)


def convex_gaussian_table(ds: xr.Dataset) -> str:
    """``convex_lr_gaussian``: test RMSE (mean ± std over the experiments, ddof 1), final train MSE,
    the mean of each experiment's test/train MSE ratio, the steps, and how often an arm's RMSE is below
    ``small``'s in the same experiment."""
    rmse, train = np.sqrt(final_values(ds, "test_loss")), final_values(ds, "train_loss")
    ratio = (final_values(ds, "test_loss") / train).mean("seed")
    lines = ["| arm | test RMSE | final train MSE | test / train MSE | steps | RMSE below `small` |", "|---|---|---|---|---|---|"]
    for arm in (str(v) for v in ds.variant.values):
        steps = ds["epochs_done"].sel(variant=arm)
        below = "—" if arm == "small" else f"{int((rmse.sel(variant=arm) < rmse.sel(variant='small')).sum())} of {ds.sizes['seed']}"
        lines.append(
            f"| {arm} | {ms(rmse.sel(variant=arm).values, 4)} | {float(train.sel(variant=arm).mean()):.4f} "
            f"| {float(ratio.sel(variant=arm)):.3f} | {int(steps.min())}–{int(steps.max())} | {below} |"
        )
    return "\n".join(lines)


def pick(ds: xr.Dataset, variants: set[str]):
    if set(SYNTHETIC_ARMS) <= variants:
        return synthetic_table
    if set(CLEAN_ARMS) <= variants:
        return clean_table
    if variants == {"large_then_small", "small"} and "beta_1" in ds:
        return convex_table
    if "small" in variants and any(v.startswith("large_then_small_") for v in variants):
        return convex_gaussian_table
    return None


def main(argv: Sequence[str] | None = None) -> int:
    return print_tables(argv, __doc__, pick)


if __name__ == "__main__":
    sys.exit(main())
