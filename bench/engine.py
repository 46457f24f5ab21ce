"""Engine epoch time against a hand-written PyTorch loop doing the same work.

Both train the same model on the same in-memory data with the same batch,
optimizer, clipping and per-epoch evaluation (train and test loss/accuracy in
eval mode, ‖w − w₀‖). They run round-robin, after a warm-up, so machine-load
drifts hit both; the ratio is of median epoch times.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lbgap.engine.train import build_parts, run_trial
from lbgap.registry import get_registry
from lbgap.spec import load_study

ROOT = Path(__file__).resolve().parents[1]


def hand_loop_epochs(cfg, seed: int, epochs: int) -> list[float]:
    """What a researcher writes by hand: returns per-epoch wall times."""
    reg = get_registry()
    parts = build_parts(cfg, seed, reg, torch.device("cpu"))
    data, model, opt = parts.data, parts.model, parts.optimizer
    lr = parts.plan.lr
    for g in opt.param_groups:
        g["lr"] = lr
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters())
    init = [p.detach().clone() for p in params]
    n, B = len(data.train_y), parts.plan.batch_size
    running = cfg.eval.train_metrics == "running"
    times = []
    for _epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum, correct_sum = torch.zeros(()), torch.zeros(())
        for i in range(math.ceil(n / B)):
            idx = perm[i * B : (i + 1) * B]
            out = model(data.train_x[idx])
            loss = F.cross_entropy(out, data.train_y[idx])
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if running:  # train loss/accuracy as the mean over the epoch's batches
                loss_sum += loss.detach() * len(idx)
                correct_sum += (out.detach().argmax(1) == data.train_y[idx]).sum()
        _ = float(loss_sum) / n, float(correct_sum) / n
        model.eval()
        splits = [(data.test_x, data.test_y)] if running else [(data.train_x, data.train_y), (data.test_x, data.test_y)]
        with torch.no_grad():
            for x, y in splits:
                tot, correct = 0.0, 0
                for s in range(0, len(y), cfg.eval.batch_size):
                    out = model(x[s : s + cfg.eval.batch_size])
                    tot += float(F.cross_entropy(out, y[s : s + cfg.eval.batch_size], reduction="sum"))
                    correct += int((out.argmax(1) == y[s : s + cfg.eval.batch_size]).sum())
            _ = math.sqrt(sum(float((p - q).pow(2).sum()) for p, q in zip(params, init, strict=False)))
        times.append(time.perf_counter() - t0)
    return times


def engine_epochs(cfg, seed: int, epochs: int) -> list[float]:
    out = run_trial(cfg, seed, registry=get_registry(), device=torch.device("cpu"))
    return out.history["epoch_time"][:epochs]


def compare_engine(variant: str = "sb", epochs: int = 3, rounds: int = 3) -> dict[str, float]:
    study = load_study(ROOT / "studies" / "hoffer_regime.yaml")
    cfg = study.resolve(variant, {"epochs": epochs, "schedule": {"name": "constant"}, "keep_weights": "none"})
    hand_loop_epochs(cfg, 0, 1)  # warm-up (data cache, allocator)
    engine_epochs(cfg, 0, 1)
    hand, eng = [], []
    for r in range(rounds):
        hand += hand_loop_epochs(cfg, r, epochs)[1:]
        eng += engine_epochs(cfg, r, epochs)[1:]
    h, e = statistics.median(hand), statistics.median(eng)
    return {"batch": cfg.batch_size, "hand_loop_s": h, "engine_s": e, "ratio": e / h}
