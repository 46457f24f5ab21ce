"""Metric ``sgd_noise_scale``: Smith & Le's SGD noise scale, recorded per epoch.

Smith & Le (2018), "A Bayesian perspective on generalization and stochastic
gradient descent": SGD with learning rate ``ε``, batch ``B`` from ``N``
training examples and momentum ``m`` integrates a stochastic differential
equation whose noise scale is ``g = ε/(1 − m)·(N/B − 1)``, that is

    g ≈ ε N / (B (1 − m))      (B ≪ N),

and the test accuracy peaks at an optimal ``g``: ``B_opt ∝ εN/(1 − m)``, the
linear scaling rule between batch size and learning rate (and why Smith,
Kindermans, Ying & Le 2018 can raise ``B`` in place of lowering ``ε``).

PyTorch's SGD with dampening ``d`` (``v ← m·v + (1 − d)·grad``) moves a steady
gradient ``ε(1 − d)/(1 − m)`` per step, so the recorded value is
``ε (1 − d) N / (B (1 − m))`` (``d = 0``, the default and the paper's case, gives the
formula above; Nesterov momentum has the same steady-state step). ``ε`` is the
learning rate in use at the end of the epoch (``trial.lr``, the core
``learning_rate`` variable), ``B`` the global batch ``trial.plan.batch_size``
(capped at ``N``: a batch larger than the training set is one batch of ``N``), ``N``
``trial.data.n_train``, ``m`` and ``d`` the optimizer's first parameter group's
``momentum`` and ``dampening``. An optimizer without ``momentum`` (Adam,
AdaGrad) gives NaN: the formula is SGD's.

The value needs the optimizer's state, which a metric's :class:`MeasureContext`
does not carry, so the metric writes it from the ``lbgap_epoch_end`` hook (the
engine registers a metric's hook implementations for its trial) rather than
from :meth:`compute`; it is a metric so that its units and long name reach
``results.nc``. It cannot be measured after the fact (``lbgap measure``): there
is no optimizer then.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

from lbgap.api import PluginConfig, hookimpl

__all__ = ["SGDNoiseScaleConfig", "SGDNoiseScale", "build_sgd_noise_scale", "sgd_noise_scale"]

log = logging.getLogger(__name__)

VARIABLE = "sgd_noise_scale"


def sgd_noise_scale(lr: float, n_train: int, batch_size: int, momentum: float = 0.0, dampening: float = 0.0) -> float:
    """``g = ε (1 − d) N / (B (1 − m))`` with ``B`` capped at ``N`` (Smith & Le 2018; ``d = 0`` in the paper)."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), not {momentum}")
    b = min(int(batch_size), int(n_train))
    return lr * (1.0 - dampening) * n_train / (b * (1.0 - momentum))


class SGDNoiseScaleConfig(PluginConfig):
    """Smith & Le's SGD noise scale g = εN/(B(1 − m)) per epoch (learning rate ε, training set N, batch B,
    momentum m)."""


class SGDNoiseScale:
    """Writes ``sgd_noise_scale`` into every epoch's record (see the module docstring)."""

    #: the engine never calls :meth:`compute`: the value comes from ``lbgap_epoch_end``
    every: Optional[int] = None
    at_end: bool = False
    outputs = (VARIABLE,)

    def __init__(self, cfg: SGDNoiseScaleConfig) -> None:
        self.cfg = cfg
        self.attrs = {
            VARIABLE: {
                "units": "1",
                "long_name": "SGD noise scale lr*(1-dampening)*N/(B*(1-momentum)) (Smith & Le 2018)",
            }
        }
        self._warned = False

    def compute(self, ctx: Any) -> dict[str, float]:
        raise RuntimeError(
            "sgd_noise_scale is recorded while training (it needs the optimizer's learning rate and "
            "momentum); it cannot be measured after the fact"
        )

    def value(self, trial: Any) -> float:
        """The noise scale of ``trial`` as it is now."""
        group = trial.optimizer.param_groups[0]
        momentum = group.get("momentum")
        if momentum is None:
            if not self._warned:
                log.warning(
                    "%s: sgd_noise_scale is SGD's; the optimizer %s has no momentum setting: NaN",
                    getattr(trial, "key", "?"), type(trial.optimizer).__name__,
                )
                self._warned = True
            return math.nan
        batch = getattr(trial, "batch_size", None) or trial.plan.batch_size
        return sgd_noise_scale(
            float(trial.lr), int(trial.data.n_train), int(batch), float(momentum), float(group.get("dampening", 0.0))
        )

    @hookimpl
    def lbgap_epoch_end(self, trial: Any, record: dict[str, Any]) -> None:
        record[VARIABLE] = self.value(trial)


def build_sgd_noise_scale(cfg: SGDNoiseScaleConfig) -> SGDNoiseScale:
    return SGDNoiseScale(cfg)
