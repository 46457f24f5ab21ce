"""Noise plugin ``gradient_noise``: spherical Gaussian noise on every gradient.

Li, Wei & Ma's training algorithm (2020 report §2.1.3)::

    U_{t+1} = U_t − γ_t (∇_U L̂_λ(U_t) + ξ_t),   ξ_t ~ N(0, τ_ξ² I)

so the noise is added to the gradient before the optimizer step and is
multiplied by the learning rate: a larger learning rate means a noisier walk.
The injector adds ``scale · N(0, I)`` to the ``.grad`` of every selected
parameter in ``lbgap_after_backward`` (after gradient averaging, before
clipping and the step), drawing from ``trial.generator``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

from pydantic import NonNegativeFloat

from lbgap.api import hookimpl

from .noise_level import NoiseDecayConfig, NoiseLevel

if TYPE_CHECKING:
    import torch

__all__ = ["GradientNoiseConfig", "GradientNoise", "build_gradient_noise"]


class GradientNoiseConfig(NoiseDecayConfig):
    """Spherical Gaussian noise added to every parameter's gradient (Li, Wei & Ma's noisy SGD, τ_ξ)."""

    scale: NonNegativeFloat
    """Standard deviation ``τ_ξ`` of the noise per gradient entry (required). [paper: symbol only]"""

    parameters: Optional[list[str]] = None
    """Names of the parameters to perturb (``model.named_parameters()`` names, or prefixes
    ending in ``.``); None = every parameter that requires a gradient. The theory perturbs the
    first layer only (``hidden.`` in a two-layer network)."""


def _select(model: torch.nn.Module, names: Optional[list[str]]) -> list[tuple[str, torch.nn.Parameter]]:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if names is None:
        return params
    chosen = [(n, p) for n, p in params if any(n == k or (k.endswith(".") and n.startswith(k)) for k in names)]
    if not chosen:
        known = ", ".join(n for n, _ in params)
        raise ValueError(f"gradient_noise: no parameter matches {names}; parameters: {known}")
    return chosen


class GradientNoise:
    """Adds ``N(0, σ²)`` to gradients; σ follows a :class:`NoiseLevel`.

    Records per epoch ``gradient_noise_std`` (the std used in that epoch) and
    at the end ``gradient_noise_decay_epoch`` (epochs done when the decay
    fired; NaN if it never did).
    """

    def __init__(self, cfg: GradientNoiseConfig) -> None:
        self.cfg = cfg
        self.level = NoiseLevel(cfg)
        self._params: list[tuple[str, torch.nn.Parameter]] = []

    @hookimpl
    def lbgap_trial_start(self, trial: Any) -> None:
        self.level.reset()
        self._params = _select(trial.model, self.cfg.parameters)

    @hookimpl
    def lbgap_after_backward(self, trial: Any) -> None:
        std = self.level.current(trial)
        if std == 0.0:
            return
        import torch  # imported when a trial trains, not when a study is validated

        gen = trial.generator
        for _, p in self._params:
            g = p.grad
            if g is None:
                continue
            noise = torch.randn(g.shape, generator=gen, device=g.device, dtype=g.dtype)
            g.add_(noise, alpha=std)

    @hookimpl
    def lbgap_epoch_end(self, trial: Any, record: dict[str, Any]) -> None:
        used = self.level.last_used if self.level.last_used is not None else self.level.current(trial)
        record["gradient_noise_std"] = float(used)
        loss = record.get("train_loss", math.nan)
        self.level.observe_epoch(trial, float(loss) if loss is not None else math.nan)

    @hookimpl
    def lbgap_trial_end(self, trial: Any, results: dict[str, Any]) -> None:
        at = self.level.decayed_at_epoch
        results["gradient_noise_decay_epoch"] = float(at) if at is not None else math.nan
        self._params = []


def build_gradient_noise(cfg: GradientNoiseConfig) -> GradientNoise:
    return GradientNoise(cfg)
