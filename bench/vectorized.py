"""Vectorized trials against the same trials trained one after another.

K seeds of one arm of the Hoffer study (3×512 BatchNorm MLP on MNIST-1D, 8,000
training signals) train for ``epochs`` epochs, once as K sequential
:func:`run_trial` calls and once as one :func:`run_group`; the two alternate
(round-robin) after a warm-up of each, and the ratio is of the median wall
times. Every member's numbers equal its sequential trial's (tests/core/test_vectorized.py),
so the two sides do exactly the same arithmetic.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from lbgap.engine.group import Member, run_group
from lbgap.engine.train import run_trial
from lbgap.registry import get_registry
from lbgap.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _sequential(cfg, seeds: list[int]) -> float:
    t = time.perf_counter()
    for s in seeds:
        run_trial(cfg, s, registry=get_registry(), device=CPU, key=f"seed={s}")
    return time.perf_counter() - t


def _grouped(cfg, seeds: list[int]) -> float:
    t = time.perf_counter()
    run_group([Member(cfg, s, f"seed={s}") for s in seeds], registry=get_registry(), device=CPU)
    return time.perf_counter() - t


def compare_vectorized(
    variant: str = "sb", members: int = 8, epochs: int = 1, rounds: int = 3, hidden: int = 512
) -> dict[str, float]:
    """Median seconds of ``members`` sequential trials and of one group of them, and the ratio."""
    study = load_study(ROOT / "studies" / "hoffer_regime.yaml")
    overrides = {"epochs": epochs, "schedule": {"name": "constant"}, "model": {"name": "mlp", "hidden": [hidden] * 3, "norm": "batchnorm"}}
    cfg = study.resolve(variant, overrides)
    seeds = list(range(members))
    _sequential(cfg, seeds[:2])  # warm-up
    _grouped(cfg, seeds[:2])
    seq, grp = [], []
    for _ in range(rounds):
        seq.append(_sequential(cfg, seeds))
        grp.append(_grouped(cfg, seeds))
    s, g = statistics.median(seq), statistics.median(grp)
    return {"batch": cfg.batch_size, "members": members, "sequential_s": s, "grouped_s": g, "ratio": s / g}
