"""Figures for the P/Q learning-order study.

:func:`plot_component_accuracy` draws test accuracy per component
(``p_only``, ``q_only``, ``both``) against epoch, one line per variant (mean
over seeds, band = min..max over seeds), with the learning-rate anneal marked.
It reads a results Dataset (``xarray``) with variables
``test_accuracy_<component>`` of dimensions ``(variant, seed, epoch)`` (either
of ``variant`` and ``seed`` may be absent) and, if present, the end-of-trial
``lr_switch_epoch`` ``(variant, seed)``: epochs done when the ``loss_switch``
schedule annealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from lbgap.api import band_over_runs

__all__ = ["plot_component_accuracy", "COMPONENTS"]

COMPONENTS = ("p_only", "q_only", "both")
_TITLES = {"p_only": "P only (hard to generalize)", "q_only": "Q only (memorizable)", "both": "P and Q"}


def _as_vse(da, name: str):
    """Return ``(values [variant, seed, epoch], variant labels)``."""
    extra = set(da.dims) - {"variant", "seed", "epoch"}
    if extra:
        raise ValueError(f"{name}: unexpected dimensions {sorted(extra)}; select or average them first")
    if "epoch" not in da.dims:
        raise ValueError(f"{name}: needs an 'epoch' dimension")
    if "variant" not in da.dims:
        da = da.expand_dims(variant=["run"])
    if "seed" not in da.dims:
        da = da.expand_dims(seed=[0])
    da = da.transpose("variant", "seed", "epoch")
    return np.asarray(da.values, dtype=np.float64), [str(v) for v in da["variant"].values]


def plot_component_accuracy(
    ds,
    out_path: str | Path,
    *,
    components: Sequence[str] = COMPONENTS,
    variable: str = "test_accuracy_{}",
    anneal_epoch: Optional[float] = None,
    title: Optional[str] = None,
):
    """Plot accuracy per component vs epoch for every variant and save it.

    Parameters
    ----------
    ds:
        ``xarray.Dataset`` of a study's results.
    out_path:
        File to write (format from the suffix, e.g. ``.png`` or ``.pdf``).
    components:
        Component names; variable ``variable.format(name)`` is plotted for each.
    variable:
        Name pattern of the plotted variables.
    anneal_epoch:
        Epoch at which to draw a grey anneal line for every variant, used when
        ``ds`` has no ``lr_switch_epoch`` (e.g. a fixed step schedule).
    title:
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (already saved to ``out_path``), one axes per component.
        Line ``i`` of each axes is variant ``i``'s mean over seeds.
    """
    from matplotlib.figure import Figure

    missing = [variable.format(c) for c in components if variable.format(c) not in ds]
    if missing:
        raise KeyError(f"results have no {missing}; present: {sorted(ds.data_vars)}")
    epochs = np.asarray(ds["epoch"].values, dtype=np.float64) if "epoch" in ds.coords else None
    switch = None
    if "lr_switch_epoch" in ds:
        sw = ds["lr_switch_epoch"]
        if "variant" not in sw.dims:
            sw = sw.expand_dims(variant=["run"])
        if "seed" not in sw.dims:
            sw = sw.expand_dims(seed=[0])
        switch = np.asarray(sw.transpose("variant", "seed").values, dtype=np.float64)

    fig = Figure(figsize=(4.2 * len(components), 3.6))
    axes = fig.subplots(1, len(components), squeeze=False)[0]
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray"]
    for ax, comp in zip(axes, components, strict=True):
        name = variable.format(comp)
        vals, variants = _as_vse(ds[name], name)
        x = epochs if epochs is not None and len(epochs) == vals.shape[-1] else np.arange(1, vals.shape[-1] + 1)
        for i, variant in enumerate(variants):
            c = colors[i % len(colors)]
            # evaluated epochs only; a seed that stopped early counts with its final value
            xs, mean, lo, hi = band_over_runs(x, vals[i])
            ax.plot(xs, mean, color=c, lw=1.5, label=variant)
            if vals[i].shape[0] > 1:
                ax.fill_between(xs, lo, hi, color=c, alpha=0.15, lw=0)
            if switch is not None:
                s = switch[i]
                s = s[np.isfinite(s)]
                if s.size:
                    ax.axvline(float(np.mean(s)), color=c, ls=":", lw=1.2)
            elif anneal_epoch is not None:
                ax.axvline(anneal_epoch, color="0.5", ls=":", lw=1.2)
        ax.set_title(_TITLES.get(comp, comp))
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or "Test accuracy per component (dotted: LR anneal)")
    fig.tight_layout()
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return fig
