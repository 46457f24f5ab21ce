"""Side-by-side benchmark: top Hessian eigenvalues, lbgap_curvature against its peers.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m bench.curvature            # everything (~20-30 min on one busy core)
    OMP_NUM_THREADS=1 python -m bench.curvature --quick    # small workloads, a smoke run

Workloads (float32, eval-mode BatchNorm, one batch holding all samples, so
PyHessian runs in its fastest mode — it builds the gradient graph once and
reuses it for every product):

* ``mlp3x512``: 40 → 512 → 512 → 512 → 10 ReLU MLP on MNIST-1D (2000 samples),
  trained for a few epochs;
* ``f1``: Keskar's F1 (784 → 5 × [512, BatchNorm, ReLU] → 10) on 1000 real
  MNIST training images (random MNIST-shaped inputs if the files are absent),
  trained for a few epochs.

For each solver and k ∈ {1, 5} the tolerance (or, for hessian-eigenthings,
the number of Lanczos steps) is swept from loose to tight and the cheapest
setting whose top-k eigenvalues are all within ``--target`` (1e-4) relative
error of a float64 reference is reported: the same *achieved* accuracy, not
the same nominal tolerance. The reference is SciPy ``eigsh`` (tol 1e-10) on
curvlinops' float64 Hessian operator, cross-checked against this package's
float64 Lanczos. HVP counts are counted by wrapping each solver's product.
The time of the chosen setting is the median of 3 runs; per-HVP times are the
minimum of 5 (the machine is shared; ratios are measured in the same run).

Peers: ``pyhessian`` (power iteration with deflation), ``curvlinops-for-pytorch``
(``HessianLinearOperator`` + ``scipy.sparse.linalg.eigsh``) and
``hessian-eigenthings`` (``lanczos``).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.metadata as md
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lbgap_curvature.hvp import HessianOperator
from lbgap_curvature.lanczos import top_eigenpairs
from lbgap_curvature.loss import EvalBatches, ModelObjective

log = logging.getLogger("bench.curvature")

ROOT = Path(__file__).resolve().parents[2]
MNIST = (
    Path(os.environ.get("LBGAP_MNIST_DIR", ROOT.parent / "shared" / "data" / "mnist-subset"))
    / "MNIST"
    / "raw"
)


class BudgetExceeded(RuntimeError):
    pass


@dataclass
class Workload:
    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    description: str

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


# ------------------------------------------------------------------ workloads


def _train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, seed: int
) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


def mlp_workload(n: int = 2000, epochs: int = 5) -> Workload:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(n / 0.8) + 1  # mnist1d keeps 80% for training
    data = make_dataset(args)
    x = torch.as_tensor(data["x"][:n], dtype=torch.float32)
    y = torch.as_tensor(data["y"][:n], dtype=torch.long)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(40, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )
    _train(model, x, y, epochs, 128, 0)
    return Workload("mlp3x512", model, x, y, f"3x512 ReLU MLP on MNIST-1D, {n} samples")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def f1_workload(n: int = 1000, epochs: int = 3) -> Workload:
    img, lab = MNIST / "train-images-idx3-ubyte.gz", MNIST / "train-labels-idx1-ubyte.gz"
    if img.exists() and lab.exists():
        x = torch.as_tensor(_read_idx(img)[:n].reshape(n, -1), dtype=torch.float32) / 255.0
        y = torch.as_tensor(_read_idx(lab)[:n], dtype=torch.long)
        what = f"{n} MNIST training images"
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(n, 784, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        what = f"{n} random MNIST-shaped inputs"
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 784
    for _ in range(5):
        layers += [nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU()]
        width = 512
    layers.append(nn.Linear(512, 10))
    model = nn.Sequential(*layers)
    _train(model, x, y, epochs, 100, 0)
    return Workload("f1", model, x, y, f"Keskar F1 (5x512 BN MLP) on {what}")


# ------------------------------------------------------------------- solvers


@dataclass
class Run:
    solver: str
    setting: str
    eigenvalues: np.ndarray
    hvps: int
    seconds: float


def _ours(w: Workload, k: int, tol: float, mode: str = "autograd") -> Run:
    t = time.perf_counter()
    op = HessianOperator(ModelObjective(w.model, EvalBatches([w.x], [w.y]), F.cross_entropy), mode=mode)
    res = top_eigenpairs(op, k, tol=tol, max_matvec=2000, generator=torch.Generator().manual_seed(0))
    return Run(
        f"lbgap lanczos ({mode})", f"tol={tol:g}", res.eigenvalues, op.n_matvec, time.perf_counter() - t
    )


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


def _curvlinops(w: Workload, k: int, tol: float) -> Run:
    from scipy.sparse.linalg import eigsh

    count = [0]
    t = time.perf_counter()
    op = _curvlinops_operator(w.model, w.x, w.y, count)
    v0 = np.random.default_rng(0).normal(size=op.shape[0]).astype(op.dtype)
    vals = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return Run("curvlinops + eigsh", f"tol={tol:g}", np.sort(vals)[::-1], count[0], time.perf_counter() - t)


def _eigenthings(w: Workload, k: int, steps: int) -> Run:
    from hessian_eigenthings import HessianOperator as EHessian
    from hessian_eigenthings import lanczos, supervised_loss

    t = time.perf_counter()
    op = EHessian(w.model, [(w.x, w.y)], supervised_loss(F.cross_entropy))
    count = [0]
    inner = op.matvec

    def counted(v):
        count[0] += 1
        return inner(v)

    op.matvec = counted
    res = lanczos(op, k=k, max_iter=steps, which="LA", seed=0)
    vals = np.sort(
        np.asarray(
            res.eigenvalues.detach().cpu().numpy() if torch.is_tensor(res.eigenvalues) else res.eigenvalues
        )
    )[::-1]
    return Run("hessian-eigenthings lanczos", f"max_iter={steps}", vals, count[0], time.perf_counter() - t)


def _pyhessian_module():
    import pyhessian  # noqa: F401  (its __init__ rebinds the name "hessian" to the class)

    return sys.modules["pyhessian.hessian"]


def _pyhessian(w: Workload, k: int, tol: float, budget: int) -> Run:
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
    t = time.perf_counter()
    try:
        h = ph.hessian(w.model, nn.CrossEntropyLoss(), data=(w.x, w.y), cuda=False)
        vals, _ = h.eigenvalues(maxIter=1000, tol=tol, top_n=k)
        vals = np.sort(np.asarray(vals))[::-1]
    except BudgetExceeded:
        vals = np.full(k, np.nan)
    finally:
        ph.hessian_vector_product = inner
        for p in w.model.parameters():
            p.grad = None  # pyhessian leaves graph-carrying .grad fields
    return Run("pyhessian power iteration", f"tol={tol:g}", vals, count[0], time.perf_counter() - t)


def reference(w: Workload, k: int) -> tuple[np.ndarray, float]:
    """float64 top-k by curvlinops + eigsh (tol 1e-10), and its agreement with our float64 Lanczos."""
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
    return ref, float(np.max(np.abs(ours - ref) / np.abs(ref)))


def cheapest(sweep: list[Callable[[], Run]], ref: np.ndarray, target: float) -> tuple[Run, float, bool]:
    """Run settings loose → tight; return the first within ``target`` (or the last tried)."""
    run = err = None
    for make in sweep:
        run = make()
        err = float(np.max(np.abs(run.eigenvalues - ref) / np.abs(ref)))
        log.info(
            "  %-28s %-14s hvps=%5d  %7.1fs  err=%.2e", run.solver, run.setting, run.hvps, run.seconds, err
        )
        if err <= target:
            return run, err, True
    return run, err, False


# ----------------------------------------------------------------- HVP timing


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def hvp_times(w: Workload, repeats: int = 5) -> dict[str, float]:
    """Seconds per Hessian-vector product (minimum of ``repeats`` after one warm-up), per implementation."""
    out: dict[str, float] = {}
    v = torch.randn(w.n_params, generator=torch.Generator().manual_seed(0))

    def timed(name: str, fn: Callable[[], object]) -> None:
        out[name] = _best_time(fn, repeats)

    for mode, reuse in (("autograd", True), ("autograd", False), ("func", True)):
        op = HessianOperator(
            ModelObjective(w.model, EvalBatches([w.x], [w.y]), F.cross_entropy), mode=mode, reuse_graph=reuse
        )
        timed(
            f"lbgap {mode}{' (graph reused)' if reuse and mode == 'autograd' else ''}",
            lambda op=op: op.matvec(v),
        )
        op.release()
    ph = _pyhessian_module()

    h = ph.hessian(w.model, nn.CrossEntropyLoss(), data=(w.x, w.y), cuda=False)
    vs = [
        t.reshape(p.shape)
        for t, p in zip(torch.split(v, [p.numel() for p in h.params]), h.params, strict=True)
    ]
    timed("pyhessian (graph reused)", lambda h=h: ph.hessian_vector_product(h.gradsH, h.params, vs))
    h = None
    for p in w.model.parameters():
        p.grad = None
    cl = _curvlinops_operator(w.model, w.x, w.y, [0])
    vn = v.numpy()
    timed("curvlinops matvec", lambda: cl @ vn)
    return out


# ------------------------------------------------------------ Keskar timing


def keskar_times(w: Workload, repeats: int = 3) -> dict[str, float]:
    """Loss-and-gradient of the objective against a hand-written forward/backward, and whole metric runs."""
    from lbgap_curvature.sharpness import keskar_sharpness, random_orthonormal_subspace

    obj = ModelObjective(w.model, EvalBatches([w.x], [w.y]), F.cross_entropy)
    out: dict[str, float] = {}

    def raw() -> None:
        w.model.zero_grad(set_to_none=True)
        F.cross_entropy(w.model(w.x), w.y).backward()

    for name, fn in (
        ("raw forward+backward", raw),
        ("objective loss_and_grad", lambda: obj.loss_and_grad(obj.x0)),
    ):
        out[name] = _best_time(fn, repeats)
    for p in w.model.parameters():
        p.grad = None
    for space in ("full", "random"):
        t = time.perf_counter()
        A = None
        if space == "random":
            A = random_orthonormal_subspace(
                obj.size, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float32
            )
        res = keskar_sharpness(obj.loss_and_grad, obj.x0, 1e-3, A=A)
        out[
            f"keskar {space} eps=1e-3 (10 L-BFGS-B iterations, {res.nfev} evaluations, phi={res.sharpness:.3g})"
        ] = time.perf_counter() - t
    return out


# ---------------------------------------------------------------------- main


def _versions() -> str:
    names = ("torch", "scipy", "pyhessian", "curvlinops-for-pytorch", "hessian-eigenthings")
    out = []
    for n in names:
        try:
            out.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            out.append(f"{n} (missing)")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.curvature", description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="mlp3x512,f1")
    ap.add_argument("--k", default="1,5")
    ap.add_argument("--target", type=float, default=1e-4, help="relative eigenvalue error to reach")
    ap.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    ap.add_argument("--hvp-only", action="store_true", help="only time single products")
    ap.add_argument("--keskar-only", action="store_true", help="only time Keskar sharpness")
    ap.add_argument("--pyhessian-budget", type=int, default=1500, help="HVP cap per PyHessian run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ks = [int(k) for k in args.k.split(",")]
    builders = {"mlp3x512": mlp_workload, "f1": f1_workload}
    log.info("# %s | threads %d", _versions(), torch.get_num_threads())
    rows = []
    for name in args.workloads.split(","):
        w = builders[name](n=400, epochs=1) if args.quick else builders[name]()
        log.info("\n## %s: %s, %d parameters", w.name, w.description, w.n_params)
        if args.keskar_only:
            for what, sec in keskar_times(w).items():
                log.info("  %-70s %.3f s", what, sec)
            continue
        log.info("\nseconds per HVP:")
        for impl, s in hvp_times(w).items():
            log.info("  %-32s %.3f", impl, s)
        if args.hvp_only:
            continue
        ref, agree = reference(w, max(ks))
        log.info(
            "\nfloat64 reference top-%d: %s (our float64 Lanczos agrees to %.1e)",
            max(ks),
            np.array2string(ref, precision=5),
            agree,
        )
        for k in ks:
            r = ref[:k]
            log.info("\nk=%d sweeps:", k)
            sweeps = {
                "ours": [
                    lambda t=t, w=w, k=k: _ours(w, k, t)
                    for t in (1e-1, 5e-2, 3e-2, 2e-2, 1e-2, 5e-3, 3e-3, 2e-3, 1e-3, 1e-4)
                ],
                "curvlinops": [
                    lambda t=t, w=w, k=k: _curvlinops(w, k, t)
                    for t in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6)
                ],
                "eigenthings": [
                    lambda s=s, w=w, k=k: _eigenthings(w, k, s)
                    for s in sorted({2 * k, 4, 6, 8, 10, 12, 14, 17, 20, 25, 30, 40, 50, 60, 90, 120})
                    if s >= k
                ],
                "pyhessian": [
                    lambda t=t, w=w, k=k: _pyhessian(w, k, t, args.pyhessian_budget)
                    for t in (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
                ],
            }
            results = {key: cheapest(s, r, args.target) for key, s in sweeps.items()}
            rows.append((w.name, k, results))
    if args.hvp_only:
        return 0
    log.info(
        "\n| workload | k | solver | cheapest setting reaching %.0e | HVPs | seconds | max rel. error | ours faster by |",
        args.target,
    )
    log.info("|---|---|---|---|---|---|---|---|")
    for wname, k, results in rows:
        ours = results["ours"][0]
        for key in ("ours", "curvlinops", "eigenthings", "pyhessian"):
            run, err, ok = results[key]
            setting = run.setting if ok else f"not reached ({run.setting})"
            ratio = (
                "—"
                if key == "ours"
                else f"{run.seconds / ours.seconds:.1f}× time, {run.hvps / ours.hvps:.1f}× HVPs"
            )
            log.info(
                "| %s | %d | %s | %s | %d | %.1f | %.1e | %s |",
                wname,
                k,
                run.solver,
                setting,
                run.hvps,
                run.seconds,
                err,
                ratio,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
