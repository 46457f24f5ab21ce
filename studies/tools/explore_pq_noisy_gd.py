"""Calibration of the P/Q experiment with full-batch gradient descent (not a test).

Full-batch gradient descent with weight decay ``lam`` and isotropic Gaussian gradient noise ``tau``
in every arm, U <- (1 - lr lam) U - lr (grad + xi), on ``f(x) = u . relu(U x)`` with a fixed second
layer u = +-uscale/sqrt(m) (Li, Wei & Ma 2019, §3, as the 2020 report states it). Arms: ``LS``
(``lr1`` until the training loss is below ``eps1 + q log 2`` or, with ``--anneal T``, until step T;
then ``lr2``), ``S`` (``lr2``), ``SN`` (``lr2`` with pre-activation noise ``pnoise``, decayed at the
same loss threshold). Prints the test accuracy per component (p: P-only, q: Q-only, b: both).
Findings in docs/reproductions.md (Li, "What was tried", items 7-14).

The setting of ``studies/li_synthetic.yaml`` (no weight decay, no gradient noise)::

    OMP_NUM_THREADS=1 .venv/bin/python studies/tools/explore_pq_noisy_gd.py --d 200 --n 400 \
        --p0 0.1 --q0 0.1 --gamma0 0.25 --m 1000 --tau0 0.05 --uscale 4 --lam 0 --eps1 0.3 --eps2 0.1 \
        --alpha-low 0.5 --q-norm 12 --zeta 2.4 --lr1 0.1 --lr2 0.01 --steps 30000 --log 100000 \
        --seeds 0 1 2 --arms S LS SN --pnoise 1.0

With |z| = 12 the Q examples share one stiff direction: at ``lr1`` = 0.1 gradient descent is unstable
along it for several hundred steps (training loss about 1) and learns P from every example while Q
stays unlearned, then memorizes Q. At ``lr2`` it memorizes Q within 100 steps and learns P mostly from
the P-only examples.
"""
import argparse
import json
import math
import time

import torch

from lbgap_synthetic.pq_data import BOTH, P_ONLY, Q_ONLY, draw_structure, sample_pq


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = ap.add_argument
    add("--d", type=int, default=200)
    add("--n", type=int, default=400)
    add("--p0", type=float, default=0.2)
    add("--q0", type=float, default=0.2)
    add("--gamma0", type=float, default=1.0, help="margin in units of 1/sqrt(d)")
    add("--q-norm", type=float, default=1.0)
    add("--zeta", type=float, default=0.2)
    add("--alpha-low", type=float, default=0.0)
    add("--m", type=int, default=200, help="width")
    add("--tau0", type=float, default=0.01, help="init std of U")
    add("--uscale", type=float, default=1.0)
    add("--lam", type=float, default=1e-3, help="weight decay")
    add("--tau", type=float, default=0.0, help="gradient noise std")
    add("--lr1", type=float, default=1.0)
    add("--lr2", type=float, default=0.04)
    add("--eps1", type=float, default=0.05)
    add("--eps2", type=float, default=0.05)
    add("--steps", type=int, default=4000)
    add("--batch", type=int, default=0, help="0: full batch")
    add("--seeds", type=int, nargs="+", default=[0])
    add("--arms", nargs="+", default=["LS", "S"])
    add("--anneal", type=int, default=0, help="anneal at this step instead of the loss threshold")
    add("--log", type=int, default=500)
    add("--pnoise", type=float, default=0.0, help="pre-activation noise std of the SN arm")
    add("--trace-rays", type=int, nargs="*", default=[],
        help="at these steps, print the output on z, z + zeta, z - zeta and the fraction of units active there")
    return ap.parse_args()


def data(args: argparse.Namespace, seed: int):
    g = torch.Generator().manual_seed(seed)
    st = draw_structure(
        args.d, gamma0=args.gamma0 / math.sqrt(args.d), q_norm=args.q_norm, zeta_norm=args.zeta,
        zeta_orthogonal=True, generator=g,
    )
    tr = sample_pq(args.n, st, g, p0=args.p0, q0=args.q0, alpha_low=args.alpha_low)
    per = 1000
    comp = torch.tensor([P_ONLY] * per + [Q_ONLY] * per + [BOTH] * per)
    te = sample_pq(3 * per, st, g, p0=args.p0, q0=args.q0, alpha_low=args.alpha_low, components=comp)
    return tr, te, st


def forward(U, u, x, noise=0.0, g=None):
    h = x @ U.T
    if noise > 0:
        h = h + noise * torch.randn(h.shape, generator=g)
    return torch.relu(h) @ u


def accuracy(U, u, te) -> dict[str, float]:
    correct = (torch.sign(forward(U, u, te.x)) == te.y_pm).float()
    parts = (("p", P_ONLY), ("q", Q_ONLY), ("b", BOTH))
    return {k: round(correct[te.component == v].mean().item() * 100, 1) for k, v in parts}


def trace_rays(U: torch.Tensor, u: torch.Tensor, d: int, dirs: torch.Tensor) -> str:
    """Outputs on the Q-only points z, z + zeta, z - zeta and the fraction of units active on each."""
    x = torch.cat([torch.zeros(3, d, dtype=U.dtype), dirs.to(U.dtype)], dim=1)
    with torch.no_grad():
        f = forward(U, u, x).tolist()
        active = (x @ U.T > 0).to(U.dtype).mean(1).tolist()
    return "f " + " ".join(f"{v:+.2f}" for v in f) + " active " + " ".join(f"{a:.2f}" for a in active)


def run(args: argparse.Namespace, arm: str, seed: int) -> dict:
    tr, te, st = data(args, seed)
    ray_dirs = torch.stack([st.z, st.z + st.zeta, st.z - st.zeta])
    g = torch.Generator().manual_seed(100 + seed)
    U = args.tau0 * torch.randn(args.m, 2 * args.d, generator=g)
    u = args.uscale / math.sqrt(args.m) * torch.where(torch.arange(args.m) % 2 == 0, 1.0, -1.0)
    ng = torch.Generator().manual_seed(200 + seed)
    lr = args.lr1 if arm == "LS" else args.lr2
    threshold = args.eps1 + (tr.component == Q_ONLY).float().mean().item() * math.log(2)
    yp, x, n = tr.y_pm.float(), tr.x, len(tr.y_pm)
    switched, pnoise = None, (args.pnoise if arm == "SN" else 0.0)
    loss_now = math.nan
    for t in range(1, args.steps + 1):
        if args.batch:
            idx = torch.randint(n, (args.batch,), generator=ng)
            xb, yb = x[idx], yp[idx]
        else:
            xb, yb = x, yp
        U.requires_grad_(True)
        loss = torch.nn.functional.softplus(-yb * forward(U, u, xb, pnoise, ng)).mean()
        (grad,) = torch.autograd.grad(loss, U)
        U = U.detach()
        if args.tau > 0:
            grad = grad + args.tau * torch.randn(U.shape, generator=ng)
        U = (1 - lr * args.lam) * U - lr * grad
        if t in args.trace_rays:  # after update t; the loss is that of the batch before it
            print(f"  {arm} s{seed} t{t} batch loss {loss.item():.3f} {trace_rays(U, u, args.d, ray_dirs)}", flush=True)
        if t % 25 and t != 1:
            continue
        with torch.no_grad():
            loss_now = torch.nn.functional.softplus(-yp * forward(U, u, x)).mean().item()
        due = (args.anneal and t >= args.anneal) or (not args.anneal and loss_now < threshold)
        if switched is None and due and arm in ("LS", "SN"):
            switched = t
            if arm == "LS":
                lr = args.lr2
            else:
                pnoise *= 1e-5
        if t % args.log == 0 or t == 1:
            print(f"  {arm} s{seed} t{t} loss {loss_now:.4f} {accuracy(U, u, te)} |U| {U.norm():.2f}", flush=True)
        if loss_now < args.eps2 and (arm == "S" or switched is not None):
            break
    return dict(arm=arm, seed=seed, t=t, switched=switched, loss=round(loss_now, 4), **accuracy(U, u, te))


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    t0 = time.time()
    for r in [run(args, a, s) for s in args.seeds for a in args.arms]:
        print("RESULT", json.dumps(r))
    print(f"time {time.time() - t0:.0f}s", vars(args))


if __name__ == "__main__":
    main()
