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
from typing import Any, Optional

import torch
import torch.distributed as dist

__all__ = ["launch_command", "main"]


def launch_command(
    out_dir: Path, key: str, nproc: int, device: str, *, search_params: Optional[dict[str, Any]] = None
) -> list[str]:
    """The ``torchrun`` command that trains one cell on ``nproc`` processes (one seed of a search
    trial when ``search_params``, the trial's Optuna parameters, are given)."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "lbgap.distributed", str(out_dir), key, "--device", device,
    ]
    if search_params is not None:
        cmd += ["--search-params", json.dumps(search_params)]
    return cmd


def main(argv: list[str]) -> int:
    from .driver.progress import NullReporter
    from .driver.run import _Runner, _source_key, _warm_start_state, resolve_device, search_trial_config
    from .registry import get_registry
    from .spec import load_study

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
        study = load_study(args.out_dir / "spec.yaml", get_registry())
        runner = _Runner(study, args.out_dir, device, NullReporter())
        runner.write = rank == 0
        if args.search_params is not None:
            cfg, seed, coords = search_trial_config(study, args.key, json.loads(args.search_params))
            runner.train(cfg, seed, args.key, coords)
        else:
            cells = {c.key: c for c in study.cells()}
            cell = cells[args.key]
            needs = {c.config.warm_start.epochs for c in cells.values() if _source_key(c) == cell.key}
            runner.train(
                cell.config, cell.seed, cell.key,
                {"variant": cell.variant, **dict(cell.point), "seed": cell.seed},
                init_state=_warm_start_state(runner, cell),
                checkpoints=needs or None,
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
