"""Hessian-vector products of the full-data loss.

``H v = Σ_b (n_b/N) ∇²loss_b(θ) v`` at a fixed point θ, in one of two modes:

``"autograd"``
    Double backward: ``g = ∇f`` with ``create_graph=True``, then
    ``Hv = ∂(gᵀv)/∂θ``. With ``reuse_graph=True`` the graph of ``g`` over all
    batches is built once and every product is one extra backward pass over
    it (memory: the activations of the whole evaluated data set, kept until
    the operator is dropped). With ``reuse_graph=False`` each product
    recomputes forward and gradient batch by batch (memory: one batch).
``"func"``
    ``torch.func`` forward-over-reverse, ``jvp(grad(f))``, batch by batch.
    Losses without forward-mode derivatives (``F.mse_loss`` with mean
    reduction in torch 2.14, ``huber_loss``) fall back to ``vjp(grad(f))``
    with a warning.

The default mode is the one measured fastest on the reference workloads (see
``docs/performance.md``, "Seconds per Hessian-vector product").
"""

from __future__ import annotations

import logging
from typing import Optional

import torch
from torch.func import functional_call, jvp, vjp
from torch.func import grad as func_grad

from .configs import DEFAULT_HVP_MODE, HVPMode
from .loss import ModelObjective

__all__ = ["HessianOperator", "HVPMode", "DEFAULT_HVP_MODE"]

log = logging.getLogger(__name__)


class HessianOperator:
    """The Hessian of a :class:`ModelObjective` at a point, as a matrix-free operator.

    Parameters
    ----------
    objective:
        The full-data loss.
    point:
        Where to take the Hessian (default: the model's parameters).
    mode:
        ``"autograd"`` or ``"func"`` (see the module docstring).
    reuse_graph:
        Autograd mode only: build the gradient graph once and reuse it.

    Attributes
    ----------
    n_matvec:
        Number of Hessian-vector products computed so far.
    """

    def __init__(
        self,
        objective: ModelObjective,
        point: Optional[torch.Tensor] = None,
        *,
        mode: HVPMode = DEFAULT_HVP_MODE,
        reuse_graph: bool = True,
    ) -> None:
        if mode not in ("autograd", "func"):
            raise ValueError(f"HVP mode must be 'autograd' or 'func', not {mode!r}")
        self.objective = objective
        self.point = (objective.x0 if point is None else point).detach()
        self.mode = mode
        self.reuse_graph = reuse_graph
        self.n_matvec = 0
        #: func mode: forward-mode AD failed for this loss and vjp-of-grad is used
        self.func_reverse_fallback = False
        self._leaf: Optional[torch.Tensor] = None
        self._grad: Optional[torch.Tensor] = None

    @property
    def size(self) -> int:
        return self.objective.size

    @property
    def dtype(self) -> torch.dtype:
        return self.point.dtype

    @property
    def device(self) -> torch.device:
        return self.point.device

    def release(self) -> None:
        """Free a cached gradient graph."""
        self._leaf = self._grad = None

    # ------------------------------------------------------------------ modes
    def _cached_gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._grad is None:
            obj = self.objective
            leaf = self.point.clone().requires_grad_(True)
            total = None
            with obj.mode():
                for x, y, w in obj.batches:
                    loss = obj.loss_fn(obj.outputs(leaf, x), y) * w
                    (g,) = torch.autograd.grad(loss, leaf, create_graph=True)
                    obj.n_backward += 1
                    total = g if total is None else total + g
            self._leaf, self._grad = leaf, total
        return self._leaf, self._grad

    def _matvec_autograd(self, v: torch.Tensor) -> torch.Tensor:
        if self.reuse_graph:
            leaf, g = self._cached_gradient()
            (hv,) = torch.autograd.grad(g, leaf, v, retain_graph=True)
            return hv
        obj = self.objective
        out = torch.zeros_like(v)
        with obj.mode():
            for x, y, w in obj.batches:
                leaf = self.point.clone().requires_grad_(True)
                loss = obj.loss_fn(obj.outputs(leaf, x), y)
                (g,) = torch.autograd.grad(loss, leaf, create_graph=True)
                (hv,) = torch.autograd.grad(g, leaf, v)
                obj.n_backward += 1
                out += w * hv
        return out

    def _matvec_func(self, v: torch.Tensor) -> torch.Tensor:
        # per-parameter tensors rather than views of one flat vector: forward-mode
        # AD through ``split`` views of the point trips over zero tangents
        obj = self.objective
        layout = obj.layout
        names = layout.names
        point = tuple(t.clone() for t in layout.unflatten(self.point).values())
        tangent = tuple(t.clone() for t in layout.unflatten(v).values())
        out = torch.zeros_like(v)
        with obj.mode():
            for x, y, w in obj.batches:

                def batch_loss(params: tuple[torch.Tensor, ...], x=x, y=y) -> torch.Tensor:
                    obj.n_forward += 1
                    outputs = functional_call(obj.model, dict(zip(names, params, strict=True)), (x,))
                    return obj.loss_fn(outputs, y)

                hv = self._func_product(batch_loss, point, tangent)
                obj.n_backward += 1
                out += w * torch.cat([t.reshape(-1) for t in hv])
        return out

    def _func_product(self, f, point, tangent):
        if not self.func_reverse_fallback:
            try:
                return jvp(func_grad(f), (point,), (tangent,))[1]
            except RuntimeError as err:
                # some losses lack forward-mode derivatives (F.mse_loss with mean
                # reduction in torch 2.14, huber_loss): reverse-over-reverse instead
                log.warning("torch.func forward-over-reverse failed (%s); using reverse-over-reverse", err)
                self.func_reverse_fallback = True
        _, pullback = vjp(func_grad(f), point)
        return pullback(tangent)[0]

    # ------------------------------------------------------------------- API
    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a vector ``v`` of the operator's size (any float dtype; result in the model's)."""
        v = v.to(device=self.device, dtype=self.dtype).detach()
        if v.shape != (self.size,):
            raise ValueError(f"expected a vector of size {self.size}, got {tuple(v.shape)}")
        self.n_matvec += 1
        if self.mode == "autograd":
            return self._matvec_autograd(v).detach()
        return self._matvec_func(v).detach()

    __call__ = matvec

    def dense(self) -> torch.Tensor:
        """The full Hessian by ``size`` products (for small models and tests)."""
        eye = torch.eye(self.size, dtype=self.dtype, device=self.device)
        cols = [self.matvec(eye[i]) for i in range(self.size)]
        return torch.stack(cols, dim=1)
