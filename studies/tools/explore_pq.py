"""Calibration of the P/Q learning-order experiment on a CPU (not a test).

Trains a two-layer ReLU network on the P/Q mixture (:mod:`lbgap_synthetic.pq_data`)
with three recipes and prints the test accuracy per component:

* ``L-S``: learning rate ``lr1`` until the epoch-mean training loss falls below
  ``eps1 + q log 2`` (q = fraction of Q-only training examples), then ``lr2``;
* ``S``: ``lr2`` throughout;
* ``S+noise``: ``lr2`` with Gaussian pre-activation noise of std ``noise``,
  multiplied by ``noise_decay`` once the loss falls below the same threshold.

Every recipe stops when the epoch-mean training loss is below ``eps2`` or after
``max_epochs``. The loop is plain PyTorch (mini-batch SGD, or full batch with
``--batch 0``), so it does not depend on the lbgap engine.

Example (the defaults are the last setting explored; about 2 minutes for 3 seeds)::

    OMP_NUM_THREADS=1 .venv/bin/python studies/tools/explore_pq.py --seeds 0 1 2

Findings (details and numbers in docs/reproductions.md, Li, Wei & Ma, "What was tried"):

* With the package defaults (d = 500, n = 800, 20/20/60, |z| = 1, |zeta| = 0.3, alpha ~ U[0, 1]) the small
  learning rate learns the P direction while it fits Q, so it is not starved of P.
* S is starved (P learned mostly from the P-only examples) once fitting Q drives the loss of the 'both'
  examples to about zero: a Q part that dominates those examples (|z| = 4, |zeta| = 2), alpha ~ U[0.5, 1]
  and 80% 'both' examples (p0 = q0 = 0.1).
* Pre-activation noise (std 0.7, per unit and example) then delays Q and lets P be learned from every
  example: S+noise beats S on P-only test points; a width of 1000 keeps the bias-free ReLU units from
  dying on the Q rays when the noise is removed.
* With the fully connected network no large learning rate tried (0.1-8, batch 1-16, with and without
  weight decay, isotropic gradient noise tau_xi = 0.03-3) made SGD ignore Q while learning P: the large
  rate fits Q in its first epochs, or (|z| large, rate >= 5) kills every unit on the Q rays. With
  separate P and Q units (``--split-units``) the large rate does learn P first (P-only 83-84% before the
  anneal, Q at chance), but it kills the Q units, so Q is never learned after the anneal. Isotropic
  gradient noise destroys P (a d-dimensional direction) long before Q (two dimensions).

None of these settings is the one shipped: ``studies/li_synthetic.yaml`` came out of
``explore_pq_noisy_gd.py`` (full-batch gradient descent with a much larger |z|; item 14 of the docs).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from lbgap_synthetic.pq_data import BOTH, P_ONLY, Q_ONLY, draw_structure, sample_pq

log = logging.getLogger("explore_pq")


class TwoLayerReLU(nn.Module):
    """``x → W2 relu(W1 x + noise)``, two logits; no biases by default."""

    def __init__(self, d_in: int, width: int, *, init_std: float | None, bias: bool, train_head: bool,
                 head_scale: float = 1.0):
        super().__init__()
        self.hidden = nn.Linear(d_in, width, bias=bias)
        self.head = nn.Linear(width, 2, bias=bias)
        if init_std is not None:
            nn.init.normal_(self.hidden.weight, std=init_std)
        if not train_head:
            with torch.no_grad():
                # fixed second layer: unit j votes for class (j mod 2) with weight 1/sqrt(width)
                w = torch.zeros(2, width)
                w[0, 0::2] = head_scale / math.sqrt(width)
                w[1, 1::2] = head_scale / math.sqrt(width)
                self.head.weight.copy_(w)
            self.head.weight.requires_grad_(False)
            if bias:
                self.head.bias.requires_grad_(False)
        self.noise_std = 0.0
        self.generator: torch.Generator | None = None
        self.split_mask: torch.Tensor | None = None

    def split_units(self) -> None:
        """Block-diagonal first layer: the first half of the units sees only the P-part, the second
        half only the Q-part (each half votes for both classes)."""
        d_in, width = self.hidden.in_features, self.hidden.out_features
        mask = torch.zeros_like(self.hidden.weight)
        mask[: width // 2, : d_in // 2] = 1.0
        mask[width // 2 :, d_in // 2 :] = 1.0
        self.split_mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split_mask is not None:
            h = nn.functional.linear(x, self.hidden.weight * self.split_mask, self.hidden.bias)
        else:
            h = self.hidden(x)
        if self.training and self.noise_std > 0:
            h = h + self.noise_std * torch.randn(h.shape, generator=self.generator)
        return self.head(F.relu(h))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, comp: torch.Tensor) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = F.cross_entropy(out, y).item()
        correct = (out.argmax(1) == y).float()
    model.train()
    res = {"loss": loss, "acc": correct.mean().item()}
    for code, name in ((P_ONLY, "p_only"), (Q_ONLY, "q_only"), (BOTH, "both")):
        m = comp == code
        res[name] = correct[m].mean().item() if m.any() else math.nan
    return res


def train_variant(variant: str, data: dict, args: argparse.Namespace, seed: int) -> dict:
    torch.manual_seed(1000 + seed)  # same init for every variant of a seed
    d_in = data["x"].shape[1]
    model = TwoLayerReLU(d_in, args.width, init_std=args.init_std, bias=args.bias, train_head=args.train_head,
                         head_scale=args.head_scale)
    model.generator = torch.Generator().manual_seed(2000 + seed)
    if args.split_units:
        model.split_units()
    params = [p for p in model.parameters() if p.requires_grad]
    lr2 = args.lr2
    lr1 = args.lr1 if variant == "L-S" else lr2
    opt = torch.optim.SGD(params, lr=lr1, momentum=args.momentum, weight_decay=args.wd)
    gen = torch.Generator().manual_seed(3000 + seed)
    noise_gen = torch.Generator().manual_seed(4000 + seed)
    x, y = data["x"], data["y"]
    n = len(y)
    bs = n if args.batch <= 0 else args.batch
    q_frac = (data["comp"] == Q_ONLY).float().mean().item()
    threshold = args.eps1 + q_frac * math.log(2)
    switched_at = None
    if variant == "S+noise":
        model.noise_std = args.noise
    history = []
    t0 = time.time()
    epoch = 0
    for epoch in range(1, args.max_epochs + 1):
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_noise > 0:
                for p in params:
                    p.grad.add_(torch.randn(p.shape, generator=noise_gen), alpha=args.grad_noise)
            opt.step()
            tot += loss.item() * len(idx)
        train_loss = tot / n
        if switched_at is None and train_loss < threshold and variant in ("L-S", "S+noise"):
            switched_at = epoch
            if variant == "L-S":
                for g in opt.param_groups:
                    g["lr"] = lr2
            else:
                model.noise_std = args.noise * args.noise_decay
        if epoch % args.log_every == 0 or train_loss < args.eps2 or epoch in (1, 2, 3, 5, 10, 20):
            ev = evaluate(model, data["xt"], data["yt"], data["ct"])
            history.append({"epoch": epoch, "train_loss": train_loss, **ev})
            log.info("%s seed %d ep %d loss %.4f p %.3f q %.3f both %.3f", variant, seed, epoch, train_loss,
                     ev["p_only"], ev["q_only"], ev["both"])
        if train_loss < args.eps2:
            break
    ev = evaluate(model, data["xt"], data["yt"], data["ct"])
    tr = evaluate(model, x, y, data["comp"])
    return {
        "variant": variant,
        "seed": seed,
        "epochs": epoch,
        "switched_at": switched_at,
        "final_train_loss": train_loss,
        "train_acc": tr["acc"],
        "test": ev,
        "seconds": time.time() - t0,
        "history": history,
    }


def make_data(args: argparse.Namespace, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    gamma0 = args.gamma0 / math.sqrt(args.d)
    st = draw_structure(args.d, gamma0=gamma0, q_norm=args.q_norm, zeta_norm=args.zeta_norm,
                        zeta_orthogonal=True, generator=gen)
    tr = sample_pq(args.n, st, gen, p0=args.p0, q0=args.q0, alpha_low=args.alpha_low)
    per = args.n_test // 3
    comp = torch.tensor([P_ONLY] * per + [Q_ONLY] * per + [BOTH] * per)
    te = sample_pq(len(comp), st, gen, p0=args.p0, q0=args.q0, alpha_low=args.alpha_low, components=comp)
    return {"x": tr.x, "y": tr.y, "comp": tr.component, "xt": te.x, "yt": te.y, "ct": te.component}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=3000)
    ap.add_argument("--p0", type=float, default=0.2)
    ap.add_argument("--q0", type=float, default=0.2)
    ap.add_argument("--gamma0", type=float, default=0.25, help="margin in units of 1/sqrt(d)")
    ap.add_argument("--q-norm", type=float, default=1.0)
    ap.add_argument("--zeta-norm", type=float, default=0.6)
    ap.add_argument("--alpha-low", type=float, default=0.0)
    ap.add_argument("--width", type=int, default=200)
    ap.add_argument("--init-std", type=float, default=None)
    ap.add_argument("--bias", action="store_true")
    ap.add_argument("--head-scale", type=float, default=5.0, help="fixed head weights ±scale/sqrt(width)")
    ap.add_argument("--train-head", action="store_true")
    ap.add_argument("--split-units", action="store_true", help="units see either the P-part or the Q-part")
    ap.add_argument("--lr1", type=float, default=1.0)
    ap.add_argument("--lr2", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--wd", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--grad-noise", type=float, default=0.0)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--noise-decay", type=float, default=1e-5)
    ap.add_argument("--eps1", type=float, default=0.001)
    ap.add_argument("--eps2", type=float, default=0.07, help="theorem 3.4: sqrt(eps1/q)")
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=["L-S", "S", "S+noise"])
    ap.add_argument("--json", type=str, default=None, help="write all results here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        data = make_data(args, seed)
        for v in args.variants:
            results.append(train_variant(v, data, args, seed))
    summary = {}
    for v in args.variants:
        rs = [r for r in results if r["variant"] == v]
        row = {}
        for key in ("p_only", "q_only", "both", "acc"):
            vals = torch.tensor([r["test"][key] for r in rs])
            row[key] = (vals.mean().item(), vals.std().item() if len(vals) > 1 else 0.0)
        row["epochs"] = [r["epochs"] for r in rs]
        row["switched_at"] = [r["switched_at"] for r in rs]
        row["final_train_loss"] = [round(r["final_train_loss"], 4) for r in rs]
        row["seconds"] = sum(r["seconds"] for r in rs)
        summary[v] = row
    lines = [f"{'variant':8s} {'P-only':>14s} {'Q-only':>14s} {'both':>14s} {'all':>14s}  epochs / switch"]
    for v, row in summary.items():
        cells = " ".join(f"{row[k][0]*100:6.1f} ± {row[k][1]*100:4.1f}" for k in ("p_only", "q_only", "both", "acc"))
        lines.append(f"{v:8s} {cells}  {row['epochs']} / {row['switched_at']}  ({row['seconds']:.0f}s)")
    logging.getLogger().setLevel(logging.INFO)
    log.info("%s", vars(args))
    log.info("\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
