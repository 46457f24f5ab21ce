"""Top-k Hessian eigenvalue solvers: lbgap's metric at its defaults, and its peers at a given setting.

Each solver call builds its operator and solves, as a user's call would, and
returns the eigenvalues with the number of Hessian-vector products it used.
"""

from __future__ import annotations

import copy
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lbgap.data import InMemoryData
from lbgap.metric import MeasureContext
from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.lanczos import top_eigenpairs
from lbgap_curvature.loss import EvalBatches, ModelObjective
from lbgap_curvature.metrics import HessianEigenvalues, HessianEigenvaluesConfig

from .workloads import Workload

#: (import name, PyPI distribution) of each peer; all are in the ``bench`` extra.
PEERS = (
    ("pyhessian", "pyhessian"),
    ("curvlinops", "curvlinops-for-pytorch"),
    ("hessian_eigenthings", "hessian-eigenthings"),
)


def missing_peers() -> list[str]:
    """The distributions of the peers that cannot be imported."""
    missing = []
    for module, dist in PEERS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


@dataclass
class Solve:
    eigenvalues: np.ndarray
    hvps: int


class BudgetExceeded(RuntimeError):
    pass


# -------------------------------------------------------------------- lbgap


def lbgap_context(w: Workload) -> MeasureContext:
    """A measurement context holding the workload's samples as the training split, in one batch."""
    data = InMemoryData(train_x=w.x, train_y=w.y, test_x=w.x[:1], test_y=w.y[:1], num_classes=10)
    return MeasureContext(
        model=w.model, data=data, loss_fn=F.cross_entropy, device=w.x.device, eval_batch_size=len(w.y)
    )


def lbgap_default(w: Workload, k: int) -> Solve:
    """The ``hessian_eigenvalues`` metric with every setting at its default except ``k``."""
    out = HessianEigenvalues(HessianEigenvaluesConfig(k=k)).compute(lbgap_context(w))
    return Solve(np.asarray(out["hessian_eigenvalues"].values), int(out["hessian_eigen_hvps"]))


LBGAP_DEFAULTS = HessianEigenvaluesConfig()


def lbgap_setting() -> str:
    d = LBGAP_DEFAULTS
    return f"defaults: tol={d.tol:g}, verify_residuals={d.verify_residuals}, hvp_mode={d.hvp_mode}"


# -------------------------------------------------------------------- peers


def _curvlinops_operator(model: nn.Module, x, y, count: list[int]):
    from curvlinops import HessianLinearOperator
    from scipy.sparse.linalg import LinearOperator

    params = [p for p in model.parameters() if p.requires_grad]
    H = HessianLinearOperator(
        model, nn.CrossEntropyLoss(), params, [(x, y)], check_deterministic=False, num_data=len(y)
    ).to_scipy()

    def mv(v):
        count[0] += 1
        return H @ v

    return LinearOperator(H.shape, matvec=mv, dtype=H.dtype)


def curvlinops_eigsh(w: Workload, k: int, tol: float) -> Solve:
    """curvlinops' ``HessianLinearOperator`` and SciPy ``eigsh`` (ARPACK) at ``tol``."""
    from scipy.sparse.linalg import eigsh

    count = [0]
    op = _curvlinops_operator(w.model, w.x, w.y, count)
    v0 = np.random.default_rng(0).normal(size=op.shape[0]).astype(op.dtype)
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return Solve(np.sort(vals)[::-1], count[0])


def eigenthings_lanczos(w: Workload, k: int, steps: int) -> Solve:
    """hessian-eigenthings' ``lanczos`` with ``max_iter=steps``."""
    from hessian_eigenthings import HessianOperator as EHessian
    from hessian_eigenthings import lanczos, supervised_loss

    op = EHessian(w.model, [(w.x, w.y)], supervised_loss(F.cross_entropy))
    count = [0]
    inner = op.matvec

    def counted(v):
        count[0] += 1
        return inner(v)

    op.matvec = counted
    vals = lanczos(op, k=k, max_iter=steps, which="LA", seed=0).eigenvalues
    vals = vals.detach().cpu().numpy() if torch.is_tensor(vals) else np.asarray(vals)
    return Solve(np.sort(vals)[::-1], count[0])


def _pyhessian_module():
    import pyhessian  # noqa: F401  (its __init__ rebinds the name "hessian" to the class)

    return sys.modules["pyhessian.hessian"]


#: Hessian-vector products after which a PyHessian run is abandoned (its eigenvalues are then NaN).
PYHESSIAN_BUDGET = 1500


def pyhessian_power(w: Workload, k: int, tol: float, budget: int = PYHESSIAN_BUDGET) -> Solve:
    """PyHessian's power iteration with deflation at ``tol`` (NaN once ``budget`` products are spent)."""
    ph = _pyhessian_module()
    count = [0]
    inner = ph.hessian_vector_product

    def counted(*a, **kw):
        count[0] += 1
        if count[0] > budget:
            raise BudgetExceeded
        return inner(*a, **kw)

    ph.hessian_vector_product = counted
    torch.manual_seed(0)
    try:
        h = ph.hessian(w.model, nn.CrossEntropyLoss(), data=(w.x, w.y), cuda=False)
        vals = np.sort(np.asarray(h.eigenvalues(maxIter=1000, tol=tol, top_n=k)[0]))[::-1]
    except BudgetExceeded:
        vals = np.full(k, np.nan)
    finally:
        ph.hessian_vector_product = inner
        for p in w.model.parameters():
            p.grad = None  # pyhessian leaves graph-carrying .grad fields
    return Solve(vals, count[0])


# ---------------------------------------------------------- peer settings


@dataclass(frozen=True)
class Peer:
    label: str
    settings: Callable[[int], list]  # k → settings from loose to tight
    solve: Callable[[Workload, int, object], Solve]
    shown: str  # format of a setting

    def show(self, setting: object) -> str:
        return self.shown.format(setting)


PEER_SOLVERS = {
    "curvlinops": Peer(
        "curvlinops + eigsh",
        lambda k: [1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6],
        curvlinops_eigsh,
        "tol={:g}",
    ),
    "eigenthings": Peer(
        "hessian-eigenthings lanczos",
        lambda k: [
            s for s in sorted({2 * k, 4, 6, 8, 10, 12, 14, 17, 20, 25, 30, 40, 50, 60, 90, 120}) if s >= k
        ],
        eigenthings_lanczos,
        "max_iter={}",
    ),
    "pyhessian": Peer(
        "PyHessian power iteration",
        lambda k: [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6],
        pyhessian_power,
        "tol={:g}",
    ),
}


def rel_error(vals: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(vals - ref) / np.abs(ref)))


@dataclass
class Choice:
    setting: object
    error: float
    reached: bool
    hvps: int
    seconds: float  # of this one calibration run, outside the round-robin protocol


def cheapest(solve: Callable[[object], Solve], settings: list, ref: np.ndarray, target: float) -> Choice:
    """The first setting (loose → tight) whose eigenvalues are within ``target`` of ``ref``, else the last tried.

    The sweep stops at a setting that gave up (NaN eigenvalues: its product
    budget is spent), since the tighter ones would give up too.
    """
    for s in settings:
        start = time.perf_counter()
        run = solve(s)
        err = rel_error(run.eigenvalues, ref)
        choice = Choice(s, err, err <= target, run.hvps, time.perf_counter() - start)
        if choice.reached or np.isnan(err):
            break
    return choice


# ---------------------------------------------------------------- reference


def reference(w: Workload, k: int) -> tuple[np.ndarray, float]:
    """float64 top-k by curvlinops + eigsh (tol 1e-10), and its agreement with lbgap's float64 Lanczos."""
    from scipy.sparse.linalg import eigsh

    m64 = copy.deepcopy(w.model).double()
    x64 = w.x.double()
    op = _curvlinops_operator(m64, x64, w.y, [0])
    v0 = np.random.default_rng(1).normal(size=op.shape[0])
    ref = np.sort(eigsh(op, k=k, which="LA", tol=1e-10, v0=v0, return_eigenvectors=False))[::-1]
    ours = top_eigenpairs(
        HessianOperator(ModelObjective(m64, EvalBatches([x64], [w.y]), F.cross_entropy)),
        k,
        tol=1e-9,
        generator=torch.Generator().manual_seed(1),
    ).eigenvalues
    return ref, rel_error(ours, ref)
