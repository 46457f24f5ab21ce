"""``python -m bench``: the benchmark table, ratios measured in one run.

Rows: engine epoch ÷ hand-written loop (target ≤ 1.05, Hoffer study's SB and LB
settings); ghost batch norm layer ÷ plain BatchNorm (target ≤ 1.15), with
Hoffer's chunked loop beside it; 8 seeds trained as one vectorized group ÷ the
same 8 trials one after another (``bench/vectorized.py``). ``python -m bench
studies [--rounds N] [--study FILE]`` times whole studies end to end under
``--jobs``/``--vectorize`` settings against ``--jobs 1 --vectorize off``
(``bench/study.py``). ``python -m bench curvature [--quick ...]`` runs the
Hessian benchmark against PyHessian, curvlinops and hessian-eigenthings
(the options are those of ``python -m bench.curvature``).
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument(
        "what", nargs="?", default="all", choices=["all", "engine", "gbn", "vectorized", "studies", "curvature"]
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 gives steadier numbers)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin rounds of the study benchmarks")
    ap.add_argument("--study", action="append", help="with `studies`: only this study file (repeatable)")
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
    if args.what in ("all", "vectorized"):
        rows += _vectorized_rows()
    if args.what == "studies":
        rows += _study_rows(args.rounds, args.study)
    if args.what == "curvature":
        from .curvature.run import main as curvature_main

        return curvature_main(rest)  # e.g. python -m bench curvature --quick
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  ratio   target   detail")
    for name, ratio, target, detail in rows:
        print(f"{name.ljust(width)}  {ratio:5.3f}  {target:7s}  {detail}")
    print(f"(torch {torch.__version__}, {torch.get_num_threads()} thread(s), medians after warm-up, round-robin)")
    return 0


def _vectorized_rows() -> list[tuple[str, float, str, str]]:
    from .vectorized import compare_vectorized

    rows = []
    for variant, hidden, target in (("sb", 512, "≥ 3"), ("lb", 512, "report"), ("sb", 128, "report")):
        r = compare_vectorized(variant, members=8, hidden=hidden)
        rows.append((
            f"8 seeds vectorized ÷ sequential, 3×{hidden} BN MLP, batch {r['batch']}", r["ratio"], target,
            f"{r['sequential_s']:.2f} s sequential vs {r['grouped_s']:.2f} s grouped (1 epoch each)",
        ))
    return rows


def _study_rows(rounds: int, only: list[str] | None = None) -> list[tuple[str, float, str, str]]:
    from .study import ROOT, compare_settings

    rows = []
    cases = (
        ("hoffer_regime.yaml", "≥ 1.7", {"jobs 1, vectorize off": ["--jobs", "1", "--vectorize", "off"],
                                         "jobs 2, vectorize auto": ["--jobs", "2"]}),
        ("keskar_batch_sweep.yaml", "≥ 2", {"jobs 1, vectorize off": ["--jobs", "1", "--vectorize", "off"],
                                            "jobs 2, vectorize auto": ["--jobs", "2"]}),
    )
    for spec, target, settings in cases:
        if only and spec not in only:
            continue
        keep = ROOT / "runs" / "bench" / spec.replace(".yaml", ".nc")
        base, best = compare_settings(ROOT / "studies" / spec, settings, rounds=rounds, keep=keep)
        rows.append((
            f"{spec} end to end: {best['setting']} ÷ {base['setting']}", best["ratio"], target,
            f"median {best['median_s']:.0f} s vs {base['median_s']:.0f} s; same results: {best['same_results']}; "
            f"runs {[round(t) for t in best['times']]} vs {[round(t) for t in base['times']]} s; baseline results: {keep}",
        ))
    return rows


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
