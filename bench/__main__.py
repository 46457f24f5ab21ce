"""``python -m bench``: the benchmark table, ratios measured in one run.

Rows: engine epoch ÷ hand-written loop (target ≤ 1.05, Hoffer study's SB and LB
settings); ghost batch norm layer ÷ plain BatchNorm (target ≤ 1.15), with
Hoffer's chunked loop beside it. ``python -m bench curvature [--quick ...]`` runs the
Hessian benchmark against PyHessian, curvlinops and hessian-eigenthings
(the options are those of ``python -m bench.curvature``).
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("what", nargs="?", default="all", choices=["all", "engine", "gbn", "curvature"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 gives steadier numbers)")
    args, rest = ap.parse_known_args(argv)
    if rest and args.what != "curvature":
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    torch.set_num_threads(args.threads)
    rows = []
    if args.what in ("all", "engine"):
        from .engine import compare_engine

        for variant in ("sb", "lb"):
            r = compare_engine(variant)
            rows.append((f"engine epoch ÷ hand-written loop (batch {r['batch']})", r["ratio"], "≤ 1.05",
                         f"{r['engine_s'] * 1e3:.1f} ms vs {r['hand_loop_s'] * 1e3:.1f} ms"))
    if args.what in ("all", "gbn"):
        from lbgap_models.bench_gbn import compare_gbn

        r = compare_gbn(batch=2048, ghost=64, width=512)
        rows.append(("GhostBatchNorm, contiguous ghosts ÷ plain BatchNorm (B 2048, ghost 64)", r["ghost_ratio"], "≤ 1.15",
                     f"{r['ghost_s'] * 1e3:.1f} ms vs {r['plain_s'] * 1e3:.1f} ms per training step"))
        rows.append(("GhostBatchNorm, strided ghosts (the Hoffer study's setting)", r["ghost_strided_ratio"], "≤ 1.15",
                     f"{r['ghost_strided_s'] * 1e3:.1f} ms per training step"))
        rows.append(("Hoffer's chunked loop ÷ plain BatchNorm (reference)", r["loop_ratio"], "—",
                     f"{r['loop_s'] * 1e3:.1f} ms per training step"))
    if args.what == "curvature":
        from .curvature.run import main as curvature_main

        return curvature_main(rest)  # e.g. python -m bench curvature --quick
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  ratio   target   detail")
    for name, ratio, target, detail in rows:
        print(f"{name.ljust(width)}  {ratio:5.3f}  {target:7s}  {detail}")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians after warm-up, round-robin)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
