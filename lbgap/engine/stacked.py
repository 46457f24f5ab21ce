"""K networks of one architecture as one stacked network.

:class:`StackedModel` takes K member modules built separately (each with its
own seed) and trains them as one: every parameter and buffer of the members is
copied into one tensor with a leading member dimension, and the members'
tensors become views of it, so each member module, its optimizer, its
metrics and its saved weights keep working on its own numbers while the
forward and backward passes run once for all members (batched matrix
products, one native batch-norm call over K×C channels).

A layer is stackable when a rule for its type exists: the built-in rules cover
``Flatten``, ``Linear``, ``BatchNorm1d``, ``ReLU``, ``Tanh``, ``Identity``,
``Dropout`` with ``p = 0`` and an inactive :class:`lbgap.nn.NoiseSite`; a plugin's
layer class declares its own with a ``stack_members(members)`` class method
returning ``f(tensors, x)``, where ``tensors`` maps the layer's parameter and
buffer names to the stacked ``[K, ...]`` tensors and ``x`` is ``[B, K, ...]``
(batch-major: row ``b`` of every member side by side, so that a batch norm over
``[B, K·C]`` channels is a view).
A network that holds any other layer is not stacked (:class:`NotStackable`) and
its trials train one at a time.

On a CPU the stacked products run the same BLAS kernels on each member's
matrices as the single trial does, so each member's numbers equal its
sequential trial's bitwise in the settings tests/core/test_vectorized.py
checks; a reduction over the stacked batch axis (a batch-norm bias gradient
over 64 rows, as with 8 ghost batches of 8) can sum in another order and
differ by about 1e-9 (tests/lbgap_models/test_models_ghost_batch_growth.py).
On a GPU batched kernels may sum in another order (within float32 rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import NoiseSite

__all__ = ["StackedModel", "NotStackable", "StackedForward"]

StackedForward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class NotStackable(Exception):
    """The members' architecture holds a layer with no stacking rule."""


class StackedModel:
    """The members' forward pass over ``[B, K, ...]`` inputs."""

    def __init__(self, members: list[nn.Module]) -> None:
        self.members = members
        self.layers: list[tuple[StackedForward, dict[str, torch.Tensor]]] = []
        self.leaves: dict[str, torch.Tensor] = {}
        #: (member index, member parameter, its stacked leaf)
        self._pairs: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self._build()

    # ------------------------------------------------------------- building

    def _build(self) -> None:
        first = self.members[0]
        names = [n for n, _ in first.named_modules()]
        for other in self.members[1:]:
            if [n for n, _ in other.named_modules()] != names:
                raise NotStackable("the members' module trees differ")
        leaf_modules = [m for m in first.modules() if not list(m.children())]
        by_name = [dict(m.named_modules()) for m in self.members]
        for name, module in first.named_modules():
            if list(module.children()):
                if type(module) not in (nn.Sequential,):
                    raise NotStackable(f"{type(module).__name__} is not a sequence of layers")
                continue
            group = [d[name] for d in by_name]
            forward = _rule(group)
            self.layers.append((forward, self._stack_tensors(name, group)))
        if not leaf_modules:
            raise NotStackable("no layers")

    def _stack_tensors(self, prefix: str, group: list[nn.Module]) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {}
        for name, _ in group[0].named_parameters(recurse=False):
            stacked = torch.stack([getattr(m, name).detach() for m in group]).requires_grad_()
            for k, m in enumerate(group):
                getattr(m, name).data = stacked.data[k]
                self._pairs.append((k, getattr(m, name), stacked))
            tensors[name] = stacked
            self.leaves[f"{prefix}.{name}"] = stacked
        for name, buf in group[0].named_buffers(recurse=False):
            if buf is None:
                continue
            stacked = torch.stack([getattr(m, name) for m in group])
            for k, m in enumerate(group):
                getattr(m, name).data = stacked[k]
            tensors[name] = stacked
        return tensors

    # ------------------------------------------------------------- training

    def train(self) -> None:
        for m in self.members:
            m.train()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for forward, tensors in self.layers:
            x = forward(tensors, x)
        return x

    def member_grads(self) -> None:
        """Point each member parameter's ``.grad`` at its slice of the stacked gradient."""
        for k, p, leaf in self._pairs:
            p.grad = leaf.grad[k] if leaf.grad is not None else None

    def zero_grad(self) -> None:
        for leaf in self.leaves.values():
            leaf.grad = None


# ------------------------------------------------------------------ the rules


def _rule(group: list[nn.Module]) -> StackedForward:
    module = group[0]
    custom = getattr(type(module), "stack_members", None)
    if custom is not None:
        return custom(group)
    for cls, rule in _BUILTIN_RULES.items():
        if type(module) is cls:
            forward = rule(group)
            if forward is not None:
                return forward
            break
    raise NotStackable(f"no stacking rule for {type(module).__name__} ({module!r})")


def _linear(group: list[nn.Module]) -> StackedForward:
    def forward(t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        weight, bias = t["weight"], t.get("bias")
        if x.device.type == "cpu":  # one BLAS call per member (strided rows, no copy) beats bmm here
            biases = bias.unbind(0) if bias is not None else [None] * weight.shape[0]
            outs = [F.linear(*a) for a in zip(x.unbind(1), weight.unbind(0), biases, strict=True)]
            return torch.stack(outs, dim=1)
        xk = x.transpose(0, 1)
        y = torch.baddbmm(bias.unsqueeze(1), xk, weight.transpose(1, 2)) if bias is not None else xk @ weight.transpose(1, 2)
        return y.transpose(0, 1)

    return forward


def _batchnorm(group: list[nn.Module]) -> Optional[StackedForward]:
    bn = group[0]
    if bn.momentum is None or not bn.affine or not bn.track_running_stats:
        return None

    def forward(t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        B, K, C = x.shape
        if not bn.training:
            raise NotStackable("a stacked BatchNorm trains only")
        folded = x.reshape(B, K * C)
        y = F.batch_norm(
            folded, t["running_mean"].view(-1), t["running_var"].view(-1), t["weight"].reshape(-1),
            t["bias"].reshape(-1), True, bn.momentum, bn.eps,
        )
        t["num_batches_tracked"].add_(1)
        return y.view(B, K, C)

    return forward


def _dropout(group: list[nn.Module]) -> Optional[StackedForward]:
    # a dropout mask draws from the global generator, which members cannot share
    return (lambda t, x: x) if group[0].p == 0 else None


def _noise_site(group: list[nn.Module]) -> StackedForward:
    def forward(t: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if all(site.noise_fn is None for site in group):
            return x
        return torch.stack([site(x[:, k]) for k, site in enumerate(group)], dim=1)

    return forward


_BUILTIN_RULES: dict[type, Callable[[list[nn.Module]], Optional[StackedForward]]] = {
    nn.Linear: _linear,
    nn.BatchNorm1d: _batchnorm,
    nn.ReLU: lambda g: (lambda t, x: F.relu(x)),
    nn.Tanh: lambda g: (lambda t, x: torch.tanh(x)),
    nn.Identity: lambda g: (lambda t, x: x),
    nn.Flatten: lambda g: (lambda t, x: x.flatten(2)) if g[0].start_dim == 1 and g[0].end_dim == -1 else None,
    nn.Dropout: _dropout,
    NoiseSite: _noise_site,
}
