"""Single Hessian-vector products and Keskar sharpness, timed by the round-robin protocol."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.loss import EvalBatches, ModelObjective

from .protocol import Timed, round_robin
from .solvers import _curvlinops_operator, _pyhessian_module
from .workloads import Workload


def _lbgap_products(w: Workload, v: torch.Tensor) -> tuple[dict[str, Callable[[], object]], list]:
    calls, ops = {}, []
    for label, mode, reuse in (
        ("lbgap autograd, graph reused (default)", "autograd", True),
        ("lbgap autograd, graph rebuilt per product", "autograd", False),
        ("lbgap func (forward-over-reverse)", "func", True),
    ):
        obj = ModelObjective(w.model, EvalBatches([w.x], [w.y]), F.cross_entropy)
        op = HessianOperator(obj, mode=mode, reuse_graph=reuse)
        calls[label] = lambda op=op: op.matvec(v)
        ops.append(op)
    return calls, ops


def _pyhessian_product(w: Workload, v: torch.Tensor) -> Callable[[], object]:
    ph = _pyhessian_module()
    h = ph.hessian(w.model, nn.CrossEntropyLoss(), data=(w.x, w.y), cuda=False)
    vs = [
        t.reshape(p.shape)
        for t, p in zip(torch.split(v, [p.numel() for p in h.params]), h.params, strict=True)
    ]
    return lambda: ph.hessian_vector_product(h.gradsH, h.params, vs)


def hvp_times(w: Workload, repeats: int, warmup: int) -> dict[str, Timed]:
    """Seconds per Hessian-vector product of each implementation (operators built beforehand)."""
    v = torch.randn(w.n_params, generator=torch.Generator().manual_seed(0))
    calls, ops = _lbgap_products(w, v)
    calls["PyHessian, graph reused"] = _pyhessian_product(w, v)
    cl = _curvlinops_operator(w.model, w.x, w.y, [0])
    vn = v.numpy()
    calls["curvlinops matvec"] = lambda: cl @ vn
    try:
        return round_robin(calls, repeats, warmup)
    finally:
        for op in ops:
            op.release()
        for p in w.model.parameters():
            p.grad = None


def keskar_times(w: Workload, repeats: int, warmup: int) -> dict[str, Timed]:
    """Loss-and-gradient against a hand-written forward/backward, and whole Keskar metric runs (ε = 1e-3)."""
    from lbgap_curvature.sharpness import keskar_sharpness, random_orthonormal_subspace

    obj = ModelObjective(w.model, EvalBatches([w.x], [w.y]), F.cross_entropy)

    def raw() -> None:
        w.model.zero_grad(set_to_none=True)
        F.cross_entropy(w.model(w.x), w.y).backward()

    def metric(space: str):
        A = None
        if space == "random":
            gen = torch.Generator().manual_seed(0)
            A = random_orthonormal_subspace(obj.size, 100, generator=gen, dtype=torch.float32)
        return keskar_sharpness(obj.loss_and_grad, obj.x0, 1e-3, A=A)

    calls = {
        "hand-written forward + backward of the mean loss": raw,
        "ModelObjective.loss_and_grad": lambda: obj.loss_and_grad(obj.x0),
        "full space, whole metric": lambda: metric("full"),
        "random 100-dim subspace, whole metric (QR included)": lambda: metric("random"),
    }
    try:
        return round_robin(calls, repeats, warmup)
    finally:
        for p in w.model.parameters():
            p.grad = None
