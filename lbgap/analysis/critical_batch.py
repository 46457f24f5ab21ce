"""The critical batch size: McCandlish et al.'s model of steps and examples to a target.

McCandlish, Kaplan, Amodei & the OpenAI Dota team (2018), "An empirical model
of large-batch training" (§2): the optimizer steps ``S`` and training
examples ``E = S·B`` that a batch size ``B`` needs to reach a fixed target
trade off as

    (S/S_min − 1)(E/E_min − 1) = 1,

with ``S_min`` the fewest steps any batch size needs (B → ∞) and ``E_min``
the fewest examples (B → 0). Writing ``B_crit = E_min/S_min`` (the critical
batch size) and substituting ``E = S·B`` gives the two equivalent forms

    S(B) = S_min (1 + B_crit/B),        E(B) = E_min (1 + B/B_crit).

(With ``x = S/S_min − 1`` and ``E/E_min = (S/S_min)·B/B_crit``, the model reads
``x((1 + x)B/B_crit − 1) = 1``, i.e. ``x² + (1 − B_crit/B)x − B_crit/B = 0``, i.e.
``(x − B_crit/B)(x + 1) = 0``; the root ``x = −1`` would mean no steps at all.)

:func:`fit_critical_batch` fits the steps form by least squares in log space,

    min over (log S_min, log B_crit) of  Σ_B [log S(B) − log S_min − log(1 + B_crit/B)]²,

(log space: multiplicative noise on steps, and every batch size counts the
same whatever its step count), then ``E_min = S_min·B_crit``. The measured
steps per batch size are reduced to one number first (the best trial of a
search, ``aggregate="min"``, as Shallue et al. and McCandlish et al. do; or
the median / mean / geometric mean over seeds of one setting), and bootstrap
intervals come from resampling those measurements (seeds or trials) within
each batch size with a seeded generator.

Regimes (Shallue et al. 2018, "Measuring the effects of data parallelism on
neural network training": perfect scaling, diminishing returns, no gain) are
cut at ``tolerance·B_crit`` and ``B_crit/tolerance`` (default ``tolerance =
0.1``): below the first the examples needed are within 10 % of ``E_min``
(steps fall as 1/B to within 10 %), above the second the steps are within 10 %
of ``S_min`` (a larger batch saves less than 10 % of the steps, however
large). In slope terms ``d log S/d log B = −B_crit/(B + B_crit)`` is below
−0.91 in the first regime and above −0.091 in the last.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import least_squares

__all__ = [
    "REGIMES",
    "CriticalBatchFit",
    "examples_model",
    "fit_critical_batch",
    "regime_bounds",
    "regime_of",
    "steps_model",
]

log = logging.getLogger(__name__)

#: the three regimes of steps to target against batch size, smallest batches first
REGIMES = ("perfect_scaling", "diminishing_returns", "no_gain")

Aggregate = Literal["min", "median", "mean", "geomean"]
_AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "min": lambda a: float(np.min(a)),
    "median": lambda a: float(np.median(a)),
    "mean": lambda a: float(np.mean(a)),
    "geomean": lambda a: float(np.exp(np.mean(np.log(a)))),
}
#: how far outside the measured batch sizes (a factor) the fitted B_crit may go
_B_CRIT_RANGE = 1e4


def steps_model(batch_size: Any, s_min: float, b_crit: float) -> np.ndarray:
    """Steps to target ``S(B) = S_min (1 + B_crit/B)``."""
    b = np.asarray(batch_size, dtype=float)
    return s_min * (1.0 + b_crit / b)


def examples_model(batch_size: Any, e_min: float, b_crit: float) -> np.ndarray:
    """Examples to target ``E(B) = E_min (1 + B/B_crit)``."""
    b = np.asarray(batch_size, dtype=float)
    return e_min * (1.0 + b / b_crit)


def regime_bounds(b_crit: float, tolerance: float = 0.1) -> tuple[float, float]:
    """``(tolerance·B_crit, B_crit/tolerance)``: the batch sizes where perfect scaling ends
    and where the no-gain regime begins (see the module docstring)."""
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must lie in (0, 1), not {tolerance}")
    if not (b_crit > 0 and math.isfinite(b_crit)):
        raise ValueError(f"B_crit must be positive and finite, not {b_crit}")
    return tolerance * b_crit, b_crit / tolerance


def regime_of(batch_size: Any, b_crit: float, tolerance: float = 0.1) -> Any:
    """The regime of each batch size: one of :data:`REGIMES` (a string for a scalar, else an array).

    ``B ≤ tolerance·B_crit``: ``perfect_scaling``; ``B ≥ B_crit/tolerance``: ``no_gain``;
    between: ``diminishing_returns``.
    """
    lo, hi = regime_bounds(b_crit, tolerance)
    b = np.asarray(batch_size, dtype=float)
    out = np.where(b <= lo, REGIMES[0], np.where(b >= hi, REGIMES[2], REGIMES[1]))
    return str(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class CriticalBatchFit:
    """McCandlish et al.'s model fitted to steps to target per batch size.

    Attributes
    ----------
    s_min, e_min, b_crit:
        Fewest steps (B → ∞), fewest examples (B → 0) and ``B_crit = E_min/S_min``.
    intervals:
        ``{"s_min" | "e_min" | "b_crit": (low, high)}``: percentile bootstrap intervals at
        ``confidence`` (NaN when no bootstrap was run).
    batch_sizes, steps:
        The batch sizes the fit used (ascending) and their aggregated steps.
    samples:
        The finite measurements of each batch size (what the bootstrap resamples).
    aggregate:
        How each batch size's measurements were reduced to one number.
    rms_log_residual:
        Root mean square of ``log S − log S(B)`` over the batch sizes.
    at_bound:
        True when B_crit ran into the search range (``1e4`` times beyond the measured batch
        sizes): the measurements are all in one regime and do not determine it.
    confidence, n_boot, n_boot_failed:
        The bootstrap's level, replicates asked for and replicates that left fewer than three
        batch sizes (left out of the intervals).
    boot:
        ``{"s_min" | "e_min" | "b_crit": array}``: the bootstrap estimates.
    """

    s_min: float
    e_min: float
    b_crit: float
    batch_sizes: np.ndarray
    steps: np.ndarray
    samples: tuple[np.ndarray, ...]
    aggregate: str
    rms_log_residual: float
    at_bound: bool
    confidence: float
    n_boot: int
    n_boot_failed: int
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    boot: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def examples(self) -> np.ndarray:
        """Aggregated examples to target ``E = S·B`` per batch size."""
        return self.steps * self.batch_sizes

    def steps_at(self, batch_size: Any) -> np.ndarray:
        """The fitted ``S(B)``."""
        return steps_model(batch_size, self.s_min, self.b_crit)

    def examples_at(self, batch_size: Any) -> np.ndarray:
        """The fitted ``E(B)``."""
        return examples_model(batch_size, self.e_min, self.b_crit)

    def regime(self, batch_size: Any, tolerance: float = 0.1) -> Any:
        """:func:`regime_of` with the fitted B_crit."""
        return regime_of(batch_size, self.b_crit, tolerance)

    def regime_bounds(self, tolerance: float = 0.1) -> tuple[float, float]:
        """:func:`regime_bounds` with the fitted B_crit."""
        return regime_bounds(self.b_crit, tolerance)


def _clean(batch_sizes: Any, steps: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """Batch sizes as floats and each one's finite measurements; rejects bad input."""
    b = np.asarray(batch_sizes, dtype=float).ravel()
    if isinstance(steps, np.ndarray) and steps.ndim == 1:
        per_b = [np.atleast_1d(v) for v in steps]
    elif isinstance(steps, np.ndarray):
        per_b = [np.asarray(row, dtype=float).ravel() for row in steps]
    else:
        per_b = [np.atleast_1d(np.asarray(v, dtype=float)).ravel() for v in steps]
    if len(per_b) != len(b):
        raise ValueError(f"{len(b)} batch sizes but {len(per_b)} entries of steps: give one entry per batch size")
    if np.any(~np.isfinite(b)) or np.any(b <= 0):
        raise ValueError(f"batch sizes must be positive and finite: {b.tolist()}")
    if len(np.unique(b)) != len(b):
        raise ValueError(f"batch sizes must be distinct (pool the measurements of one batch size): {b.tolist()}")
    kept_b, kept = [], []
    for bi, values in zip(b, per_b, strict=True):
        values = np.asarray(values, dtype=float)
        finite = values[np.isfinite(values)]
        if np.any(finite <= 0):
            raise ValueError(f"steps to target must be positive (batch size {bi:g}: {finite.tolist()})")
        if finite.size:
            kept_b.append(bi)
            kept.append(finite)
        else:
            log.info("batch size %g never reached the target: left out of the fit", bi)
    if len(kept_b) < 3:
        raise ValueError(
            f"fitting S_min and B_crit needs steps to target at 3 or more batch sizes; got {len(kept_b)} "
            f"(batch sizes that never reached the target are left out)"
        )
    order = np.argsort(kept_b)
    return np.asarray(kept_b)[order], [kept[i] for i in order]


def _fit_log(b: np.ndarray, s: np.ndarray) -> tuple[float, float, float, bool]:
    """Least squares of ``log S`` against ``log S_min + log(1 + B_crit/B)``:
    ``(S_min, B_crit, rms log residual, B_crit at its bound)``."""
    log_s = np.log(s)
    lo_c = math.log(b.min() / _B_CRIT_RANGE)
    hi_c = math.log(b.max() * _B_CRIT_RANGE)

    # a coarse profile over log B_crit (log S_min is then a mean) to start from the global minimum
    grid = np.linspace(lo_c, hi_c, 241)
    r = log_s[None, :] - np.log1p(np.exp(grid)[:, None] / b[None, :])
    means = r.mean(axis=1)
    k = int(np.argmin(np.sum((r - means[:, None]) ** 2, axis=1)))
    c0, m0 = float(grid[k]), float(means[k])

    def residuals(theta: np.ndarray) -> np.ndarray:
        return theta[0] + np.log1p(np.exp(theta[1]) / b) - log_s

    def jacobian(theta: np.ndarray) -> np.ndarray:
        q = np.exp(theta[1]) / b
        return np.column_stack([np.ones_like(b), q / (1.0 + q)])

    res = least_squares(
        residuals, x0=[m0, c0], jac=jacobian, bounds=([-np.inf, lo_c], [np.inf, hi_c]),
        method="trf", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12,
    )
    log_s_min, c = float(res.x[0]), float(res.x[1])
    rms = float(np.sqrt(np.mean(res.fun**2)))
    span = hi_c - lo_c
    at_bound = min(c - lo_c, hi_c - c) < 1e-3 * span
    return math.exp(log_s_min), math.exp(c), rms, at_bound


def fit_critical_batch(
    batch_sizes: Sequence[float] | np.ndarray,
    steps: Sequence[Any] | np.ndarray,
    *,
    aggregate: Aggregate = "min",
    n_boot: int = 1000,
    confidence: float = 0.95,
    resample: Literal["measurements", "batch_sizes"] = "measurements",
    seed: int = 0,
) -> CriticalBatchFit:
    """Fit ``S(B) = S_min (1 + B_crit/B)`` to measured steps to target.

    Parameters
    ----------
    batch_sizes:
        The distinct batch sizes measured.
    steps:
        One entry per batch size: its steps to target, a number or an array of measurements
        (one per seed, or per trial of a search). NaN or infinite values (the target was never
        met) are left out; a batch size left with none is left out of the fit. A 2-D array is
        read one row per batch size.
    aggregate:
        How a batch size's measurements become one number: ``"min"`` (the best trial: the
        protocol of Shallue et al. and McCandlish et al., for trials of a search), ``"median"``,
        ``"mean"`` or ``"geomean"`` (for seeds of one setting).
    n_boot:
        Bootstrap replicates (0: no intervals).
    confidence:
        Level of the percentile intervals.
    resample:
        ``"measurements"``: each replicate redraws, with replacement, the measurements of every
        batch size (a batch size measured once contributes no spread); ``"batch_sizes"``:
        redraws the (B, S) pairs themselves (replicates with fewer than three distinct batch
        sizes are left out).
    seed:
        Seed of the bootstrap's generator (``numpy.random.default_rng``).

    Returns
    -------
    CriticalBatchFit

    Raises
    ------
    ValueError
        Fewer than three batch sizes with a finite measurement, non-positive or repeated batch
        sizes, non-positive steps, an unknown ``aggregate`` or ``resample``.
    """
    if aggregate not in _AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; one of {', '.join(_AGGREGATES)}")
    if resample not in ("measurements", "batch_sizes"):
        raise ValueError(f"unknown resample {resample!r}; one of measurements, batch_sizes")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be non-negative, not {n_boot}")
    b, samples = _clean(batch_sizes, steps)
    agg = _AGGREGATES[aggregate]
    s = np.array([agg(v) for v in samples])
    s_min, b_crit, rms, at_bound = _fit_log(b, s)
    if at_bound:
        log.warning(
            "B_crit = %.3g is at the edge of its search range: the batch sizes %s are all in one regime "
            "and do not determine it", b_crit, b.tolist(),
        )

    rng = np.random.default_rng(seed)
    boot = {k: np.full(n_boot, np.nan) for k in ("s_min", "e_min", "b_crit")}
    failed = 0
    for i in range(n_boot):
        if resample == "measurements":
            bb = b
            ss = np.array([agg(v[rng.integers(0, v.size, v.size)]) for v in samples])
        else:
            idx = rng.integers(0, b.size, b.size)
            uniq = np.unique(idx)
            if uniq.size < 3:
                failed += 1
                continue
            # a batch size drawn more than once counts once per draw, with its aggregated steps
            bb, ss = b[idx], s[idx]
        try:
            sm, bc, _, _ = _fit_log(bb, ss)
        except (ValueError, FloatingPointError):  # pragma: no cover - defensive
            failed += 1
            continue
        boot["s_min"][i], boot["b_crit"][i], boot["e_min"][i] = sm, bc, sm * bc
    alpha = (1.0 - confidence) / 2.0
    intervals: dict[str, tuple[float, float]] = {}
    for k, v in boot.items():
        ok = v[np.isfinite(v)]
        intervals[k] = (
            (float(np.quantile(ok, alpha)), float(np.quantile(ok, 1.0 - alpha))) if ok.size else (math.nan, math.nan)
        )
    return CriticalBatchFit(
        s_min=s_min, e_min=s_min * b_crit, b_crit=b_crit, batch_sizes=b, steps=s, samples=tuple(samples),
        aggregate=aggregate, rms_log_residual=rms, at_bound=at_bound, confidence=confidence, n_boot=n_boot,
        n_boot_failed=failed, intervals=intervals, boot=boot,
    )
