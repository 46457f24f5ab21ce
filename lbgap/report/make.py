"""Learning curves with seed bands, ‖w − w₀‖ against log(step) (Hoffer et al.
Fig. 2), a table of final accuracies (mean ± std over seeds), the critical batch
size of a study that measured steps to target along batch sizes (McCandlish et
al. 2018: the fit's table and figures, :mod:`lbgap.analysis.report`), and the
figures of any plugin implementing ``lbgap_report_figures``."""

from __future__ import annotations

import itertools
import logging
import math
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from ..registry import get_registry  # noqa: E402
from ..results.attrs import is_core_variable  # noqa: E402
from ..results.final import band_over_runs, final_values  # noqa: E402

__all__ = [
    "make_report",
    "build_report",
    "Report",
    "FigureFailure",
    "plugin_figures",
    "plugin_variables",
    "final_values",
    "final_table",
]

log = logging.getLogger(__name__)


def _groups(ds: xr.Dataset) -> list[dict[str, Any]]:
    """Selections, one per line/row: every index except seed and epoch."""
    dims = [d for d in ds[ "test_accuracy"].dims if d not in ("seed", "epoch")]
    values = [ds[d].values.tolist() for d in dims]
    return [dict(zip(dims, combo, strict=False)) for combo in itertools.product(*values)]


def _label(sel: dict[str, Any]) -> str:
    parts = []
    for k, v in sel.items():
        parts.append(str(v) if k == "variant" else f"{k}={v}")
    return ", ".join(parts) or "all"


def final_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    rows = []
    finals = {n: final_values(ds, n) for n in ("train_accuracy", "test_accuracy", "test_loss") if n in ds}
    for sel in _groups(ds):
        row: dict[str, Any] = {"label": _label(sel), "sel": sel}
        for name, da in finals.items():
            v = da.sel(sel).values.astype(float)
            v = v[~np.isnan(v)]
            row[name] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) if len(v) else (math.nan, math.nan, 0)
        if "epochs_done" in ds:
            row["epochs"] = float(np.nanmean(ds["epochs_done"].sel(sel).values))
        if "status" in ds:
            row["status"] = sorted(set(np.atleast_1d(ds["status"].sel(sel).values).tolist()))
        rows.append(row)
    return rows


def plugin_variables(ds: xr.Dataset) -> tuple[list[str], list[str]]:
    """The numeric variables written by plugins (not by lbgap itself): those with one value per
    run or per run and epoch (tabulated by the report), and those with dimensions of their own
    (``eigen_index``...; left to results.nc)."""
    run_dims = set(ds["test_accuracy"].dims) if "test_accuracy" in ds else {"seed", "epoch"}
    run_dims |= {"seed", "epoch"}
    table, other = [], []
    for name, da in ds.data_vars.items():
        if is_core_variable(str(name)) or da.dtype.kind not in "fiu":
            continue
        (table if set(da.dims) <= run_dims else other).append(str(name))
    return sorted(table), sorted(other)


def _metric_summary(ds: xr.Dataset, names: list[str]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Mean, standard deviation and count over seeds of the final value of ``names``, per arm."""
    rows: dict[str, dict[str, tuple[float, float, int]]] = {}
    finals = {n: final_values(ds, n) if "epoch" in ds[n].dims else ds[n] for n in names}
    for sel in _groups(ds):
        row = rows.setdefault(_label(sel), {})
        for name, da in finals.items():
            v = np.atleast_1d(da.sel({k: x for k, x in sel.items() if k in da.dims}).values).astype(float)
            v = v[~np.isnan(v)]
            row[name] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) if len(v) else (math.nan, math.nan, 0)
    return rows


def _metric_lines(ds: xr.Dataset) -> list[str]:
    """The report's table of the plugins' metrics (final values, mean ± std over seeds)."""
    names, other = plugin_variables(ds)
    if not names and not other:
        return []
    lines = ["## Plugin metrics", ""]
    if names:
        lines += ["Final values (the last epoch measured), mean ± standard deviation over seeds.", ""]
        rows = _metric_summary(ds, names)
        for start in range(0, len(names), 6):  # at most six columns a table
            chunk = names[start : start + 6]
            lines += ["| arm | " + " | ".join(f"{n} [{ds[n].attrs.get('units', '1')}]" for n in chunk) + " |",
                      "|---" * (len(chunk) + 1) + "|"]
            for label, row in rows.items():
                cells = " | ".join(_fmt_general(row[n]) for n in chunk)
                lines.append(f"| {label} | {cells} |")
            lines.append("")
        for n in names:
            attrs = ds[n].attrs
            src = f"; from {attrs['source']}" if attrs.get("source") else ""
            lines.append(f"- `{n}`: {attrs.get('long_name', n)} (units: {attrs.get('units', '1')}){src}")
        lines.append("")
    if other:
        lines += [f"With dimensions of their own (see results.nc): {', '.join(f'`{n}`' for n in other)}", ""]
    return lines


def _fmt_general(m: tuple[float, float, int]) -> str:
    mean, std, n = m
    return "—" if n == 0 else f"{mean:.4g} ± {std:.2g}"


def _band(ax, x: np.ndarray, y: np.ndarray, label: str, color) -> None:
    """Mean line and min–max band over seeds (y: [seed, epoch]) at the evaluated epochs; a seed
    that stopped early counts with its final value."""
    if np.size(y) == 0 or not np.isfinite(y).any():
        return  # nothing to draw: every run of this arm failed
    x, mean, lo, hi = band_over_runs(x, y)
    ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, lo, hi, alpha=0.2, color=color, linewidth=0)


def _curves(ds: xr.Dataset, fig_dir: Path) -> list[tuple[str, Path]]:
    figs = []
    panels = [(n, t) for n, t in (("train_loss", "training loss"), ("test_loss", "test loss"),
                                    ("train_accuracy", "training accuracy"), ("test_accuracy", "test accuracy"))
              if n in ds and bool(ds[n].notnull().any())]  # regression studies have no accuracy
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    epochs = ds["epoch"].values
    for i, sel in enumerate(_groups(ds)):
        sub = ds.sel(sel)
        for ax, (name, title) in zip(axes[0], panels, strict=False):
            y = np.atleast_2d(sub[name].transpose("seed", "epoch").values)
            _band(ax, epochs, y, _label(sel), colors[i % len(colors)])
            ax.set_title(title)
            ax.set_xlabel("epoch")
    lengths = np.atleast_1d(ds["epochs_done"].values).ravel() if "epochs_done" in ds else np.array([1.0])
    ragged = np.nanmax(lengths) > 2 * max(np.nanmin(lengths), 1)
    for ax, (name, _t) in zip(axes[0], panels, strict=False):
        if "loss" in name:
            ax.set_yscale("log")
        if ragged:  # e.g. regime adaptation trains many times longer
            ax.set_xscale("log")
            ax.set_xlabel("epoch (log scale)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Learning curves (mean over seeds, band: min–max)")
    fig.tight_layout()
    path = fig_dir / "learning_curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    figs.append(("Learning curves", path))

    if "weight_distance" in ds and "step" in ds:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for i, sel in enumerate(_groups(ds)):
            sub = ds.sel(sel)
            d = np.atleast_2d(sub["weight_distance"].transpose("seed", "epoch").values)
            s = np.atleast_2d(sub["step"].transpose("seed", "epoch").values)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                x = np.nanmean(s, axis=0)
            ok = ~np.isnan(x)
            _band(ax, x[ok], d[:, ok], _label(sel), colors[i % len(colors)])
        ax.set_xscale("log")
        ax.set_xlabel("optimizer steps (log scale)")
        ax.set_ylabel("‖w_t − w_0‖")
        ax.set_title("Distance from initialization (Hoffer et al. Fig. 2)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = fig_dir / "weight_distance.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        figs.append(("Distance from initialization against log(step)", path))
    return figs


def _search_figures(ds: xr.Dataset, fig_dir: Path) -> list[tuple[str, Path]]:
    names = [c for c in ds.coords if ds[c].dims == ("trial",) and c != "trial" and np.issubdtype(ds[c].dtype, np.number)]
    if not names or "objective" not in ds:
        return []
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        x = ds[name].values.astype(float)
        ax.scatter(x, ds["objective"].values, s=18)
        if np.all(x > 0) and x.max() / max(x.min(), 1e-300) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("objective")
    fig.suptitle("Search: objective against each searched parameter")
    fig.tight_layout()
    path = fig_dir / "search.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [("Search objective against parameters", path)]


def _fmt(m: tuple[float, float, int], pct: bool = True) -> str:
    mean, std, n = m
    if n == 0:
        return "—"
    if pct:
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return f"{mean:.4f} ± {std:.4f}"


@dataclass(frozen=True)
class FigureFailure:
    """A plugin whose ``lbgap_report_figures`` raised: who, why, and the traceback."""

    plugin: str
    reason: str
    traceback: str = ""


@dataclass
class Report:
    """What :func:`build_report` wrote, and the plugins whose figures failed."""

    path: Path
    failures: list[FigureFailure] = field(default_factory=list)


def _plugin_name(registry: Any, plugin_name: str) -> str:
    origin, version = getattr(registry, "packages", {}).get(plugin_name, ("", ""))
    package = " ".join(p for p in (origin, version) if p)
    return f"plugin {plugin_name!r}" + (f" ({package})" if package else "")


def plugin_figures(ds: xr.Dataset, rep: Path, registry: Any = None) -> tuple[list[tuple[str, Path]], list[FigureFailure]]:
    """Every ``lbgap_report_figures`` implementation, each on its own: a plugin that raises is
    logged with its name and traceback and the others still draw. Returns the figures and the
    failures."""
    registry = registry if registry is not None else get_registry()
    kwargs = {"results": ds, "out_dir": rep}
    figs: list[tuple[str, Path]] = []
    failures: list[FigureFailure] = []
    # pluggy's own order (last registered first), but one call per implementation
    for impl in reversed(registry.pm.hook.lbgap_report_figures.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        label = _plugin_name(registry, impl.plugin_name)
        try:
            result = impl.function(*[kwargs[a] for a in impl.argnames])
            drawn = [(str(title), Path(path)) for title, path in (result or [])]
        except Exception as exc:  # a plugin's figure must not lose the report, nor the others' figures
            failure = FigureFailure(label, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            failures.append(failure)
            log.error("report figures of %s failed: %s", label, failure.reason, exc_info=True)
            plt.close("all")  # what it left half drawn
            continue
        figs += drawn
    return figs, failures


#: how the critical-batch part is named when it fails
CRITICAL_BATCH = "critical batch size (lbgap.analysis)"


def critical_batch_part(
    ds: xr.Dataset, rep: Path, n_boot: int = 1000
) -> tuple[list[tuple[str, Path]], list[str], list[FigureFailure]]:
    """The critical batch size of a study with ``steps_to_target`` along batch sizes: its figures,
    the summary's markdown section, and a failure if it raised (drawn on its own, like a
    plugin's figures: the rest of the report goes on). Nothing when the study has no steps to
    target along a batch size; a fit that cannot run is one line of the section, not a failure."""
    figs: list[tuple[str, Path]] = []
    failures: list[FigureFailure] = []

    def failed(exc: Exception, what: str) -> None:  # the analysis must not lose the report
        failure = FigureFailure(what, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        log.error("report figures of %s failed: %s", what, failure.reason, exc_info=True)
        plt.close("all")  # what it left half drawn
        failures.append(failure)

    try:
        from ..analysis.report import (
            critical_batch_analysis,
            critical_batch_result_figures,
            critical_batch_summary,
        )

        results = critical_batch_analysis(ds, n_boot=n_boot)
        lines = critical_batch_summary(results)
    except Exception as exc:
        failed(exc, CRITICAL_BATCH)
        return figs, [], failures
    for result in results:  # each variant's figures on their own
        try:
            figs += critical_batch_result_figures(result, rep)
        except Exception as exc:
            failed(exc, CRITICAL_BATCH if not result.tag else f"{CRITICAL_BATCH} of {result.variant}")
    return figs, lines, failures


def make_report(out_dir: Path) -> Path:
    """Write ``out_dir/report/summary.md`` and PNG figures; return the markdown path.

    A plugin whose figures fail is logged and named in the summary; see
    :func:`build_report` to learn which failed.
    """
    return build_report(out_dir).path


def _search_order(objective: np.ndarray, direction: str) -> np.ndarray:
    """Trial indices best first (NaN objectives last)."""
    sign = 1.0 if direction == "minimize" else -1.0
    return np.argsort(np.where(np.isnan(objective), np.inf, sign * objective), kind="stable")


def _search_lines(ds: xr.Dataset) -> list[str]:
    """The search's trials, best first; with a search inside every grid point, the best trial of
    each point and then each point's trials."""
    direction = ds.attrs.get("optuna_direction", "maximize")
    grid_dims = [d for d in ds["objective"].dims if d != "trial"]
    params = [
        n for n in ds.variables
        if n not in ("trial", "objective", "trial_state", "best_objective", "best_trial", *grid_dims)
        and ds[n].dims in (("trial",), (*grid_dims, "trial"))
    ]
    header = ["| trial | " + " | ".join(params) + " | objective | state |", "|---" * (len(params) + 3) + "|"]

    def rows(at: xr.Dataset) -> list[str]:
        out = []
        for i in _search_order(at["objective"].values, direction):
            vals = " | ".join(str(at[p].values[i]) for p in params)
            out.append(f"| {int(at['trial'].values[i])} | {vals} | {at['objective'].values[i]:.4f} | {at['trial_state'].values[i]} |")
        return out

    if not grid_dims:
        return ["## Search trials (best first)", "", *header, *rows(ds), ""]
    lines = ["## Search at every grid point", "", f"Best trial of each point ({direction} the objective).", ""]
    lines += ["| " + " | ".join(grid_dims) + " | best trial | " + " | ".join(params) + " | objective | trials with a value |"]
    lines += ["|---" * (len(grid_dims) + len(params) + 3) + "|"]
    points = ds["objective"].stack(point=grid_dims)["point"].values
    for point in points:
        at = ds.sel(dict(zip(grid_dims, point if isinstance(point, tuple) else (point,), strict=True)))
        objective = at["objective"].values
        met = int(np.sum(~np.isnan(objective)))
        labels = " | ".join(str(v) for v in (point if isinstance(point, tuple) else (point,)))
        if met == 0:
            lines.append(f"| {labels} | — | " + " | ".join("—" for _ in params) + f" | — | 0/{objective.size} |")
            continue
        best = int(_search_order(objective, direction)[0])
        vals = " | ".join(str(at[p].values[best]) for p in params)
        lines.append(f"| {labels} | {int(at['trial'].values[best])} | {vals} | {objective[best]:.4f} | {met}/{objective.size} |")
    lines.append("")
    for point in points:
        where = point if isinstance(point, tuple) else (point,)
        at = ds.sel(dict(zip(grid_dims, where, strict=True)))
        title = ", ".join(f"{d}={v}" for d, v in zip(grid_dims, where, strict=True))
        lines += [f"### Trials at {title} (best first)", "", *header, *rows(at), ""]
    return lines


def build_report(out_dir: Path, registry: Any = None, *, critical_batch_boot: int = 1000) -> Report:
    """Write ``out_dir/report/summary.md`` and PNG figures; return where, and which plugins'
    figures failed (the critical batch size's, :data:`CRITICAL_BATCH`, among them).

    ``critical_batch_boot``: bootstrap replicates of the critical batch size's intervals."""
    out_dir = Path(out_dir)
    with xr.open_dataset(out_dir / "results.nc") as f:
        ds = f.load()
    rep = out_dir / "report"
    rep.mkdir(exist_ok=True)
    figs = _curves(ds, rep)
    if "trial" in ds.dims:
        figs += _search_figures(ds, rep)
    more, critical_lines, failures = critical_batch_part(ds, rep, critical_batch_boot)
    figs += more
    more, plugin_failures = plugin_figures(ds, rep, registry)
    figs += more
    failures += plugin_failures
    lines = [f"# {ds.attrs.get('lbgap_study', 'study')}", ""]
    if ds.attrs.get("title"):
        lines += [ds.attrs["title"], ""]
    if ds.attrs.get("references"):
        lines += [f"Reproduces: {ds.attrs['references']}", ""]
    if ds.attrs.get("data_description"):
        lines += [f"Data: {ds.attrs['data_description']}", ""]
    n_seeds = ds.sizes.get("seed", 1)
    lines += [f"Final values, mean ± standard deviation over {n_seeds} seed(s) (accuracies in %).", ""]
    lines += ["| arm | train accuracy | test accuracy | test loss | epochs | status |", "|---|---|---|---|---|---|"]
    for row in final_table(ds):
        lines.append(
            f"| {row['label']} | {_fmt(row.get('train_accuracy', (0, 0, 0)))} | {_fmt(row.get('test_accuracy', (0, 0, 0)))} "
            f"| {_fmt(row.get('test_loss', (0, 0, 0)), pct=False)} | {row.get('epochs', float('nan')):.0f} | {', '.join(row.get('status', []))} |"
        )
    lines.append("")
    lines += _metric_lines(ds)
    lines += critical_lines
    if "trial" in ds.dims and "objective" in ds:
        lines += _search_lines(ds)
    lines += ["## Figures", ""]
    for title, path in figs:
        lines += [f"### {title}", "", f"![{title}]({Path(path).name})", ""]
    if failures:
        lines += ["## Figures not drawn", ""]
        lines += [f"- {f.plugin}: {f.reason}" for f in failures]
        lines.append("")
    md = rep / "summary.md"
    md.write_text("\n".join(lines))
    return Report(md, failures)
