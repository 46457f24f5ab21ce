"""Data-parallel trials under ``torchrun``.

``python -m torch.distributed.run --standalone --nproc_per_node N -m lbgap.distributed DIR KEY``
trains the cell ``KEY`` of the study in ``DIR`` on N processes (with
``--search-params JSON``, the seed ``KEY`` of a search trial with those
Optuna parameters). Every rank
holds the data and draws the same global batch order; each computes the
gradient of its share of every global batch, the gradients are summed over
ranks (weighted by the shares, so the update equals the single-process one
for networks without BatchNorm; BatchNorm normalises each rank's share, like
ghost batches of size B/N), and rank 0 writes the trial file and weights.
The driver launches this for each trial when ``lbgap study run --nproc N``
is given; Optuna stays in the driver, so ranks never touch the storage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

__all__ = ["main"]


def main(argv: list[str]) -> int:
    from .driver.rank import train_rank
    from .driver.runner import resolve_device

    ap = argparse.ArgumentParser(prog="lbgap.distributed")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("key")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--search-params", default=None, help="a search trial's Optuna parameters (JSON)")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    try:
        rank = dist.get_rank()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
        params = json.loads(args.search_params) if args.search_params is not None else None
        train_rank(args.out_dir, args.key, device, rank, params)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
