"""Side-by-side benchmark: top Hessian eigenvalues, lbgap_curvature against its peers.

Run from the repository root after ``make bench`` (which installs the peers,
the ``bench`` extra)::

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.curvature            # full size
    OMP_NUM_THREADS=1 .venv/bin/python -m bench.curvature --quick    # 400 samples, 1 training epoch

Workloads (float32, eval-mode BatchNorm, one batch holding all samples, so
PyHessian runs in its fastest mode, building the gradient graph once):

* ``mlp3x512``: 40 → 512 → 512 → 512 → 10 ReLU MLP on MNIST-1D (2000 samples);
* ``f1``: Keskar's F1 (784 → 5 × [512, BatchNorm, ReLU] → 10) on 1000 MNIST
  training images (random MNIST-shaped inputs if the files are absent).

lbgap is the ``hessian_eigenvalues`` metric called with its defaults (only
``k`` set): the tolerance, residual check, HVP mode and budget a user gets.
Each peer's setting (tolerance, or Lanczos steps for hessian-eigenthings) is
swept from loose to tight and the cheapest one whose top-k eigenvalues are all
within ``--target`` relative error of a float64 reference is kept. Then all
four solvers are timed by :mod:`bench.curvature.protocol`: ``--warmup``
untimed rounds, ``--repeats`` timed rounds, each round calling every solver
once in turn; times are medians and ratios divide medians of the same run.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import sys

import numpy as np
import torch

from .protocol import Timed, ratios, round_robin
from .solvers import PEER_SOLVERS, Choice, cheapest, lbgap_default, lbgap_setting, missing_peers, reference
from .solvers import rel_error as _err
from .timings import hvp_times, keskar_times
from .workloads import Workload, build


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.curvature", description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="mlp3x512,f1")
    ap.add_argument("--k", default="1,5")
    ap.add_argument("--target", type=float, default=1e-4, help="relative eigenvalue error a peer must reach")
    ap.add_argument("--quick", action="store_true", help="400 samples and 1 training epoch per workload")
    ap.add_argument("--repeats", type=int, default=3, help="timed round-robin rounds (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds before them")
    ap.add_argument("--hvp-only", action="store_true", help="only time single products")
    ap.add_argument("--keskar-only", action="store_true", help="only time Keskar sharpness")
    return ap.parse_args(argv)


def _versions() -> str:
    names = ("torch", "scipy", "pyhessian", "curvlinops-for-pytorch", "hessian-eigenthings")
    out = []
    for n in names:
        try:
            out.append(f"{n} {md.version(n)}")
        except md.PackageNotFoundError:
            out.append(f"{n} (missing)")
    return ", ".join(out)


def _runs(t: Timed) -> str:
    return "/".join(f"{s:.3g}" for s in t.seconds)


def _calibrate(w: Workload, k: int, ref: np.ndarray, target: float) -> dict[str, Choice]:
    """Each peer's cheapest setting reaching ``target`` (one solve per setting tried)."""
    out = {}
    for key, peer in PEER_SOLVERS.items():
        c = out[key] = cheapest(lambda s, peer=peer: peer.solve(w, k, s), peer.settings(k), ref, target)
        print(f"  {peer.label:28s} {peer.show(c.setting):14s} err={c.error:.1e} hvps={c.hvps}", flush=True)
    return out


def _peer_row(w: Workload, k: int, peer, c: Choice, t: Timed | None, ours, ratio, ref: np.ndarray) -> str:
    if t is None:  # not reached: not timed by the protocol; its one calibration run shown
        return (
            f"| {w.name} | {k} | {peer.label} | not reached ({peer.show(c.setting)}) | {c.hvps} "
            f"| ≥ {c.seconds:.2f} | one run | {c.error:.1e} | not comparable |"
        )
    r = t.result
    return (
        f"| {w.name} | {k} | {peer.label} | {peer.show(c.setting)} | {r.hvps} | {t.median:.2f} "
        f"| {_runs(t)} | {_err(r.eigenvalues, ref):.1e} "
        f"| {ratio:.2f}× time, {r.hvps / ours.hvps:.2f}× HVPs |"
    )


def eigen_rows(w: Workload, k: int, ref: np.ndarray, args: argparse.Namespace) -> list[str]:
    """Markdown rows for one workload and k: lbgap at its defaults, each peer at its cheapest setting.

    A peer that does not reach the target within its sweep is left out of the timed rounds.
    """
    choices = _calibrate(w, k, ref, args.target)
    calls = {"lbgap": lambda: lbgap_default(w, k)}
    for key, peer in PEER_SOLVERS.items():
        if choices[key].reached:
            calls[key] = lambda peer=peer, s=choices[key].setting: peer.solve(w, k, s)
    timed = round_robin(calls, args.repeats, args.warmup)
    ratio = ratios(timed, "lbgap")
    ours = timed["lbgap"].result
    rows = [
        f"| {w.name} | {k} | **lbgap** `hessian_eigenvalues` | {lbgap_setting()} | {ours.hvps} "
        f"| {timed['lbgap'].median:.2f} | {_runs(timed['lbgap'])} | {_err(ours.eigenvalues, ref):.1e} | — |"
    ]
    for key, peer in PEER_SOLVERS.items():
        rows.append(_peer_row(w, k, peer, choices[key], timed.get(key), ours, ratio.get(key), ref))
    print("\n".join(rows), flush=True)
    return rows


def _print_timed(title: str, timed: dict[str, Timed]) -> None:
    print(f"\n{title} (median of the round-robin runs; the runs):")
    for name, t in timed.items():
        print(f"  {name:55s} {t.median:8.3f}  ({_runs(t)})")


def _workload(name: str, args: argparse.Namespace) -> list[str]:
    w = build(name, args.quick)
    print(f"\n## {w.name}: {w.description}, {w.n_params} parameters", flush=True)
    if args.keskar_only:
        _print_timed("seconds, Keskar sharpness", keskar_times(w, args.repeats, args.warmup))
        return []
    _print_timed("seconds per HVP", hvp_times(w, args.repeats, args.warmup))
    if args.hvp_only:
        return []
    ks = [int(k) for k in args.k.split(",")]
    ref, agree = reference(w, max(ks))
    print(
        f"\nfloat64 reference top-{max(ks)}: {np.array2string(ref, precision=5)} (lbgap float64 agrees to {agree:.1e})"
    )
    rows = []
    for k in ks:
        print(f"\nk={k}: cheapest peer settings within {args.target:g}", flush=True)
        rows += eigen_rows(w, k, ref[:k], args)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    missing = [] if args.keskar_only else missing_peers()
    if missing:
        print(
            f"python -m bench.curvature: peer package(s) not installed: {', '.join(missing)}; "
            "run `make bench` to install them (the `bench` extra)",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(
        f"# {_versions()} | threads {torch.get_num_threads()} | warm-up {args.warmup}, repeats {args.repeats}"
    )
    rows = []
    for name in args.workloads.split(","):
        rows += _workload(name, args)
    if rows:
        print(
            "\n| workload | k | solver | setting | HVPs | median s | runs (s) | max rel. error | peer ÷ lbgap |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
