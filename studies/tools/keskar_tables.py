"""The Keskar tables of docs/reproductions.md, from a finished study's results.nc.

Each subcommand reads one run folder (``lbgap study run FILE --out DIR``) and prints the markdown
table rows and the summary numbers that the doc quotes, so every number there comes from a command:

    python studies/tools/keskar_tables.py sb_lb DIR          # keskar_sb_lb: Tables 2-4, Fig. 3
    python studies/tools/keskar_tables.py sweep DIR          # keskar_batch_sweep: Fig. 4
    python studies/tools/keskar_tables.py piggyback DIR      # keskar_piggyback: Fig. 5 and controls
    python studies/tools/keskar_tables.py steep DIR          # keskar_sharpness_loss: Fig. 6, steep fraction
    python studies/tools/keskar_tables.py optimizers DIR     # nishtala_optimizers: SB/LB per optimizer
    python studies/tools/keskar_tables.py dinh DIR           # dinh_reparam: the α sweep

Values are mean ± standard deviation over seeds (ddof 1). Ratios of means come with a 95% percentile
bootstrap interval that resamples the seeds of each arm independently (``--boot`` draws, seeded).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

#: eigenvalues at least this fraction of the top one count as steep directions (first: the headline)
STEEP_THRESHOLDS = (0.1, 0.01)


# ----------------------------------------------------------------- helpers


def final(da: xr.DataArray) -> xr.DataArray:
    """The last non-NaN value along ``epoch`` (runs stopped by the plateau rule end early)."""
    if "epoch" not in da.dims:
        return da
    values = da.transpose(..., "epoch").values
    out = np.full(values.shape[:-1], np.nan)
    for idx in np.ndindex(*values.shape[:-1]):
        row = values[idx][~np.isnan(values[idx])]
        out[idx] = row[-1] if len(row) else np.nan
    dims = [d for d in da.dims if d != "epoch"]
    return xr.DataArray(out, dims=dims, coords={d: da[d] for d in dims})


def epochs_trained(ds: xr.Dataset) -> xr.DataArray:
    """The last epoch with a training loss, per trial."""
    ok = ds["train_loss"].notnull()
    return (ok * ds["epoch"]).max("epoch")


def ms(values: np.ndarray, fmt: str = "{:.2f}") -> str:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return "–"
    if len(v) == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} ± {fmt.format(v.std(ddof=1))}"


def g(x: float) -> str:
    """A number in the doc's style: 3 significant digits, scientific below 0.01."""
    if not np.isfinite(x):
        return "nan"
    if x != 0 and abs(x) < 0.01:
        return f"{x:.1e}"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, *, boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """mean(num) / mean(den) and its 95% percentile interval, each arm's seeds resampled independently."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    num, den = num[~np.isnan(num)], den[~np.isnan(den)]
    rng = np.random.default_rng(seed)
    a = rng.choice(num, size=(boot, len(num))).mean(1)
    b = rng.choice(den, size=(boot, len(den))).mean(1)
    lo, hi = np.percentile(a / b, [2.5, 97.5])
    return float(num.mean() / den.mean()), float(lo), float(hi)


def rank_p(a: np.ndarray, b: np.ndarray) -> float:
    """One-sided Mann–Whitney U test that the values of ``a`` tend to exceed those of ``b`` (its p-value)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(np.asarray(a, float), np.asarray(b, float), alternative="greater").pvalue)


def bootstrap_diff(a: np.ndarray, b: np.ndarray, *, boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) − mean(b) and its 95% percentile interval (seeds of each arm resampled independently)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    da = rng.choice(a, size=(boot, len(a))).mean(1) - rng.choice(b, size=(boot, len(b))).mean(1)
    lo, hi = np.percentile(da, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def steep_fraction(nodes: np.ndarray, weights: np.ndarray, top: float, threshold: float) -> float:
    """Fraction of the Hessian's eigenvalues at or above ``threshold × top``, from stochastic Lanczos
    quadrature: the mean over probes of the quadrature weights of the nodes at or above it (the
    quadrature estimate of 1 − F(threshold·top), F the spectral distribution). ``nodes`` and
    ``weights``: (probes, nodes), NaN-padded, as ``hessian_spectrum_nodes`` / ``_weights``."""
    nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
    if np.isnan(nodes).all() or not np.isfinite(top):
        return float("nan")  # a trial without a spectrum
    above = np.where(np.isnan(nodes), 0.0, (nodes >= threshold * top) * np.nan_to_num(weights))
    return float(above.sum(1).mean())


def _ms_g(values: np.ndarray) -> str:
    """mean ± standard deviation, each as :func:`g` writes it."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return "–"
    return g(float(v.mean())) + (f" ± {g(float(v.std(ddof=1)))}" if len(v) > 1 else "")


def _row(label: str, cells: Sequence[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def _phi_vars(ds: xr.Dataset) -> list[str]:
    return [v for v in ds.data_vars if str(v).startswith("keskar_sharpness_")]


def _phi_label(var: str) -> str:
    rest = var.removeprefix("keskar_sharpness_")
    space, eps = rest.rsplit("_eps", 1)
    space = {"full": "full space", "random_gaussian": "random 100-dim subspace (Gaussian A)",
             "random_orthonormal": "random 100-dim subspace (orthonormal A)",
             "random_smoothout": "random 100-dim subspace (SmoothOut A)",
             "random": "random 100-dim subspace (orthonormal A, the default)"}.get(space, space)
    mant, exp = f"{float(eps):.0e}".split("e")
    return f"φ {space}, ε = {mant}e{int(exp)}"


# ----------------------------------------------------------------- keskar_sb_lb


def sb_lb(ds: xr.Dataset, boot: int) -> None:
    acc = final(ds["test_accuracy"]) * 100
    tr = final(ds["train_accuracy"]) * 100
    ep = epochs_trained(ds)
    n = ds.sizes["seed"]
    print(f"{n} seeds; mean ± standard deviation\n")
    print("| | lbgap, CPU scale: SB | LB |\n|---|---|---|")
    print(_row("training accuracy (%)", [ms(tr.sel(variant=v).values) for v in ("sb", "lb")]))
    print(_row("test accuracy (%)", [ms(acc.sel(variant=v).values) for v in ("sb", "lb")]))
    print(_row("epochs (plateau rule)", [ms(ep.sel(variant=v).values, "{:.1f}") for v in ("sb", "lb")]))
    phis = _phi_vars(ds)
    for var in phis:
        x = final(ds[var])
        print(_row(_phi_label(var), [ms(x.sel(variant=v).values) for v in ("sb", "lb")]))
    print()
    d, lo, hi = bootstrap_diff(acc.sel(variant="sb").values, acc.sel(variant="lb").values, boot=boot)
    print(f"test accuracy SB − LB: {d:.2f} points (95% bootstrap {lo:.2f} to {hi:.2f})")
    for var in phis:
        x = final(ds[var])
        sb, lb = x.sel(variant="sb").values, x.sel(variant="lb").values
        r, lo, hi = bootstrap_ratio(lb, sb, boot=boot)
        per_seed = lb / sb
        below = int((lb <= sb.max()).sum())
        print(
            f"{_phi_label(var)}: LB/SB of the means {r:.1f}× (95% bootstrap {lo:.1f}–{hi:.1f}); "
            f"seed by seed {per_seed.min():.1f}×–{per_seed.max():.1f}× (median {np.median(per_seed):.1f}×); "
            f"SB {g(sb.min())}–{g(sb.max())}, LB {g(lb.min())}–{g(lb.max())}; "
            f"LB seeds at or below the SB maximum: {below} of {len(lb)}; "
            f"below the SB mean: {int((lb < sb.mean()).sum())}; "
            f"rank test LB > SB (Mann–Whitney U, one-sided) p = {rank_p(lb, sb):.2g}"
        )
        for flag in ("float64", "stalled"):
            f = var.replace("keskar_sharpness_", f"keskar_{flag}_")
            if f in ds:
                k = final(ds[f])
                print(f"  {flag}: SB {int(np.nansum(k.sel(variant='sb')))}, LB {int(np.nansum(k.sel(variant='lb')))}")
    if "interpolation_train_loss" in ds:
        loss = ds["interpolation_train_loss"].sel(variant="sb").mean("seed")
        alphas = [float(a) for a in ds["alpha"].values]
        keep = [a for a in alphas if a in (-1, -0.5, -0.25, 0, 0.5, 0.75, 1, 1.25, 1.5, 2)]
        print("\n| α | " + " | ".join(f"{a:g}" for a in keep) + " |")
        print("|---|" + "---|" * len(keep))
        print(_row("train loss", [f"{float(loss.sel(alpha=a)):.4g}" for a in keep]))
        if "interpolation_test_accuracy" in ds:
            tacc = ds["interpolation_test_accuracy"].sel(variant="sb").mean("seed") * 100
            print(_row("test accuracy (%)", [f"{float(tacc.sel(alpha=a)):.2f}" for a in keep]))


# ----------------------------------------------------------------- dinh_reparam

DINH_ROWS = (
    ("max ∣Δ logits∣ / max ∣logits∣ (largest over seeds)", "reparam_logit_max_rel_change", 1.0),
    ("test accuracy (%)", "reparam_test_accuracy", 100.0),
    ("top Hessian eigenvalue", "reparam_hessian_top_eigenvalue", 1.0),
    ("φ full, ε = 1e-3", "reparam_keskar_sharpness_full_eps1e-03", 1.0),
    ("φ full, ε = 5e-4", "reparam_keskar_sharpness_full_eps5e-04", 1.0),
    ("adaptive sharpness", "reparam_adaptive_sharpness_worst_l2_rho0.1", 1.0),
)


def dinh(ds: xr.Dataset, boot: int) -> None:
    """``dinh_reparam``: each measurement of the reparameterized copies against α, seed means (± standard
    deviation at α = 1), and the trial-by-trial factors at the extreme α against α = 1."""
    alphas = [float(a) for a in ds["reparam_alpha"].values]
    print(f"{ds.sizes['seed']} seeds; seed means, ± standard deviation at α = 1\n")
    print("| | α | " + " | ".join(f"{a:g}" for a in alphas) + " |")
    print("|---|---|" + "---|" * len(alphas))
    for arm in (str(v) for v in ds["variant"].values):
        for i, (label, var, scale) in enumerate(DINH_ROWS):
            da = ds[var].sel(variant=arm) * scale
            fmt = (lambda x: f"{x:.2f}") if scale == 100.0 else g  # noqa: E731
            cells = []
            for a in alphas:
                x = da.sel(reparam_alpha=a).values
                if var == "reparam_logit_max_rel_change":
                    cells.append(g(float(np.max(x))))
                elif a == 1.0:
                    cells.append(f"{fmt(float(x.mean()))} ± {fmt(float(x.std(ddof=1)))}")
                else:
                    cells.append(fmt(float(x.mean())))
            print(f"| {arm.upper() if i == 0 else ''} | {label} | " + " | ".join(cells) + " |")
    ends = [a for a in (alphas[0], alphas[-1]) if a != 1.0]
    print()
    for label, var, _ in DINH_ROWS[2:5]:
        at1 = ds[var].sel(reparam_alpha=1.0)
        f = np.concatenate([(ds[var].sel(reparam_alpha=a) / at1).values.ravel() for a in ends])
        print(f"{label}: α ∈ {{{', '.join(f'{a:g}' for a in ends)}}} ÷ α = 1, trial by trial {g(f.min())}×–{g(f.max())}×")
    ada = ds[DINH_ROWS[5][1]]
    rel = float((np.abs(ada - ada.sel(reparam_alpha=1.0)) / ada.sel(reparam_alpha=1.0)).max())
    acc = ds["reparam_test_accuracy"]
    same = bool((acc == acc.sel(reparam_alpha=1.0)).all())
    print(f"adaptive sharpness: largest relative change {rel:.1g}; test accuracy identical at every α: {'yes' if same else 'no'}")


# ----------------------------------------------------------------- nishtala_optimizers


def optimizers(ds: xr.Dataset, boot: int) -> None:
    """``nishtala_optimizers``: per optimizer (variants ``<opt>_sb`` / ``<opt>_lb``) the test accuracy,
    the gap with its interval, φ and the LB/SB ratio with its interval, the epochs the plateau rule left."""
    acc, ep = final(ds["test_accuracy"]) * 100, epochs_trained(ds)
    phi = final(ds["keskar_sharpness_full_eps1e-03"])
    opts = sorted({str(v).rsplit("_", 1)[0] for v in ds["variant"].values})
    print(f"{ds.sizes['seed']} seeds; mean ± standard deviation\n")
    print("| optimizer | test SB | test LB | SB − LB (95% bootstrap) | φ SB | φ LB | LB/SB (95% bootstrap) | epochs SB | epochs LB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for o in opts:
        sb, lb = f"{o}_sb", f"{o}_lb"
        d, lo, hi = bootstrap_diff(acc.sel(variant=sb).values, acc.sel(variant=lb).values, boot=boot)
        r, rlo, rhi = bootstrap_ratio(phi.sel(variant=lb).values, phi.sel(variant=sb).values, boot=boot)
        cells = [
            ms(acc.sel(variant=sb).values), ms(acc.sel(variant=lb).values), f"{d:.2f} ({lo:.2f} to {hi:.2f})",
            ms(phi.sel(variant=sb).values), ms(phi.sel(variant=lb).values), f"{r:.1f}× ({rlo:.1f}–{rhi:.1f})",
            ms(ep.sel(variant=sb).values, "{:.1f}"), ms(ep.sel(variant=lb).values, "{:.1f}"),
        ]
        print(_row(o, cells))


# ----------------------------------------------------------------- keskar_batch_sweep


def sweep(ds: xr.Dataset, boot: int) -> None:
    from scipy.stats import spearmanr

    ds = ds.sel(variant=ds["variant"].values[0])
    sizes = [int(b) for b in ds["batch_size"].values]
    acc = final(ds["test_accuracy"]) * 100
    tr = final(ds["train_accuracy"]) * 100
    phi = final(ds["keskar_sharpness_full_eps1e-03"])
    print(f"{ds.sizes['seed']} seeds; mean ± standard deviation\n")
    print("| batch | " + " | ".join(str(b) for b in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    print(_row("training accuracy (%)", [ms(tr.sel(batch_size=b).values) for b in sizes]))
    print(_row("test accuracy (%)", [ms(acc.sel(batch_size=b).values) for b in sizes]))
    print(_row("φ, ε = 1e-3", [ms(phi.sel(batch_size=b).values) for b in sizes]))
    print()
    logb = np.log(sizes)
    print(f"Spearman ρ against log batch, seed means: φ {spearmanr(logb, phi.mean('seed')).statistic:.2f}, "
          f"test accuracy {spearmanr(logb, acc.mean('seed')).statistic:.2f}")
    pooled_b = np.repeat(logb, ds.sizes["seed"])
    pa = acc.transpose("batch_size", "seed").values.ravel()
    pp = phi.transpose("batch_size", "seed").values.ravel()
    print(f"Spearman ρ over all trials: φ {spearmanr(pooled_b, pp).statistic:.2f}, "
          f"test accuracy {spearmanr(pooled_b, pa).statistic:.2f}")
    r, lo, hi = bootstrap_ratio(phi.sel(batch_size=sizes[-1]).values, phi.sel(batch_size=sizes[0]).values, boot=boot)
    print(f"φ {sizes[-1]} / {sizes[0]}: {r:.1f}× (95% bootstrap {lo:.1f}–{hi:.1f})")
    small = acc.sel(batch_size=sizes[:2]).values.ravel()
    large = acc.sel(batch_size=sizes[-2:]).values.ravel()
    d, lo, hi = bootstrap_diff(small, large, boot=boot)
    print(f"test accuracy, two smallest − two largest batches: {d:.2f} points (95% bootstrap {lo:.2f} to {hi:.2f})")
    d, lo, hi = bootstrap_diff(acc.sel(batch_size=sizes[0]).values, acc.sel(batch_size=sizes[-1]).values, boot=boot)
    print(f"test accuracy, {sizes[0]} − {sizes[-1]}: {d:.2f} points (95% bootstrap {lo:.2f} to {hi:.2f})")
    print(f"training accuracy, smallest trial: {float(tr.min()):.2f}%")


# ----------------------------------------------------------------- keskar_piggyback


def piggyback(ds: xr.Dataset, boot: int) -> None:
    variants = [str(v) for v in ds["variant"].values]
    phi_vars = _phi_vars(ds)
    cols: list[tuple[str, str, int | None]] = []  # (label, variant, epoch or None for the end)
    if "sb" in variants:
        last = int(epochs_trained(ds).sel(variant="sb").max())
        ks = sorted(int(v.removeprefix("lb_k")) for v in variants if v.startswith("lb_k"))
        cols.append((f"SB, {max(ks)} ep. (source of k = {max(ks)})", "sb", max(ks)))
        cols.append((f"SB, {last} ep.", "sb", None))
    warm = sorted((v for v in variants if v.startswith("lb_k")), key=lambda v: int(v.removeprefix("lb_k")))
    cols += [(f"k = {v.removeprefix('lb_k')}", v, None) for v in warm]
    if "lb_long" in variants:
        cols.append((f"cold LB, {int(epochs_trained(ds).sel(variant='lb_long').max())} ep.", "lb_long", None))
    if "lb_loss" in variants:
        cols.append(("cold LB to k = 10's loss", "lb_loss", None))

    def at(var: str, variant: str, epoch: int | None) -> np.ndarray:
        da = ds[var].sel(variant=variant)
        if epoch is None:
            return final(da).values
        return da.sel(epoch=epoch).values

    print(f"{ds.sizes['seed']} seeds; mean ± standard deviation\n")
    print("| arm | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    def total_epochs(v: str, e: int | None) -> str:
        done = epochs_trained(ds).sel(variant=v).values if e is None else np.full(ds.sizes["seed"], e)
        k = int(v.removeprefix("lb_k")) if v.startswith("lb_k") else 0
        return ", ".join(str(int(x) + k) for x in done) if len(set(done)) > 1 else str(int(done[0]) + k)

    print(_row("epochs in all", [total_epochs(v, e) for _, v, e in cols]))
    print(_row("test accuracy (%)", [ms(at("test_accuracy", v, e) * 100) for _, v, e in cols]))
    print(_row("training loss", [g(float(np.nanmean(at("train_loss", v, e)))) for _, v, e in cols]))
    for var in phi_vars:
        print(_row(_phi_label(var), [_ms_g(at(var, v, e)) for _, v, e in cols]))
    print()
    for var in phi_vars:
        for _, v, e in cols:
            if v.startswith("lb_k") and v not in ("lb_k0",):
                print(f"{_phi_label(var)} {v} per seed: " + ", ".join(g(x) for x in at(var, v, e)))
    for a, b in (("lb_k10", "lb_k0"), ("lb_k10", "lb_long"), ("lb_long", "lb_k0"), ("lb_k10", "lb_loss"), ("lb_loss", "lb_k0")):
        if a in variants and b in variants:
            d, lo, hi = bootstrap_diff(at("test_accuracy", a, None) * 100, at("test_accuracy", b, None) * 100, boot=boot)
            r, rlo, rhi = bootstrap_ratio(at(phi_vars[0], a, None), at(phi_vars[0], b, None), boot=boot)
            print(f"{a} − {b}: test accuracy {d:+.2f} points (95% bootstrap {lo:+.2f} to {hi:+.2f}); "
                  f"{_phi_label(phi_vars[0])} ratio {r:.2g} ({rlo:.2g}–{rhi:.2g})")
    if "lb_k10" in variants and "sb" in variants:
        for e, label in ((10, "SB after 10 epochs (its source)"), (None, "SB after 30 epochs (equal budget)")):
            d, lo, hi = bootstrap_diff(at("test_accuracy", "lb_k10", None) * 100, at("test_accuracy", "sb", e) * 100, boot=boot)
            print(f"lb_k10 − {label}: test accuracy {d:+.2f} points (95% bootstrap {lo:+.2f} to {hi:+.2f})")


# ----------------------------------------------------------------- keskar_sharpness_loss


def steep(ds: xr.Dataset, boot: int, thresholds: Sequence[float]) -> None:
    variants = [str(v) for v in ds["variant"].values]
    seeds = ds["seed"].values
    print(f"{len(seeds)} seeds; mean ± standard deviation\n")
    cols = ["top eigenvalue λ₁ (Lanczos)", "largest SLQ node"]
    cols += [f"fraction of eigenvalues ≥ {t:g} λ₁ (λ₁: the larger of the two)" for t in thresholds]
    cols += ["φ full, ε = 1e-3", "φ random Gaussian 100-dim, ε = 1e-3", "random / full", "test accuracy (%)"]
    print("| | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    fractions: dict[tuple[str, float], np.ndarray] = {}
    for v in variants:
        d = ds.sel(variant=v)
        top = d["hessian_top_eigenvalue"].transpose("seed").values
        nodes = d["hessian_spectrum_nodes"].transpose("seed", "slq_probe", "slq_node").values
        weights = d["hessian_spectrum_weights"].transpose("seed", "slq_probe", "slq_node").values
        cells = [ms(top, "{:.3g}"), ms(np.nanmax(nodes, axis=(1, 2)), "{:.3g}")]
        # λ₁: the larger of the Lanczos top eigenvalue and the largest SLQ node (either may stop short)
        lam1 = np.fmax(top, np.nanmax(nodes, axis=(1, 2)))
        for t in thresholds:
            f = np.array([steep_fraction(nodes[i], weights[i], lam1[i], t) for i in range(len(seeds))])
            fractions[(v, t)] = f
            cells.append(ms(f * 100, "{:.2f}") + " %")
        full = final(d["keskar_sharpness_full_eps1e-03"]).values
        rnd = final(d["keskar_sharpness_random_gaussian_eps1e-03"]).values
        cells += [ms(full), ms(rnd), ms(rnd / full, "{:.2f}"), ms(final(d["test_accuracy"]).values * 100)]
        print(_row(v.upper(), cells))
    print()
    for v in variants:
        for t in thresholds:
            f = fractions[(v, t)]
            print(f"{v}: fraction ≥ {t:g} λ₁ per seed: " + ", ".join(f"{x * 100:.2f} %" for x in f))
    print("\nSharpness against the training loss (per seed, every measured epoch):")
    for v in variants:
        for s in seeds:
            d = ds.sel(variant=v, seed=s)
            phi = d["keskar_sharpness_full_eps1e-03"]
            ok = phi.notnull().values
            pts = [f"{g(float(loss))}→{g(float(p))}" for loss, p in zip(d["train_loss"].values[ok], phi.values[ok], strict=True)]
            print(f"  {v} seed {s} (loss→φ): " + ", ".join(pts))
    print("\n| training loss above | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for lo, hi in ((0.1, np.inf), (0.01, 0.1), (0.001, 0.01), (0.0, 0.001)):
        cells = []
        for v in variants:
            d = ds.sel(variant=v)
            loss = d["train_loss"].values.ravel()
            phi = d["keskar_sharpness_full_eps1e-03"].values.ravel()
            m = ~np.isnan(phi) & (loss >= lo) & (loss < hi)
            cells.append(f"{ms(phi[m])} (n = {int(m.sum())})" if m.any() else "–")
        print(_row(f"{lo:g} (below {hi:g})", cells))


def load(run: Path) -> xr.Dataset:
    """``run/results.nc``; without it (a run whose combine step failed), the trial files of
    ``run/trials`` put together: a variable measured per epoch in some trials and only at the end in
    others takes its end value at the trial's last epoch."""
    path = run / "results.nc"
    if path.exists():
        return xr.load_dataset(path)
    trials = [xr.load_dataset(f) for f in sorted((run / "trials").glob("*.nc"))]
    if not trials:
        raise SystemExit(f"{run} holds neither results.nc nor trials/*.nc")
    print(f"(no results.nc: {len(trials)} trial files of {run / 'trials'})\n")
    per_epoch = {str(v) for t in trials for v in t.data_vars if "epoch" in t[v].dims}
    parts = []
    for t in trials:
        last = int(t["epoch"].values[-1])
        for v in list(t.data_vars):
            if v in per_epoch and "epoch" not in t[v].dims:
                t[v] = t[v].expand_dims(epoch=t["epoch"].values).where(t["epoch"] == last)
        parts.append(t.expand_dims(["variant", "seed"]))
    return xr.merge(parts, join="outer", compat="no_conflicts", combine_attrs="drop_conflicts")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["sb_lb", "sweep", "piggyback", "steep", "optimizers", "dinh"])
    p.add_argument("run", type=Path, help="a finished study's output folder (results.nc, else trials/*.nc)")
    p.add_argument("--boot", type=int, default=10_000, help="bootstrap draws (default 10,000)")
    p.add_argument("--threshold", type=float, nargs="+", default=list(STEEP_THRESHOLDS),
                   help="steep: eigenvalue thresholds relative to the top one (default 0.1 0.01)")
    args = p.parse_args(argv)
    ds = load(args.run)
    if args.kind == "sb_lb":
        sb_lb(ds, args.boot)
    elif args.kind == "sweep":
        sweep(ds, args.boot)
    elif args.kind == "piggyback":
        piggyback(ds, args.boot)
    elif args.kind == "optimizers":
        optimizers(ds, args.boot)
    elif args.kind == "dinh":
        dinh(ds, args.boot)
    else:
        steep(ds, args.boot, args.threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
