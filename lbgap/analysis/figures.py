"""Steps to target against batch size, the figure of Shallue et al. 2018 and McCandlish et al. 2018.

:func:`draw_steps_to_target` draws, on log–log axes, the measured steps per
batch size (every seed or trial faint, the aggregate used by the fit solid),
the fitted curve ``S(B) = S_min (1 + B_crit/B)``, the perfect-scaling line
``S = E_min/B`` (the small-batch asymptote of the fit: doubling the batch halves
the steps), the floor ``S = S_min``, ``B_crit`` and (when given) the measured
gradient noise scale ``B_simple`` as vertical lines, and the three regimes of
:func:`lbgap.analysis.critical_batch.regime_bounds` shaded.
:func:`steps_to_target_figure` writes it as a PNG (matplotlib's Agg backend).

Each artist carries a ``gid`` (``"fit"``, ``"perfect_scaling"``, ``"s_min"``,
``"b_crit"``, ``"b_simple"``, ``"measured"``, ``"trials"``, ``"regime:<name>"``)
so scripts and tests can find it.

:func:`draw_examples_steps` and :func:`examples_steps_figure` draw McCandlish
et al.'s trade-off itself: examples to target against steps to target, the
hyperbola ``(S/S_min − 1)(E/E_min − 1) = 1`` of the fit with its asymptotes
``S_min`` and ``E_min``, the point ``(2 S_min, 2 E_min)`` of ``B = B_crit`` and
the measured (S, E) of each batch size (gids ``"fit"``, ``"s_min"``,
``"e_min"``, ``"b_crit"``, ``"measured"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .critical_batch import REGIMES, CriticalBatchFit  # noqa: E402

__all__ = ["draw_examples_steps", "draw_steps_to_target", "examples_steps_figure", "steps_to_target_figure"]

_REGIME_STYLE = {
    "perfect_scaling": ("tab:green", "perfect scaling"),
    "diminishing_returns": ("tab:orange", "diminishing returns"),
    "no_gain": ("tab:red", "no gain"),
}


def _x_range(fit: CriticalBatchFit, b_simple: Optional[float]) -> tuple[float, float]:
    lo, hi = float(fit.batch_sizes.min()), float(fit.batch_sizes.max())
    # a B_crit at its search bound (all batch sizes in one regime) would stretch the axis for nothing
    marks = ([] if fit.at_bound else [fit.b_crit]) + ([b_simple] if b_simple is not None and b_simple > 0 else [])
    lo, hi = min(lo, *marks, lo), max(hi, *marks, hi)
    return lo / 2.0, hi * 2.0


def draw_steps_to_target(
    ax: Any,
    fit: CriticalBatchFit,
    *,
    b_simple: Optional[float] = None,
    tolerance: float = 0.1,
    n_points: int = 200,
    show_trials: bool = True,
) -> dict[str, Any]:
    """Draw the figure on ``ax``; return its artists by ``gid``.

    Parameters
    ----------
    ax:
        A matplotlib Axes (set to log–log here).
    fit:
        The result of :func:`lbgap.analysis.critical_batch.fit_critical_batch`.
    b_simple:
        The measured gradient noise scale ``B_simple = tr(Σ)/|G|²`` (McCandlish et al.), marked
        beside B_crit when given.
    tolerance:
        Where the regimes are cut (see :func:`lbgap.analysis.critical_batch.regime_bounds`).
    n_points:
        Points of the fitted curve, log-spaced over the x range.
    show_trials:
        Also plot every measurement of each batch size (faint).
    """
    x_lo, x_hi = _x_range(fit, b_simple)
    b = np.geomspace(x_lo, x_hi, n_points)
    artists: dict[str, Any] = {}
    ax.set_xscale("log")
    ax.set_yscale("log")

    lo, hi = fit.regime_bounds(tolerance)
    edges = {"perfect_scaling": (x_lo, lo), "diminishing_returns": (lo, hi), "no_gain": (hi, x_hi)}
    for name in REGIMES:
        a, z = edges[name]
        if z <= a:
            continue
        color, label = _REGIME_STYLE[name]
        artists[f"regime:{name}"] = ax.axvspan(a, z, color=color, alpha=0.08, lw=0, label=label, gid=f"regime:{name}")

    if show_trials:
        xs = np.concatenate([np.full(v.size, bb) for bb, v in zip(fit.batch_sizes, fit.samples, strict=True)])
        ys = np.concatenate(fit.samples)
        (artists["trials"],) = ax.plot(xs, ys, ".", color="0.6", alpha=0.6, ms=4, gid="trials", label="trials")
    (artists["measured"],) = ax.plot(
        fit.batch_sizes, fit.steps, "o", color="k", ms=5, gid="measured", label=f"measured ({fit.aggregate})"
    )
    (artists["fit"],) = ax.plot(
        b, fit.steps_at(b), "-", color="tab:blue", lw=2, gid="fit",
        label=f"fit: $S_{{min}}$={fit.s_min:.3g}, $E_{{min}}$={fit.e_min:.3g}",
    )
    (artists["perfect_scaling"],) = ax.plot(
        b, fit.e_min / b, "--", color="0.3", lw=1, gid="perfect_scaling", label="perfect scaling $E_{min}/B$"
    )
    (artists["s_min"],) = ax.plot(
        [x_lo, x_hi], [fit.s_min, fit.s_min], ":", color="0.3", lw=1, gid="s_min", label="$S_{min}$"
    )
    ci = fit.intervals.get("b_crit", (np.nan, np.nan))
    ci_text = f" [{ci[0]:.3g}, {ci[1]:.3g}]" if np.all(np.isfinite(ci)) else ""
    artists["b_crit"] = ax.axvline(
        fit.b_crit, color="tab:blue", lw=1.5, gid="b_crit", label=f"$B_{{crit}}$={fit.b_crit:.3g}{ci_text}"
    )
    if np.all(np.isfinite(ci)):
        artists["b_crit_interval"] = ax.axvspan(ci[0], ci[1], color="tab:blue", alpha=0.12, lw=0, gid="b_crit_interval")
    if b_simple is not None:
        artists["b_simple"] = ax.axvline(
            b_simple, color="tab:purple", lw=1.5, ls="-.", gid="b_simple", label=f"$B_{{simple}}$={b_simple:.3g}"
        )
    ax.set_xlim(x_lo, x_hi)
    y_all = np.concatenate([fit.steps, *fit.samples, [fit.s_min]])
    ax.set_ylim(float(y_all.min()) / 2.0, float(y_all.max()) * 2.0)
    ax.set_xlabel("batch size B")
    ax.set_ylabel("steps to target S")
    ax.legend(fontsize=7, loc="upper right")
    return artists


def steps_to_target_figure(
    fit: CriticalBatchFit,
    path: str | Path,
    *,
    b_simple: Optional[float] = None,
    tolerance: float = 0.1,
    title: Optional[str] = None,
    dpi: int = 120,
) -> Path:
    """Write :func:`draw_steps_to_target` as a PNG at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    try:
        draw_steps_to_target(ax, fit, b_simple=b_simple, tolerance=tolerance)
        ax.set_title(title or "Steps to target against batch size")
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def draw_examples_steps(
    ax: Any,
    fit: CriticalBatchFit,
    *,
    examples: Optional[Any] = None,
    n_points: int = 200,
) -> dict[str, Any]:
    """Draw examples to target against steps to target on ``ax`` (log–log); return the artists by ``gid``.

    ``examples``: the measured examples to target of each of ``fit.batch_sizes`` (same order);
    ``None``: ``E = S·B`` of the fit's aggregated steps. The curve is the fit's ``(S(B), E(B))``
    over batch sizes from ``B_crit/1000`` to ``1000·B_crit`` (and the measured range).
    """
    e_meas = fit.examples if examples is None else np.asarray(examples, dtype=float)
    if e_meas.shape != fit.steps.shape:
        raise ValueError(f"{e_meas.size} examples for {fit.steps.size} batch sizes")
    lo = min(float(fit.batch_sizes.min()) / 2.0, fit.b_crit / 1e3)
    hi = max(float(fit.batch_sizes.max()) * 2.0, fit.b_crit * 1e3)
    b = np.geomspace(lo, hi, n_points)
    artists: dict[str, Any] = {}
    ax.set_xscale("log")
    ax.set_yscale("log")
    (artists["fit"],) = ax.plot(
        fit.steps_at(b), fit.examples_at(b), "-", color="tab:blue", lw=2, gid="fit",
        label="fit: $(S/S_{min} - 1)(E/E_{min} - 1) = 1$",
    )
    artists["s_min"] = ax.axvline(fit.s_min, color="0.3", ls=":", lw=1, gid="s_min", label=f"$S_{{min}}$={fit.s_min:.3g}")
    artists["e_min"] = ax.axhline(fit.e_min, color="0.3", ls="--", lw=1, gid="e_min", label=f"$E_{{min}}$={fit.e_min:.3g}")
    (artists["b_crit"],) = ax.plot(
        [2.0 * fit.s_min], [2.0 * fit.e_min], "D", color="tab:blue", ms=7, gid="b_crit",
        label=f"$B = B_{{crit}}$={fit.b_crit:.3g}: $(2S_{{min}}, 2E_{{min}})$",
    )
    ok = np.isfinite(e_meas) & (e_meas > 0)
    (artists["measured"],) = ax.plot(
        fit.steps[ok], e_meas[ok], "o", color="k", ms=5, gid="measured", label=f"measured ({fit.aggregate})"
    )
    for s_b, e_b, bb in zip(fit.steps[ok], e_meas[ok], fit.batch_sizes[ok], strict=True):
        ax.annotate(f"{bb:g}", (s_b, e_b), textcoords="offset points", xytext=(4, 4), fontsize=7)
    xs = np.concatenate([fit.steps[ok], [fit.s_min]])
    ys = np.concatenate([e_meas[ok], [fit.e_min]])
    ax.set_xlim(float(xs.min()) / 2.0, float(xs.max()) * 2.0)
    ax.set_ylim(float(ys.min()) / 2.0, float(ys.max()) * 2.0)
    ax.set_xlabel("steps to target S")
    ax.set_ylabel("examples to target E")
    ax.legend(fontsize=7, loc="best")
    return artists


def examples_steps_figure(
    fit: CriticalBatchFit,
    path: str | Path,
    *,
    examples: Optional[Any] = None,
    title: Optional[str] = None,
    dpi: int = 120,
) -> Path:
    """Write :func:`draw_examples_steps` as a PNG at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    try:
        draw_examples_steps(ax, fit, examples=examples)
        ax.set_title(title or "Examples against steps to target (labels: batch size)")
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
