"""The full-data loss as a function of the parameters.

``f(θ) = Σ_b (n_b / N) · loss_fn(model_θ(x_b), y_b)``: the mean loss over a
data set evaluated in batches, each batch weighted by its size, so an uneven
last batch is counted exactly. This is the objective every curvature metric
differentiates (Keskar et al.'s "training function", eq. 1).

:class:`EvalBatches` holds the (optionally subsampled, transformed) batches;
:class:`ModelObjective` evaluates the loss, its gradient and the accuracy at
any parameter vector through :func:`torch.func.functional_call`, with
BatchNorm and dropout set by :func:`lbgap.nn.bn_eval_mode` — the model's own
parameters and buffers are never written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.func import functional_call

from lbgap.api import InMemoryData, bn_eval_mode

from .flat import ParamLayout

__all__ = ["EvalBatches", "select_split", "ModelObjective", "LossFn"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EvalBatches:
    """A data set cut into batches, with each batch's weight ``n_b / N``."""

    xs: list[torch.Tensor]
    ys: list[torch.Tensor]

    @property
    def n(self) -> int:
        return sum(len(y) for y in self.ys)

    @property
    def weights(self) -> list[float]:
        n = self.n
        return [len(y) / n for y in self.ys]

    def __len__(self) -> int:
        return len(self.xs)

    def __iter__(self):
        return iter(zip(self.xs, self.ys, self.weights, strict=True))

    @classmethod
    def from_tensors(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        transform: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> EvalBatches:
        """Cut ``(x, y)`` into consecutive batches of ``batch_size`` (the last may be smaller).

        ``transform(x, generator)`` (a data set's ``eval_transform``) is applied to
        every batch once, here.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if len(x) == 0:
            raise ValueError("no samples to evaluate")
        xs, ys = [], []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            if transform is not None:
                if generator is None:
                    generator = torch.Generator(device=xb.device).manual_seed(0)
                xb = transform(xb, generator)
            xs.append(xb)
            ys.append(yb)
        return cls(xs, ys)

    def to(self, dtype: torch.dtype | None = None) -> EvalBatches:
        """A copy with floating inputs (and floating targets) cast to ``dtype``."""
        if dtype is None:
            return self
        cast = [x.to(dtype) if x.is_floating_point() else x for x in self.xs]
        ys = [y.to(dtype) if y.is_floating_point() else y for y in self.ys]
        return EvalBatches(cast, ys)


def select_split(
    data: InMemoryData,
    split: str,
    *,
    max_samples: Optional[int],
    batch_size: int,
    generator: torch.Generator,
) -> EvalBatches:
    """The batches of ``data``'s ``split`` (``"train"`` or ``"test"``).

    With ``max_samples`` set and smaller than the split, a subset of that size
    is drawn without replacement from ``generator`` (kept in data order). The
    split's ``eval_transform`` is applied.
    """
    if split == "train":
        x, y = data.train_x, data.train_y
    elif split == "test":
        x, y = data.test_x, data.test_y
    else:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if max_samples is not None and max_samples < len(y):
        idx = torch.randperm(len(y), generator=generator)[:max_samples].sort().values
        idx = idx.to(x.device)
        x, y = x[idx], y[idx]
    device_gen = torch.Generator(device=x.device)
    device_gen.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    return EvalBatches.from_tensors(x, y, batch_size, data.eval_transform, device_gen)


class ModelObjective:
    """Full-data loss, gradient and accuracy of ``model`` as functions of a flat parameter vector.

    Parameters
    ----------
    model:
        The network. Only read: evaluation goes through ``functional_call``.
    batches:
        The data (:class:`EvalBatches`).
    loss_fn:
        ``loss_fn(outputs, targets) -> mean loss`` of one batch.
    bn_mode:
        ``"running"`` or ``"batch"`` (see :func:`lbgap.nn.bn_eval_mode`);
        dropout is off in both.
    layout:
        Which parameters are variables (default: all trainable ones).
    """

    def __init__(
        self,
        model: nn.Module,
        batches: EvalBatches,
        loss_fn: LossFn,
        *,
        bn_mode: str = "running",
        layout: Optional[ParamLayout] = None,
    ) -> None:
        self.model = model
        self.batches = batches
        self.loss_fn = loss_fn
        self.bn_mode = bn_mode
        self.layout = layout or ParamLayout.from_model(model)
        self.x0 = self.layout.current(model)
        self.n_forward = 0  # batch forward passes
        self.n_backward = 0  # batch gradient computations

    # ---------------------------------------------------------------- helpers
    @property
    def size(self) -> int:
        return self.layout.size

    def outputs(
        self,
        flat: torch.Tensor,
        x: torch.Tensor,
        extra: Optional[Mapping[str, torch.Tensor]] = None,
    ) -> torch.Tensor:
        """``model(x)`` with the parameters of ``flat`` (and tensors of ``extra``).

        Call inside :meth:`mode` so BatchNorm and dropout are set.
        """
        tensors = self.layout.unflatten(flat)
        if extra:
            tensors = {**extra, **tensors}
        self.n_forward += 1
        return functional_call(self.model, tensors, (x,))

    def mode(self):
        """Context manager putting the model in the measurement mode."""
        return bn_eval_mode(self.model, self.bn_mode)

    # ------------------------------------------------------------- evaluations
    def loss(self, flat: Optional[torch.Tensor] = None) -> float:
        """``f(flat)`` (``flat`` defaults to the model's parameters), accumulated in float64."""
        flat = self.x0 if flat is None else flat
        total = torch.zeros((), dtype=torch.float64, device=flat.device)
        with torch.no_grad(), self.mode():
            for x, y, w in self.batches:
                total += w * self.loss_fn(self.outputs(flat, x), y).double()
        return float(total)

    def loss_and_grad(self, flat: Optional[torch.Tensor] = None) -> tuple[float, torch.Tensor]:
        """``(f(flat), ∇f(flat))``; the gradient has the parameters' dtype."""
        flat = (self.x0 if flat is None else flat).detach().requires_grad_(True)
        total = torch.zeros((), dtype=torch.float64, device=flat.device)
        grad = torch.zeros_like(flat)
        with self.mode():
            for x, y, w in self.batches:
                loss = self.loss_fn(self.outputs(flat, x), y)
                (g,) = torch.autograd.grad(loss * w, flat)
                self.n_backward += 1
                grad += g
                total += w * loss.detach().double()
        return float(total), grad

    def batch_grads(self, flat: Optional[torch.Tensor] = None):
        """Yield ``(loss_b, ∇loss_b, n_b)`` for every batch: unweighted per-batch gradients."""
        flat = (self.x0 if flat is None else flat).detach().requires_grad_(True)
        with self.mode():
            for x, y, _ in self.batches:
                loss = self.loss_fn(self.outputs(flat, x), y)
                (g,) = torch.autograd.grad(loss, flat)
                self.n_backward += 1
                yield float(loss.detach()), g, len(y)

    def loss_and_accuracy(
        self,
        flat: Optional[torch.Tensor] = None,
        extra: Optional[Mapping[str, torch.Tensor]] = None,
    ) -> tuple[float, float]:
        """Mean loss and accuracy (NaN for non-integer targets) at ``flat``."""
        flat = self.x0 if flat is None else flat
        loss = torch.zeros((), dtype=torch.float64, device=flat.device)
        correct = torch.zeros((), dtype=torch.float64, device=flat.device)
        classify = not self.batches.ys[0].is_floating_point()
        with torch.no_grad(), self.mode():
            for x, y, w in self.batches:
                out = self.outputs(flat, x, extra)
                loss += w * self.loss_fn(out, y).double()
                if classify:
                    correct += (out.argmax(dim=-1) == y).sum().double()
        acc = float(correct) / self.batches.n if classify else float("nan")
        return float(loss), acc
