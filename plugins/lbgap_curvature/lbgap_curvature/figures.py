"""Figures from a study's results (an :class:`xarray.Dataset`).

* :func:`plot_interpolation` — Keskar et al. Fig. 3: loss (left axis) and
  accuracy (right axis) along the path between two minimizers, train solid,
  test dashed.
* :func:`plot_sharpness_vs_batch_size` — Keskar et al. Fig. 4: sharpness and
  test accuracy against the batch size on twin axes, mean ± standard
  deviation over seeds.
* :func:`plot_sharpness_vs_loss` — Keskar et al. Fig. 6: sharpness measured
  along training against the training loss, one line per trial, log-log.
* :func:`plot_spectrum_density` — the Hessian eigenvalue density (SLQ).
* :func:`plot_reparameterization` — the ``reparameterized`` metric's variables
  against α on log-log axes (Dinh et al.'s α-scale sweep), relative to α = 1.

Each takes the Dataset, an optional ``select`` (passed to ``Dataset.sel``) and
an optional matplotlib ``Axes``; dimensions left over besides the plotted one
give one line per combination. Each returns the Figure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Optional

import numpy as np
import xarray as xr

__all__ = [
    "plot_interpolation",
    "plot_sharpness_vs_batch_size",
    "plot_sharpness_vs_loss",
    "per_epoch_sharpness",
    "plot_spectrum_density",
    "plot_reparameterization",
    "reparameterized_variables",
    "final_epoch",
]


def _axes(ax):
    if ax is None:  # a Figure outside pyplot: no global state, any backend
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), layout="constrained")
        return fig, fig.subplots()
    return ax.figure, ax


def _lines(da: xr.DataArray, core: str) -> Iterator[tuple[str, xr.DataArray]]:
    """One 1-D slice of ``da`` along ``core`` per combination of the other dimensions."""
    others = [d for d in da.dims if d != core]
    if not others:
        yield "", da
        return
    for combo in itertools.product(*(range(da.sizes[d]) for d in others)):
        sel = dict(zip(others, combo, strict=True))
        line = da.isel(sel)
        label = ", ".join(f"{d}={line[d].values.item() if d in line.coords else i}" for d, i in sel.items())
        yield label, line


def final_epoch(da: xr.DataArray, dim: str = "epoch") -> xr.DataArray:
    """The last non-NaN value along ``dim`` (trials of different lengths are NaN-padded)."""
    if dim not in da.dims:
        return da
    valid = da.notnull()
    idx = (valid * np.arange(da.sizes[dim])).argmax(dim)
    return da.isel({dim: idx}).where(valid.any(dim))


def _select(ds: xr.Dataset, select: Optional[Mapping]) -> xr.Dataset:
    return ds.sel(**select) if select else ds


def plot_interpolation(
    ds: xr.Dataset,
    *,
    select: Optional[Mapping] = None,
    ax=None,
    logy: bool = False,
    title: Optional[str] = None,
):
    """Keskar Fig. 3: ``interpolation_{train,test}_{loss,accuracy}`` against ``alpha``."""
    ds = _select(ds, select)
    fig, ax = _axes(ax)
    ax2 = ax.twinx()
    for split, style in (("train", "-"), ("test", "--")):
        for var, axis, color, what in (
            ("loss", ax, "tab:blue", "cross-entropy"),
            ("accuracy", ax2, "tab:red", "accuracy"),
        ):
            name = f"interpolation_{split}_{var}"
            if name not in ds:
                continue
            for label, line in _lines(ds[name], "alpha"):
                axis.plot(
                    line["alpha"].values,
                    line.values,
                    style,
                    color=color,
                    label=f"{split} {what}" + (f" ({label})" if label else ""),
                )
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("α (0: this minimizer, 1: reference)")
    ax.set_ylabel("cross-entropy", color="tab:blue")
    ax2.set_ylabel("accuracy", color="tab:red")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles, [h.get_label() for h in handles], loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def plot_sharpness_vs_batch_size(
    ds: xr.Dataset,
    *,
    sharpness: str = "keskar_sharpness_full_eps1e-03",
    accuracy: str = "test_accuracy",
    batch_dim: str = "batch_size",
    seed_dim: str = "seed",
    select: Optional[Mapping] = None,
    ax=None,
    title: Optional[str] = None,
):
    """Keskar Fig. 4: sharpness (left) and final test accuracy (right) against the batch size.

    ``batch_dim`` is a dimension of the Dataset, or a variable along another
    dimension (such as ``trial``) giving each trial's batch size.
    """
    ds = _select(ds, select)
    fig, ax = _axes(ax)
    ax2 = ax.twinx()
    for name, axis, color, marker in ((sharpness, ax, "tab:blue", "o"), (accuracy, ax2, "tab:red", "s")):
        da = final_epoch(ds[name])
        if batch_dim in da.dims:
            reduce = [d for d in da.dims if d == seed_dim]
            mean = da.mean(reduce) if reduce else da
            std = da.std(reduce) if reduce else xr.zeros_like(da)
        else:  # a variable giving each trial's batch size (an Optuna 'trial' dimension)
            groups = da.groupby(ds[batch_dim].rename(batch_dim))
            mean, std = groups.mean(...), groups.std(...)
        for (label, m), (_, s) in zip(_lines(mean, batch_dim), _lines(std, batch_dim), strict=True):
            order = np.argsort(m[batch_dim].values)
            axis.errorbar(
                m[batch_dim].values[order],
                m.values[order],
                yerr=s.values[order],
                color=color,
                marker=marker,
                capsize=3,
                label=name + (f" ({label})" if label else ""),
            )
    ax.set_xscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(sharpness, color="tab:blue")
    ax2.set_ylabel(accuracy, color="tab:red")
    if title:
        ax.set_title(title)
    return fig


def per_epoch_sharpness(ds: xr.Dataset, loss: str = "train_loss") -> list[str]:
    """The ``keskar_sharpness_*`` variables measured at two or more epochs of some trial (a metric
    with ``every``), when ``loss`` is recorded per epoch too: what :func:`plot_sharpness_vs_loss` draws."""
    if loss not in ds or "epoch" not in ds[loss].dims:
        return []
    out = []
    for name in sorted(str(v) for v in ds.data_vars if str(v).startswith("keskar_sharpness_")):
        da = ds[name]
        if "epoch" in da.dims and int(da.notnull().sum("epoch").max()) >= 2:
            out.append(name)
    return out


def plot_sharpness_vs_loss(
    ds: xr.Dataset,
    *,
    sharpness: str = "keskar_sharpness_full_eps1e-03",
    loss: str = "train_loss",
    select: Optional[Mapping] = None,
    ax=None,
    title: Optional[str] = None,
):
    """Keskar Fig. 6: the sharpness measured along training (a metric with ``every``) against the
    training loss at the same epochs, one line per trial (colour per variant), log-log; the x axis
    is inverted, so training runs from left to right."""
    ds = _select(ds, select)
    fig, ax = _axes(ax)
    phi, lo = ds[sharpness], ds[loss]
    colors = {}
    for label, line in _lines(phi, "epoch"):
        sel = {d: line[d].values.item() for d in phi.dims if d != "epoch" and d in line.coords}
        x = lo.sel(sel).values if sel else lo.values
        ok = ~np.isnan(line.values) & ~np.isnan(x)
        if ok.sum() < 1:
            continue
        key = str(sel.get("variant", label))
        first = key not in colors
        color = colors.setdefault(key, f"C{len(colors)}")
        ax.plot(x[ok], line.values[ok], marker="o", ms=3, color=color, label=key if first else None)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.invert_xaxis()
    ax.set_xlabel(loss)
    ax.set_ylabel(sharpness)
    if colors:
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


def plot_spectrum_density(
    ds: xr.Dataset,
    *,
    select: Optional[Mapping] = None,
    ax=None,
    logy: bool = True,
    title: Optional[str] = None,
):
    """``hessian_spectrum_density`` against ``hessian_spectrum_eigenvalue`` (one line per trial)."""
    ds = _select(ds, select)
    fig, ax = _axes(ax)
    dens, grid = ds["hessian_spectrum_density"], ds["hessian_spectrum_eigenvalue"]
    for (label, d), (_, g) in zip(_lines(dens, "density_grid"), _lines(grid, "density_grid"), strict=True):
        y = d.values
        ax.plot(g.values, np.where(y > 0, y, np.nan) if logy else y, label=label or None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


#: inner variables the α-sweep figure shows by default (not counts, residuals or standard errors)
_SWEEP = re.compile(
    r"(hessian_top_eigenvalue|hessian_trace|keskar_sharpness_.*|adaptive_sharpness_(?!.*_stderr$).*)"
)


def reparameterized_variables(ds: xr.Dataset, prefix: str = "reparam") -> list[str]:
    """The curvature and sharpness variables of a ``reparameterized`` metric in ``ds``."""
    dim = f"{prefix}_alpha"
    start = f"{prefix}_"
    return sorted(
        str(v)
        for v in ds.data_vars
        if str(v).startswith(start) and dim in ds[v].dims and _SWEEP.fullmatch(str(v)[len(start) :])
    )


def plot_reparameterization(
    ds: xr.Dataset,
    *,
    prefix: str = "reparam",
    variables: Optional[list[str]] = None,
    relative: bool = True,
    seed_dim: str = "seed",
    select: Optional[Mapping] = None,
    ax=None,
    title: Optional[str] = None,
):
    """Dinh et al.'s α sweep: each variable (mean over seeds) against α, log-log.

    ``relative``: divided by its value at α = 1 (the untransformed model), so
    that an invariant quantity is the horizontal line at 1 and a quantity that
    scales like α^±k has slope ±k. Non-positive values are not drawn.
    """
    ds = _select(ds, select)
    dim = f"{prefix}_alpha"
    names = variables if variables is not None else reparameterized_variables(ds, prefix)
    fig, ax = _axes(ax)
    relative = relative and bool(np.isclose(ds[dim].values, 1.0).any())
    for name in names:
        da = final_epoch(ds[name])
        da = da.mean(seed_dim) if seed_dim in da.dims else da
        if relative:
            da = da / da.sel({dim: 1.0}, method="nearest")
        for label, line in _lines(da, dim):
            y = line.values.astype(float)
            ax.plot(
                line[dim].values,
                np.where(y > 0, y, np.nan),
                marker="o",
                label=name.removeprefix(f"{prefix}_") + (f" ({label})" if label else ""),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("α")
    ax.set_ylabel("value / value at α = 1" if relative else "value")
    if names:
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig
