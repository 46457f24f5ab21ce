"""Search for an L-S > S setting of Li, Wei & Ma (2019)'s P/Q experiment (exploration, not a test).

Network ``f(x) = u . relu(U x)`` (two-layer, bias-free, single logit), logistic loss, plain SGD
(mini-batch, or full batch with ``--batch 0``), no momentum, no weight decay, no gradient noise.
Options beyond ``explore_pq.py``: a trainable second layer (``--train-u``, its rate multiplied by
``--u-lr-mult``), symmetric initialisation (``--sym``: u_j = -u_{j+m/2}, U_j = U_{j+m/2}, so f = 0 at
init), a scale of the P-part (``--p-scale``), small init ``--tau0``.

Arms (same data and initial weights per seed): ``LS`` (``lr1`` until the epoch-mean training loss is
below ``eps1 + q log 2``, then ``lr2``), ``S`` (``lr2``), ``SN`` (``lr2`` with pre-activation noise
``pnoise`` per unit and example, multiplied by 1e-5 after ``pnoise_epochs`` epochs). Each stops when
the full training loss is below ``eps2`` or after ``max_epochs``. Prints P-only / Q-only / both test
accuracy over epochs and at the end. Example::

    OMP_NUM_THREADS=1 .venv/bin/python studies/tools/explore_pq_eos.py --seeds 0

Findings (seed 0; no setting gave L-S > S): every rate that blocks Q for the large-rate arm does so by
killing units on the Q rays in the first steps (the common "z" mode of the Q examples, whose curvature
is about |z|^2 / |zeta|^2 times that of the discriminating modes, is catapulted: 93-100% of the units
end inactive on every Q-only training example); the few survivors then memorise Q, or, where none
survive, the training loss stalls above eps2. A larger P-part (--p-scale 1.5-4) keeps the 'both'
examples alive but makes S learn P faster (S P-only 78-86%), and L-S stays at 71-75%. Full-batch GD
just above the z-mode stability limit (lr1 0.2-0.4) still catapults and fits Q within 25-50 steps.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from explore_pq_noisy_gd import data as pq_draw  # the sibling script (run from its folder's path)
from explore_pq_noisy_gd import forward
from torch.nn import functional as F

from lbgap_synthetic.pq_data import BOTH, P_ONLY, Q_ONLY


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = ap.add_argument
    add("--d", type=int, default=500)
    add("--n", type=int, default=800)
    add("--p0", type=float, default=0.1)
    add("--q0", type=float, default=0.1)
    add("--gamma0", type=float, default=0.25, help="margin in units of 1/sqrt(d)")
    add("--p-scale", type=float, default=1.0, help="multiply the P-part x1 by this")
    add("--q-norm", type=float, default=4.0)
    add("--zeta", type=float, default=2.0)
    add("--alpha-low", type=float, default=0.5)
    add("--m", type=int, default=1000, help="width")
    add("--tau0", type=float, default=None, help="init std of U (default 1/sqrt(2d))")
    add("--uscale", type=float, default=4.0, help="u = +-uscale/sqrt(m)")
    add("--train-u", action="store_true")
    add("--u-lr-mult", type=float, default=1.0)
    add("--sym", action="store_true", help="symmetric init: f = 0 at init")
    add("--lr1", type=float, default=0.5)
    add("--lr2", type=float, default=0.02)
    add("--batch", type=int, default=16, help="0: full batch")
    add("--eps1", type=float, default=0.05)
    add("--eps2", type=float, default=0.07)
    add("--max-epochs", type=int, default=150)
    add("--anneal-epoch", type=int, default=0, help="anneal at this epoch instead of the loss threshold")
    add("--pnoise", type=float, default=0.7)
    add("--pnoise-epochs", type=int, default=30)
    add("--seeds", type=int, nargs="+", default=[0])
    add("--arms", nargs="+", default=["LS", "S", "SN"])
    add("--log", type=int, default=10)
    add("--json", type=str, default=None)
    return ap.parse_args()


def make_data(args: argparse.Namespace, seed: int):
    """The P/Q draw of explore_pq_noisy_gd.py, with the P-part scaled by ``--p-scale``."""
    tr, te, _ = pq_draw(args, seed)
    scale = torch.cat([torch.full((args.d,), args.p_scale), torch.ones(args.d)])
    return (tr.x * scale, tr.y_pm.float(), tr.component), (te.x * scale, te.y_pm.float(), te.component)


def accuracy(U, u, data) -> dict[str, float]:
    x, y, c = data
    with torch.no_grad():
        correct = (torch.sign(forward(U, u, x)) == y).float()
    return {k: round(correct[c == v].mean().item() * 100, 1) for k, v in (("p", P_ONLY), ("q", Q_ONLY), ("b", BOTH))}


def init(args: argparse.Namespace, seed: int):
    g = torch.Generator().manual_seed(100 + seed)
    d2 = 2 * args.d
    tau0 = args.tau0 if args.tau0 is not None else 1 / math.sqrt(d2)
    sign = torch.where(torch.arange(args.m) % 2 == 0, 1.0, -1.0)
    if args.sym:
        half = tau0 * torch.randn(args.m // 2, d2, generator=g)
        U = torch.cat([half, half])
        sign = torch.cat([torch.ones(args.m // 2), -torch.ones(args.m // 2)])
    else:
        U = tau0 * torch.randn(args.m, d2, generator=g)
    u = args.uscale / math.sqrt(args.m) * sign
    return U, u


def run(args: argparse.Namespace, arm: str, seed: int, train, test) -> dict:
    x, y, comp = train
    n = len(y)
    U, u = init(args, seed)
    g = torch.Generator().manual_seed(200 + seed)
    ng = torch.Generator().manual_seed(300 + seed)
    lr = args.lr1 if arm == "LS" else args.lr2
    pnoise = args.pnoise if arm == "SN" else 0.0
    threshold = args.eps1 + (comp == Q_ONLY).float().mean().item() * math.log(2)
    bs = n if args.batch <= 0 else args.batch
    switched, hist, t0 = None, [], time.time()
    dead_q = math.nan
    for epoch in range(1, args.max_epochs + 1):
        if arm == "SN" and epoch == args.pnoise_epochs + 1:
            pnoise *= 1e-5
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            U.requires_grad_(True)
            if args.train_u:
                u.requires_grad_(True)
            loss = F.softplus(-y[idx] * forward(U, u, x[idx], pnoise, ng)).mean()
            if args.train_u:
                gU, gu = torch.autograd.grad(loss, (U, u))
                u = (u - lr * args.u_lr_mult * gu).detach()
            else:
                (gU,) = torch.autograd.grad(loss, U)
            U = (U - lr * gU).detach()
        with torch.no_grad():
            train_loss = F.softplus(-y * forward(U, u, x)).mean().item()
        if not math.isfinite(train_loss):
            break
        due = (args.anneal_epoch and epoch >= args.anneal_epoch) or (not args.anneal_epoch and train_loss < threshold)
        if arm == "LS" and switched is None and due:
            switched, lr = epoch, args.lr2
        if epoch % args.log == 0 or epoch <= 5 or epoch == switched:
            acc = accuracy(U, u, test)
            with torch.no_grad():
                qx = x[comp == Q_ONLY]
                dead_q = ((qx @ U.T) <= 0).all(0).float().mean().item()
            hist.append(dict(epoch=epoch, loss=round(train_loss, 4), **acc, dead_q=round(dead_q, 3)))
            print(f"  {arm} s{seed} ep{epoch} loss {train_loss:.4f} {acc} deadQ {dead_q:.2f} |U| {U.norm():.1f}"
                  f" |u| {u.norm():.2f}", flush=True)
        if train_loss < args.eps2 and (arm != "LS" or switched is not None):
            break
    acc = accuracy(U, u, test)
    return dict(arm=arm, seed=seed, epochs=epoch, switched=switched, loss=round(train_loss, 4), **acc,
                seconds=round(time.time() - t0, 1), history=hist)


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    results = []
    for s in args.seeds:
        train, test = make_data(args, s)
        for a in args.arms:
            r = run(args, a, s, train, test)
            results.append(r)
            print("RESULT", json.dumps({k: v for k, v in r.items() if k != "history"}), flush=True)
    for a in args.arms:
        rs = [r for r in results if r["arm"] == a]
        means = {k: round(sum(r[k] for r in rs) / len(rs), 1) for k in ("p", "q", "b")}
        print("MEAN", a, means, "per seed p:", [r["p"] for r in rs], "epochs:", [r["epochs"] for r in rs])
    print("ARGS", json.dumps(vars(args)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh)


if __name__ == "__main__":
    main()
