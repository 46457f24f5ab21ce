"""The convex example of the 2020 report (§4): learning-rate order in 2-D linear regression.

Setting (report §4.2): ``x`` uniform on ``{e1, e2}``, ``y = ⟨β*, x⟩``, squared
loss, gradient descent from ``β = 0`` until the training loss is ``≤ ε``. With
``n = 3`` samples, two of which share a point (say ``e1``)::

    L̂(β) = 2/3 (β1 − β1*)² + 1/3 (β2 − β2*)²          (training loss)
    L_D(β) = 1/2 (β1 − β1*)² + 1/2 (β2 − β2*)²         (population loss)

On the level set ``L̂ = ε`` the population loss ranges over ``[0.75 ε, 1.5 ε]``:
``0.75 ε`` where the residual is all in β1 (the over-sampled coordinate),
``1.5 ε`` where it is all in β2.

Gradient descent on ``L̂ = Σ a_i e_i²`` (``e = β − β*``) multiplies each error
coordinate by ``1 − 2 η a_i`` per step, so from 0::

    e_i(T) = −β_i* ∏_t (1 − 2 η_t a_i)

* A small η shrinks the high-curvature coordinate (a1 = 2/3) faster; at the
  stop the residual sits in β2 and ``L_D → 1.5 ε`` as ε → 0.
* Any ``η ∈ (1/(a1 + a2), 1/a1] = (1, 1.5]`` makes ``|1 − 2η a1| > |1 − 2η a2|``:
  the low-curvature coordinate converges faster, the residual sits in β1, and
  ``L_D → 0.75 ε``. At the edge of stability ``η = 1/a1 = 1.5`` (the default
  large rate) β1 bounces between ``±e1`` while β2 is fit in one step; annealing
  to a small η then shrinks β1 alone and the run stops at exactly ``0.75 ε``.
  (If the large phase leaves some error in β2, a long small-η phase moves the
  residual back towards β2, since the small η shrinks β1 faster: the anneal
  must come late enough — ``switch_step`` — for the 0.75 ε to survive.)

This module holds the pure functions (NumPy, float64) and the plot; the
dataset/model plugins are in :mod:`lbgap_synthetic.convex_plugin`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = [
    "GDRun",
    "paper_design",
    "empirical_loss",
    "population_loss_basis",
    "gradient_descent",
    "closed_form_errors",
    "level_set_population_range",
    "run_convex_example",
    "plot_convex_trajectories",
]

E1 = np.array([1.0, 0.0])
E2 = np.array([0.0, 1.0])


@dataclass
class GDRun:
    """One run of full-batch gradient descent.

    Attributes
    ----------
    betas:
        Iterates ``[T+1, p]``, starting at ``β_0``.
    train_loss, test_loss:
        Losses at every iterate ``[T+1]``.
    lrs:
        Learning rate of every step ``[T]``.
    switch_step:
        Number of steps taken at the large learning rate (None if never
        switched, or for a single-LR run).
    converged:
        Whether the training loss reached ``eps`` within ``max_steps``.
    """

    betas: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    lrs: np.ndarray
    switch_step: Optional[int]
    converged: bool
    label: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def final_beta(self) -> np.ndarray:
        return self.betas[-1]

    @property
    def final_train_loss(self) -> float:
        return float(self.train_loss[-1])

    @property
    def final_test_loss(self) -> float:
        return float(self.test_loss[-1])

    @property
    def steps(self) -> int:
        return len(self.lrs)


def paper_design(beta_star: Sequence[float] = (1.0, 1.0), counts: tuple[int, int] = (2, 1)):
    """The report's undersampled training set: ``counts[0]`` copies of e1, ``counts[1]`` of e2.

    Returns ``(X [n, 2], y [n])``. With the default counts the training loss is
    ``2/3 (β1 − β1*)² + 1/3 (β2 − β2*)²``.
    """
    X = np.array([E1] * counts[0] + [E2] * counts[1], dtype=np.float64)
    y = X @ np.asarray(beta_star, dtype=np.float64)
    return X, y


def empirical_loss(beta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error ``(1/n) Σ (⟨β, x_i⟩ − y_i)²``."""
    r = X @ beta - y
    return float(np.mean(r * r))


def population_loss_basis(beta: np.ndarray, beta_star: Sequence[float]) -> float:
    """``L_D(β) = E (⟨β − β*, x⟩)²`` for ``x`` uniform on ``{e1, e2}``: ``‖β − β*‖² / 2``."""
    e = np.asarray(beta, dtype=np.float64) - np.asarray(beta_star, dtype=np.float64)
    return float(0.5 * e @ e)


def gradient_descent(
    X: np.ndarray,
    y: np.ndarray,
    *,
    lr: float,
    eps: float,
    test_loss: Callable[[np.ndarray], float],
    lr_after: Optional[float] = None,
    switch_loss: Optional[float] = None,
    switch_step: Optional[int] = None,
    max_steps: int = 1_000_000,
    beta0: Optional[np.ndarray] = None,
    label: str = "",
) -> GDRun:
    """Full-batch gradient descent on the MSE from ``beta0`` (default 0) until ``L̂ ≤ eps``.

    With ``lr_after`` set, the learning rate is ``lr`` until the training loss
    is ``≤ switch_loss`` (or for ``switch_step`` steps), then ``lr_after``.
    The stopping test is done before each step, so a run stops at the first
    iterate with ``L̂ ≤ eps``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if lr_after is not None and switch_loss is None and switch_step is None:
        raise ValueError("lr_after needs switch_loss or switch_step")
    n, p = X.shape
    beta = np.zeros(p) if beta0 is None else np.asarray(beta0, dtype=np.float64).copy()
    betas = [beta.copy()]
    train = [empirical_loss(beta, X, y)]
    test = [test_loss(beta)]
    lrs: list[float] = []
    switched_at: Optional[int] = None
    cur = lr
    converged = train[-1] <= eps
    while not converged and len(lrs) < max_steps:
        if lr_after is not None and switched_at is None:
            t = len(lrs)
            if (switch_loss is not None and train[-1] <= switch_loss) or (switch_step is not None and t >= switch_step):
                switched_at = t
                cur = lr_after
        grad = 2.0 / n * X.T @ (X @ beta - y)
        beta = beta - cur * grad
        lrs.append(cur)
        betas.append(beta.copy())
        train.append(empirical_loss(beta, X, y))
        test.append(test_loss(beta))
        converged = train[-1] <= eps
        if not np.isfinite(train[-1]):
            break
    return GDRun(
        betas=np.array(betas),
        train_loss=np.array(train),
        test_loss=np.array(test),
        lrs=np.array(lrs),
        switch_step=switched_at,
        converged=bool(converged),
        label=label,
    )


def closed_form_errors(lrs: Sequence[float], curvatures: Sequence[float], beta_star: Sequence[float]) -> np.ndarray:
    """``e_i(T) = −β_i* ∏_t (1 − 2 η_t a_i)`` for a diagonal training loss ``Σ a_i (β_i − β_i*)²`` from 0."""
    lrs = np.asarray(lrs, dtype=np.float64)
    a = np.asarray(curvatures, dtype=np.float64)
    factors = np.prod(1.0 - 2.0 * lrs[:, None] * a[None, :], axis=0) if len(lrs) else np.ones_like(a)
    return -np.asarray(beta_star, dtype=np.float64) * factors


def level_set_population_range(train_weights: Sequence[float], population_weights: Sequence[float]) -> tuple[float, float]:
    """Range of ``L_D/ε`` over the level set ``Σ a_i e_i² = ε`` when ``L_D = Σ c_i e_i²``.

    Putting all of the residual ``ε`` into coordinate ``i`` gives ``e_i² = ε/a_i``
    and ``L_D = (c_i/a_i) ε``; a mixture gives a convex combination, so the range
    is ``[min_i c_i/a_i, max_i c_i/a_i]`` — ``[0.75, 1.5]`` for the report's example.
    """
    ratios = np.asarray(population_weights, dtype=np.float64) / np.asarray(train_weights, dtype=np.float64)
    return float(ratios.min()), float(ratios.max())


def run_convex_example(
    *,
    eps: float = 1e-3,
    lr_large: float = 1.5,
    lr_small: float = 0.05,
    switch_loss: Optional[float] = None,
    switch_step: Optional[int] = 10,
    beta_star: Sequence[float] = (1.0, 1.0),
    counts: tuple[int, int] = (2, 1),
    max_steps: int = 1_000_000,
) -> dict[str, Any]:
    """Run (a) large-then-small and (b) small learning rate on the report's example.

    Defaults: ``lr_large = 1/a1 = 1.5`` (edge of stability) for ``switch_step``
    steps, then ``lr_small``; (b) uses ``lr_small`` throughout. Both stop at the
    first iterate with training loss ``≤ eps``.

    Returns a dict with the two :class:`GDRun` objects (``"large_then_small"``,
    ``"small"``), their final test losses and ``test/eps`` ratios, the data
    and the level-set range ``(0.75, 1.5)``.
    """
    X, y = paper_design(beta_star, counts)

    def test_loss(b: np.ndarray) -> float:
        return population_loss_basis(b, beta_star)

    ls = gradient_descent(
        X, y, lr=lr_large, lr_after=lr_small, switch_loss=switch_loss, switch_step=switch_step,
        eps=eps, test_loss=test_loss, max_steps=max_steps, label=f"large ({lr_large:g}) then small ({lr_small:g})",
    )
    s = gradient_descent(X, y, lr=lr_small, eps=eps, test_loss=test_loss, max_steps=max_steps,
                         label=f"small ({lr_small:g})")
    n = sum(counts)
    a = (counts[0] / n, counts[1] / n)
    return {
        "X": X,
        "y": y,
        "beta_star": np.asarray(beta_star, dtype=np.float64),
        "curvatures": a,
        "eps": eps,
        "large_then_small": ls,
        "small": s,
        "test_loss": {"large_then_small": ls.final_test_loss, "small": s.final_test_loss},
        "test_over_eps": {"large_then_small": ls.final_test_loss / eps, "small": s.final_test_loss / eps},
        "level_set_range": level_set_population_range(a, (0.5, 0.5)),
    }


def plot_convex_trajectories(
    target: Any,
    runs: Sequence[GDRun] | dict[str, GDRun],
    *,
    X: np.ndarray,
    y: np.ndarray,
    beta_star: Sequence[float],
    eps: Optional[float] = None,
    test_loss: Optional[Callable[[np.ndarray], float]] = None,
    levels: int = 8,
    title: Optional[str] = None,
):
    """Draw GD trajectories over the train (solid) and test (dashed) loss contours.

    Parameters
    ----------
    target:
        A matplotlib ``Axes`` to draw into, or a path (``str``/``Path``) to
        save a new figure to (format from the suffix).
    runs:
        The runs to draw (a dict's keys are used as labels).
    X, y, beta_star:
        Training data and ground truth (the contours' centre).
    eps:
        If given, the level set ``L̂ = eps`` is drawn in bold.
    test_loss:
        Population loss; default :func:`population_loss_basis`.

    Returns
    -------
    The ``Axes`` drawn into, or (when ``target`` is a path) the path of the
    saved figure. No pyplot state is touched when saving to a path.
    """
    from matplotlib.figure import Figure

    beta_star = np.asarray(beta_star, dtype=np.float64)
    if test_loss is None:
        def test_loss(b: np.ndarray) -> float:
            return population_loss_basis(b, beta_star)
    items = list(runs.items()) if isinstance(runs, dict) else [(r.label, r) for r in runs]

    pts = np.concatenate([r.betas for _, r in items] + [beta_star[None, :], np.zeros((1, 2))])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200)
    g2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200)
    B1, B2 = np.meshgrid(g1, g2)
    grid = np.stack([B1.ravel(), B2.ravel()], axis=1)
    R = grid @ np.asarray(X, dtype=np.float64).T - np.asarray(y, dtype=np.float64)[None, :]
    train_z = np.mean(R * R, axis=1).reshape(B1.shape)
    test_z = np.array([test_loss(b) for b in grid]).reshape(B1.shape)

    own_fig = isinstance(target, (str, Path))
    if own_fig:
        fig = Figure(figsize=(5.5, 5))
        ax = fig.subplots()
    else:
        ax = target
    lv = np.quantile(train_z, np.linspace(0.02, 0.9, levels))
    ax.contour(B1, B2, train_z, levels=np.unique(lv), colors="0.3", linewidths=0.8)
    ax.contour(B1, B2, test_z, levels=np.unique(lv), colors="tab:orange", linestyles="dashed", linewidths=0.8)
    if eps is not None:
        ax.contour(B1, B2, train_z, levels=[eps], colors="k", linewidths=2.0)
    colors = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
    for i, (label, run) in enumerate(items):
        c = colors[i % len(colors)]
        ax.plot(run.betas[:, 0], run.betas[:, 1], "-", color=c, lw=1.0, marker=".", ms=3,
                label=f"{label}: test {run.final_test_loss:.3g}")
        ax.plot(*run.final_beta, "o", color=c, ms=6)
    ax.plot(*beta_star, "k*", ms=10, label="β*")
    ax.set_xlabel("β1")
    ax.set_ylabel("β2")
    ax.set_title(title or "GD on train loss (solid) vs test loss (dashed)")
    ax.legend(fontsize=8, loc="best")
    if own_fig:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        return path
    return ax
