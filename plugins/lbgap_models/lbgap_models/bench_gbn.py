"""Micro-benchmark: ghost batch norm as a layer against plain BatchNorm and Hoffer's chunk loop.

One training step (zero grad, forward, cross-entropy, backward) of an MLP
``in_features → depth×[Linear width → norm → ReLU] → classes`` on one batch:

(a) ``plain``: ordinary BatchNorm over the whole batch (the reference, ratio 1);
(b) ``ghost``: :class:`GhostBatchNorm1d` layers (ghost batches folded into the
    channel dimension, one native batch-norm call per layer), Hoffer's
    contiguous ghost batches;
(b') ``ghost_strided``: the same with ``ghost_layout="strided"`` (no copies);
(c) ``loop``: Hoffer's ``main_gbn.py``: the batch is split into ghost-sized
    chunks, each chunk goes through the plain-BN model with its own forward
    and backward (loss divided by the number of chunks).

The three are timed round-robin after a warm-up, so drifts in machine load hit
them alike; the ratios are of median step times. Command::

    OMP_NUM_THREADS=1 python -m lbgap_models.bench_gbn --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import make_mlp
from .norm import NormSettings

__all__ = ["compare_gbn"]


def _model(in_features: int, width: int, depth: int, classes: int, norm: NormSettings) -> nn.Module:
    return make_mlp(in_features, [width] * depth, classes, norm=norm)


def _step_plain(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


def _step_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ghost: int) -> None:
    model.zero_grad(set_to_none=True)
    chunks = list(zip(x.split(ghost), y.split(ghost), strict=True))
    for xc, yc in chunks:
        (F.cross_entropy(model(xc), yc) / len(chunks)).backward()


def compare_gbn(
    batch: int = 2048,
    ghost: int = 64,
    width: int = 512,
    repeats: int = 20,
    *,
    depth: int = 3,
    in_features: int = 784,
    classes: int = 10,
    warmup: int = 3,
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Time one training step with plain BN, :class:`GhostBatchNorm1d` (both layouts) and Hoffer's loop.

    Parameters
    ----------
    batch, ghost, width:
        Batch size, ghost batch size and hidden width.
    repeats:
        Timed steps per method (after ``warmup`` untimed ones), interleaved.
    depth, in_features, classes:
        MLP shape (default 784 → 3×512 → 10).
    threads:
        ``torch.set_num_threads`` for the run (restored afterwards); None keeps the current setting.
    seed:
        Seed of the data and of the initialisation.

    Returns
    -------
    dict
        Median step times in seconds (``plain_s``, ``ghost_s``, ``ghost_strided_s``, ``loop_s``),
        their ratios to plain BatchNorm (``ghost_ratio``, ``ghost_strided_ratio``, ``loop_ratio``)
        and the settings.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, in_features, generator=gen)
        y = torch.randint(0, classes, (batch,), generator=gen)
        torch.manual_seed(seed)
        plain = _model(in_features, width, depth, classes, NormSettings(norm="batchnorm"))
        ghost_model = _model(in_features, width, depth, classes, NormSettings(norm="ghost", ghost_size=ghost))
        ghost_model.load_state_dict(plain.state_dict())
        strided_norm = NormSettings(norm="ghost", ghost_size=ghost, ghost_layout="strided")
        strided_model = _model(in_features, width, depth, classes, strided_norm)
        strided_model.load_state_dict(plain.state_dict())
        looped = _model(in_features, width, depth, classes, NormSettings(norm="batchnorm"))
        looped.load_state_dict(plain.state_dict())
        steps: dict[str, Callable[[], None]] = {
            "plain": lambda: _step_plain(plain, x, y),
            "ghost": lambda: _step_plain(ghost_model, x, y),
            "ghost_strided": lambda: _step_plain(strided_model, x, y),
            "loop": lambda: _step_loop(looped, x, y, ghost),
        }
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(warmup):
            for step in steps.values():
                step()
        for _ in range(repeats):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        medians = {name: statistics.median(t) for name, t in times.items()}
        return {
            "plain_s": medians["plain"],
            "ghost_s": medians["ghost"],
            "ghost_strided_s": medians["ghost_strided"],
            "loop_s": medians["loop"],
            "ghost_ratio": medians["ghost"] / medians["plain"],
            "ghost_strided_ratio": medians["ghost_strided"] / medians["plain"],
            "loop_ratio": medians["loop"] / medians["plain"],
            "batch": batch,
            "ghost": ghost,
            "width": width,
            "depth": depth,
            "repeats": repeats,
            "threads": torch.get_num_threads(),
        }
    finally:
        torch.set_num_threads(previous_threads)


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (``python -m lbgap_models.bench_gbn``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--ghost", type=int, default=64)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    r = compare_gbn(args.batch, args.ghost, args.width, args.repeats, threads=args.threads)
    print(
        f"3×{r['width']} MLP, batch {r['batch']}, ghost {r['ghost']}, {r['threads']} thread(s), "
        f"median of {r['repeats']} steps"
    )
    print(f"{'method':<28}{'step [ms]':>10}{'÷ plain':>9}")
    rows = [
        ("plain BatchNorm", r["plain_s"], 1.0),
        ("GhostBatchNorm contiguous", r["ghost_s"], r["ghost_ratio"]),
        ("GhostBatchNorm strided", r["ghost_strided_s"], r["ghost_strided_ratio"]),
        ("Hoffer chunk loop", r["loop_s"], r["loop_ratio"]),
    ]
    for label, seconds, ratio in rows:
        print(f"{label:<28}{seconds * 1e3:>10.1f}{ratio:>9.2f}")


if __name__ == "__main__":
    main()
