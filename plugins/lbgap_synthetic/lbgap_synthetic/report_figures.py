"""Figures ``lbgap report`` draws for the synthetic studies (hook ``lbgap_report_figures``).

* **Accuracy per component** — when the results hold ``test_accuracy_p_only``,
  ``test_accuracy_q_only`` and ``test_accuracy_both`` (the ``pq_synthetic``
  data set's test groups): :func:`lbgap_synthetic.plots.plot_component_accuracy`,
  one line per arm (mean over seeds, band min..max), with the anneal marked.
  The anneal of an arm is, in this order: ``lr_switch_epoch`` (the
  ``loss_switch`` schedule), the noise-decay epoch of a noise injector
  (``preactivation_noise_decay_epoch``, ``gradient_noise_decay_epoch``), or the
  first epoch whose ``learning_rate`` is below the first epoch's (a step
  schedule). Grid dimensions besides ``variant`` become arms of their own.
* **Convex trajectories** — when the results hold the per-epoch coefficients
  ``beta_1``, ``beta_2`` (metric ``linear_coefficients``) of a
  ``convex_regression`` study: :func:`lbgap_synthetic.convex.plot_convex_trajectories`
  of every arm's first seed over the train (solid) and test (dashed) loss
  contours, the level set ``L̂ = ε`` in bold. The data (design, counts, β*) and
  ε are read from the resolved study in the results' ``lbgap_spec_json``; the
  path starts at the initial weights (zero for ``init: zeros``).

Anything else draws nothing and returns ``[]``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .convex import GDRun, plot_convex_trajectories
from .plots import COMPONENTS, plot_component_accuracy

__all__ = ["report_figures", "component_accuracy_figure", "convex_trajectory_figure", "anneal_epochs"]

log = logging.getLogger(__name__)

COMPONENT_FIGURE = "pq_component_accuracy.png"
CONVEX_FIGURE = "convex_trajectories.png"
_NOISE_DECAY = ("preactivation_noise_decay_epoch", "gradient_noise_decay_epoch")


def report_figures(results, out_dir) -> list[tuple[str, Path]]:
    """All figures this package can draw from ``results`` into ``out_dir``."""
    out_dir = Path(out_dir)
    figs: list[tuple[str, Path]] = []
    for draw in (component_accuracy_figure, convex_trajectory_figure):
        fig = draw(results, out_dir)
        if fig is not None:
            figs.append(fig)
    return figs


# ------------------------------------------------------------------ P/Q components


def _as_arms(ds):
    """Stack every dimension except ``seed`` and ``epoch`` into one ``variant`` dimension of labels."""
    ref = ds[f"test_accuracy_{COMPONENTS[0]}"]
    arm_dims = sorted((d for d in ref.dims if d not in ("seed", "epoch")), key=lambda d: d != "variant")
    if arm_dims == ["variant"] or not arm_dims:
        return ds
    stacked = ds.stack(_arm=arm_dims)
    labels = []
    for combo in stacked["_arm"].values:
        combo = combo if isinstance(combo, tuple) else (combo,)
        labels.append(", ".join(str(v) if d == "variant" else f"{d}={v}" for d, v in zip(arm_dims, combo, strict=True)))
    stacked = stacked.drop_vars(["_arm", *arm_dims], errors="ignore")
    return stacked.assign_coords(_arm=labels).rename({"_arm": "variant"})


def anneal_epochs(ds):
    """Epochs done before each (arm, seed) annealed, as a DataArray (NaN: never).

    First choice ``lr_switch_epoch``; where that is NaN or absent, a noise-decay
    epoch; then the first drop of ``learning_rate``.
    """
    import xarray as xr

    template = ds[f"test_accuracy_{COMPONENTS[0]}"].isel(epoch=0, drop=True)
    out = xr.full_like(template, np.nan, dtype=np.float64)
    candidates = ["lr_switch_epoch", *_NOISE_DECAY]
    for name in candidates:
        if name in ds:
            out = out.fillna(ds[name].broadcast_like(template).astype(np.float64))
    if "learning_rate" in ds:
        lr = ds["learning_rate"].broadcast_like(ds[f"test_accuracy_{COMPONENTS[0]}"])
        first = lr.isel(epoch=0)
        dropped = lr < first * (1.0 - 1e-9)
        epochs = ds["epoch"].astype(np.float64)
        # the LR record of epoch e is the rate in use during it, so e - 1 epochs were done at the switch
        first_drop = (epochs - 1.0).where(dropped).min("epoch", skipna=True)
        out = out.fillna(first_drop)
    return out


def component_accuracy_figure(ds, out_dir: Path) -> Optional[tuple[str, Path]]:
    """Accuracy per P/Q component against epoch, or None if the results have no components."""
    names = [f"test_accuracy_{c}" for c in COMPONENTS]
    if not all(n in ds for n in names) or "epoch" not in ds[names[0]].dims:
        return None
    arms = _as_arms(ds)
    keep = [*names, *(n for n in ("lr_switch_epoch", *_NOISE_DECAY, "learning_rate") if n in arms)]
    sub = arms[keep]
    sub = sub.assign(lr_switch_epoch=anneal_epochs(sub))
    path = Path(out_dir) / COMPONENT_FIGURE
    fig = plot_component_accuracy(
        sub, path, title="Test accuracy per component (dotted: LR anneal or noise decay, mean over seeds)"
    )
    del fig
    return ("Test accuracy per P/Q component against epoch (anneal marked)", path)


# ------------------------------------------------------------------ convex example


def _spec(ds) -> dict[str, Any]:
    raw = ds.attrs.get("lbgap_spec_json")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return {}


def _variant_configs(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The resolved configuration of every variant in a spec JSON (``{}`` when absent)."""
    variants = spec.get("variants")
    if isinstance(variants, dict):
        return {str(k): v for k, v in variants.items() if isinstance(v, dict)}
    return {}


def _convex_setup(cfg: dict[str, Any]) -> Optional[dict[str, Any]]:
    data = cfg.get("dataset") or {}
    if data.get("name") != "convex_regression" or data.get("design", "paper_counts") != "paper_counts":
        return None
    counts = tuple(int(c) for c in data.get("counts", (2, 1)))
    beta_star = np.asarray(data.get("beta_star", (1.0, 1.0)), dtype=np.float64)
    X = np.array([[1.0, 0.0]] * counts[0] + [[0.0, 1.0]] * counts[1])
    y = X @ beta_star
    eps = None
    for rule in cfg.get("stopping") or []:
        if isinstance(rule, dict) and rule.get("name") == "train_loss_below":
            eps = float(rule["eps"])
    model = cfg.get("model") or {}
    beta0 = np.zeros(2) if model.get("init", "zeros") == "zeros" else None
    return {"X": X, "y": y, "beta_star": beta_star, "eps": eps, "beta0": beta0}


def convex_trajectory_figure(ds, out_dir: Path) -> Optional[tuple[str, Path]]:
    """GD paths of the convex example over the loss contours, or None if the results are not one."""
    if not all(n in ds and "epoch" in ds[n].dims for n in ("beta_1", "beta_2")) or "beta_3" in ds:
        return None
    spec = _spec(ds)
    configs = _variant_configs(spec)
    header = spec.get("header") if isinstance(spec.get("header"), dict) else {}
    base = header.get("base") if isinstance(header.get("base"), dict) else {}
    variants = [str(v) for v in ds["variant"].values] if "variant" in ds.dims else ["run"]
    runs: dict[str, GDRun] = {}
    setup = None
    for name in variants:
        cfg = configs.get(name, base)
        this = _convex_setup(cfg)
        if this is None:
            continue
        if setup is None:
            setup = this
        elif not (np.array_equal(this["X"], setup["X"]) and np.array_equal(this["beta_star"], setup["beta_star"])):
            log.info("convex trajectories: arm %s has other data; drawn over the first arm's contours", name)
        sel = {"variant": name} if "variant" in ds.dims else {}
        b1, b2 = ds["beta_1"].sel(sel), ds["beta_2"].sel(sel)
        extra = [d for d in b1.dims if d != "epoch"]
        if extra:  # first seed (and first grid point): the seeds of this study are identical runs
            b1, b2 = b1.isel({d: 0 for d in extra}), b2.isel({d: 0 for d in extra})
        path = np.stack([b1.values, b2.values], axis=1).astype(np.float64)
        path = path[np.isfinite(path).all(axis=1)]
        if this["beta0"] is not None:
            path = np.concatenate([this["beta0"][None, :], path])
        if len(path) == 0:
            continue
        r = path @ this["X"].T - this["y"][None, :]
        train = np.mean(r * r, axis=1)
        test = 0.5 * np.sum((path - this["beta_star"][None, :]) ** 2, axis=1)
        runs[name] = GDRun(betas=path, train_loss=train, test_loss=test, lrs=np.zeros(len(path) - 1),
                           switch_step=None, converged=bool(this["eps"] is not None and train[-1] <= this["eps"]),
                           label=name)
    if not runs or setup is None:
        return None
    eps = setup["eps"]
    title = "GD on the training loss (solid) and the test loss (dashed)"
    if eps is not None:
        finals = ", ".join(f"{k}: {r.final_test_loss / eps:.3g}ε" for k, r in runs.items())
        title += f"\nstop at train loss < ε = {eps:g}; final test loss {finals}"
    path = Path(out_dir) / CONVEX_FIGURE
    plot_convex_trajectories(path, runs, X=setup["X"], y=setup["y"], beta_star=setup["beta_star"], eps=eps,
                             title=title)
    return ("Convex example: trajectories over the train and test loss contours", path)
