"""Analyses of finished studies that need no training: model fits and their figures.

* :mod:`lbgap.analysis.critical_batch`: McCandlish et al.'s model of steps and
  examples to a target against batch size, fitted to measured steps (S_min,
  E_min, the critical batch size B_crit, bootstrap intervals) and the
  perfect-scaling / diminishing-returns / no-gain regimes;
* :mod:`lbgap.analysis.figures`: steps to target against batch size on log–log
  axes with the fit, the perfect-scaling line, B_crit, B_simple and the regimes;
* :mod:`lbgap.analysis.report`: the same from a study's ``results.nc`` (steps to
  target per batch size from a grid or a search, B_simple from the
  ``gradient_noise_scale`` metric), one figure per variant.

See ``docs/batch-science.md``.
"""

from __future__ import annotations

from . import critical_batch
from .critical_batch import *  # noqa: F403  (the fit's public names, listed once in critical_batch.__all__)

__all__ = list(critical_batch.__all__)
