"""Leaving a model exactly as it was found.

The metric contract (:mod:`lbgap.metric`) says a measurement leaves
parameters, buffers, gradients, ``requires_grad`` flags, train/eval flags and
the global random number generators as it found them. The algorithms of this
package evaluate the model through :func:`torch.func.functional_call` and draw
random numbers from local generators, so they never write into any of these;
:func:`preserved_state` is the safety net around every metric: it snapshots
all of it and writes back bit-exact copies on exit, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ModelSnapshot", "preserved_state", "rng_snapshot", "restore_rng"]


def rng_snapshot() -> dict[str, Any]:
    """States of the global generators: torch (CPU and initialised CUDA devices), NumPy, ``random``."""
    snap: dict[str, Any] = {
        "torch": torch.random.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        snap["cuda"] = torch.cuda.get_rng_state_all()
    return snap


def restore_rng(snap: dict[str, Any]) -> None:
    """Restore what :func:`rng_snapshot` recorded."""
    torch.random.set_rng_state(snap["torch"])
    np.random.set_state(snap["numpy"])
    random.setstate(snap["python"])
    if "cuda" in snap:
        torch.cuda.set_rng_state_all(snap["cuda"])


@dataclass
class ModelSnapshot:
    """Copies of everything a measurement must not change."""

    params: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    requires_grad: dict[str, bool]
    buffers: dict[str, torch.Tensor | None]
    training: dict[str, bool]
    bn_attrs: dict[str, tuple]

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        params = dict(model.named_parameters())
        bn_attrs = {
            name: (m.track_running_stats, m.running_mean, m.running_var, m.eps, m.momentum)
            for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        }
        return cls(
            params={n: p.detach().clone() for n, p in params.items()},
            grads={n: p.grad for n, p in params.items()},
            requires_grad={n: p.requires_grad for n, p in params.items()},
            buffers={n: (None if b is None else b.detach().clone()) for n, b in model.named_buffers()},
            training={n: m.training for n, m in model.named_modules()},
            bn_attrs=bn_attrs,
        )

    def restore(self, model: nn.Module) -> None:
        """Write the recorded values back (in place, so optimizer references stay valid)."""
        modules = dict(model.named_modules())
        for name, (track, rm, rv, eps, momentum) in self.bn_attrs.items():
            m = modules[name]
            m.track_running_stats, m.running_mean, m.running_var = track, rm, rv
            m.eps, m.momentum = eps, momentum
        with torch.no_grad():
            for n, p in model.named_parameters():
                if not torch.equal(p, self.params[n]) or p.dtype != self.params[n].dtype:
                    p.copy_(self.params[n])
                p.requires_grad_(self.requires_grad[n])
                p.grad = self.grads[n]
            for n, b in model.named_buffers():
                saved = self.buffers.get(n)
                if saved is not None and b is not None and not torch.equal(b, saved):
                    b.copy_(saved)
        for n, m in model.named_modules():
            if n in self.training:
                m.training = self.training[n]

    def differences(self, model: nn.Module) -> list[str]:
        """Names of everything that differs from the snapshot (empty when identical, bit for bit)."""
        out = []
        params = dict(model.named_parameters())
        for n, p in params.items():
            if p.dtype != self.params[n].dtype or not torch.equal(p.detach(), self.params[n]):
                out.append(f"parameter {n}")
            if p.requires_grad != self.requires_grad[n]:
                out.append(f"requires_grad {n}")
            if p.grad is not self.grads[n]:
                out.append(f"grad {n}")
        buffers = dict(model.named_buffers())
        if set(buffers) != set(self.buffers):
            out.append("buffer set")
        for n, b in buffers.items():
            saved = self.buffers.get(n)
            if (saved is None) != (b is None) or (b is not None and not torch.equal(b, saved)):
                out.append(f"buffer {n}")
        for n, m in model.named_modules():
            if self.training.get(n) != m.training:
                out.append(f"training flag {n or '<root>'}")
        return out


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[ModelSnapshot]:
    """Snapshot ``model`` and the global RNGs; restore both on exit."""
    snap = ModelSnapshot.take(model)
    rng = rng_snapshot()
    try:
        yield snap
    finally:
        snap.restore(model)
        restore_rng(rng)
