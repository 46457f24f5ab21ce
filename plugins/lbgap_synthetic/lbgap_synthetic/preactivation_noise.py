"""Noise plugin ``preactivation_noise``: Gaussian noise at every ``NoiseSite``.

Li, Wei & Ma's mitigation: train with the small learning rate and add
Gaussian noise to the pre-activations, ``f(x) = u^T relu(U x + Ξ)``, then
decay the noise. Models place :class:`lbgap.nn.NoiseSite` layers before their
ReLUs; this injector sets every site's ``noise_fn`` in ``lbgap_trial_start``
and clears it in ``lbgap_trial_end``. Sites act in training mode only, so
evaluation is noise-free (as the authors' validation uses the plain forward).

The noise drawn at one site for an activation ``x`` of shape ``[B, C, *S]``
has the shape given by ``sharing``:

* ``"none"``: ``x.shape``, independent per example, channel and position;
* ``"batch"``: ``[1, C, *S]``, one draw shared by the examples of the batch;
* ``"batch_and_channels"``: ``[1, 1, *S]``, one spatial map shared by every
  example and every channel, drawn afresh at every site and every forward.
  This is the authors' code (``models/wideresnet.py: forward_noise``:
  ``noise_level * torch.randn(H, W).view(1, 1, H, W)``); for a 2-D activation
  ``[B, C]`` it is a single scalar per site.

Defaults reproduce the authors' CIFAR recipe (``train_patches.py``,
``act_noise`` spec): std 0.4, multiplied by 1e-5 from the 30th epoch on,
shared spatial map.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import NonNegativeFloat

from lbgap.api import hookimpl

from .noise_level import NoiseDecayConfig, NoiseLevel

if TYPE_CHECKING:
    import torch

    from lbgap.api import NoiseSite

__all__ = ["PreactivationNoiseConfig", "PreactivationNoise", "build_preactivation_noise", "noise_shape"]

Sharing = Literal["none", "batch", "batch_and_channels"]


class PreactivationNoiseConfig(NoiseDecayConfig):
    """Gaussian pre-activation noise at the model's NoiseSites, decayed once (Li, Wei & Ma's mitigation)."""

    scale: NonNegativeFloat = 0.4
    """Standard deviation of the noise before the decay. [code: train_patches.py act_noise 4e-1]"""

    decay_factor: NonNegativeFloat = 1e-5
    """Multiplier once the decay fires. [code: act_noise_decay_rate 1e-5]"""

    decay_epoch: Optional[NonNegativeFloat] = 29.0
    """Decay once this many epochs are done. [code: `step_early`, epoch+1 >= 30, i.e. from the 30th
    epoch]; None = no epoch trigger (use ``decay_below_loss`` or ``decay_with_lr``)."""

    sharing: Sharing = "batch_and_channels"
    """Which dimensions share one draw: ``none`` (independent per unit and example, the theory's
    per-unit Ξ), ``batch`` (shared by the examples of a batch), ``batch_and_channels`` (one
    [1, 1, *spatial] map per site and forward, the authors' WideResNet code)."""


def noise_shape(x_shape: torch.Size | tuple[int, ...], sharing: Sharing) -> tuple[int, ...]:
    """Shape of one draw for an activation of shape ``x_shape`` (``[B, C, *spatial]``)."""
    shape = tuple(x_shape)
    if sharing == "none":
        return shape
    if len(shape) < 2:
        raise ValueError(f"sharing={sharing!r} needs activations of shape [batch, channels, ...], got {shape}")
    if sharing == "batch":
        return (1, *shape[1:])
    if sharing == "batch_and_channels":
        return (1, 1, *shape[2:])
    raise ValueError(f"unknown sharing {sharing!r}")


class PreactivationNoise:
    """Switches on every :class:`~lbgap.nn.NoiseSite` of the trial's model.

    Records per epoch ``preactivation_noise_std`` (the std used in that
    epoch) and at the end ``preactivation_noise_decay_epoch`` (epochs done
    when the decay fired; NaN if it never did).
    """

    def __init__(self, cfg: PreactivationNoiseConfig) -> None:
        self.cfg = cfg
        self.level = NoiseLevel(cfg)
        self._sites: list[NoiseSite] = []

    def _make_noise_fn(self, trial: Any):
        import torch  # imported when a trial trains, not when a study is validated

        sharing = self.cfg.sharing
        level = self.level

        def noise_fn(x: torch.Tensor) -> torch.Tensor:
            std = level.current(trial)
            if std == 0.0:
                return x.new_zeros(())
            shape = noise_shape(x.shape, sharing)
            return std * torch.randn(shape, generator=trial.local_generator, device=x.device, dtype=x.dtype)

        return noise_fn

    @hookimpl
    def lbgap_trial_start(self, trial: Any) -> None:
        from lbgap.api import noise_sites

        self.level.reset()
        sites = noise_sites(trial.model)
        if not sites:
            raise ValueError(
                "preactivation_noise: the model has no lbgap.nn.NoiseSite; choose a model that places them"
            )
        fn = self._make_noise_fn(trial)
        for site in sites:
            site.noise_fn = fn
        self._sites = sites

    @hookimpl
    def lbgap_epoch_end(self, trial: Any, record: dict[str, Any]) -> None:
        used = self.level.last_used if self.level.last_used is not None else self.level.current(trial)
        record["preactivation_noise_std"] = float(used)
        loss = record.get("train_loss", math.nan)
        self.level.observe_epoch(trial, float(loss) if loss is not None else math.nan)

    @hookimpl
    def lbgap_trial_end(self, trial: Any, results: dict[str, Any]) -> None:
        for site in self._sites:
            site.noise_fn = None
        self._sites = []
        at = self.level.decayed_at_epoch
        results["preactivation_noise_decay_epoch"] = float(at) if at is not None else math.nan


def build_preactivation_noise(cfg: PreactivationNoiseConfig) -> PreactivationNoise:
    return PreactivationNoise(cfg)
