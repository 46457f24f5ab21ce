"""The benchmark's workloads: small trained networks with all their samples in one batch."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
MNIST = (
    Path(os.environ.get("LBGAP_MNIST_DIR", ROOT.parent / "shared" / "data" / "mnist-subset"))
    / "MNIST"
    / "raw"
)


@dataclass
class Workload:
    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    description: str

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, seed: int
) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


def mlp_workload(n: int = 2000, epochs: int = 5) -> Workload:
    """40 → 3 × 512 → 10 ReLU MLP on ``n`` MNIST-1D samples."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(n / 0.8) + 1  # mnist1d keeps 80% for training
    data = make_dataset(args)
    x = torch.as_tensor(data["x"][:n], dtype=torch.float32)
    y = torch.as_tensor(data["y"][:n], dtype=torch.long)
    torch.manual_seed(0)
    widths = [40, 512, 512, 512]
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(512, 10))
    _train(model, x, y, epochs, 128, 0)
    return Workload("mlp3x512", model, x, y, f"3x512 ReLU MLP on MNIST-1D, {n} samples")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _mnist(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    img, lab = MNIST / "train-images-idx3-ubyte.gz", MNIST / "train-labels-idx1-ubyte.gz"
    if img.exists() and lab.exists():
        x = torch.as_tensor(_read_idx(img)[:n].reshape(n, -1), dtype=torch.float32) / 255.0
        return x, torch.as_tensor(_read_idx(lab)[:n], dtype=torch.long), f"{n} MNIST training images"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 784, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g), f"{n} random MNIST-shaped inputs"


def f1_workload(n: int = 1000, epochs: int = 3) -> Workload:
    """Keskar's F1 (784 → 5 × [512, BatchNorm, ReLU] → 10) on ``n`` MNIST images."""
    x, y, what = _mnist(n)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 784
    for _ in range(5):
        layers += [nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU()]
        width = 512
    model = nn.Sequential(*layers, nn.Linear(512, 10))
    _train(model, x, y, epochs, 100, 0)
    return Workload("f1", model, x, y, f"Keskar F1 (5x512 BN MLP) on {what}")


BUILDERS = {"mlp3x512": mlp_workload, "f1": f1_workload}


def build(name: str, quick: bool) -> Workload:
    """The named workload at full size, or at the ``--quick`` size (400 samples, 1 epoch)."""
    return BUILDERS[name](n=400, epochs=1) if quick else BUILDERS[name]()
