"""Print docs/reproductions.md's Hoffer et al. (2017) tables from a finished run's ``results.nc``.

    .venv/bin/python studies/tools/hoffer_tables.py runs/hoffer_regime      # the five arms (make study)
    .venv/bin/python studies/tools/hoffer_tables.py runs/hoffer_ghost_bn    # the ghost sizes

The study is recognised by its variants: ``sb``/``lb``/``lb_lr``/``lb_lr_gbn``/``lb_lr_gbn_ra``
(``studies/hoffer_regime.yaml``) or ``bn``/``ghost_<n>`` (``studies/hoffer_ghost_bn.yaml``). Accuracies
are final values in %, mean ± standard deviation over seeds (``ddof=1``). Each comparison of two arms
gives the difference of their means with a 95 % percentile bootstrap interval (each arm's seeds resampled
independently, 10,000 draws, seeded: ``keskar_tables.bootstrap_diff``), the yardstick of the claims,
and the *spread*, the sum of the two standard deviations, which does not shrink with more seeds.
``tests/studies/test_studies.py`` asserts the claims from :func:`regime_gains` and :func:`ghost_gains`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from lbgap.results import final_values

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keskar_tables import bootstrap_diff  # noqa: E402
from run_tables import first_change, ms, print_tables  # noqa: E402

ARMS = ("sb", "lb", "lb_lr", "lb_lr_gbn", "lb_lr_gbn_ra")
LABELS = {"sb": "SB", "lb": "LB", "lb_lr": "+LR (√ scaling)", "lb_lr_gbn": "+GBN", "lb_lr_gbn_ra": "+RA"}
# Hoffer, Hubara & Soudry 2017, Table 1 [recall]: F1 on MNIST, ResNet44 on CIFAR-10
PAPER = {
    "sb": (99.31, 92.83),
    "lb": (99.13, 86.10),
    "lb_lr": (99.13, 89.30),
    "lb_lr_gbn": (99.18, 90.50),
    "lb_lr_gbn_ra": (99.28, 93.07),
}
# (a, b, what the gain of a over b is): the comparisons the docs and the slow test make
COMPARISONS = (
    ("sb", "lb", "the large-batch gap"),
    ("lb_lr", "lb", "√ scaling over LB"),
    ("lb_lr_gbn", "lb_lr", "ghost BN over √ scaling"),
    ("lb_lr_gbn_ra", "lb_lr", "regime adaptation over √ scaling"),
    ("lb_lr_gbn_ra", "lb", "what +RA closes of the gap"),
    ("sb", "lb_lr_gbn_ra", "SB over +RA"),
)


def finals(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Each run's final value of ``name`` in % (variant × seed)."""
    return final_values(ds, name) * 100


def gain(test: xr.DataArray, a: str, b: str) -> tuple[float, float, float, float]:
    """mean(a) − mean(b) over seeds, its 95 % bootstrap interval (low, high), and the spread std(a) + std(b)."""
    std = test.std("seed", ddof=1)
    diff, lo, hi = bootstrap_diff(test.sel(variant=a).values, test.sel(variant=b).values)
    return diff, lo, hi, float(std.sel(variant=a) + std.sel(variant=b))


def regime_gains(ds: xr.Dataset) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    """Every comparison of :data:`COMPARISONS`: (gain, interval low, interval high, spread), in points."""
    test = finals(ds, "test_accuracy")
    return {(a, b): gain(test, a, b) for a, b, _ in COMPARISONS}


def ghost_gains(ds: xr.Dataset) -> dict[str, tuple[float, float, float, float]]:
    """Each ghost arm's gain over plain BatchNorm (``bn``): (gain, interval low, high, spread), in points."""
    test = finals(ds, "test_accuracy")
    return {str(v): gain(test, str(v), "bn") for v in ds.variant.values if v != "bn"}


def end_of_high_rate(ds: xr.Dataset, variant: str) -> int:
    """The last epoch before the variant's first learning-rate drop (seed 0's schedule; its last
    recorded epoch when the rate never changes)."""
    lr = ds["learning_rate"].sel(variant=variant).isel(seed=0)
    last = int(lr.dropna("epoch").epoch.max())
    changed = first_change(lr.values, lr.epoch.values)
    return last if changed is None else changed


def seeds_line(test: xr.DataArray, arms: Sequence[str]) -> str:
    seeds = ", ".join(str(int(s)) for s in test.seed.values)
    cells = "; ".join(
        f"{LABELS.get(a, a)} " + ", ".join(f"{x:.1f}" for x in test.sel(variant=a).values) for a in arms
    )
    return f"Per seed ({seeds}), test: {cells}."


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def regime_tables(ds: xr.Dataset) -> str:
    test, train = finals(ds, "test_accuracy"), finals(ds, "train_accuracy")
    lines = [
        "| arm | paper, F1 on MNIST [recall] | paper, ResNet44 on CIFAR-10 [recall] | lbgap test | lbgap train |",
        "|---|---|---|---|---|",
    ]
    for a in ARMS:
        f1, resnet = PAPER[a]
        lines.append(f"| {LABELS[a]} | {f1} | {resnet} | {ms(test.sel(variant=a).values)} | {ms(train.sel(variant=a).values)} |")
    lines += [
        "",
        seeds_line(test, ARMS),
        "",
        "| comparison | gain (points) | 95 % bootstrap interval | interval excludes 0 | spread | gain clears it |",
        "|---|---|---|---|---|---|",
    ]
    gains = regime_gains(ds)
    for a, b, what in COMPARISONS:
        g, lo, hi, s = gains[a, b]
        lines.append(
            f"| {what} ({LABELS[a]} − {LABELS[b]}) | {g:+.2f} | {lo:+.2f} to {hi:+.2f} | {yes(lo > 0 or hi < 0)} "
            f"| {s:.2f} | {yes(abs(g) > s)} |"
        )
    closed = gains["lb_lr_gbn_ra", "lb"][0] / gains["sb", "lb"][0]
    lines.append(f"\n+RA closes {100 * closed:.0f} % of the gap.")
    dist = ds["weight_distance"].mean("seed")
    cells = ", ".join(f"{LABELS[a]} {float(dist.sel(variant=a, epoch=end_of_high_rate(ds, a))):.1f}" for a in ARMS)
    lines.append(f"‖w_t − w_0‖ at the end of the high-rate phase (seed mean): {cells}.")
    return "\n".join(lines)


def ghost_tables(ds: xr.Dataset) -> str:
    test, train = finals(ds, "test_accuracy"), finals(ds, "train_accuracy")
    ghosts = sorted((str(v) for v in ds.variant.values if v != "bn"), key=lambda v: -int(v.split("_")[1]))
    lines = [
        "| ghost size | test | train | test − plain BN, per seed | gain | 95 % bootstrap interval | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.append(f"| plain BatchNorm | {ms(test.sel(variant='bn').values)} | {ms(train.sel(variant='bn').values)} | — | — | — | — |")
    gains = ghost_gains(ds)
    for v in ghosts:
        diff = test.sel(variant=v).values - test.sel(variant="bn").values
        per_seed = ", ".join(f"{d:+.1f}" for d in diff)
        g, lo, hi, s = gains[v]
        lines.append(
            f"| {v.split('_')[1]} | {ms(test.sel(variant=v).values)} | {ms(train.sel(variant=v).values)} | {per_seed} "
            f"| {g:+.2f} | {lo:+.2f} to {hi:+.2f} | {s:.2f} |"
        )
    return "\n".join(lines)


def pick(ds: xr.Dataset, variants: set[str]):
    if set(ARMS) <= variants:
        return regime_tables
    if "bn" in variants and any(v.startswith("ghost_") for v in variants):
        return ghost_tables
    return None


def main(argv: Sequence[str] | None = None) -> int:
    return print_tables(argv, __doc__, pick)


if __name__ == "__main__":
    sys.exit(main())
