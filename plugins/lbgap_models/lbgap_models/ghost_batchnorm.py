"""Ghost batch normalisation (Hoffer, Hubara & Soudry 2017) as a layer.

A training batch of ``N`` samples is split into ghost batches of
``ghost_size`` samples (``G = N / ghost_size`` of them); every ghost batch is normalised with its own mean and
(biased) variance, exactly as if it had gone through an ordinary BatchNorm
layer on its own. Hoffer's code (``main_gbn.py``) obtains this by chunking the
batch in the training loop; here the layer does it in one call: the ghost
batches are folded into the channel dimension (``[G·g, C, …] → [g, G·C, …]``)
so that a single native :func:`torch.nn.functional.batch_norm` computes the
statistics of every ghost batch, with no Python loop over chunks.

Which samples form a ghost batch (``ghost_layout``)
    ``contiguous`` (default; Hoffer's ``input.chunk``): ghost ``l`` is rows
    ``[l·g, (l+1)·g)``. Folding needs one copy of the activations in and one
    out (and the same in the backward pass).
    ``strided``: ghost ``l`` is rows ``l, l+G, l+2G, …``. The folded view is then
    free (no copies). Training step of a 784 → 3×512 MLP, batch 2048, ghost 64,
    one CPU thread, relative to plain BatchNorm: contiguous 1.14–1.18×, strided
    1.05–1.09×, Hoffer's chunk loop 1.39–1.50× (``lbgap_models.bench_gbn``). For a
    shuffled batch the two are the same random partition in distribution; they
    differ only for batches in a meaningful order.

Batches that are not a multiple of ``ghost_size``
    The leading ``N // ghost_size`` ghost batches (taken from the first
    ``ghost_size·(N // ghost_size)`` rows) have ``ghost_size`` samples and the
    last ghost batch holds the remaining ``N mod ghost_size`` rows;
    it is normalised with its own statistics (one more native call). A batch
    of at most ``ghost_size`` samples is one ghost batch, i.e. plain BatchNorm.
    A last ghost batch with a single value per channel cannot be normalised
    and raises :class:`ValueError`, as plain BatchNorm does in training.

Running statistics (``momentum_policy``)
    ``per_ghost``
        Hoffer's code: the exponential moving average is updated once per
        ghost batch, in batch order, with the momentum η unchanged. After the
        ``G`` ghost batches of one call,
        ``r ← (1−η)^G r + Σ_l η (1−η)^{G−l} s_l`` — computed here in this closed
        form, vectorised over ghosts.
    ``scaled``
        composer's ``GhostBatchNorm``: the same sequential updates with the
        momentum divided by the number of ghost batches, η/G.
    ``mean``
        One update per call with the mean over ghost batches of their
        statistics: ``r ← (1−η) r + η mean_l s_l`` (unweighted: a partial last
        ghost batch counts as one).

    As in PyTorch, the running variance is the unbiased one (each ghost
    batch's variance times ``n/(n−1)``, ``n`` the values per channel in that
    ghost batch). ``num_batches_tracked`` counts EMA updates (``G`` per call
    for ``per_ghost`` and ``scaled``, 1 for ``mean``).

Evaluation
    In eval mode the layer is a standard BatchNorm: running statistics, or,
    under ``lbgap.nn.bn_eval_mode(model, "batch")`` (Keras mode=2), the
    statistics of the whole evaluation batch (not of ghost batches).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .configs import GhostLayout, MomentumPolicy

__all__ = [
    "GhostBatchNorm",
    "GhostBatchNorm1d",
    "GhostBatchNorm2d",
    "MOMENTUM_POLICIES",
    "MomentumPolicy",
    "GhostLayout",
]

MOMENTUM_POLICIES: tuple[str, ...] = ("per_ghost", "scaled", "mean")


class GhostBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of ghost batches.

    Parameters
    ----------
    num_features:
        Number of channels ``C``.
    ghost_size:
        Samples per ghost batch (Hoffer's ``--mini-batch-size``).
    momentum_policy:
        How the running statistics are updated: ``"per_ghost"``, ``"scaled"``
        or ``"mean"`` (see the module documentation).
    ghost_layout:
        ``"contiguous"`` (Hoffer's chunks) or ``"strided"`` (no copies).
    eps, momentum, affine, track_running_stats, device, dtype:
        As for :class:`torch.nn.BatchNorm1d`; ``momentum`` must be a number
        (the cumulative-average mode ``momentum=None`` is not supported).
    """

    def __init__(
        self,
        num_features: int,
        ghost_size: int = 128,
        momentum_policy: MomentumPolicy = "per_ghost",
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        ghost_layout: GhostLayout = "contiguous",
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        if momentum is None or not 0.0 < momentum <= 1.0:
            raise ValueError(f"GhostBatchNorm needs a momentum in (0, 1], not {momentum!r}")
        if ghost_size < 1:
            raise ValueError(f"ghost_size must be ≥ 1, not {ghost_size}")
        if ghost_layout not in ("contiguous", "strided"):
            raise ValueError(f"ghost_layout must be 'contiguous' or 'strided', not {ghost_layout!r}")
        if momentum_policy not in MOMENTUM_POLICIES:
            raise ValueError(f"momentum_policy must be one of {MOMENTUM_POLICIES}, not {momentum_policy!r}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.ghost_size = int(ghost_size)
        self.momentum_policy = momentum_policy
        self.ghost_layout = ghost_layout

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, ghost_size={self.ghost_size}, "
            f"momentum_policy={self.momentum_policy}, ghost_layout={self.ghost_layout}"
        )

    # ----------------------------------------------------------------- forward

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        n = input.shape[0]
        if not self.training or n <= self.ghost_size:
            # evaluation, or a single ghost batch: ordinary BatchNorm semantics
            return super().forward(input)
        g = self.ghost_size
        n_full, rem = divmod(n, g)
        if rem:
            values_per_channel = rem * input[0, 0].numel()
            if values_per_channel < 2:
                raise ValueError(
                    f"GhostBatchNorm: a batch of {n} with ghost_size={g} leaves a last ghost batch of "
                    f"{rem} sample(s), i.e. 1 value per channel, which cannot be normalised; "
                    "use a batch size that is a multiple of ghost_size (or drop the last batch)"
                )
        track = self.track_running_stats and self.running_mean is not None and self.running_var is not None
        outputs, means, variances = [], [], []
        full = input if not rem else input[: n_full * g]
        y, m, v = self._normalise_ghosts(full, n_full, track)
        outputs.append(y)
        means.append(m)
        variances.append(v)
        if rem:
            y, m, v = self._normalise_ghosts(input[n_full * g :], 1, track)
            outputs.append(y)
            means.append(m)
            variances.append(v)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)
        if track:
            self._update_running_stats(torch.cat(means, 0), torch.cat(variances, 0))
        return out

    def _normalise_ghosts(
        self, x: torch.Tensor, num_ghosts: int, track: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Normalise ``x`` (``num_ghosts`` equal ghost batches) in one native call.

        Returns the output and, if ``track``, each ghost batch's mean and
        unbiased variance as ``[num_ghosts, C]`` tensors.
        """
        G, C = num_ghosts, self.num_features
        shape = x.shape
        g = shape[0] // G
        rest = tuple(shape[2:])
        strided = self.ghost_layout == "strided"
        if G == 1:
            folded = x
        elif strided:  # rows are (j, l) with ghost l = row mod G: [g, G·C] is a view
            folded = x.reshape(g, G * C, *rest)
        else:
            folded = x.reshape(G, g, C, *rest).transpose(0, 1).reshape(g, G * C, *rest)
        weight, bias = self.weight, self.bias
        if G > 1 and weight is not None:
            weight, bias = weight.repeat(G), bias.repeat(G)
        if track:
            # with momentum 1 the native kernel writes each folded channel's batch
            # mean and unbiased variance into these buffers: (1-1)·r + 1·s = s
            stats_dtype = self.running_mean.dtype
            mean = torch.zeros(G * C, dtype=stats_dtype, device=x.device)
            var = torch.zeros(G * C, dtype=stats_dtype, device=x.device)
        else:
            mean = var = None
        y = F.batch_norm(folded, mean, var, weight, bias, True, 1.0, self.eps)
        if G > 1:
            y = y.reshape(shape) if strided else y.reshape(g, G, C, *rest).transpose(0, 1).reshape(shape)
        if track:
            return y, mean.view(G, C), var.view(G, C)
        return y, None, None

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Apply the momentum policy to the ghost statistics ``[G, C]``."""
        _ema_update(
            self.running_mean, self.running_var, self.num_batches_tracked, means, variances,
            self.momentum_policy, float(self.momentum),
        )

    # ------------------------------------------------------------ vectorized trials

    @classmethod
    def stack_members(cls, members: list[GhostBatchNorm]):
        """The forward pass of K members' layers over ``[B, K, C]`` inputs (vectorized trials):
        one native call normalises every ghost batch of every member, and each member's running
        statistics get the same update as its own layer's, bitwise."""
        layer = members[0]
        if not (layer.affine and layer.track_running_stats):
            return None

        def forward(t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return _stacked_ghost_forward(layer, t, x)

        return forward


@torch.no_grad()
def _ema_update(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    num_batches_tracked: torch.Tensor,
    means: torch.Tensor,
    variances: torch.Tensor,
    policy: str,
    eta: float,
) -> None:
    """The running-statistics update of one layer from its ghost statistics ``[G, C]``."""
    G = means.shape[0]
    if policy == "mean":
        running_mean.mul_(1.0 - eta).add_(means.mean(0), alpha=eta)
        running_var.mul_(1.0 - eta).add_(variances.mean(0), alpha=eta)
        num_batches_tracked.add_(1)
        return
    step = eta if policy == "per_ghost" else eta / G
    decay = 1.0 - step
    # weight of ghost l (1-based) after G sequential updates: step·decay^(G−l)
    exponents = torch.arange(G - 1, -1, -1, dtype=torch.float64)
    weights = (step * decay**exponents).to(device=means.device, dtype=means.dtype)
    keep = decay**G
    running_mean.mul_(keep).add_(weights @ means)
    running_var.mul_(keep).add_(weights @ variances)
    num_batches_tracked.add_(G)


def _stacked_ghost_forward(layer: GhostBatchNorm, t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """:meth:`GhostBatchNorm.forward` for K members at once; ``x`` is ``[B, K, C]``."""
    if x.dim() != 3:
        raise ValueError(f"stacked GhostBatchNorm expects [B, K, C] inputs, got {tuple(x.shape)}")
    n, K, C = x.shape
    g = layer.ghost_size
    if not layer.training or n <= g:
        y = F.batch_norm(
            x.reshape(n, K * C), t["running_mean"].view(-1), t["running_var"].view(-1), t["weight"].reshape(-1),
            t["bias"].reshape(-1), layer.training, layer.momentum, layer.eps,
        )
        if layer.training:
            t["num_batches_tracked"].add_(1)
        return y.view(n, K, C)
    n_full, rem = divmod(n, g)
    ys, means, variances = [], [], []
    parts = [(x[: n_full * g], n_full)] + ([(x[n_full * g :], 1)] if rem else [])
    for part, ghosts in parts:
        y, m, v = _stacked_ghosts(layer, t, part, ghosts)
        ys.append(y)
        means.append(m)
        variances.append(v)
    out = ys[0] if len(ys) == 1 else torch.cat(ys, dim=0)
    m, v = torch.cat(means, 0), torch.cat(variances, 0)
    for k in range(K):
        _ema_update(
            t["running_mean"][k], t["running_var"][k], t["num_batches_tracked"][k],
            m[:, k].contiguous(), v[:, k].contiguous(), layer.momentum_policy, float(layer.momentum),
        )
    return out


def _stacked_ghosts(layer: GhostBatchNorm, t: dict[str, torch.Tensor], x: torch.Tensor, G: int):
    """Normalise ``x`` (``[G·g, K, C]``, G equal ghost batches per member) in one native call;
    returns the output and every ghost batch's mean and unbiased variance, ``[G, K, C]``."""
    n, K, C = x.shape
    g = n // G
    strided = layer.ghost_layout == "strided" or G == 1
    if strided:  # rows (j, l), ghost l = row mod G: channels (l, k, c) are a view
        folded = x.reshape(g, G * K * C)
    else:
        folded = x.reshape(G, g, K, C).transpose(0, 1).reshape(g, G * K * C)
    weight = t["weight"].unsqueeze(0).expand(G, K, C).reshape(-1)
    bias = t["bias"].unsqueeze(0).expand(G, K, C).reshape(-1)
    dtype = t["running_mean"].dtype
    mean = torch.zeros(G * K * C, dtype=dtype, device=x.device)
    var = torch.zeros(G * K * C, dtype=dtype, device=x.device)
    y = F.batch_norm(folded, mean, var, weight, bias, True, 1.0, layer.eps)
    y = y.reshape(n, K, C) if strided else y.reshape(g, G, K, C).transpose(0, 1).reshape(n, K, C)
    return y, mean.view(G, K, C), var.view(G, K, C)


class GhostBatchNorm1d(GhostBatchNorm):
    """Ghost batch norm over ``[N, C]`` or ``[N, C, L]`` inputs."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")


class GhostBatchNorm2d(GhostBatchNorm):
    """Ghost batch norm over ``[N, C, H, W]`` inputs."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected 4D input (got {input.dim()}D input)")
