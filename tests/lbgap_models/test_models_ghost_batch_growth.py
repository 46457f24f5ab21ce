"""Ghost batch norm under a growing batch (regime ``increase_batch``): the ghost size stays, the
ghost batches per batch grow, in a single trial and in a vectorized group."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torch.nn.functional as F

import lbgap_models
import lbgap_training
from lbgap.engine.group import Member, run_group
from lbgap.engine.train import run_trial
from lbgap.registry import Registry
from lbgap.spec import load_study_text
from lbgap_models.ghost_batchnorm import GhostBatchNorm, GhostBatchNorm1d

CPU = torch.device("cpu")
GHOST, N = 8, 200

SPEC = f"""\
study: gbn_growth
base:
  dataset: {{name: blobs, n_train: {N}, n_test: 100}}
  model: {{name: mlp, hidden: [16], norm: ghost, ghost_size: {GHOST}}}
  optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
  batch_size: 16
  epochs: 4
  regime: [{{name: increase_batch, milestones: [1, 2], factor: 2}}]
"""


@pytest.fixture(scope="module")
def registry():
    toy = sys.modules["toy_plugins"]  # loaded by tests/conftest.py
    return Registry.from_plugins(
        [("models", lbgap_models, "lbgap", "0"), ("training", lbgap_training, "lbgap", "0"), ("toy", toy, "tests", "0")]
    )


def _ghosts_per_epoch(batch: int) -> int:
    """EMA updates of one per_ghost layer in one epoch: ⌈b/g⌉ per step, 1 for a batch of at most g."""
    sizes = [min(batch, N - i) for i in range(0, N, batch)]
    return sum(math.ceil(b / GHOST) if b > GHOST else 1 for b in sizes)


def _tracked(state: dict[str, torch.Tensor]) -> list[int]:
    return [int(v) for k, v in state.items() if k.endswith("num_batches_tracked")]


def test_the_ghost_size_stays_as_the_batch_grows(registry):
    cfg = load_study_text(SPEC, "gbn.yaml", registry).resolve("base", {})
    out = run_trial(cfg, 0, registry=registry, device=CPU)
    assert out.history["batch_size_epoch"] == [16, 32, 64, 64]
    # 16: 12 steps of 2 ghosts + 1; 32: 6 × 4 + 1; 64: 3 × 8 + 1 — the ghosts per epoch stay ⌈200/8⌉
    assert [_ghosts_per_epoch(b) for b in (16, 32, 64)] == [25, 25, 25]
    assert _tracked(out.final_state) == [sum(_ghosts_per_epoch(b) for b in (16, 32, 64, 64))]
    assert out.status == "completed" and all(math.isfinite(v) for v in out.history["train_loss"])
    # members of a vectorized group normalise the same ghost batches (the stacked layer); not compared
    # bitwise: with 8 ghosts of 8 per member the stacked layer's bias gradient sums in another order
    # (a 2e-9 difference that a plain batch of 64 shows as well, without a batch schedule)
    group = run_group([Member(cfg, 0, "a"), Member(cfg, 1, "b")], registry=registry, device=CPU)
    for k, v in out.final_state.items():
        torch.testing.assert_close(group[0].final_state[k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert _tracked(group[1].final_state) == _tracked(out.final_state)


@pytest.mark.parametrize("batch", [16, 64, 200])
def test_a_larger_batch_is_more_ghost_batches_of_the_same_size(batch):
    torch.manual_seed(0)
    layer = GhostBatchNorm1d(5, ghost_size=GHOST).train()
    x = torch.randn(batch, 5) * 3 + 1
    y = layer(x)
    chunks = [F.batch_norm(c, None, None, layer.weight, layer.bias, True, 0.0, layer.eps) for c in x.split(GHOST)]
    torch.testing.assert_close(y, torch.cat(chunks), rtol=1e-5, atol=1e-6)
    assert int(layer.num_batches_tracked) == math.ceil(batch / GHOST)
    assert isinstance(layer, GhostBatchNorm) and layer.ghost_size == GHOST
